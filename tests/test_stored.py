"""Evaluation results stored beside their model (helpers.evaluation.stored): a second call with the same key
reads the stored result; any change of an argument, a model without a cache folder, or QUICKDRAW_RECOMPUTE=1
computes again; an argument that cannot be keyed is computed with a warning and not stored."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import small_vae

import helpers as H
from helpers.evaluation import stored
from helpers.evaluation.stored import RECOMPUTE_ENV, evaluation_key, stored_evaluation

CALLS = []


@stored_evaluation
def counted(model, X, k: int = 3, seed: int = 0, extra=None):
    """An evaluation that records each time it really runs."""
    CALLS.append((k, seed))
    g = torch.Generator().manual_seed(seed)
    return {"value": float(X.sum()) * k + float(torch.rand(1, generator=g)), "array": np.arange(k)}


@pytest.fixture
def cached_model(tmp_path):
    model = small_vae()
    model.cache_folder = tmp_path / "models" / "vae-0123456789ab"
    CALLS.clear()
    return model


def test_a_second_call_reads_the_stored_result(cached_model):
    X = torch.ones(4, 1, 28, 28)
    first = counted(cached_model, X, k=3, seed=1)
    second = counted(cached_model, X, k=3, seed=1)
    assert CALLS == [(3, 1)]
    assert second["value"] == first["value"] and np.array_equal(second["array"], first["array"])
    stored = list((cached_model.cache_folder / "evaluations").glob("counted-*.json"))
    assert len(stored) == 1, f"expected one stored result beside the model, found {stored}"


def test_any_changed_argument_computes_again(cached_model):
    X = torch.ones(4, 1, 28, 28)
    counted(cached_model, X, k=3, seed=1)
    counted(cached_model, X, k=3, seed=2)
    counted(cached_model, X, k=4, seed=1)
    counted(cached_model, X * 0.5, k=3, seed=1)
    other = small_vae()
    other.cache_folder = cached_model.cache_folder.parent / "vae-ba9876543210"
    counted(other, X, k=3, seed=1)
    assert len(CALLS) == 5


def test_a_model_without_a_cache_folder_is_evaluated_every_time():
    CALLS.clear()
    model, X = small_vae(), torch.ones(2, 1, 28, 28)
    counted(model, X)
    counted(model, X)
    assert len(CALLS) == 2


def test_an_evaluation_of_arrays_alone_is_stored_where_its_caller_says(tmp_path):
    """The t-SNE of codes has no model among its arguments: ``stored_in`` names its folder, and the key is the
    arrays' bytes and the arguments."""
    CALLS.clear()
    X = torch.ones(2, 1, 28, 28)
    first = counted(None, X, k=2, stored_in=tmp_path / "evaluations")
    again = counted(None, X, k=2, stored_in=tmp_path / "evaluations")
    counted(None, X + 1, k=2, stored_in=tmp_path / "evaluations")
    assert CALLS == [(2, 0), (2, 0)] and again["value"] == first["value"]
    assert len(list((tmp_path / "evaluations").glob("counted-*.json"))) == 2


def test_the_t_sne_of_codes_is_read_back_exactly(tmp_path):
    z = np.random.default_rng(0).normal(size=(60, 4))
    first = H.tsne_embed(z, seed=1, perplexity=5, stored_in=tmp_path)
    (stored,) = tmp_path.glob("tsne_embed-*.json")
    again = H.tsne_embed(z, seed=1, perplexity=5, stored_in=tmp_path)
    assert again.dtype == np.float64 and np.array_equal(again, first)
    assert np.array_equal(H.tsne_embed.compute(z, seed=1, perplexity=5), first)


def test_recompute_env_recomputes_and_rewrites(cached_model, monkeypatch):
    X = torch.ones(2, 1, 28, 28)
    counted(cached_model, X)
    monkeypatch.setenv(RECOMPUTE_ENV, "1")
    counted(cached_model, X)
    assert len(CALLS) == 2


def test_an_argument_that_cannot_be_keyed_is_computed_with_a_warning_and_not_stored(cached_model):
    with pytest.warns(UserWarning, match="not stored.*cannot key an argument of type slice"):
        counted(cached_model, torch.ones(1), extra=slice(3))
    assert len(CALLS) == 1 and not (cached_model.cache_folder / "evaluations").exists()


def test_a_fitted_sampler_is_keyed_by_its_fit():
    codes = np.random.default_rng(0).normal(size=(60, 4))
    a, b = H.MixtureSampler(codes, 2), H.MixtureSampler(codes, 2)
    c = H.MixtureSampler(codes + 1.0, 2)
    key = lambda s: evaluation_key(counted, (s,), {})  # noqa: E731
    assert key(a) == key(b) != key(c)


def test_vae_bounds_of_a_cached_model_are_read_back_equal(cached_model):
    X = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    first = H.vae_bounds(cached_model, X, n_iwae=4, k=3, seed=0)
    assert list((cached_model.cache_folder / "evaluations").glob("vae_bounds-*.json"))
    again = H.vae_bounds(cached_model, X, n_iwae=4, k=3, seed=0)
    assert again["iwae"] == first["iwae"] and again["neg_elbo"] == first["neg_elbo"]
    assert H.vae_bounds.compute(cached_model, X, n_iwae=4, k=3, seed=0)["iwae"] == pytest.approx(first["iwae"],
                                                                                                   abs=1e-9)


def test_a_model_from_the_cache_knows_its_folder_trained_or_loaded(synthetic, tmp_path):
    cfg = H.TrainConfig(steps=2, batch_size=16)
    trained, record = H.train_or_load("cnn_ae", {"kind": "cnn_ae"}, cfg, synthetic, runs_dir=tmp_path, progress=False,
                                      verbose=False)
    loaded, _ = H.train_or_load("cnn_ae", {"kind": "cnn_ae"}, cfg, synthetic, runs_dir=tmp_path, progress=False,
                                verbose=False)
    assert trained.cache_folder == loaded.cache_folder == tmp_path / "models" / f"cnn_ae-{record['key']}"
    assert (trained.cache_folder / "model.pt").exists()


def test_a_stored_result_comes_back_with_the_same_types_and_exact_floats():
    from helpers.evaluation.stored import _decode, _encode

    result = {"fid": 528.0400000000001, "n": 3, "sd": None, "by_k": {1: {"mean": 1 / 3}, 10: {"mean": 2 / 3}},
              "confusion": np.arange(6, dtype=np.int64).reshape(2, 3), "probs": np.array([0.1, 1e-300]),
              "pair": (1, "a"), "samples": torch.rand(2, 1, 2, 2), "nested": [{"x": np.float32(0.5)}]}
    back = _decode(json.loads(json.dumps(_encode(result))))
    assert back["fid"] == result["fid"] and back["by_k"][10]["mean"] == 2 / 3 and set(back["by_k"]) == {1, 10}
    assert back["confusion"].dtype == np.int64 and np.array_equal(back["confusion"], result["confusion"])
    assert back["probs"][1] == 1e-300 and back["pair"] == (1, "a") and back["sd"] is None
    assert back["samples"].dtype == torch.float32 and torch.equal(back["samples"], result["samples"])
    assert back["nested"][0]["x"] == 0.5


def test_the_key_holds_the_code_that_computes_the_result_and_no_other_model_file():
    """The evaluation package and the model files it imports always; the files of the evaluated model's classes
    (and of its submodules' classes); not the files of models that take no part, so that a new model file leaves
    every stored result valid, and an edit to the VAE recomputes the VAEs' results, not the VQ-VAE's."""
    evaluation = {p.relative_to(H.ROOT).as_posix() for p in stored._evaluation_code()}
    assert "helpers/evaluation/judging.py" in evaluation and "helpers/models/vae.py" in evaluation
    assert "helpers/models/vqvae.py" not in evaluation and "helpers/models/autoencoders.py" not in evaluation
    vae = small_vae()
    vae_files = {p.name for p in stored._model_code((H.PriorSampler(vae),), {})}  # a sampler's model counts
    assert {"vae.py", "encoders.py", "decoders.py", "priors.py"} <= vae_files and "vqvae.py" not in vae_files
    vq = H.VQVAE(n_codes=4, code_dim=2, channels=8, prior_width=8, prior_layers=1)
    assert {p.name for p in stored._model_code((vq,), {})} == {"vqvae.py"}
    key = stored.evaluation_key(H.sampler_metrics, (vae, 10), {})
    assert key == stored.evaluation_key(H.sampler_metrics, (vae, 10), {})
    assert key != stored.evaluation_key(H.sampler_metrics, (vq, 10), {})
