"""`make bench` (bench/bench_training.py): runs end to end, and its table and projection are right.

No speed is asserted here: speed targets live in the benchmark, which prints them.
"""

import importlib.util
import re
import subprocess
import sys

import pytest
from conftest import ROOT, child_env

import helpers as H

_spec = importlib.util.spec_from_file_location("bench_training", ROOT / "bench" / "bench_training.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

RATE = r"(\d+) \((\d+)-(\d+)\)"  # median (min-max)
ROW = re.compile(r"^\| (\w+) \| " + r" \| ".join([RATE] * 4) + r" \| ([\d.]+) \| ([\d.]+)(.*) \|$", re.M)


def test_bench_smoke_run_measures_the_four_variants_in_fresh_processes():
    env = child_env()  # synthetic drawings: fast
    out = subprocess.run([sys.executable, "bench/bench_training.py", "--smoke"], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    if not H.native_bf16("cpu"):  # bf16 is refused here: the bf16 columns say so
        assert re.search(r"^\| cnn_ae \| \d+ \(\d+-\d+\) \| \d+ \(\d+-\d+\) \| n/a \| n/a \| [\d.]+ \| n/a \|$",
                         out.stdout, re.M), out.stdout
        return
    rows = ROW.findall(out.stdout)
    assert [r[0] for r in rows] == ["cnn_ae"], out.stdout
    rates = [int(x) for x in rows[0][1:13]]
    assert all(r > 0 for r in rates), out.stdout
    medians = dict(zip(["plain fp32", "ours fp32", "plain bf16", "ours bf16"], rates[0::3]))
    # The ratios are printed from unrounded rates; the rates are rounded to integers.
    assert float(rows[0][13]) == pytest.approx(medians["ours fp32"] / medians["plain fp32"], rel=0.02, abs=0.01)
    assert float(rows[0][14]) == pytest.approx(medians["ours bf16"] / medians["ours fp32"], rel=0.02, abs=0.01)
    assert "projected" not in out.stdout  # one model: no projection of the whole run


def test_run_all_prints_medians_ranges_ratios_and_the_projection(monkeypatch, capsys, tmp_path):
    """run_all's arithmetic on given rates (the measuring itself is tested above)."""
    rates = {"plain fp32": [90, 100, 110], "ours fp32": [190, 200, 210], "plain bf16": [300, 300, 300],
             "ours bf16": [350, 400, 500]}
    calls = []

    def measure(which, name, precision, steps, batch, data_dir):
        calls.append((which, name, precision))
        n = sum(c == (which, name, precision) for c in calls) - 1
        return {"images_per_s": float(rates[f"{which} {precision}"][n])}

    monkeypatch.setattr(bench, "measure", measure)
    monkeypatch.setattr(bench, "REHEARSALS", tmp_path)  # no rehearsal summary: evaluation not measured
    monkeypatch.setattr(H, "native_bf16", lambda device="cpu": True)
    medians = bench.run_all(3, list(bench.STEPS), "unused", bench.STEPS)
    out = capsys.readouterr().out
    assert len(calls) == 3 * 4 * len(bench.STEPS)
    assert calls[:4] == [("plain", "lstm_ae", "fp32"), ("ours", "lstm_ae", "fp32"), ("plain", "lstm_ae", "bf16"),
                         ("ours", "lstm_ae", "bf16")]
    assert calls[4:8] == calls[:4][::-1]  # the order alternates between repetitions
    rows = {r[0]: r for r in ROW.findall(out)}
    assert set(rows) == set(bench.STEPS)
    assert rows["cnn_ae"][1:4] == ("100", "90", "110") and rows["cnn_ae"][10:13] == ("400", "350", "500")
    assert (rows["cnn_ae"][13], rows["cnn_ae"][14]) == ("2.00", "2.00")
    assert "target 1.6x: met" in rows["lstm_ae"][15] and "target" not in rows["cnn_ae"][15]
    assert medians["vae_cnn"]["ours bf16"] == 400
    # The projection: every training run of `make reproduce`, its images at the registry budget / 200 images/s.
    images = sum(images for _, _, images in bench.reproduce_runs(3000))
    lstm = 10_000 * 256
    assert images > lstm + 50 * 23 * 128 * 8  # the LSTM AE, and 8 VAE-sized runs of 50 epochs (04 and 06)
    line = re.search(r"^\| sample \(3,000 training drawings\) \| (\d+) min \| (\d+) min \| not measured.*$", out, re.M)
    assert line, out
    runs = bench.reproduce_runs(3000)
    assert int(line[1]) == round(seconds_at(runs, 200) / 60) and int(line[2]) == round(seconds_at(runs, 400) / 60)


def seconds_at(runs: list, rate: float) -> float:
    """Training seconds of ``runs`` when every measured model trains at ``rate`` images/s (and the models projected
    from another's rate at their ratio of it)."""
    return sum(images / (rate * bench.RELATIVE_RATES.get(model, (model, 1.0))[1]) for _, model, images in runs)


def test_pixelcnn_runs_are_projected_at_their_measured_fraction_of_the_cnn_vaes_rate():
    runs = {name: model for name, model, _ in bench.reproduce_runs(3000)}
    assert runs["vae_pixelcnn"] == runs["cvae_pixelcnn_class_prior"] == "vae_pixelcnn"
    assert runs["vae_pixelcnn_local"] == runs["cvae_pixelcnn_local_class_prior"] == "vae_pixelcnn_local"
    assert bench.rate({"vae_cnn": {"ours fp32": 1000.0}}, "vae_pixelcnn", "ours fp32") == pytest.approx(411, abs=1)
    assert bench.rate({"vae_cnn": {"ours fp32": 1000.0}}, "vae_pixelcnn_local", "ours fp32") == pytest.approx(673,
                                                                                                           abs=1)
    assert bench.rate({"vae_cnn": {"ours fp32": 1000.0}}, "vae_cnn", "ours fp32") == 1000.0


def test_without_native_bf16_only_fp32_is_measured_and_bf16_says_n_a(monkeypatch, capsys, tmp_path):
    calls = []

    def measure(which, name, precision, steps, batch, data_dir):
        calls.append(precision)
        return {"images_per_s": 100.0 if which == "plain" else 200.0}

    monkeypatch.setattr(bench, "measure", measure)
    monkeypatch.setattr(bench, "REHEARSALS", tmp_path)
    monkeypatch.setattr(H, "native_bf16", lambda device="cpu": False)
    medians = bench.run_all(1, list(bench.STEPS), "unused", bench.STEPS)
    out = capsys.readouterr().out
    assert set(calls) == {"fp32"} and "WITHOUT native bf16" in out
    assert re.search(r"^\| lstm_ae \| 100 \(100-100\) \| 200 \(200-200\) \| n/a \| n/a \| 2.00 \| n/a \|$", out, re.M)
    assert medians["projection"]["course"]["training_bf16_min"] is None
    assert re.search(r"^\| sample \(3,000 training drawings\) \| \d+ min \| n/a \|", out, re.M), out


def test_the_projection_adds_the_rehearsed_evaluation(monkeypatch, capsys, tmp_path):
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "summary.json").write_text('{"n_train": 20000, "evaluation_s": 600.0}', encoding="utf-8")
    monkeypatch.setattr(bench, "REHEARSALS", tmp_path)
    bench.project({name: {"ours fp32": 1000.0, "ours bf16": 2000.0} for name in bench.STEPS})
    out = capsys.readouterr().out
    runs = bench.reproduce_runs(20000)
    line = re.search(r"^\| course \(20,000 training drawings\) \| (\d+) min \| (\d+) min \| 10 min \| (\d+) min \| "
                     r"(\d+) min \|$", out, re.M)
    assert line, out
    assert int(line[3]) == round((seconds_at(runs, 1000) + 600) / 60)
    assert int(line[4]) == round((seconds_at(runs, 2000) + 600) / 60)
    assert re.search(r"^\| sample .* not measured", out, re.M)


def test_bench_refuses_bad_arguments():
    out = subprocess.run([sys.executable, "bench/bench_training.py", "--reps", "0"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "--reps must be positive" in out.stderr
