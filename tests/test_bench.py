"""The benches' helpers: keeping freed memory changes speed, never results; the t-SNE bench runs end to end.

No speed is asserted here: speed targets live in the benchmarks (`make bench`, bench/bench_tsne.py), which
print them. The training bench has its own tests (test_bench_training.py).
"""

import hashlib
import json
import platform
import re
import subprocess
import sys

from conftest import ROOT, child_env

import helpers as H

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def train_digests() -> dict:
    """SHA-256 of the weights of each autoencoder after 3 training steps on synthetic drawings."""
    X = H.to_tensor(H.make_synthetic_images(60, seed=1)[0])
    digests = {}
    for kind in ("lstm_ae", "cnn_ae"):
        H.set_seed(0)
        model, loss_fn = H.build_model({"kind": kind})
        H.fit(model, loss_fn, (X,), None, H.TrainConfig(steps=3, batch_size=32), progress=False)
        digests[kind] = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()
    return digests


UNTUNED = """
import json, sys
sys.path.insert(0, "tests")
from helpers import devices
devices._kept_freed_memory = False  # as if already decided: fit leaves malloc's defaults alone
from test_bench import train_digests
print(json.dumps(train_digests()))
"""


def test_keeping_freed_memory_leaves_the_trained_weights_bit_identical():
    assert H.keep_freed_memory() is GLIBC  # this process: applied (where the C library is glibc)
    out = subprocess.run([sys.executable, "-c", UNTUNED + "assert devices.keep_freed_memory() is False\n"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == train_digests()


def test_tsne_bench_smoke_run_prints_both_methods():
    env = child_env()  # synthetic codes: no data, no models
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "bench/bench_tsne.py", "--smoke"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    # method, N, model, wall seconds, CPU seconds, 5-NN accuracy, trustworthiness, load average
    number = r"\s+([\d.]+)"
    rows = re.findall(r"^(sklearn|opentsne)\s+(\d+)\s+synthetic" + 5 * number + "$", out.stdout, re.M)
    assert sorted(r[0] for r in rows) == ["opentsne", "sklearn"], out.stdout
    for _method, n, seconds, cpu, acc, trust, _load in rows:
        assert int(n) == 300 and float(seconds) > 0 and float(cpu) > 0, out.stdout
        assert 0 <= float(acc) <= 1 and 0 <= float(trust) <= 1, out.stdout
    assert "subset of 200 points" in out.stdout, out.stdout


def test_the_gpu_check_runs_in_its_tiny_form_on_the_cpu(tmp_path):
    """`make gpu-check`'s script, on the CPU with synthetic drawings: every step runs and its checks pass."""
    out = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--tiny", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, env=child_env(),
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["passed"] and all(summary["checks"].values()), summary["checks"]
    resume = summary["resume"]
    assert summary["device"]["device"] == "cpu" and 0 < resume["checkpoint_step"] < resume["steps"]
    assert summary["throughput_images_per_s"]["cpu"]["fp32"] > 0
    assert summary["notebooks"]["headline"]["cpu"]["headline"]["cnn_ae.test_mse"] > 0
