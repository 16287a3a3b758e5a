"""Several processes at once: merges into one metrics file keep every section, and a config that two
processes ask for is trained once (the other waits, then loads it). Real processes, started together."""

import json
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import child_env

import helpers as H

# Each child imports helpers (seconds), says it is ready, and waits for the "go" file, so that the children
# do their work at the same moment.
START_TOGETHER = textwrap.dedent("""
    import sys
    import time
    from pathlib import Path

    import helpers as H

    sync, me = Path(sys.argv[1]), sys.argv[2]
    (sync / f"ready-{me}").touch()
    while not (sync / "go").exists():
        time.sleep(0.002)
""")

MERGE = START_TOGETHER + textwrap.dedent("""
    metrics_path, n = sys.argv[3], int(sys.argv[4])
    for i in range(n):
        H.merge_metrics(metrics_path, f"{me}-{i}", {"i": i, "by": me})
""")

TRAIN = START_TOGETHER + textwrap.dedent("""
    import hashlib
    import json

    data_dir, runs_dir = sys.argv[3:5]
    data = H.load_quickdraw(data_dir)
    cfg = H.TrainConfig(steps=100, batch_size=32, ckpt_every=20)
    model, record = H.train_or_load("cnn_ae", {"kind": "cnn_ae"}, cfg, data, runs_dir=runs_dir, progress=False)
    weights = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()
    print(json.dumps({"trained_now": record["trained_now"], "weights": weights}))
""")


def run_together(script: str, args_of: list[list], sync_dir, timeout: float = 120) -> list[str]:
    """Start one child per entry of ``args_of`` (``sys.executable -c script sync_dir name *args``), let them
    go at once when all are ready; return their outputs (stdout and stderr), asserting each exited 0."""
    sync_dir.mkdir()
    env = child_env()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(sync_dir), f"p{i}", *map(str, args)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, args in enumerate(args_of)]
    try:
        deadline = time.monotonic() + timeout
        while len(list(sync_dir.glob("ready-*"))) < len(procs):
            assert all(p.poll() is None for p in procs), [p.communicate()[0][-2000:] for p in procs if p.poll()]
            assert time.monotonic() < deadline, "the children did not start"
            time.sleep(0.01)
        (sync_dir / "go").touch()
        outputs = [p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


def test_processes_merging_at_once_keep_every_section(tmp_path):
    metrics_path, n, children = tmp_path / "metrics.json", 150, 2
    run_together(MERGE, [[metrics_path, n]] * children, tmp_path / "sync")
    metrics = H.read_metrics(metrics_path)
    assert len(metrics) == children * n
    assert metrics["p1-149"] == {"i": 149, "by": "p1"}


def test_two_processes_training_one_config_train_it_once(tmp_path, synthetic_dir):
    runs_dir = tmp_path / "runs"
    outputs = run_together(TRAIN, [[synthetic_dir, runs_dir]] * 2, tmp_path / "sync")
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert sorted(r["trained_now"] for r in results) == [False, True], outputs
    assert results[0]["weights"] == results[1]["weights"]
    (loader_output,) = [out for out, r in zip(outputs, results) if not r["trained_now"]]
    assert "cnn_ae: waiting for another process training" in loader_output
    assert "cnn_ae: loaded from" in loader_output
    (folder,) = (runs_dir / "models").iterdir()
    assert (folder / "model.pt").exists() and not (folder / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------------------
# The runner with --jobs: notebooks side by side, each in a process of its own
# ---------------------------------------------------------------------------------------------------

def tiny_notebook(path, body: str) -> None:
    """A notebook with a parameters cell (``stamp_dir``) and one cell of ``body``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('stamp_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


STAMPED = textwrap.dedent("""
    import json, os, time
    from pathlib import Path
    start = time.time()
    Path(stamp_dir, "{name}.started").touch()
    deadline = start + 60  # wait for the notebook that should run beside this one (none: "")
    while "{beside}" and not Path(stamp_dir, "{beside}.started").exists() and time.time() < deadline:
        time.sleep(0.05)
    Path(stamp_dir, "{name}.json").write_text(json.dumps({{"start": start, "end": time.time(),
                                                          "threads": os.environ["OMP_NUM_THREADS"]}}),
                                    encoding="utf-8")
    {then}
""")


def test_notebooks_side_by_side_respect_their_order_and_a_failure_stops_what_comes_after(
        tmp_path, synthetic_dir, monkeypatch, capfd):
    from helpers.pipeline import runner

    folder, stamps = tmp_path / "notebooks", tmp_path / "stamps"
    folder.mkdir()
    stamps.mkdir()
    broken = 'raise ValueError("broken on purpose")'
    for name, beside, then in [("01_first", "02_beside", ""), ("02_beside", "01_first", ""),
                               ("03_after_first", "", broken), ("04_after_broken", "", "")]:
        tiny_notebook(folder / f"{name}.ipynb", STAMPED.format(beside=beside, name=name, then=then))
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", folder)
    monkeypatch.setattr(runner, "AFTER", {"03_after_first": ("01_first",), "04_after_broken": ("03_after_first",)})
    monkeypatch.setenv("QUICKDRAW_DIR", str(synthetic_dir))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner, "_usable_cpus", lambda: 2)
    metrics_path = tmp_path / "metrics.json"
    with pytest.raises(RuntimeError) as failure:
        runner.reproduce(budget="tiny", extra={"stamp_dir": str(stamps)}, fig_dir=tmp_path / "figures",
                         results_path=metrics_path, runs_dir=tmp_path / "runs", out_dir=tmp_path / "executed", jobs=2)
    message = str(failure.value)
    assert message.startswith("03_after_first failed") and "broken on purpose" in message, message
    assert "not run: 04_after_broken" in message, message
    ran = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in stamps.glob("*.json")}
    # Each of the first two waited (up to a minute) for the other to start: they ran side by side.
    assert sorted(ran) == ["01_first", "02_beside", "03_after_first"]
    first, beside, after = ran["01_first"], ran["02_beside"], ran["03_after_first"]
    assert first["end"] - first["start"] < 55 and beside["end"] - beside["start"] < 55  # neither waited in vain
    assert after["start"] >= first["end"]  # its earlier notebook had finished
    assert {r["threads"] for r in ran.values()} == {"1"}  # two notebooks on two CPUs: one thread each
    metrics = H.read_metrics(metrics_path)
    assert sorted(metrics["timings"]) == ["01_first", "02_beside"]
    assert all(m["notebooks_side_by_side"] == 2 for m in metrics["timings_machine"].values())
    out = capfd.readouterr().out
    assert "[01] == 01_first.ipynb done in" in out and "[02] == 02_beside.ipynb done in" in out, out[-2000:]


def test_the_schedule_keeps_number_order_within_the_jobs_and_waits_for_earlier_notebooks(monkeypatch):
    from helpers.pipeline import runner

    monkeypatch.setattr(runner, "AFTER", {"c": ("a",), "d": ("c",)})
    stems = ["a", "b", "c", "d", "e"]
    assert runner.schedule(stems, 2, set(), set(), set()) == ["a", "b"]
    assert runner.schedule(stems, 2, {"a"}, {"b"}, set()) == ["e"]  # c waits for a
    assert runner.schedule(stems, 3, set(), {"a", "b"}, set()) == ["c", "e"]
    assert runner.schedule(stems, 2, set(), {"a", "b", "c", "e"}, set()) == ["d"]
    assert runner.schedule(stems, 2, set(), {"a", "b"}, {"c"}) == ["e"]  # d never runs after a failed c
    assert runner.schedule(["d", "e"], 1, set(), set(), set()) == ["d"]  # c is not part of this run
    assert runner.default_jobs("full") == 1 and runner.default_jobs("tiny") == 1
    # Launched: what others wait for first, then the longest first (last run's times when it has them all).
    assert runner.launch_order(stems, {}) == ["c", "a", "e", "d", "b"]
    times = {"a": 5.0, "b": 50.0, "c": 1.0, "d": 9.0, "e": 20.0}
    assert runner.launch_order(stems, times) == ["a", "c", "b", "e", "d"]
    assert runner.launch_order(stems, {"b": 50.0}) == ["c", "a", "e", "d", "b"]  # incomplete: later counts as longer


def test_every_notebook_that_reads_the_chosen_design_runs_after_the_notebook_that_chooses_it():
    from helpers.pipeline import runner

    readers = {p.stem for p in runner.notebooks() if "H.chosen_design(" in p.read_text(encoding="utf-8")}
    assert readers, "no notebook reads the chosen design: update this test"
    for stem in readers:
        assert "06_samplers_and_designs" in runner.AFTER.get(stem, ()), f"{stem} reads beyond.chosen; add it to AFTER"
    assert all(stem > before for stem, befores in runner.AFTER.items() for before in befores)  # number order holds
