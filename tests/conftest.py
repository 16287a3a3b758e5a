import os
from pathlib import Path

# One thread per test process and for its children (kernels, make, training scripts): the suite runs in two
# pytest-xdist workers, and two workers with a thread per core each would oversubscribe the cores many times
# over. Set before torch is imported, which reads it once.
os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

import helpers as H  # noqa: E402

REAL_DATA_DIR = os.environ.get("QUICKDRAW_DIR")
ROOT = H.ROOT

# The test files that take longest, longest first (bench/README.md, "The test suite's time"). `make test` runs
# the files in two pytest-xdist workers in collection order (--dist loadfile --no-loadscope-reorder); starting
# with the long ones keeps a long file from starting last on one worker while the other one idles.
LONGEST_FIRST = ("test_notebooks.py", "test_platforms.py", "test_robustness.py", "test_lab.py",
                 "test_adding_a_model.py", "test_bench_training.py", "test_seeds.py", "test_training.py",
                 "test_evaluation.py", "test_concurrency.py", "test_bench.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its own order


def child_env(**extra) -> dict:
    """The environment of a child process (a kernel, make, a script): one thread, and none of the run
    settings of the environment the tests run in. QUICKDRAW_DIR (CI's real sample) would override the data
    folder a test gives a notebook; make's own variables would join the child to CI's make."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("QUICK", "PARAMS", "QUICKDRAW_DIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["OMP_NUM_THREADS"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A small SYNTHETIC course-format folder (40 train + 10 test drawings per class)."""
    return H.write_synthetic_quickdraw(tmp_path_factory.mktemp("synthetic") / "quickdraw", 40, 10, seed=0)


@pytest.fixture(scope="session")
def synthetic(synthetic_dir) -> H.QuickDraw:
    return H.load_quickdraw(synthetic_dir)


@pytest.fixture
def real_data_dir() -> Path:
    if not REAL_DATA_DIR:
        pytest.skip("QUICKDRAW_DIR is not set: the real-data tests need a course-format folder "
                    "(CI points it at ../shared/data/quickdraw_sample)")
    return Path(REAL_DATA_DIR)


def small_vae(encoder: str = "cnn", seed: int = 0, latent_dim: int = 8, **kwargs) -> H.VAE:
    """A small VAE (8-d latent), initialised from ``seed``; ``kwargs`` go to ``helpers.build_vae``."""
    torch.manual_seed(seed)
    return H.build_vae(encoder, latent_dim=latent_dim, **kwargs)
