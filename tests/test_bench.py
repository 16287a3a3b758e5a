"""`make bench` runs and reports both loops; the engine's allocator setting changes speed, never results.

No speed is asserted here: speed targets live in the benchmark (`make bench`), which prints them.
"""

import hashlib
import importlib.util
import json
import os
import platform
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import helpers as H

ROOT = Path(__file__).resolve().parents[1]
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
_spec = importlib.util.spec_from_file_location("bench_autoencoders", ROOT / "bench" / "bench_autoencoders.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


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
from helpers import training
training._kept_freed_memory = False  # as if already decided: fit leaves malloc's defaults alone
from test_bench import train_digests
print(json.dumps(train_digests()))
"""


def test_keeping_freed_memory_leaves_the_trained_weights_bit_identical():
    assert H.keep_freed_memory() is GLIBC  # this process: applied (where the C library is glibc)
    out = subprocess.run([sys.executable, "-c", UNTUNED], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == train_digests()


def table_rows(stdout: str) -> dict:
    """The bench's table rows by model, after checking that each row's ratio and verdict agree with its rates."""
    rows = {m[0]: m for m in re.findall(
        r"^(lstm_ae|cnn_ae)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)x\s+(\d+), (\d+)\s+(met|NOT met)$", stdout, re.M)}
    for _kind, ref, ours, ratio, target, _ref_faults, _our_faults, verdict in rows.values():
        assert int(ref) > 0 and int(ours) > 0, stdout
        # The ratio is printed to 2 decimals from unrounded rates; the rates are printed rounded to integers,
        # which matters when a short measurement on a busy machine gives a small rate.
        expected = int(ours) / int(ref)
        rounding = 0.006 + expected * (0.5 / int(ours) + 0.5 / int(ref))
        assert float(ratio) == pytest.approx(expected, abs=rounding), stdout
        assert verdict == ("met" if float(ratio) >= float(target) else "NOT met"), stdout
    return rows


def test_bench_smoke_run_measures_both_loops_and_only_ours_keeps_freed_memory():
    env = {k: v for k, v in os.environ.items() if k != "QUICKDRAW_DIR"}  # synthetic drawings: fast
    env["OMP_NUM_THREADS"] = "1"  # on a busy machine a second, spinning thread per process only costs time
    out = subprocess.run([sys.executable, "bench/bench_autoencoders.py", "--smoke"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    assert set(table_rows(out.stdout)) == {"cnn_ae"}, out.stdout
    assert re.search(r"^\s+ref runs: \d+\n\s+ours runs: \d+$", out.stdout, re.M), out.stdout
    # The engine's allocator setting took effect in its process, and not in the reference's: each process
    # checks its malloc after its steps (bench.keeps_freed_memory). Counting page faults per step would need
    # many steps at batch 256, as our heap still grows in bursts over its first steps.
    kept = "no, yes" if GLIBC else "n/a, n/a"
    assert f"malloc kept freed memory (reference, ours): {kept}\n" in out.stdout, out.stdout
    assert "interval" not in out.stdout  # one measurement of each: no interval to give


def test_bench_prints_the_interval_of_the_back_to_back_ratios(monkeypatch, capsys):
    """run_all's arithmetic and wording, on given measurements (the measuring itself is tested above)."""
    rates = {  # (which, kind) -> images/s of the 9 measurements, in the order they are taken
        ("ref", "lstm_ae"): [100, 100, 100, 100, 100, 100, 100, 100, 100],
        ("ours", "lstm_ae"): [120, 125, 128, 129, 131, 133, 135, 140, 150],  # median 1.31; interval 1.25-1.40
        ("ref", "cnn_ae"): [100, 200, 100, 200, 100, 200, 100, 200, 100],
        ("ours", "cnn_ae"): [110, 230, 115, 240, 120, 250, 125, 260, 130],  # ratios 1.10-1.30; interval 1.15-1.30
    }
    calls = []

    def measure(which, kind, steps, batch, data_dir):
        calls.append((which, kind, steps, batch))
        n = sum(c[:2] == (which, kind) for c in calls) - 1
        return {"images_per_s": float(rates[which, kind][n]), "faults_per_step": 5.0,
                "keeps_freed_memory": which == "ours" and (kind, n) != ("cnn_ae", 4)}

    monkeypatch.setattr(bench, "measure", measure)
    bench.run_all(9, None, "unused")
    out = capsys.readouterr().out
    assert [c[0] for c in calls[:4]] == ["ref", "ours", "ours", "ref"]  # alternating which goes first
    assert {c[1:] for c in calls} == {("lstm_ae", 30, 256), ("cnn_ae", 150, 256)} and len(calls) == 36
    assert set(table_rows(out)) == {"lstm_ae", "cnn_ae"}, out
    assert re.search(r"^lstm_ae\s+100\s+131\s+1\.31\s+1\.3x .* met$", out, re.M), out
    assert re.findall(r"malloc kept freed memory \(reference, ours\): (.*)$", out, re.M) == ["no, yes", "no, mixed"]
    assert ("interval for the median back-to-back ratio: 1.25 to 1.40 (coverage 96.1%), contains the target: "
            "this run cannot tell whether it is met") in out
    assert "median of the 9 back-to-back ratios: 1.31" in out
    assert "back-to-back ratio: 1.15 to 1.30 (coverage 96.1%), all at or above the target" in out


def test_median_interval_is_the_order_statistics_with_their_exact_coverage():
    values = [1.9, 1.1, 1.5, 1.3, 1.7, 1.2, 1.8, 1.4, 1.6]  # n = 9: the 2nd and 8th of the sorted values
    low, high, cover = bench.median_interval(values)
    assert (low, high) == (1.2, 1.8)
    assert cover == pytest.approx(1 - 2 * (1 + 9) / 2**9)  # 96.1%; the 3rd and 7th would cover only 82.0%
    assert bench.median_interval([3.0, 1.0, 2.0, 5.0, 4.0])[:2] == (1.0, 5.0)  # n = 5: the full range, 93.75%
    assert bench.median_interval([3.0, 1.0, 2.0, 5.0, 4.0])[2] == pytest.approx(1 - 2 / 32)
    # The stated coverage holds for independent draws: 4,000 samples of 15 from a skewed distribution whose
    # median is 1 (lognormal), against 1 - 2 P(B <= 3) = 96.5% for B ~ Binomial(15, 1/2).
    rng = random.Random(0)
    hits, cover = 0, None
    for _ in range(4000):
        low, high, cover = bench.median_interval([rng.lognormvariate(0, 0.5) for _ in range(15)])
        hits += low <= 1.0 <= high
    assert cover == pytest.approx(0.9648, abs=1e-4)
    assert hits / 4000 == pytest.approx(cover, abs=0.015)


def test_bench_refuses_bad_arguments():
    out = subprocess.run([sys.executable, "bench/bench_autoencoders.py", "--reps", "0"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "--reps and --steps must be positive" in out.stderr
