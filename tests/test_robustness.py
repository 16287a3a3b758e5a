"""Robustness: what happens when things go wrong.

A killed training run resumes to the same weights; a broken data folder stops `make reproduce` before any
notebook runs; bad parameters are refused with a message naming them; reruns give the same numbers and
reuse the model cache; untrusted files are never unpickled; the sources are clean.

Everything is written under pytest's tmp_path: the repository's figures/, results/ and runs/ are only read.
"""

import ast
import hashlib
import json
import os
import pickle
import re
import runpy
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, child_env  # noqa: E402

import helpers as H
from helpers.pipeline import runner
from helpers.pipeline.runner import ParameterError

PROTECTED = [ROOT / "figures", ROOT / "results"]  # what `make reproduce` would write


# ---------------------------------------------------------------------------------------------------
# 1. A training run killed with SIGKILL resumes from its checkpoint and ends with the same weights
# ---------------------------------------------------------------------------------------------------

TRAIN_SCRIPT = textwrap.dedent("""
    import sys

    import helpers as H

    data_dir, runs_dir, metrics_path = sys.argv[1:4]
    data = H.load_quickdraw(data_dir)
    cfg = H.TrainConfig(steps=400, batch_size=32, ckpt_every=20)
    model, record = H.train_or_load("cnn_ae", {"kind": "cnn_ae"}, cfg, data, device="cpu",
                                    runs_dir=runs_dir, progress=False)
    H.merge_metrics(metrics_path, "cnn_ae", {
        "steps": record["steps"],
        "final_train_loss": record["history"]["train"]["loss"][-1],
        "final_val_loss": record["history"]["val"]["loss"][-1],
        "trained_now": record["trained_now"],
    })
    print("done", flush=True)
""")

# What atomic_path leaves behind if killed between creating its temporary file and renaming it: hidden,
# with a .tmp suffix, so that nothing ever loads it in place of checkpoint.pt or model.pt.
TEMP_NAME = re.compile(r"^\.(checkpoint|model)\.pt\.[^/]*\.tmp$")


def start_training(script, data_dir, workdir):
    return subprocess.Popen([sys.executable, str(script), str(data_dir), str(workdir / "runs"),
                             str(workdir / "metrics.json")], cwd=workdir, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def model_folder(workdir) -> Path:
    (folder,) = (workdir / "runs" / "models").iterdir()
    return folder


def test_training_killed_with_sigkill_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, synthetic_dir,
                                                                                      monkeypatch, capsys):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT, encoding="utf-8")
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    killed.mkdir()
    reference.mkdir()
    proc = start_training(script, synthetic_dir, killed)
    try:
        deadline = time.monotonic() + 90
        while not list((killed / "runs" / "models").glob("*/checkpoint.pt")):
            assert proc.poll() is None, f"the run ended before its first checkpoint:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "no checkpoint.pt after 90 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    # After the kill: the run stopped midway, and every file a loader could pick up is whole.
    folder = model_folder(killed)
    assert not (folder / "model.pt").exists(), "the run finished before it was killed: nothing was tested"
    assert not (killed / "metrics.json").exists()
    names = {p.name for p in folder.iterdir()}
    strays = {n for n in names - {"config.json", "checkpoint.pt"} if not TEMP_NAME.match(n)}
    assert not strays, f"unexpected files after the kill: {strays}"
    assert json.loads((folder / "config.json").read_text(encoding="utf-8"))["name"] == "cnn_ae"
    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert 0 < state["step"] < 400 and state["step"] % 20 == 0
    assert set(state["model"]) == set(H.build_model({"kind": "cnn_ae"})[0].state_dict())

    # Started again: it resumes, finishes, writes the model and the metrics, and removes the checkpoint.
    resume = start_training(script, synthetic_dir, killed)
    # Meanwhile, the same script uninterrupted, in this process (one thread, as in the child).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(sys, "argv", [str(script), str(synthetic_dir), str(reference / "runs"),
                                          str(reference / "metrics.json")])
        runpy.run_path(str(script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    out = finish(resume)
    assert "resuming from" in out and "checkpoint.pt" in out, out[-2000:]
    assert (folder / "model.pt").is_file() and not (folder / "checkpoint.pt").exists()
    metrics = json.loads((killed / "metrics.json").read_text(encoding="utf-8"))["cnn_ae"]
    assert metrics["steps"] == 400 and metrics["trained_now"] is True

    assert "resuming from" not in capsys.readouterr().out
    resumed = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    uninterrupted = torch.load(model_folder(reference) / "model.pt", map_location="cpu", weights_only=True)
    assert resumed["model"].keys() == uninterrupted["model"].keys()
    differing = [k for k in resumed["model"] if not torch.equal(resumed["model"][k], uninterrupted["model"][k])]
    assert not differing, f"weights differ from the uninterrupted run's: {differing}"
    assert resumed["record"]["history"] == uninterrupted["record"]["history"]
    assert metrics == json.loads((reference / "metrics.json").read_text(encoding="utf-8"))["cnn_ae"]


# ---------------------------------------------------------------------------------------------------
# 2. `make reproduce` refuses a broken data folder and a bad parameter before any notebook runs, and
#    writes nothing. (Every way a data folder can be broken is a unit test of the loader: test_data.py.)
# ---------------------------------------------------------------------------------------------------

def tree_hashes(folders) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders if folder.exists() for p in sorted(folder.rglob("*")) if p.is_file()}


def make_reproduce(tmp_path, data_dir, *args) -> str:
    """`make reproduce ARGS` on ``data_dir``; asserts it failed before any notebook ran, changing nothing."""
    assert shutil.which("make"), "make is not installed"
    before = tree_hashes(PROTECTED)
    proc = subprocess.run(["make", "-C", str(ROOT), "reproduce", f"QUICKDRAW_DIR={data_dir}", *args], cwd=tmp_path,
                          env=child_env(), capture_output=True, text=True, timeout=300)
    after = tree_hashes(PROTECTED)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "== 01_data" not in output, output[-3000:]
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"files changed during a refused run: {changed}"
    return output


def test_make_reproduce_refuses_a_broken_data_folder_naming_the_file(tmp_path, synthetic_dir):
    broken = tmp_path / "broken"
    shutil.copytree(synthetic_dir, broken)
    y = np.load(broken / "train_labels.npy")
    np.save(broken / "train_labels.npy", np.where(np.arange(len(y)) == 3, 7, y))
    output = make_reproduce(tmp_path, broken)
    message = next((line for line in output.splitlines() if "DataError: " in line), None)
    assert message, f"no DataError message in the output:\n{output[-3000:]}"
    assert str(broken / "train_labels.npy") in message and "labels [7] out of range" in message, message


def test_make_reproduce_refuses_an_unknown_parameter(tmp_path, synthetic_dir):
    output = make_reproduce(tmp_path, synthetic_dir, "PARAMS=-p stepz 5")
    assert "error: unknown parameter(s) stepz: no notebook of 01_data.ipynb" in output, output[-3000:]


# ---------------------------------------------------------------------------------------------------
# 3. Bad parameters: unknown names, wrong types and out-of-range values are refused with a clear message
# ---------------------------------------------------------------------------------------------------

NOTEBOOK_03 = runner.notebooks(["03"])[0]


@pytest.mark.parametrize("name, value, expected", [
    ("n_show", "ten", "int"),
    ("n_show", True, "int"),  # bool is a subclass of int in Python; papermill would pass it on
    ("seed", 2.5, "int"),
    ("budget", 3, "str"),
    ("device", 0, "str"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_it(name, value, expected):
    with pytest.raises(ParameterError) as e:
        runner.check_parameters(NOTEBOOK_03, {name: value})
    assert f"{name}={value!r}" in str(e.value) and f"type {expected}" in str(e.value)


def test_a_parameter_the_notebook_does_not_declare_is_an_error():
    with pytest.raises(ParameterError, match=r"03_cnn_autoencoder.ipynb: unknown parameter\(s\) steps; it declares"):
        runner.check_parameters(NOTEBOOK_03, {"steps": 5})


def test_the_budget_is_chosen_by_quick_not_by_a_parameter(tmp_path, synthetic_dir, monkeypatch):
    monkeypatch.setenv("QUICKDRAW_DIR", str(synthetic_dir))
    for value in ("huge", "tiny"):
        with pytest.raises(ParameterError, match="budget"):
            runner.reproduce(only=["03"], extra={"budget": value}, results_path=tmp_path / "m.json")
    with pytest.raises(ParameterError, match="budget must be one of full, quick, tiny, got 'huge'"):
        runner.reproduce(only=["03"], budget="huge", results_path=tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_a_notebook_failing_on_a_bad_value_names_itself_the_cell_and_the_message(tmp_path, synthetic_dir,
                                                                                 monkeypatch):
    monkeypatch.setenv("QUICKDRAW_DIR", str(synthetic_dir))
    with pytest.raises(RuntimeError) as e:
        runner.reproduce(only=["03"], budget="tiny", extra={"device": "gpu"}, fig_dir=tmp_path / "figures",
                         results_path=tmp_path / "metrics.json", runs_dir=tmp_path / "runs",
                         out_dir=tmp_path / "executed", log_output=False)
    message = str(e.value)
    assert "03_cnn_autoencoder.ipynb failed in cell" in message, message
    assert "device must be 'auto', 'cpu', 'cuda' or 'mps', got 'gpu'" in message, message
    assert str(tmp_path / "executed" / "03_cnn_autoencoder.ipynb") in message
    assert not list((tmp_path / "runs").glob("models/*/model.pt")), "a model was trained with a bad value"


TCP_WARNING = "Kernel is running over TCP without encryption"


def test_the_runners_kernels_talk_over_ipc_so_ipykernel_has_no_unencrypted_tcp_to_warn_about(tmp_path, synthetic_dir,
                                                                                             monkeypatch, capfd):
    import nbformat
    import papermill

    # The control: a kernel papermill starts its default way (TCP on localhost) warns where capfd sees it.
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    plain.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(plain, tmp_path / "plain.ipynb")
    papermill.execute_notebook(str(tmp_path / "plain.ipynb"), str(tmp_path / "plain-run.ipynb"), kernel_name="python3",
                               progress_bar=False)
    out, err = capfd.readouterr()
    assert TCP_WARNING in out + err, "no warning from a TCP kernel: the check below would prove nothing"

    # The runner's kernels (a run that stops at notebook 03's first cell is enough: the warning comes at start).
    monkeypatch.setenv("QUICKDRAW_DIR", str(synthetic_dir))
    with pytest.raises(RuntimeError, match="device must be"):
        runner.reproduce(only=["03"], budget="tiny", extra={"device": "gpu"}, fig_dir=tmp_path / "figures",
                         results_path=tmp_path / "metrics.json", runs_dir=tmp_path / "runs",
                         out_dir=tmp_path / "executed", log_output=True)
    out, err = capfd.readouterr()
    assert "== 03_cnn_autoencoder.ipynb (tiny budget) ==" in out, out[-2000:]
    assert TCP_WARNING not in out + err, err[-2000:]


# ---------------------------------------------------------------------------------------------------
# 4. Reruns: the same seed gives the same numbers; a rerun in the same runs dir loads the cached model
# ---------------------------------------------------------------------------------------------------

TIMING_KEYS = {"wall_time_s", "images_per_s"}


def without_timings(metrics):
    if isinstance(metrics, dict):
        return {k: without_timings(v) for k, v in metrics.items()
                if k not in TIMING_KEYS and k not in ("timings", "training_times", "timings_machine")}
    if isinstance(metrics, list):
        return [without_timings(v) for v in metrics]
    return metrics


def test_reruns_with_the_same_seed_give_the_same_metrics(tmp_path, synthetic_dir, monkeypatch):
    monkeypatch.setenv("QUICKDRAW_DIR", str(synthetic_dir))
    monkeypatch.delenv("QUICK", raising=False)

    def run(results, runs):
        return runner.reproduce(only=["03"], budget="tiny", extra={"seed": 0}, fig_dir=results / "figures",
                                results_path=results / "metrics.json", runs_dir=runs,
                                out_dir=results / "executed", log_output=False)

    first, second = tmp_path / "first", tmp_path / "second"
    run(first, first / "runs")
    run(second, second / "runs")
    m1, m2 = (json.loads((d / "metrics.json").read_text(encoding="utf-8")) for d in (first, second))
    assert {"cnn_ae", "timings"} <= m1.keys() and m1["timings"]["03_cnn_autoencoder"] > 0
    assert without_timings(m1) == without_timings(m2)
    # A rerun on the first run's cache (it loads the model, the same numbers): tests/test_seeds.py.


# ---------------------------------------------------------------------------------------------------
# 5. Untrusted files: checkpoints and arrays are loaded without unpickling arbitrary objects
# ---------------------------------------------------------------------------------------------------

def _loads(tree, module, func):
    """Calls of module.func (e.g. torch.load, np.load / numpy.load) in a parsed source file."""
    names = {"np", "numpy"} if module == "numpy" else {module}
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == func and isinstance(node.func.value, ast.Name) and node.func.value.id in names]


def _keyword(call, name):
    return next((k.value.value for k in call.keywords if k.arg == name and isinstance(k.value, ast.Constant)),
                "<missing>")


def test_every_torch_load_and_np_load_in_helpers_refuses_pickles():
    found = {"torch": 0, "numpy": 0}
    bad = []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for call in _loads(tree, "torch", "load"):
            found["torch"] += 1
            if _keyword(call, "weights_only") is not True:
                bad.append(f"{path.name}:{call.lineno}: torch.load without weights_only=True")
        for call in _loads(tree, "numpy", "load"):
            found["numpy"] += 1
            if _keyword(call, "allow_pickle") is not False:
                bad.append(f"{path.name}:{call.lineno}: np.load without allow_pickle=False")
        for node in ast.walk(tree):  # the pickle module itself is never used to read files
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                bad += [f"{path.name}:{node.lineno}: imports {m}" for m in mods if m in ("pickle", "dill", "joblib")]
    assert not bad, "\n".join(bad)
    assert found["torch"] >= 2 and found["numpy"] >= 1, f"the scan found too few calls to mean anything: {found}"


def _payload_ran(marker: str):
    """Called by the unpickler if the bogus file below were ever unpickled by a plain pickle load."""
    Path(marker).write_text("the payload ran", encoding="utf-8")
    return {"model": {}}


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_payload_ran, (self.marker,))


@pytest.mark.parametrize("filename", ["model.pt", "checkpoint.pt"])
def test_a_cached_file_holding_a_pickled_object_is_refused_not_run(filename, tmp_path, synthetic):
    spec, cfg = {"kind": "cnn_ae"}, H.TrainConfig(steps=5, batch_size=32, ckpt_every=1)
    folder = tmp_path / "runs" / "models" / f"cnn_ae-{H.config_key(spec, cfg, synthetic)}"
    folder.mkdir(parents=True)
    marker = tmp_path / "payload-ran.txt"
    torch.save(Payload(marker) if filename == "model.pt" else {"model": Payload(marker), "step": 1},
               folder / filename)

    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights.only"):
        H.train_or_load("cnn_ae", spec, cfg, synthetic, runs_dir=tmp_path / "runs", progress=False, verbose=False)
    assert not marker.exists(), "train_or_load unpickled the object and ran its code"
    if filename == "checkpoint.pt":  # and it did not go on to train a model on top of it
        assert not (folder / "model.pt").exists()

    # The file is a live payload: a plain unpickling load would have run it.
    torch.load(folder / filename, weights_only=False)
    assert marker.read_text(encoding="utf-8") == "the payload ran"


# ---------------------------------------------------------------------------------------------------
# 6. Clean code: ruff passes; the source notebooks are committed clean
# ---------------------------------------------------------------------------------------------------

def test_ruff_check_passes():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=child_env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


SOURCE_NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebook_is_clean_with_a_parameters_cell_and_the_python3_kernel(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them"
    assert "papermill" not in nb["metadata"], f"{path.name} is an executed copy (papermill metadata)"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'; expected exactly one"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", nb["metadata"].get("kernelspec")


@pytest.mark.parametrize("name, value", [("precision", "fp16"), ("budget", "huge"), ("progress", "bar")])
def test_a_value_outside_a_parameters_choices_is_refused_before_anything_runs(name, value):
    with pytest.raises(ParameterError) as e:
        runner.check_parameters(NOTEBOOK_03, {name: value})
    assert f"{name}={value!r} should be one of" in str(e.value)
    for ok in runner.CHOICES[name]:
        runner.check_parameters(NOTEBOOK_03, {name: ok})
