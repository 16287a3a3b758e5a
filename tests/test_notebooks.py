"""Each notebook runs once, headlessly, with the tiny budget on synthetic data: papermill injects the
parameters (as `make reproduce` does) and ``pytest --nbval-lax`` (a pytest session of its own, in this process)
executes the prepared copy in a fresh kernel, failing on any error. Then the figures the notebook saves must
exist and show something, and the metrics file must have gained its section.

The notebooks run in order in one folder, so notebook 05 loads the models that 02-04 cached. The expected
figures are read from each notebook's own ``H.savefig(fig, fig_dir, "NAME")`` calls, so a new notebook is
tested without editing this file."""

import json
import os
import re
import time

import numpy as np
import papermill
import pytest
from conftest import child_env
from PIL import Image

import helpers as H
from helpers.pipeline import runner

pytestmark = pytest.mark.notebook

NOTEBOOKS = runner.notebooks()
SAVEFIG = re.compile(r'H\.savefig\(fig, fig_dir, "([^"]+)"\)')


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all notebook runs: later notebooks reuse the models cached by earlier ones."""
    return tmp_path_factory.mktemp("notebooks")


def assert_figure_shows_something(path):
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert img.shape[0] > 100 and img.shape[1] > 100, f"{path.name} is tiny: {img.shape}"
    assert img.std() > 10, f"{path.name} looks blank"


def figures_saved_by(path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [name for c in nb["cells"] if c["cell_type"] == "code" for name in SAVEFIG.findall("".join(c["source"]))]


def run_with_nbval(path, data_dir, workdir) -> dict:
    """Prepare ``path`` with the tiny parameters and execute it once under nbval; return the new metrics."""
    params = {"data_dir": str(data_dir), "budget": "tiny", "fig_dir": str(workdir / "figures"),
              "results_path": str(workdir / "metrics.json"), "runs_dir": str(workdir / "runs"),
              "progress": "text", **runner.SMALL_PARAMS["tiny"]}
    params = {k: v for k, v in params.items() if k in papermill.inspect_notebook(str(path))}
    runner.check_parameters(path, params)
    prepared = workdir / "prepared" / path.name
    prepared.parent.mkdir(exist_ok=True)
    papermill.execute_notebook(str(path), str(prepared), parameters=params, prepare_only=True,
                               kernel_name="python3", progress_bar=False)
    before = H.read_metrics(workdir / "metrics.json")
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:  # the kernel's environment: child_env(), as for any child process
        for key in set(os.environ) - set(child_env()):
            mp.delenv(key)
        for key, value in child_env().items():
            mp.setenv(key, value)
        mp.chdir(prepared.parent)
        # nbval in this process (a pytest session of its own, as pytester's inline_run makes one): a subprocess
        # would spend about 3 s per notebook starting Python and importing pytest, nbval and nbformat.
        junit = prepared.with_suffix(".xml")
        code = pytest.main(["--nbval-lax", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                            f"--junitxml={junit}", str(prepared)])
    outcome = junit.read_text(encoding="utf-8")
    assert code == 0, f"{path.name} failed under nbval (its output is above): {outcome[-3000:]}"
    assert re.search(r'tests="[1-9]\d*"', outcome) and 'failures="0"' in outcome, outcome[-2000:]
    after = H.read_metrics(workdir / "metrics.json")
    # The wall time, as the runner records it for `make reproduce` (the report's timings table reads it).
    H.merge_metrics(workdir / "metrics.json", "timings", {path.stem: time.perf_counter() - start}, update=True)
    return {k: v for k, v in after.items() if before.get(k) != v}


def test_the_numbered_notebooks_are_all_there_in_order():
    """01-06 of the report, and any later notebook numbered after them (README: "Adding a model")."""
    numbers = [int(p.stem[:2]) for p in NOTEBOOKS]
    assert numbers[:6] == [1, 2, 3, 4, 5, 6] and numbers == sorted(set(numbers)), NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_tiny_budget_under_nbval(path, synthetic_dir, workdir):
    written = run_with_nbval(path, synthetic_dir, workdir)
    assert written, f"{path.name} wrote no metrics section"
    figures = figures_saved_by(path)
    assert figures, f"{path.name} saves no figure"
    for name in figures:
        assert_figure_shows_something(workdir / "figures" / name)


def test_notebook_01_on_real_data(real_data_dir, tmp_path):
    data = run_with_nbval(runner.notebooks(["01"])[0], real_data_dir, tmp_path)["data"]
    loaded = H.load_quickdraw(real_data_dir)
    assert data["synthetic"] is False
    assert data["n_train"] == len(loaded.y_train) and data["md5"] == loaded.md5
    for name in figures_saved_by(runner.notebooks(["01"])[0]):
        assert_figure_shows_something(tmp_path / "figures" / name)


def test_the_report_renders_from_the_tiny_run(workdir):
    """Whatever the small run chose (e.g. the course recipe as the best conditional design), report.md renders
    from its metrics: `QUICK=1 make reproduce` ends by rendering it."""
    metrics = H.read_metrics(workdir / "metrics.json")
    missing = {"data", "lstm_ae", "cnn_ae", "vae", "latent", "beyond", "timings"} - set(metrics)
    if missing:
        pytest.skip(f"runs after the notebook tests of this module; sections {sorted(missing)} are missing")
    rendered = H.render_report((H.ROOT / "report.md").read_text(encoding="utf-8"), metrics)
    for t in H.TABLE_RE.finditer(rendered):  # every table is the tiny run's, or says which command fills it
        if not t["body"].startswith("(not in these results: run `"):
            assert t["body"] == H.TABLES[t["name"]](metrics), t["name"]
    values = list(H.VALUE_RE.finditer(rendered))
    assert values and all(v["body"] for v in values)
    assert H.render_report(rendered, metrics) == rendered  # rendering is idempotent


def _code_cells(path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", runner.notebooks(["02", "03", "04", "05", "06"]), ids=lambda p: p.stem)
def test_model_notebooks_set_up_in_one_line(path):
    setup = _code_cells(path)[1]  # the cell after the parameters
    assert setup.count("H.Notebook(data_dir, seed, device, budget, precision, runs_dir, progress)") == 1, setup
    assert "H.load_quickdraw" not in setup and "H.pick_device" not in setup


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_of_the_parameters_cell(path):
    """A parameter line papermill cannot parse (an "=" in its comment, say) is silently left out: -p and the runner's
    small budgets would then not reach it."""
    cell = _code_cells(path)[0]
    names = [line.split(":", 1)[0] for line in cell.splitlines() if re.match(r"^\w+: \w+ = ", line)]
    assert names and sorted(runner.declared_parameters(path)) == sorted(names)
