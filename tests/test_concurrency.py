"""Several processes at once: merges into one metrics file keep every section, and a config that two
processes ask for is trained once (the other waits, then loads it). Real processes, started together."""

import json
import subprocess
import sys
import textwrap
import time

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
