"""`make seeds`: the aggregation of the headline numbers over seeds, and the reuse of the model cache."""

import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT, child_env

import helpers as H
from helpers.pipeline import reruns as S
from helpers.results import read_metrics


def run_metrics(lstm, cnn, elbo_cnn, elbo_gru, chosen="cvae_class_prior_minus_val"):
    """A results file of one seed, cut down to a few headline numbers."""
    return {"lstm_ae": {"test_mse": lstm, "params": 1000}, "cnn_ae": {"test_mse": cnn},
            "vae": {"models": {"vae_cnn": {"neg_elbo": elbo_cnn, "iwae": elbo_cnn - 10, "kl_per_dim": [1.0]},
                               "vae_gru": {"neg_elbo": elbo_gru, "iwae": elbo_gru - 10}},
                    "classifier": {"test_accuracy": 0.9, "epochs": 15}},
            "beyond": {"chosen": chosen}, "timings": {"02_lstm_autoencoder": 10.0}}


def test_aggregate_is_mean_sample_sd_min_max():
    a = S.aggregate([1.0, 2.0, 3.0, 4.0])
    assert a["mean"] == pytest.approx(2.5, abs=1e-12)
    assert a["sd"] == pytest.approx(math.sqrt(5 / 3), abs=1e-12)  # n - 1 in the denominator
    assert (a["min"], a["max"], a["n"]) == (1.0, 4.0, 4)
    assert S.aggregate([0.0426])["sd"] is None  # one seed has no spread
    with pytest.raises(ValueError):
        S.aggregate([])


def test_headline_takes_every_model_and_only_numbers():
    found = S.headline(run_metrics(0.04, 0.03, 210.0, 215.0))
    assert found == {"lstm_ae.test_mse": 0.04, "cnn_ae.test_mse": 0.03,
                     "vae.models.vae_cnn.neg_elbo": 210.0, "vae.models.vae_gru.neg_elbo": 215.0,
                     "vae.models.vae_cnn.iwae": 200.0, "vae.models.vae_gru.iwae": 205.0,
                     "vae.classifier.test_accuracy": 0.9}


def test_collect_aggregates_by_path_and_counts_the_seeds_where_a_claim_holds():
    runs = {0: run_metrics(0.043, 0.026, 210.0, 215.0),
            1: run_metrics(0.044, 0.027, 212.0, 211.0, "cvae_cnn_minus_val"),
            2: run_metrics(0.042, 0.025, 211.0, 214.0)}
    del runs[2]["lstm_ae"]  # a seed that did not run the LSTM autoencoder
    section = S.collect(runs)
    lstm = section["stats"]["lstm_ae"]["test_mse"]
    assert lstm["n"] == 2 and lstm["values"] == {"0": 0.043, "1": 0.044} and lstm["seed0"] == 0.043
    assert lstm["mean"] == pytest.approx(0.0435, abs=1e-12)
    assert lstm["sd"] == pytest.approx(math.sqrt(2 * 0.0005**2), abs=1e-12)
    cnn = section["stats"]["vae"]["models"]["vae_cnn"]["neg_elbo"]
    assert (cnn["n"], cnn["min"], cnn["max"]) == (3, 210.0, 212.0) and cnn["mean"] == pytest.approx(211.0, abs=1e-9)
    claims = section["claims"]
    assert claims["cnn_ae_beats_lstm_ae"] == {"holds": 2, "n": 2, "fails_in_seeds": []}
    assert claims["cnn_encoder_lower_elbo"] == {"holds": 2, "n": 3, "fails_in_seeds": [1]}
    assert claims["fid_ranking"]["n"] == 0  # no seed has the FIDs
    assert section["chosen"] == {"0": "cvae_class_prior_minus_val", "1": "cvae_cnn_minus_val",
                                 "2": "cvae_class_prior_minus_val"}
    json.dumps(section)  # JSON-ready as it is


def test_write_seeds_names_the_missing_run_and_writes_nothing(tmp_path):
    results = tmp_path / "metrics.json"
    results.write_text(json.dumps(run_metrics(0.043, 0.026, 210.0, 215.0)), encoding="utf-8")
    before = results.read_text(encoding="utf-8")
    with pytest.raises(RuntimeError, match="seed 1: no metrics at .*seed-1"):
        S.write_seeds([0, 1], "full", results_path=results, runs_dir=tmp_path / "runs")
    assert results.read_text(encoding="utf-8") == before
    other = S.seed_dir(1, "full", tmp_path / "runs")
    other.mkdir(parents=True)
    (other / "metrics.json").write_text(json.dumps(run_metrics(0.044, 0.027, 212.0, 211.0)), encoding="utf-8")
    S.write_seeds([0, 1], "full", results_path=results, runs_dir=tmp_path / "runs")
    written = read_metrics(results)
    assert written["lstm_ae"]["test_mse"] == 0.043  # the run's own sections are kept
    assert written["seeds"]["stats"]["lstm_ae"]["test_mse"]["n"] == 2 and written["seeds"]["seeds"] == [0, 1]


RUN_SEEDS = """
import json, sys
import helpers as H
from helpers.pipeline import reruns as S
ran = S.run_seeds(json.loads(sys.argv[1]), "tiny", runs_dir=sys.argv[2], log_output=False, notebooks=["03"])
print(json.dumps({str(k): list(v) for k, v in ran.items()}))
"""


def run_seeds(seeds, runs, data_dir) -> dict:
    """``run_seeds`` in a process of its own, as `make seeds` runs it (papermill's kernels and event loop stay
    out of the test process)."""
    out = subprocess.run([sys.executable, "-c", RUN_SEEDS, json.dumps(seeds), str(runs)], capture_output=True,
                         text=True, cwd=ROOT, env=child_env(QUICKDRAW_DIR=data_dir), timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_call_trains_nothing(synthetic_dir, tmp_path):
    """A seed's notebook rerun finds its models in the cache; a seed already done runs no notebook at all."""
    runs = tmp_path / "runs"
    assert run_seeds([0, 1], runs, synthetic_dir) == {"1": ["03_cnn_autoencoder"]}
    models = {p.parent.name: p.stat().st_mtime_ns for p in (runs / "models").glob("*/model.pt")} or None
    assert models and all(name.startswith("cnn_ae-") for name in models) and len(models) == 1
    out = S.seed_dir(1, "tiny", runs)
    first = read_metrics(out / "metrics.json")
    assert first["cnn_ae"]["seed"] == 1 and "03_cnn_autoencoder" in first["timings"]

    assert run_seeds([0, 1], runs, synthetic_dir) == {"1": []}  # done before: nothing runs

    (out / "metrics.json").unlink()  # as if interrupted before the notebook ended: it runs again
    assert run_seeds([1], runs, synthetic_dir) == {"1": ["03_cnn_autoencoder"]}
    assert {p.parent.name: p.stat().st_mtime_ns for p in (runs / "models").glob("*/model.pt")} == models
    executed = (out / "notebooks" / "03_cnn_autoencoder.ipynb").read_text(encoding="utf-8")
    assert "cnn_ae: loaded from" in executed and "cnn_ae: trained" not in executed
    assert read_metrics(out / "metrics.json")["cnn_ae"] == {**first["cnn_ae"]}


def test_seeds_from_lstm_seeds_on_leave_the_lstm_autoencoder_out(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(S, "reproduce", lambda **kw: calls.append(kw) or {})
    S.run_seeds([0, 1, 2], "full", runs_dir=tmp_path, lstm_seeds=2)
    assert [(c["only"], c["extra"]) for c in calls] == [
        (["02", "03", "04", "05", "06"], {"seed": 1, "schedule_study": False}),  # the study is seed 0's
        (["03", "04", "05", "06"], {"seed": 2, "leave_out": "lstm_ae"})]
    assert calls[1]["results_path"] == tmp_path / "seeds" / "full" / "seed-2" / "metrics.json"


def test_compare_precision_pairs_the_numbers_both_runs_have():
    fp32, bf16 = run_metrics(0.040, 0.026, 210.0, 215.0), run_metrics(0.041, 0.026, 212.1, 215.0)
    del bf16["cnn_ae"]
    section = S.compare_precision(fp32, bf16, "bf16")
    assert section["lstm_ae"]["test_mse"]["fp32"] == 0.040 and section["lstm_ae"]["test_mse"]["bf16"] == 0.041
    assert section["lstm_ae"]["test_mse"]["change"] == pytest.approx(0.025, abs=1e-9)
    assert section["vae"]["models"]["vae_cnn"]["neg_elbo"]["change"] == pytest.approx(0.01, abs=1e-9)
    assert "cnn_ae" not in section


def judged_metrics(fid_cnn, fid_gru, adherence, fid_free_bits=20.0, kept="free_bits1"):
    """A results file of one judge, cut down to the numbers a judge gives and one it does not."""
    return {"lstm_ae": {"test_mse": 0.04},
            "vae": {"models": {"vae_cnn": {"neg_elbo": 210.0, "fid": fid_cnn},
                               "vae_gru": {"neg_elbo": 215.0, "fid": fid_gru},
                               "cvae_cnn": {"neg_elbo": 209.0, "fid": fid_cnn - 10}}},
            "beyond": {"conditional": {"course recipe": {"adherence": 0.3},
                                       "chosen": {"adherence": adherence,
                                                  "samples": {"class mixture": {"mode": {"fid": 70.0}}}}}},
            "pixel": {"conditional": {"local_conditional": {"prior": {"fid": 30.0, "class_accuracy": 0.7}}}},
            "free_bits": {"kept": {"run": kept, "sampler": "class mixture"}, "bounds": {"neg_elbo": 177.0},
                          "samples": {"class mixture": {"fid": fid_free_bits, "class_accuracy": 0.65}}}}


def test_the_judge_spread_takes_only_the_judged_notebooks_and_names_the_failing_judge(tmp_path):
    results = tmp_path / "metrics.json"
    results.write_text(json.dumps(judged_metrics(500.0, 600.0, 0.7)), encoding="utf-8")
    with pytest.raises(RuntimeError, match="judge 1: no metrics at .*judge-1"):
        S.write_judges([0, 1, 2], "full", results_path=results, runs_dir=tmp_path / "runs")
    for j, m in ((1, judged_metrics(450.0, 640.0, 0.75, 35.0)),
                 (2, judged_metrics(620.0, 580.0, 0.2, 22.0, "free_bits2"))):
        S.judge_dir(j, "full", tmp_path / "runs").mkdir(parents=True)
        (S.judge_dir(j, "full", tmp_path / "runs") / "metrics.json").write_text(json.dumps(m), encoding="utf-8")
    S.write_judges([0, 1, 2], "full", results_path=results, runs_dir=tmp_path / "runs")
    section = read_metrics(results)["judges"]
    assert section["judges"] == [0, 1, 2]
    fid = section["stats"]["vae"]["models"]["vae_cnn"]["fid"]
    assert fid["values"] == {"0": 500.0, "1": 450.0, "2": 620.0} and fid["seed0"] == 500.0
    assert "lstm_ae" not in section["stats"]  # the judge gives no autoencoder number
    assert section["claims"]["fid_ranking"] == {"holds": 2, "n": 3, "fails_in_seeds": [2]}
    assert section["claims"]["class_prior_adherence"] == {"holds": 2, "n": 3, "fails_in_seeds": [2]}
    assert "cnn_ae_beats_lstm_ae" not in section["claims"] and "cnn_encoder_lower_elbo" not in section["claims"]
    assert "neg_elbo" not in section["stats"]["vae"]["models"]["vae_cnn"]  # the bounds are not the judge's
    # The notebooks beyond 04 and 06: the free-bits model's samples against the best before it, under each judge.
    free_bits_fid = section["stats"]["free_bits"]["samples"]["class mixture"]["fid"]
    assert free_bits_fid["values"] == {"0": 20.0, "1": 35.0, "2": 22.0}
    assert section["claims"]["free_bits_beats_pixel_decoder"] == {"holds": 2, "n": 3, "fails_in_seeds": [1]}
    assert section["claims"]["free_bits_beats_class_prior_design"] == {"holds": 3, "n": 3, "fails_in_seeds": []}
    assert section["kept"]["2"]["run"] == "free_bits2" and section["kept"]["0"]["run"] == "free_bits1"
    assert "bounds" not in section["stats"]["free_bits"]
    assert "free_bits_beats_pixel_decoder" not in S.collect({0: judged_metrics(500.0, 600.0, 0.7)})["claims"]  # seeds
    table = H.TABLES["judge-claims"](read_metrics(results) | {"judges": section})
    assert "free-bits model and sampler kept on validation are judge 0's | 2 of 3 | 2 |" in table, table


def test_judges_rerun_the_judged_notebooks_on_seed_0_with_each_further_judge(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(S, "reproduce", lambda **kw: calls.append(kw) or {})
    S.run_judges(range(3), "full", runs_dir=tmp_path)
    assert [c["extra"]["judge_seed"] for c in calls] == [1, 2]
    assert all(c["only"] == ["04", "06", "10", "12"] for c in calls)
    assert calls[0]["results_path"] == S.judge_dir(1, "full", tmp_path) / "metrics.json"

