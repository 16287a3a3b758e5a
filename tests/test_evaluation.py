"""Specifications of helpers/evaluation/ (and of the VAE loss it builds on). Small and CPU-only.

Float comparisons carry an absolute tolerance fitted to the value's scale: float32 results move with the
order of their sums (batch size, thread count, SIMD width of the CPU), by about N * 6e-8 * magnitude for
N terms, so no test may ask for more than that; each tolerance stays far below the error of a real bug.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from conftest import small_vae
from torch import nn

import helpers as E
from helpers import VAE, Classifier, evaluate, kl_to_standard_normal, vae_loss
from helpers.data.quickdraw import make_synthetic_images, to_tensor


@pytest.fixture(scope="module")
def drawings():
    """10 synthetic drawings (2 per class): (10, 1, 28, 28) float in [0, 1] and labels (10,)."""
    x, y = make_synthetic_images(2, seed=0)
    return to_tensor(x), torch.from_numpy(y)


class IdentityLike(nn.Module):
    """An 'autoencoder' whose code is the flattened image: reconstructs perfectly."""

    def encode(self, x):
        return x.flatten(1)

    def decode(self, z):
        return z.reshape(-1, 1, 28, 28)

    def forward(self, x):
        return self.decode(self.encode(x))


# ---------------------------------------------------------------------------------------------------
# VAE loss and KL
# ---------------------------------------------------------------------------------------------------


def test_vae_loss_matches_hand_computed_value():
    logits = torch.tensor([[2.0, -1.0, 0.0, 0.5], [-3.0, 1.5, 0.25, -0.5]])
    x = torch.tensor([[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.2, 0.0]])
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(0.5)], [math.log(2.0), -1.0]])

    class FixedEncoder(torch.nn.Module):  # gives fixed (mu, logvar)
        n_classes = 0

        def forward(self, x, c=None):
            return mu, logvar

    class FixedDecoder(E.BernoulliDecoder):  # gives fixed logits
        def forward(self, z, c=None, x=None):
            return logits

    model = VAE(FixedEncoder(), FixedDecoder(), E.StandardNormalPrior(2), latent_dim=2)

    def bce(l, t):  # -[t log sigmoid(l) + (1 - t) log(1 - sigmoid(l))]
        s = 1 / (1 + math.exp(-l))
        return -(t * math.log(s) + (1 - t) * math.log(1 - s))

    pairs = zip(logits.flatten().tolist(), x.flatten().tolist())
    rec = sum(bce(l, t) for l, t in pairs) / 2  # summed over pixels, averaged over the 2 images
    kl = sum(-0.5 * (1 + lv - m * m - math.exp(lv))  # Kingma & Welling (2014), Appendix B
             for m, lv in zip(mu.flatten().tolist(), logvar.flatten().tolist())) / 2
    for beta in (1.0, 0.5):
        out = vae_loss(model, x, beta=beta)
        assert out["rec"].item() == pytest.approx(rec, abs=1e-5)
        assert out["kl"].item() == pytest.approx(kl, abs=1e-5)
        assert out["loss"].item() == pytest.approx(rec + beta * kl, abs=1e-5)


def test_kl_is_zero_when_posterior_equals_prior():
    kl = kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4))
    assert kl.shape == (3, 4)
    assert torch.all(kl.abs() < 1e-7)


def test_kl_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(100, 6, generator=g), torch.randn(100, 6, generator=g)
    assert torch.all(kl_to_standard_normal(mu, logvar) > 0)
    # Known values: a unit-variance Gaussian shifted by 1 -> 1/2; N(0, 2) -> (1 - ln 2) / 2.
    assert kl_to_standard_normal(torch.tensor([[1.0]]), torch.tensor([[0.0]])).item() == pytest.approx(0.5, abs=1e-6)
    assert kl_to_standard_normal(torch.tensor([[0.0]]), torch.tensor([[math.log(2.0)]])).item() == \
        pytest.approx((1 - math.log(2)) / 2, abs=1e-6)


# ---------------------------------------------------------------------------------------------------
# ELBO and IWAE
# ---------------------------------------------------------------------------------------------------


def test_vae_elbo_parts_add_up_and_kl_matches_training_loss(drawings):
    X, _ = drawings
    model = small_vae()
    # Untrained, the encoder gives a KL of ~1e-4 nats per dimension, no more than the float32 rounding of
    # 1 + logvar - exp(logvar) (~6e-8 per image). Spread mu and logvar: the KL grows to ~2 nats, and a
    # wrongly weighted last batch (4 + 4 + 2 images) would move it by ~1e-3, far above any rounding.
    with torch.no_grad():
        model.encoder.mu.weight.mul_(30)
        model.encoder.logvar.weight.mul_(30)
    model.train()
    out = E.vae_elbo(model, X, batch_size=4, seed=0)
    assert model.training, "the model's mode is restored"
    assert set(out) == {"neg_elbo", "rec", "kl", "kl_per_dim", "latent_dim", "active_units"}
    assert out["neg_elbo"] == pytest.approx(out["rec"] + out["kl"], abs=1e-9)
    assert len(out["kl_per_dim"]) == model.latent_dim
    assert sum(out["kl_per_dim"]) == pytest.approx(out["kl"], abs=1e-9)
    assert 0 <= out["active_units"] <= model.latent_dim
    # The analytic KL does not depend on the sample, so it equals the training loss's KL (float32, all
    # 10 images in one batch): ~2 nats, rounding ~1e-7.
    assert out["kl"] == pytest.approx(evaluate(model, vae_loss, (X,))["kl"], abs=1e-5)
    again = E.vae_elbo(model, X, seed=0)  # seeded: the same numbers, whatever the batch size
    # ~550 nats per image, each a float32 sum over 784 pixels (rounding below ~5e-4); another noise
    # sample moves it by ~0.2 (by 0.008 at the least over 30 seeds).
    assert again["neg_elbo"] == pytest.approx(out["neg_elbo"], abs=2e-3)
    assert again["kl_per_dim"] == pytest.approx(out["kl_per_dim"], abs=1e-5)  # each <= ~1 nat


def test_iwae_bound_is_at_most_neg_elbo_on_average(drawings):
    X, _ = drawings
    model = small_vae("cnn", seed=1)
    with torch.no_grad():  # make p(x|z) depend strongly on z, so the bounds differ clearly
        model.decoder.net[0].weight.mul_(10)
    neg_elbo = np.mean([E.vae_elbo(model, X, seed=s)["neg_elbo"] for s in range(3)])
    iwae = E.iwae_bound(model, X, k=20, batch_size=5, seed=0)
    assert math.isfinite(iwae) and iwae > 0
    assert iwae < neg_elbo
    # Seeded: ~560 nats per image (float32 sums over 784 pixels); another seed moves it by ~0.1 to 3.
    assert E.iwae_bound(model, X, k=20, batch_size=5, seed=0) == pytest.approx(iwae, abs=2e-3)
    with pytest.raises(ValueError, match="VAE"):
        E.iwae_bound(IdentityLike(), X)


# ---------------------------------------------------------------------------------------------------
# Conditional VAE
# ---------------------------------------------------------------------------------------------------


def test_conditional_generation_returns_requested_shapes(drawings):
    X, y = drawings
    model = small_vae(n_classes=5)
    classes = torch.tensor([0, 1, 2, 3, 4, 0])
    samples = model.decode(model.sample_prior(6, classes, torch.Generator().manual_seed(0)), classes)
    assert samples.shape == (6, 1, 28, 28)
    assert samples.min() >= 0 and samples.max() <= 1

    torch.manual_seed(0)
    clf = Classifier()
    ref = np.random.default_rng(0).standard_normal((30, Classifier.feature_dim))
    out = E.sampler_metrics(clf, model, E.PriorSampler(model), 20, ref, seed=0, repeats=2)
    confusion = np.array(out["confusion"])
    assert confusion.shape == (5, 5) and confusion.sum() == 2 * 20 and out["draws"] == 2  # summed over the draws
    assert (confusion.sum(1) == 8).all()  # the classes requested in turn: 4 of each per draw of 20
    assert len(out["per_class"]) == 5
    assert out["class_accuracy"] == pytest.approx(np.trace(confusion) / 40, abs=1e-9)  # equal draws: a ratio of counts
    assert E.sampler_metrics(clf, model, E.PriorSampler(model), 20, ref, seed=0, repeats=2) == out  # seeded

    # A conditional VAE needs the labels; an unconditional one cannot be asked for classes.
    assert E.encode_all(model, X, y).shape == (10, 8)
    with pytest.raises(ValueError, match="labels"):
        E.encode_all(model, X)
    plain = small_vae()  # an unconditional VAE's samples have no requested class to be scored against
    assert E.sampler_metrics(clf, plain, E.PriorSampler(plain), 10, ref).get("class_accuracy") is None


def test_interpolate_conditional_vae_ends_at_both_reconstructions(drawings):
    X, y = drawings
    model = small_vae(n_classes=5)
    path = E.interpolate(model, X[0], X[1], steps=5, y_a=y[0], y_b=y[1])
    assert path.shape == (5, 1, 28, 28)
    ends = E.reconstruct(model, X[:2], y=y[:2])
    # Pixel probabilities in [0, 1], decoded in a batch of 5 against one of 2: float32 rounding ~1e-7.
    assert torch.allclose(path[0], ends[0], rtol=0, atol=1e-5) and torch.allclose(path[-1], ends[1], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="y_a and y_b"):
        E.interpolate(model, X[0], X[1])


# ---------------------------------------------------------------------------------------------------
# Classifier-based metrics
# ---------------------------------------------------------------------------------------------------


def test_inception_score_bounds():
    confident = np.eye(5)[np.arange(100) % 5]  # one-hot, classes evenly spread
    assert E.inception_score(confident) == pytest.approx(5.0, abs=1e-9)  # float64 throughout
    same = np.tile([0.1, 0.2, 0.3, 0.2, 0.2], (50, 1))
    assert E.inception_score(same) == pytest.approx(1.0, abs=1e-9)
    mixed = np.random.default_rng(0).dirichlet(np.ones(5), size=200)
    assert 1.0 < E.inception_score(mixed) < 5.0
    with pytest.raises(ValueError, match="probabilities"):
        E.inception_score(np.full((4, 5), 0.5))


# 6 samples, 128 features: singular covariances (FID wants N > 128 in practice); here only the plumbing.
@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_classifier_outputs_and_generative_metrics(drawings):
    X, _ = drawings
    torch.manual_seed(0)
    clf = Classifier()
    feats, probs = E.classifier_outputs(clf, X, batch_size=3)
    assert clf.training, "the classifier's mode is restored"
    assert feats.shape == (10, 128) and feats.dtype == np.float64
    assert probs.shape == (10, 5) and np.allclose(probs.sum(1), 1, rtol=0, atol=1e-6)
    with torch.no_grad():  # batches of 3 against one of 10: logits differ by float32 rounding, ~1e-7
        clf.eval()
        assert np.allclose(probs, torch.softmax(clf(X), 1).numpy(), rtol=0, atol=1e-5)

    out = E.generative_metrics(clf, X[:6], X)
    assert out["n"] == 6 and out["feature_dim"] == 128 and sum(out["class_histogram"]) == 6
    # An untrained classifier predicts nearly the same for every drawing: the score is 1 + ~4e-7, and 1 is
    # reachable, so the bounds allow float64 rounding.
    assert 1 - 1e-9 <= out["inception_score"] <= 5 + 1e-9 and math.isfinite(out["fid"])
    reused = E.generative_metrics(clf, X[:6], None, ref_features=feats)
    # The FID here is ~4e-4 (an untrained classifier); reference features from other batches move it by
    # ~1e-10 (float32 features, then the square root of a singular matrix), the wrong reference by ~1e-4.
    assert reused["fid"] == pytest.approx(out["fid"], abs=1e-7)


# ---------------------------------------------------------------------------------------------------
# Latent space
# ---------------------------------------------------------------------------------------------------


def test_active_units_counts_varying_dims():
    rng = np.random.default_rng(0)
    mu = np.zeros((200, 6))
    mu[:, 0] = rng.normal(0, 1.0, 200)  # variance ~1: active
    mu[:, 3] = rng.normal(0, 0.5, 200)  # variance ~0.25: active
    mu[:, 4] = rng.normal(0, 0.01, 200)  # variance ~1e-4: inactive
    mu[:, 5] = 3.0  # constant: inactive however large
    assert E.active_units(mu) == 2
    assert E.active_units(mu, threshold=1e-5) == 3


def test_knn_and_silhouette_separate_clusters():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 4) * 20
    y = np.repeat(np.arange(3), 30)
    z = centers[y] + rng.normal(size=(90, 4))
    y_test = np.repeat(np.arange(3), 10)
    z_test = centers[y_test] + rng.normal(size=(30, 4))
    assert E.knn_accuracy(z, y, z_test, y_test, k=5) == 1.0
    assert E.silhouette(z, y) > 0.5
    assert E.silhouette(z, y, sample_size=40, seed=0) > 0.5
    assert E.silhouette(z, rng.permutation(y)) < 0.1  # labels unrelated to the clusters


def test_tsne_shape_and_determinism():
    z = np.random.default_rng(0).normal(size=(60, 64))  # more than pca_dims: goes through PCA first
    # The default method is Barnes-Hut at this size (0.1 s of CPU; FFT would take seconds on a few points).
    a = E.tsne_embed(z, seed=0, perplexity=10)
    assert a.shape == (60, 2) and a.dtype == np.float64 and np.isfinite(a).all()
    # Coordinates span about +-10: another seed moves points by several units; the same seed repeats exactly.
    # (Also on another number of threads, n_jobs; not checked here: on this busy 2-core machine a second
    # thread makes this call take 10 s.)
    assert np.abs(a).max() > 3
    assert np.allclose(a, E.tsne_embed(z, seed=0, perplexity=10), rtol=0, atol=1e-6)
    assert np.abs(a - E.tsne_embed(z, seed=1, perplexity=10)).max() > 1


def test_tsne_keeps_separated_clusters_apart():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    z = (np.eye(3, 64) * 20)[y] + rng.normal(size=(120, 64))  # three clusters 20 apart, spread 1 per dimension
    points = E.tsne_embed(z, seed=0, perplexity=10)
    # 5-NN of the 2-D points, fitted on every other point and scored on the rest.
    assert E.knn_accuracy(points[::2], y[::2], points[1::2], y[1::2], k=5) == 1.0


def test_tsne_refuses_bad_input():
    z = np.zeros((20, 4))
    with pytest.raises(ValueError, match="must be \\(N, D\\)"):
        E.tsne_embed(z[:, 0])
    with pytest.raises(ValueError, match="perplexity must be positive and below N = 20"):
        E.tsne_embed(z, perplexity=20)
    with pytest.raises(ValueError, match="method must be 'auto', 'fft' or 'bh'"):
        E.tsne_embed(z, perplexity=5, method="exact")


# ---------------------------------------------------------------------------------------------------
# Pixels: nearest neighbours, baselines, reconstructions, interpolation
# ---------------------------------------------------------------------------------------------------


def test_nearest_training_finds_exact_copy(drawings):
    X, _ = drawings
    samples = torch.stack([X[7], X[2], X[4] * 0.5])
    idx, dist = E.nearest_training(samples, X, chunk=2)
    assert idx[:2].tolist() == [7, 2]
    assert dist[0] == 0 and dist[1] == 0  # exact: recomputed as the norm of a difference of equal rows
    brute = ((X.double().flatten(1) - samples[2].double().flatten()) ** 2).sum(1).sqrt()
    # ~5.6 intensity units, computed in float64 both ways; the next-nearest drawing is 2 farther.
    assert idx[2] == int(brute.argmin()) and dist[2] == pytest.approx(float(brute.min()), abs=1e-6)


def test_mean_image_mse_matches_numpy(drawings):
    X, _ = drawings
    train, test = X[:6].double().numpy(), X[6:].double().numpy()  # float64, so its sums round at ~1e-17
    expected = ((test - train.mean(0)) ** 2).mean()
    assert E.mean_image_mse(X[:6], X[6:]) == pytest.approx(float(expected), abs=1e-9)  # ~0.12


def test_reconstruction_mse_of_identity_like_model_is_zero(drawings):
    X, _ = drawings
    model = IdentityLike()
    assert E.reconstruction_mse(model, X, batch_size=3) == 0.0
    assert torch.equal(E.reconstruct(model, X), X)
    assert E.encode_all(model, X).shape == (10, 784)
    # A model that always predicts 0 has the mean squared intensity as its error.
    zero = IdentityLike()
    zero.forward = lambda x: torch.zeros_like(x)
    assert E.reconstruction_mse(zero, X) == pytest.approx(float((X.double() ** 2).mean()), abs=1e-9)  # ~0.18
    # Interpolating in this pixel 'latent space' cross-fades the two drawings.
    path = E.interpolate(model, X[0], X[1], steps=3)
    assert path.shape == (3, 1, 28, 28)
    assert torch.allclose(path[1], (X[0] + X[1]) / 2, rtol=0, atol=1e-6) and torch.equal(path[0], X[0])
    with pytest.raises(ValueError, match="to_tensor"):
        E.reconstruction_mse(model, (X * 255).to(torch.uint8))



# ---------------------------------------------------------------------------------------------------
# KID, repeated draws, mode decoding, the fixed judge
# ---------------------------------------------------------------------------------------------------


def test_kernel_distance_is_the_unbiased_mmd_of_the_cubic_kernel_written_out_pair_by_pair():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3)), rng.normal(0.3, 1, size=(5, 3))
    k = lambda u, v: (u @ v / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(a[i], a[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(b[i], b[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(a[i], b[j]) for i in range(7) for j in range(5)) / 35
    assert E.kernel_distance(a, b, block=2) == pytest.approx(xx + yy - 2 * xy, abs=1e-9)  # blocks change nothing
    with pytest.raises(ValueError, match="same F"):
        E.kernel_distance(a, b[:, :2])


def test_over_draws_gives_the_mean_and_sample_sd_and_sums_the_counts():
    draws = [{"fid": 10.0, "kid": 0.1, "inception_score": 2.0, "n": 4, "class_histogram": [3, 1],
              "class_accuracy": 0.5, "confusion": [[2, 0], [1, 1]]},
             {"fid": 14.0, "kid": 0.3, "inception_score": 2.0, "n": 4, "class_histogram": [2, 2],
              "class_accuracy": 1.0, "confusion": [[2, 0], [0, 2]]}]
    out = E.over_draws(draws)
    assert out["fid"] == pytest.approx(12.0, abs=1e-12) and out["fid_sd"] == pytest.approx(math.sqrt(8), abs=1e-12)
    assert out["kid"] == pytest.approx(0.2, abs=1e-12) and out["inception_score_sd"] == pytest.approx(0, abs=1e-12)
    assert out["class_histogram"] == [5, 3] and out["confusion"] == [[4, 0], [1, 3]] and out["draws"] == 2
    assert out["per_class"] == [1.0, 0.75] and out["class_accuracy"] == pytest.approx(0.75, abs=1e-12)
    assert E.over_draws(draws[:1])["fid_sd"] is None
    assert E.draw_seeds(5, 3) == [5, 1005, 2005]


def test_a_sampler_is_scored_over_independent_draws_and_at_each_pixels_mode(drawings):
    vae, clf = small_vae(seed=2).eval(), Classifier().eval()
    X, y = drawings
    ref = E.classifier_outputs(clf, X)[0]
    m = E.sampler_metrics(clf, vae, E.PriorSampler(vae), 10, ref, seed=0, repeats=3)
    single = [E.generative_metrics(clf, E.decode_samples(vae, E.PriorSampler(vae), 10, s)[0], None, ref)["fid"]
              for s in E.draw_seeds(0, 3)]
    assert m["draws"] == 3 and m["fid"] == pytest.approx(np.mean(single), abs=1e-6)
    assert m["fid_sd"] == pytest.approx(np.std(single, ddof=1), abs=1e-6)
    mode = E.generative_metrics(clf, E.mode_of(E.decode_samples(vae, E.PriorSampler(vae), 10, 0)[0]), None, ref)
    assert E.sampler_metrics(clf, vae, E.PriorSampler(vae), 10, ref, seed=0)["mode"]["fid"] == \
        pytest.approx(mode["fid"], abs=1e-6)
    assert set(E.mode_of(torch.tensor([0.2, 0.5, 0.51])).tolist()) == {0.0, 1.0}
    real = E.real_reference(clf, X, 6, ref, seed=0, repeats=2, y=y)
    first = E.random_subset(X, 6, seed=0)
    assert real["draws"] == 2 and real["mode"]["draws"] == 2
    assert E.real_reference(clf, X, 6, ref, seed=0)["fid"] == pytest.approx(
        E.generative_metrics(clf, first, None, ref)["fid"], abs=1e-6)  # the subset helpers.random_subset draws


def test_every_drawing_is_scored_against_references_of_its_own_form(drawings):
    """Like with like: a decoder's grey means against the grey reference, their modes against the reference
    thresholded at 0.5, binary draws against the reference binarized by one draw; real drawings in each form
    against the same drawings in that form score an FID of 0."""
    vae, clf = small_vae(seed=2).eval(), Classifier().eval()
    X, y = drawings
    ref = E.reference_features(clf, X)
    assert ref.grey.shape == ref.mode.shape == ref.drawn.shape == (len(X), 128)
    assert np.allclose(ref.mode, E.classifier_outputs(clf, E.mode_of(X))[0], atol=1e-12)
    assert np.allclose(ref.drawn, E.classifier_outputs(clf, E.binarize(X))[0], atol=1e-12)
    assert not np.allclose(ref.grey, ref.mode, atol=1e-3)  # the forms differ: a different yardstick each
    m = E.sampler_metrics(clf, vae, E.PriorSampler(vae), 10, ref, seed=0)
    grey, _ = E.decode_samples(vae, E.PriorSampler(vae), 10, 0)
    assert m["reference"] == "grey test drawings" and m["mode"]["reference"] == "test drawings thresholded at 0.5"
    assert m["fid"] == pytest.approx(E.generative_metrics(clf, grey, None, ref.grey)["fid"], abs=1e-6)
    assert m["mode"]["fid"] == pytest.approx(E.generative_metrics(clf, E.mode_of(grey), None, ref.mode)["fid"],
                                             abs=1e-6)
    real = E.real_reference(clf, X, len(X), ref, seed=0, y=y)  # every drawing, in every form: the set itself
    assert real["fid"] == pytest.approx(0, abs=1e-6) and real["mode"]["fid"] == pytest.approx(0, abs=1e-6)
    assert real["drawn"]["fid"] == pytest.approx(0, abs=1e-6)
    assert real["drawn"]["reference"] == "test drawings binarized by one draw"
    # Binary drawings (an autoregressive decoder's) are scored against the drawn reference, with no "mode" record.
    binary = E.reconstruction_metrics(clf, ToyBinaryDecoder(), X, y, ref)
    assert "mode" not in binary and binary["reference"] == "test drawings binarized by one draw"
    assert binary["fid"] == pytest.approx(E.generative_metrics(clf, E.binarize(X), None, ref.drawn)["fid"], abs=1e-6)


class ToyBinaryDecoder(torch.nn.Module):
    """An autoencoder whose reconstruction of a drawing is its one-draw binarization: binary drawings."""

    def forward(self, x):
        return E.binarize(x)


def test_the_judge_has_its_own_seed_whatever_the_notebooks_seed(synthetic_dir, tmp_path):
    nb = E.Notebook(str(synthetic_dir), seed=3, device="cpu", budget="tiny", runs_dir=str(tmp_path), progress="off")
    _, record = nb.judge()
    assert record["train_config"]["seed"] == E.JUDGE_SEED == 0 and record["train_config"]["precision"] == "fp32"
    assert nb.judge(seed=1)[1]["train_config"]["seed"] == 1


def test_the_fid_of_singular_features_is_right_and_warns_nothing():
    """The judge's ReLU features have constant dimensions; scipy's warning about the singular root would be printed
    on every FID of a notebook run, while the root is right: the distance of a shifted copy is F d^2."""
    f = np.random.default_rng(0).normal(size=(50, 128))
    f[:, :20] = 0  # constant features, fewer samples than dimensions: singular covariances
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert E.frechet_distance(f, f + 0.1) == pytest.approx(128 * 0.01, abs=1e-3)


class _InkJudge(nn.Module):
    """A judge that calls a drawing class 1 when its mean intensity exceeds 0.3, else class 0."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # a device to run on

    def features(self, x):
        return x.mean((1, 2, 3))[:, None]

    def head(self, f):
        return torch.cat([0.3 - f, f - 0.3], dim=1) * 100


def test_judge_accuracy_reads_real_drawings_in_each_form():
    """Drawings of uniform grey 0.4, all of class 1: grey they have ink 0.4 (class 1); thresholded at 0.5 they are
    blank (class 0); binarized by one draw about 40% of their pixels are lit (class 1)."""
    X, y = torch.full((50, 1, 28, 28), 0.4), torch.ones(50, dtype=torch.long)
    accuracy = E.judge_accuracy(_InkJudge(), X, y)
    assert accuracy == {"grey": 1.0, "thresholded": 0.0, "drawn": 1.0}
