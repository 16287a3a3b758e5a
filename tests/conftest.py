import os
from pathlib import Path

import pytest

import helpers as H

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
