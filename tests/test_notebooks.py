"""Each notebook runs headlessly through papermill with tiny budgets on synthetic data, then passes
``pytest --nbval-lax`` on its executed copy (nbval reruns every cell and fails on any error)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import helpers as H
from helpers import runner

pytestmark = pytest.mark.notebook

EXPECTED = {
    "01": (["01_class_counts.png", "01_examples.png", "01_mean_drawings.png", "01_ink.png"], "data"),
    "02": (["02_lstm_loss.png", "02_lstm_reconstructions.png"], "lstm_ae"),
    "03": (["03_cnn_loss.png", "03_cnn_reconstructions.png"], "cnn_ae"),
    "04": (["04_vae_loss_parts.png", "04_vae_compare.png", "04_vae_reconstructions.png",
            "04_vae_samples.png", "04_cvae_grid.png", "04_interpolation.png", "04_nearest_train.png",
            "04_cvae_confusion.png"], "vae"),
    "05": (["05_tsne.png"], "latent"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all notebook runs: later notebooks reuse the models cached by earlier ones."""
    return tmp_path_factory.mktemp("notebooks")


def assert_figure_shows_something(path):
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert img.shape[0] > 100 and img.shape[1] > 100, f"{path.name} is tiny: {img.shape}"
    assert img.std() > 10, f"{path.name} looks blank"


def run_tiny(number, data_dir, workdir, monkeypatch):
    monkeypatch.setenv("QUICKDRAW_DIR", str(data_dir))
    times = runner.reproduce(only=[number], tiny=True, fig_dir=workdir / "figures",
                             results_path=workdir / "metrics.json", runs_dir=workdir / "runs",
                             out_dir=workdir / "executed", log_output=False)
    return workdir / "executed" / f"{next(iter(times))}.ipynb"


def nbval(executed):
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                           str(executed)], capture_output=True, text=True, cwd=executed.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


@pytest.mark.parametrize("number", sorted(EXPECTED))
def test_notebook_runs_with_tiny_budget_and_passes_nbval(number, synthetic_dir, workdir, monkeypatch):
    if not list(H.runner.NOTEBOOK_DIR.glob(f"{number}_*.ipynb")):
        pytest.fail(f"notebook {number} is missing")
    executed = run_tiny(number, synthetic_dir, workdir, monkeypatch)
    figures, section = EXPECTED[number]
    for name in figures:
        assert_figure_shows_something(workdir / "figures" / name)
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert section in metrics and metrics["timings"][executed.stem] > 0
    nbval(executed)


def test_notebook_01_on_real_data(real_data_dir, tmp_path, monkeypatch):
    executed = run_tiny("01", real_data_dir, tmp_path, monkeypatch)
    data = json.loads((tmp_path / "metrics.json").read_text())["data"]
    loaded = H.load_quickdraw(real_data_dir)
    assert data["synthetic"] is False
    assert data["n_train"] == len(loaded.y_train) and data["md5"] == loaded.md5
    for name in EXPECTED["01"][0]:
        assert_figure_shows_something(tmp_path / "figures" / name)
    nbval(executed)
