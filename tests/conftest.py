import os
from pathlib import Path

# One thread per test process and for its children (kernels, make, training scripts): the suite runs in two
# pytest-xdist workers, and two workers with a thread per core each would oversubscribe the cores many times
# over. Set before torch is imported, which reads it once.
os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402

import helpers as H  # noqa: E402

REAL_DATA_DIR = os.environ.get("QUICKDRAW_DIR")


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
