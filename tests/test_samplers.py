"""Specifications of helpers/samplers.py (latent samplers, label adherence) and of ``split_validation``.
Small and CPU-only.

The mixture tests draw codes from a KNOWN Gaussian mixture and ask the samplers to find it again; their
tolerances are a few standard errors of the estimates at the sample sizes used (noted at each), far below
the error of a real bug. Exact float comparisons carry an absolute tolerance fitted to the value's scale.
The label-adherence tests use toy models whose drawings a toy classifier reads back without error, so
the expected numbers are exact (or a known chance level).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_vae
from scipy.stats import multivariate_normal
from torch import nn

import helpers as H
from helpers import classifier_outputs

# ---------------------------------------------------------------------------------------------------
# split_validation
# ---------------------------------------------------------------------------------------------------

PER_CLASS = (40, 30, 20, 50, 60)  # 10% of each is a whole number: 4, 3, 2, 5, 6


def numbered_quickdraw() -> H.QuickDraw:
    """200 training drawings of unequal classes (PER_CLASS), shuffled; drawing i carries its number i in
    its first two pixels (i // 256, i % 256), so every row can be told apart after a split."""
    n = sum(PER_CLASS)
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(5), PER_CLASS)).astype(np.int64)
    x = np.zeros((n, 28, 28), np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(n) // 256, np.arange(n) % 256
    return H.QuickDraw(x, y, x[:10].copy(), y[:10].copy(), data_dir=Path("numbered"))


def row_numbers(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0].astype(np.int64) * 256 + x[:, 0, 1]


def test_split_validation_takes_ten_percent_of_each_class():
    data = numbered_quickdraw()
    fit, x_val, y_val = H.split_validation(data)
    assert H.VALIDATION == {"fraction": 0.1, "seed": 0}
    assert np.bincount(y_val, minlength=5).tolist() == [round(0.1 * n) for n in PER_CLASS]
    assert np.bincount(fit.y_train, minlength=5).tolist() == [n - round(0.1 * n) for n in PER_CLASS]
    assert x_val.shape == (20, 28, 28) and x_val.dtype == np.uint8 and y_val.dtype == np.int64


def test_split_validation_on_the_synthetic_folder_takes_four_of_forty_per_class(synthetic):
    fit, x_val, y_val = H.split_validation(synthetic)
    assert np.bincount(y_val, minlength=5).tolist() == [4] * 5
    assert np.bincount(fit.y_train, minlength=5).tolist() == [36] * 5
    assert synthetic.subset == "" and len(synthetic.y_train) == 200, "the loaded data is left as it was"


def test_split_validation_parts_are_disjoint_and_make_up_the_training_split():
    data = numbered_quickdraw()
    fit, x_val, y_val = H.split_validation(data)
    fit_rows, val_rows = row_numbers(fit.x_train), row_numbers(x_val)
    assert not set(fit_rows) & set(val_rows)
    assert sorted(np.concatenate([fit_rows, val_rows]).tolist()) == list(range(200))
    # Every drawing keeps its own label, and the test split is untouched.
    assert np.array_equal(fit.y_train, data.y_train[fit_rows])
    assert np.array_equal(y_val, data.y_train[val_rows])
    assert np.array_equal(fit.x_test, data.x_test) and np.array_equal(fit.y_test, data.y_test)


def test_split_validation_is_the_same_every_time_and_another_seed_gives_another():
    data = numbered_quickdraw()
    first, again = H.split_validation(data)[1], H.split_validation(numbered_quickdraw())[1]
    assert np.array_equal(row_numbers(first), row_numbers(again))
    other = H.split_validation(data, seed=1)[1]
    assert set(row_numbers(other)) != set(row_numbers(first))


def test_split_validation_marks_the_fit_part_as_a_subset_and_refuses_to_split_it_again():
    fit = H.split_validation(numbered_quickdraw())[0]
    assert fit.subset  # says which part of the training split x_train holds
    with pytest.raises(ValueError, match="subset"):
        H.split_validation(fit)


def test_config_key_tells_the_fit_part_apart_and_keeps_the_whole_split_key(synthetic):
    spec, cfg = {"kind": "vae", "encoder": "cnn", "latent_dim": 8}, H.TrainConfig(steps=10)
    fit = H.split_validation(synthetic)[0]
    assert H.config_key(spec, cfg, fit) != H.config_key(spec, cfg, synthetic)
    # The whole split hashes as it did before QuickDraw had a subset field, so models cached then still load.
    train = dataclasses.asdict(cfg)
    # Checkpointing does not change the weights; settings added later stay out of the key at their defaults.
    for name in ("ckpt_every", "precision", "batches", "optimizer", "weight_decay", "grad_clip"):
        train.pop(name)
    blob = json.dumps({"model": spec, "train": train, "data": synthetic.md5}, sort_keys=True)
    assert H.config_key(spec, cfg, synthetic) == hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------
# A known mixture in 2-D: three well separated components (nearest means 8.6 apart, standard deviations
# at most 1.4)
# ---------------------------------------------------------------------------------------------------

MEANS = np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 7.0]])
COVS = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[1.5, -0.3], [-0.3, 0.5]]])
WEIGHTS = np.array([0.5, 0.3, 0.2])


def mixture_codes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n codes (n, 2) from the known mixture and the component (n,) each came from."""
    rng = np.random.default_rng(seed)
    comps = rng.choice(3, size=n, p=WEIGHTS)
    return MEANS[comps] + np.einsum("nij,nj->ni", np.linalg.cholesky(COVS)[comps], rng.standard_normal((n, 2))), comps


def nearest_mean(z: np.ndarray, means: np.ndarray) -> np.ndarray:
    return np.linalg.norm(z[:, None] - means[None], axis=2).argmin(1)


# ---------------------------------------------------------------------------------------------------
# PriorSampler
# ---------------------------------------------------------------------------------------------------


def test_prior_sampler_draws_seeded_codes_of_the_latent_size():
    sampler = H.PriorSampler(small_vae())
    z = sampler.sample(6, seed=3)
    assert z.shape == (6, 8) and z.dtype == torch.float32
    assert torch.equal(sampler.sample(6, seed=3), z)
    assert not torch.allclose(sampler.sample(6, seed=4), z, rtol=0, atol=0.1)


def test_prior_sampler_of_a_standard_normal_prior_is_centred_on_zero_with_unit_spread():
    z = H.PriorSampler(small_vae()).sample(5000, seed=0)
    # 5000 draws: standard errors 0.014 (means) and 0.01 (standard deviations).
    assert np.allclose(z.mean(0).numpy(), 0, rtol=0, atol=0.07)
    assert np.allclose(z.std(0).numpy(), 1, rtol=0, atol=0.05)


def test_prior_sampler_of_a_class_prior_vae_centres_each_class_on_its_prior_mean():
    model = small_vae(n_classes=5, class_prior=True)
    classes = torch.arange(5000) % 5
    z = H.PriorSampler(model).sample(5000, classes, seed=0)
    means = model.prior.means.detach()
    assert float((means[:, None] - means[None]).norm(dim=2).max()) > 3, "the class means are far apart"
    for c in range(5):  # 1000 draws per class: standard errors 0.03 (means) and 0.02 (standard deviations)
        zc = z[classes == c]
        assert np.allclose(zc.mean(0).numpy(), means[c].numpy(), rtol=0, atol=0.15)
        assert np.allclose(zc.std(0).numpy(), 1, rtol=0, atol=0.1)
    # N(m_c, I) is N(0, I) moved by m_c: the same seed gives the same noise.
    plain = H.PriorSampler(small_vae()).sample(5000, seed=0)
    assert torch.allclose(z - means[classes], plain, rtol=0, atol=1e-5)


def test_prior_sampler_of_a_class_prior_vae_needs_the_classes():
    sampler = H.PriorSampler(small_vae(n_classes=5, class_prior=True))
    for n in (3, 5):  # 5: prior_means[None] would broadcast to (1, 5, D) without the check
        with pytest.raises(ValueError, match="give the class of each"):
            sampler.sample(n, None, seed=0)


# ---------------------------------------------------------------------------------------------------
# MixtureSampler
# ---------------------------------------------------------------------------------------------------


def test_mixture_sampler_recovers_a_known_mixture():
    codes, _ = mixture_codes(6000, seed=0)
    gmm = H.MixtureSampler(codes, 3, seed=0).gmm
    match = nearest_mean(MEANS, gmm.means_)  # fitted component of each true one
    assert sorted(match.tolist()) == [0, 1, 2], "one fitted component per true component"
    # >= 1200 codes per component: standard errors <= 0.04 (means), 0.006 (weights), 0.08 (covariances).
    assert np.allclose(gmm.means_[match], MEANS, rtol=0, atol=0.15)
    assert np.allclose(gmm.weights_[match], WEIGHTS, rtol=0, atol=0.03)
    assert np.allclose(gmm.covariances_[match], COVS, rtol=0, atol=0.3)


def test_mixture_sampler_samples_reproduce_the_mixture():
    sampler = H.MixtureSampler(mixture_codes(6000, seed=0)[0], 3, seed=0)
    z = sampler.sample(6000, seed=1).numpy()
    assert z.shape == (6000, 2)
    comps = nearest_mean(z, MEANS)  # the components are far apart: the nearest mean names each code's own
    # 6000 samples: standard errors <= 0.007 (frequencies), 0.04 (component means)
    assert np.allclose(np.bincount(comps, minlength=3) / len(z), WEIGHTS, rtol=0, atol=0.03)
    for k in range(3):  # and 0.08 (component covariances)
        assert np.allclose(z[comps == k].mean(0), MEANS[k], rtol=0, atol=0.15)
        assert np.allclose(np.cov(z[comps == k], rowvar=False), COVS[k], rtol=0, atol=0.3)


def test_mixture_sampler_is_seeded():
    sampler = H.MixtureSampler(mixture_codes(600, seed=0)[0], 3, seed=0)
    z = sampler.sample(50, seed=1)
    assert torch.equal(sampler.sample(50, seed=1), z)
    assert not torch.allclose(sampler.sample(50, seed=2), z, rtol=0, atol=0.1)


# ---------------------------------------------------------------------------------------------------
# ClassMixtureSampler
# ---------------------------------------------------------------------------------------------------

# Five classes on a circle of radius 20, each class itself two blobs 3 apart (standard deviation 1).
CLASS_MEANS = 20 * np.stack([np.cos(2 * np.pi * np.arange(5) / 5), np.sin(2 * np.pi * np.arange(5) / 5)], 1)


def class_codes(n_per_class: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(5), n_per_class)
    blob = np.where(rng.random(len(labels)) < 0.5, -1.5, 1.5)[:, None] * np.array([1.0, 0.0])
    return CLASS_MEANS[labels] + blob + rng.standard_normal((len(labels), 2)), labels


def test_class_mixture_sampler_draws_each_code_from_its_own_class():
    sampler = H.ClassMixtureSampler(*class_codes(), n_components=2, seed=0)
    classes = torch.from_numpy(np.random.default_rng(1).permutation(np.arange(500) % 5))
    z = sampler.sample(500, classes, seed=0).numpy()
    assert z.shape == (500, 2)
    assert np.array_equal(nearest_mean(z, CLASS_MEANS), classes.numpy())
    # Classes are 23.5 apart; a code 6 from its class mean is 4 standard deviations out along the blobs.
    assert np.linalg.norm(z - CLASS_MEANS[classes.numpy()], axis=1).max() < 6
    for c in range(5):  # 100 codes per class, spread 1.8: standard error 0.2
        assert np.allclose(z[classes.numpy() == c].mean(0), CLASS_MEANS[c], rtol=0, atol=0.6)


def test_class_mixture_sampler_needs_one_class_per_code():
    sampler = H.ClassMixtureSampler(*class_codes(20), n_components=2, seed=0)
    with pytest.raises(ValueError, match="class"):
        sampler.sample(10, None, seed=0)
    with pytest.raises(ValueError, match="class"):
        sampler.sample(10, torch.arange(5), seed=0)


def test_class_mixture_sampler_is_seeded_and_independent_of_the_order_of_the_classes():
    sampler = H.ClassMixtureSampler(*class_codes(20), n_components=2, seed=0)
    classes = torch.arange(20) % 5
    z = sampler.sample(20, classes, seed=1)
    assert torch.equal(sampler.sample(20, classes, seed=1), z)
    assert not torch.allclose(sampler.sample(20, classes, seed=2), z, rtol=0, atol=0.1)
    # Asked class by class instead of interleaved, each class gets the same codes in the same order.
    by_class = sampler.sample(20, H.class_rows(4), seed=1)
    for c in range(5):
        assert torch.equal(by_class[H.class_rows(4) == c], z[classes == c])


# ---------------------------------------------------------------------------------------------------
# choose_components
# ---------------------------------------------------------------------------------------------------


def test_choose_components_picks_the_true_number_of_components():
    train, val = mixture_codes(200, seed=0)[0], mixture_codes(2000, seed=100)[0]
    k, scores = H.choose_components(train, val, candidates=(1, 2, 3, 5), seed=0)
    assert k == 3 and sorted(scores) == [1, 2, 3, 5]
    # Validation log-likelihoods (nats per code): too few components lose ~0.5 or more, too many ~0.08.
    assert scores[3] > max(scores[1], scores[2]) + 0.3 and scores[3] > scores[5] + 0.03


def test_choose_components_skips_candidates_with_more_components_than_codes():
    train, val = mixture_codes(4, seed=0)[0], mixture_codes(50, seed=1)[0]
    k, scores = H.choose_components(train, val, candidates=(1, 2, 3, 5), seed=0)
    assert sorted(scores) == [1, 2, 3] and k in scores


def test_choose_components_with_labels_scores_each_class_under_its_own_mixture():
    train, train_labels = class_codes(40, seed=0)
    val, val_labels = class_codes(10, seed=1)
    train, train_labels = train[train_labels != 4], train_labels[train_labels != 4]
    few = class_codes(4, seed=2)  # class 4 with only 4 training codes: 5 components are skipped
    train, train_labels = np.concatenate([train, few[0][few[1] == 4]]), np.concatenate([train_labels, [4] * 4])
    k, scores = H.choose_components(train, val, candidates=(1, 2, 5), seed=0, train_labels=train_labels,
                                    val_labels=val_labels)
    assert sorted(scores) == [1, 2] and k == max(scores, key=scores.get)
    # One component per class: each class's Gaussian is its training codes' mean and (biased) covariance,
    # plus sklearn's reg_covar = 1e-4 on the diagonal; the score is the mean log-density of the
    # validation codes, each under its own class's Gaussian.
    logpdf = 0.0
    for c in range(5):
        tc, vc = train[train_labels == c], val[val_labels == c]
        cov = np.cov(tc, rowvar=False, bias=True) + 1e-4 * np.eye(2)
        logpdf += multivariate_normal(tc.mean(0), cov).logpdf(vc).sum()
    assert scores[1] == pytest.approx(logpdf / len(val), abs=1e-6)  # ~ -3.5 nats per code, in float64


# ---------------------------------------------------------------------------------------------------
# decode_samples
# ---------------------------------------------------------------------------------------------------


def test_decode_samples_of_a_conditional_vae_cycles_through_the_classes():
    model, n = small_vae(n_classes=5), 12
    sampler = H.PriorSampler(model)
    x, classes = H.decode_samples(model, sampler, n, seed=3)
    assert x.shape == (n, 1, 28, 28) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert classes.tolist() == [i % 5 for i in range(n)]
    assert model.training, "the model's mode is restored"
    model.eval()
    with torch.no_grad():  # the sampler's codes of the same seed, decoded with the requested classes
        expected = model.decode(sampler.sample(n, classes, seed=3), classes)
    assert torch.allclose(x, expected, rtol=0, atol=1e-6)


def test_decode_samples_of_an_unconditional_vae_from_the_prior_has_no_classes():
    x, classes = H.decode_samples(small_vae(), H.PriorSampler(small_vae()), 7, seed=0)
    assert x.shape == (7, 1, 28, 28) and classes is None


def test_decode_samples_of_a_class_sampler_cycles_through_its_classes():
    model = small_vae()
    sampler = H.ClassMixtureSampler(np.random.default_rng(0).standard_normal((100, 8)), np.arange(100) % 5, 1)
    x, classes = H.decode_samples(model, sampler, 11, seed=0)
    assert x.shape == (11, 1, 28, 28) and classes.tolist() == [i % 5 for i in range(11)]
    model.eval()
    with torch.no_grad():  # an unconditional decoder: the class only chooses the code
        assert torch.allclose(x, model.decode(sampler.sample(11, classes, seed=0)), rtol=0, atol=1e-6)


def test_decode_samples_is_seeded_and_keeps_the_given_classes():
    model = small_vae(n_classes=5)
    sampler, rows = H.PriorSampler(model), H.class_rows(2)
    x, classes = H.decode_samples(model, sampler, 10, seed=1, classes=rows)
    assert torch.equal(classes, rows)
    # Batches of 3 against one of 10: float32 rounding of the convolutions, ~1e-7.
    assert torch.allclose(H.decode_samples(model, sampler, 10, seed=1, classes=rows, batch_size=3)[0], x,
                          rtol=0, atol=1e-5)
    assert not torch.allclose(H.decode_samples(model, sampler, 10, seed=2, classes=rows)[0], x, rtol=0, atol=1e-3)


# ---------------------------------------------------------------------------------------------------
# Toy models for label adherence: class k is drawn as rows 5k..5k+4 lit, and a toy classifier reads
# back which row block holds the ink.
# ---------------------------------------------------------------------------------------------------


def block_drawings(classes: torch.Tensor) -> torch.Tensor:
    """(N,) classes -> (N, 1, 28, 28): rows 5k..5k+4 of class k at 1, the rest 0."""
    lit = (torch.arange(28) // 5)[None] == classes[:, None]  # (N, 28)
    return lit[:, None, :, None].expand(-1, 1, 28, 28).float()


class BlockReader(nn.Module):
    """A 'classifier' of block drawings: features are the ink of the 5 row blocks, logits the same."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, :25].reshape(len(x), 5, 5 * 28).sum(2)  # (N, 5)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return f


class ToyCVAE(nn.Module):
    """A conditional 'VAE' with a 2-d code (class read from the drawing, 0) and a decoder that draws
    ``draws``: "label" (the class it is given), "original" (the class in the code, i.e. the drawing's
    own) or "random" (a uniformly random class, seeded). Records what its encoder and decoder receive."""

    latent_dim = 2

    def __init__(self, draws: str = "label", n_classes: int = 5, prior_means: torch.Tensor | None = None):
        super().__init__()
        self.draws, self.n_classes, self.prior_means = draws, n_classes, prior_means
        self.weight = nn.Parameter(torch.zeros(1))  # only so that next(model.parameters()) has a device
        self.generator = torch.Generator().manual_seed(0)
        self.encoded, self.decoded = [], []

    def encode(self, x, y=None):
        self.encoded.append(y)
        k = BlockReader().features(x).argmax(1).float()
        mu = torch.stack([k, torch.zeros_like(k)], 1)
        return mu, torch.zeros_like(mu)

    def class_mean(self, z, y=None):
        return torch.zeros_like(z) if self.prior_means is None else self.prior_means[y].expand_as(z)

    def sample_prior(self, n, y=None, generator=None):
        z = torch.randn(n, self.latent_dim, generator=generator)
        return z if self.prior_means is None else z + self.prior_means[y]

    def decode(self, z, y=None, seed=0):
        self.decoded.append((z.clone(), y))
        if self.draws == "label":
            classes = y
        elif self.draws == "original":
            classes = z[:, 0].round().long()
        else:
            classes = torch.randint(5, (len(z),), generator=self.generator)
        return block_drawings(classes)

    def decode_logits(self, z, y=None):  # marks the model as a VAE for helpers.evaluation.inference
        return torch.logit(self.decode(z, y), eps=1e-6)


def test_toy_classifier_reads_block_drawings_back():
    classes = torch.arange(10) % 5
    assert classifier_outputs(BlockReader(), block_drawings(classes))[1].argmax(1).tolist() == classes.tolist()


def test_label_adherence_is_one_for_a_decoder_that_draws_its_label():
    y = torch.arange(50) % 5
    out = H.label_adherence(BlockReader(), ToyCVAE("label"), block_drawings(y), y, batch_size=7)
    assert out == {"adherence": 1.0, "kept_original": 0.0, "n": 200}  # every other class once per drawing


def test_label_adherence_is_zero_for_a_decoder_that_keeps_the_original_class():
    y = torch.arange(50) % 5
    out = H.label_adherence(BlockReader(), ToyCVAE("original"), block_drawings(y), y.numpy())
    assert out == {"adherence": 0.0, "kept_original": 1.0, "n": 200}


def test_label_adherence_is_chance_for_a_decoder_that_ignores_the_label():
    y = torch.arange(500) % 5
    out = H.label_adherence(BlockReader(), ToyCVAE("random"), block_drawings(y), y)
    assert out["n"] == 2000
    # 2000 relabelled drawings, a random class each: 1 in 5 by chance, standard error 0.009.
    assert out["adherence"] == pytest.approx(0.2, abs=0.05)
    assert out["kept_original"] == pytest.approx(0.2, abs=0.05)


def test_label_adherence_refuses_an_unconditional_model():
    y = torch.arange(5)
    with pytest.raises(ValueError, match="conditional"):
        H.label_adherence(BlockReader(), ToyCVAE(n_classes=0), block_drawings(y), y)
    with pytest.raises(ValueError, match="conditional"):
        H.label_adherence(BlockReader(), small_vae(), block_drawings(y), y)


def test_relabel_moves_the_code_by_the_difference_of_the_prior_means():
    prior_means = torch.tensor([[0.0, 0.0], [10.0, 1.0], [20.0, -2.0], [30.0, 3.0], [40.0, -4.0]])
    model = ToyCVAE("label", prior_means=prior_means)
    y, new = torch.tensor([0, 1, 2, 3, 4, 2]), torch.tensor([3, 0, 4, 1, 2, 2])
    x = H.relabel(model, block_drawings(y), y, new)
    assert torch.equal(model.encoded[0], y), "each drawing is encoded with its own class"
    z, decoded_as = model.decoded[0]
    mu = torch.stack([y.float(), torch.zeros(6)], 1)  # the toy's posterior means
    assert torch.allclose(z, mu - prior_means[y] + prior_means[new], rtol=0, atol=1e-5)
    assert torch.equal(decoded_as, new) and torch.equal(x, block_drawings(new))


def test_relabel_keeps_the_code_under_a_standard_normal_prior():
    model = ToyCVAE("label")
    y, new = torch.tensor([0, 1, 2]), torch.tensor([4, 4, 0])
    H.relabel(model, block_drawings(y), y, new)
    assert torch.equal(model.decoded[0][0], torch.stack([y.float(), torch.zeros(3)], 1))


# ---------------------------------------------------------------------------------------------------
# sampler_metrics
# ---------------------------------------------------------------------------------------------------


# 150 samples, 128 features of an untrained classifier: singular covariances (only the plumbing here).
@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_sampler_metrics_of_a_conditional_vae_with_a_real_classifier(synthetic):
    torch.manual_seed(0)
    clf, model, n = H.Classifier(), small_vae(n_classes=5), 150
    ref = classifier_outputs(clf, H.to_tensor(synthetic.x_train))[0]
    out = H.sampler_metrics(clf, model, H.PriorSampler(model), n, ref, seed=0)
    samples, classes = H.decode_samples(model, H.PriorSampler(model), n, seed=0)
    feats, probs = classifier_outputs(clf, samples)
    assert out["fid"] == pytest.approx(H.frechet_distance(feats, ref), abs=1e-7)  # ~2e-3 here
    assert 1 - 1e-9 <= out["inception_score"] <= 5 + 1e-9
    confusion = np.array(out["confusion"])
    assert confusion.shape == (5, 5) and confusion.sum(1).tolist() == [n // 5] * 5
    expected = np.zeros((5, 5), np.int64)
    np.add.at(expected, (classes.numpy(), probs.argmax(1)), 1)
    assert np.array_equal(confusion, expected)
    assert out["class_accuracy"] == pytest.approx(np.trace(confusion) / n, abs=1e-12)
    assert np.allclose(out["per_class"], np.diag(confusion) / (n // 5), rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_sampler_metrics_of_an_unconditional_vae_from_the_prior_has_no_class_scores(synthetic):
    torch.manual_seed(0)
    clf, model = H.Classifier(), small_vae()
    ref = classifier_outputs(clf, H.to_tensor(synthetic.x_train))[0]
    out = H.sampler_metrics(clf, model, H.PriorSampler(model), 150, ref, seed=0)
    assert math.isfinite(out["fid"]) and 1 - 1e-9 <= out["inception_score"] <= 5 + 1e-9
    assert not {"class_accuracy", "per_class", "confusion"} & set(out)


def test_sampler_metrics_scores_the_requested_classes():
    model, n = ToyCVAE("label"), 100
    ref = BlockReader().features(block_drawings(torch.arange(n) % 5)).double().numpy()
    out = H.sampler_metrics(BlockReader(), model, H.PriorSampler(model), n, ref, seed=0)
    assert out["class_accuracy"] == 1.0 and out["per_class"] == [1.0] * 5
    assert out["confusion"] == (20 * np.eye(5, dtype=np.int64)).tolist()
    # The samples are the reference set itself: FID ~ 0 on features of scale 140 (float64 rounding).
    assert out["fid"] == pytest.approx(0, abs=1e-6)
    ignoring = H.sampler_metrics(BlockReader(), ToyCVAE("random"), H.PriorSampler(model), n, ref, seed=0)
    assert np.array(ignoring["confusion"]).sum(1).tolist() == [20] * 5 and ignoring["class_accuracy"] < 0.5


def test_label_adherence_of_a_three_class_model_relabels_within_its_classes():
    model = small_vae(n_classes=3)
    y = torch.arange(9) % 3
    X = H.to_tensor(H.make_synthetic_images(2, seed=0)[0][:9])
    out = H.label_adherence(H.Classifier(), model, X, y)
    assert out["n"] == 9 * 2  # each drawing as each of the 2 other classes


def test_choose_components_says_when_no_candidate_fits():
    codes = np.random.default_rng(0).normal(size=(3, 2))
    with pytest.raises(ValueError, match="every candidate"):
        H.choose_components(codes, codes, candidates=(5, 10))
    labels = np.array([1, 1, 1, 2, 2, 2])  # classes 1 and 2 only: counts of the classes present
    codes = np.random.default_rng(1).normal(size=(6, 2))
    k, scores = H.choose_components(codes, codes, candidates=(1, 2, 5), train_labels=labels, val_labels=labels)
    assert set(scores) == {1, 2} and k in (1, 2)


def test_mixture_fits_and_the_fid_run_on_one_blas_thread(monkeypatch):
    """EM on small codes and the FID's matrix square root are small matrix products, several times slower on two
    OpenBLAS threads than on one (helpers.one_blas_thread); torch's threads are not touched."""
    from scipy import linalg
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_info

    seen = []

    def blas_threads():
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

    fit, sqrtm = GaussianMixture.fit, linalg.sqrtm
    monkeypatch.setattr(GaussianMixture, "fit", lambda self, X, y=None: (blas_threads(), fit(self, X, y))[1])
    monkeypatch.setattr(linalg, "sqrtm", lambda A, *a, **k: (blas_threads(), sqrtm(A, *a, **k))[1])
    codes = np.random.default_rng(0).normal(size=(60, 4))
    torch_threads = torch.get_num_threads()
    H.choose_components(codes, codes, candidates=(1, 2))
    H.fit_mixture(codes, 2)
    H.frechet_distance(codes, codes + 1)
    assert len(seen) == 4 and all(s == {1} for s in seen), seen
    assert torch.get_num_threads() == torch_threads
