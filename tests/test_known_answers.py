"""Known answers: the evaluation's maths pinned to numbers worked out by hand.

Each check is a function of the implementation it checks. It runs twice: on helpers' own function, where it must
pass, and on a deliberately broken version of it (a mutant: a sum made a mean, a factor dropped, a log-sum-exp
made a mean, nats made bits, a square root halved, a kernel's diagonal kept), where it must fail. So every check
is shown to be able to fail, on exactly the kind of slip it is there to catch.

Tolerances: the float32 sums over 784 pixels carry rounding of about 784 * 6e-8 * 550 nats = 3e-5 per image, so
1e-3 nats is far above the noise and far below any real error (the smallest mutant's error here is 0.25 nats).
"""

from __future__ import annotations

import inspect
import math
import textwrap
import types

import numpy as np
import pytest
import torch
from conftest import small_vae
from scipy import linalg
from scipy.special import entr

import helpers as H
from helpers.data.quickdraw import make_synthetic_images, to_tensor
from helpers.evaluation import bounds
from helpers.evaluation import sample_quality as quality
from helpers.models import decoders, priors


@pytest.fixture(scope="module")
def drawings() -> torch.Tensor:
    """10 synthetic grey drawings (2 per class), (10, 1, 28, 28) in [0, 1]."""
    return to_tensor(make_synthetic_images(2, seed=0)[0])


class ConstantEncoder(torch.nn.Module):
    """q(z|x) = N(mu_value, 1) in 4 dimensions, whatever x."""

    n_classes = 0

    def __init__(self, mu_value: float):
        super().__init__()
        self.mu_value = mu_value

    def forward(self, x, c=None):
        mu = torch.full((len(x), 4), self.mu_value)
        return mu, torch.zeros_like(mu)


class CoinFlipDecoder(H.BernoulliDecoder):
    """Logits 0: p = 1/2 for every pixel, whatever z."""

    def forward(self, z, c=None, x=None):
        return torch.zeros(len(z), 1, 28, 28)


def CoinFlipVAE(mu_value: float = 0.0) -> H.VAE:  # noqa: N802 (reads as the model it builds)
    """A VAE of parts whose encoder says q(z|x) = N(mu_value, 1) and whose decoder flips a fair coin per pixel."""
    return H.VAE(ConstantEncoder(mu_value), CoinFlipDecoder(), H.StandardNormalPrior(4), latent_dim=4)


# ---------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------


def check_coin_flips_cost_784_ln_2(drawings):
    """A decoder of logits 0 on a binary drawing: 784 ln 2 = 543.43 nats, at any k (q(z|x) = p(z))."""
    binary = (drawings > 0.5).float()
    elbo = H.vae_elbo(CoinFlipVAE(), binary)
    assert elbo["rec"] == pytest.approx(784 * math.log(2), abs=1e-3)
    assert elbo["kl"] == pytest.approx(0.0, abs=1e-9) and elbo["neg_elbo"] == pytest.approx(543.4273, abs=1e-3)
    assert H.iwae_bound(CoinFlipVAE(), binary, k=7) == pytest.approx(784 * math.log(2), abs=1e-3)


def check_kl_of_n_2_1_is_2(kl_fn):
    """KL(N(2, 1) || N(0, 1)) = (mu^2 + s^2 - 1 - ln s^2) / 2 = 2 nats per dimension."""
    kl = kl_fn(torch.full((1, 3), 2.0), torch.zeros(1, 3))
    assert torch.allclose(kl, torch.full((1, 3), 2.0), atol=1e-6), kl


def check_iwae_is_the_elbo_at_k_1_and_tightens(drawings):
    """At k = 1 the IWAE bound estimates the negative ELBO; more samples never loosen it (on average)."""
    vae = small_vae(seed=1)
    elbo = np.mean([H.vae_elbo(vae, drawings, seed=s)["neg_elbo"] for s in range(20)])
    iwae = {k: np.mean([H.iwae_bound(vae, drawings, k=k, seed=s) for s in range(20 if k == 1 else 3)])
            for k in (1, 10, 40)}
    assert iwae[1] == pytest.approx(elbo, abs=0.1)  # about 545 nats; sd of the 20-estimate mean: 0.05
    # Here the gap from k = 1 to 10 is about 0.25 nats.
    assert iwae[10] < iwae[1] - 0.1 and iwae[40] <= iwae[10] + 0.01
    curve = H.iwae_curve(vae, drawings, k_max=10, repeats=2)
    assert sorted(curve) == [1, 10] and curve[10]["mean"] < curve[1]["mean"]


def check_entropy_floor(entropy_floor):
    """0 for binary drawings, 784 ln 2 for drawings of 0.5 grey, and the BCE of a decoder that outputs the target."""
    binary = np.random.default_rng(0).integers(0, 2, (5, 28, 28)).astype(np.uint8) * 255
    assert entropy_floor(binary) == 0.0
    assert entropy_floor(np.full((3, 28, 28), 0.5)) == pytest.approx(784 * math.log(2), abs=1e-9)
    x = to_tensor(make_synthetic_images(2, seed=3)[0])  # grey strokes: 0 < x < 1 on their edges
    best = torch.logit(x.double().clamp(1e-12, 1 - 1e-12))  # the decoder that outputs the target itself
    bce = torch.nn.functional.binary_cross_entropy_with_logits(best, x.double(), reduction="none")
    assert entropy_floor(x) > 1
    assert entropy_floor(x) == pytest.approx(float(bce.flatten(1).sum(1).mean()), abs=1e-6)


def check_fid_of_a_set_with_itself_is_0(frechet_distance):
    """FID(A, A) = 0, and FID of a set shifted by d in every one of F features is F d^2 (equal covariances)."""
    f = np.random.default_rng(0).normal(size=(500, 16))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(f, f + 0.5) == pytest.approx(16 * 0.25, abs=1e-6)
    g = np.random.default_rng(1).normal(size=(500, 16))  # another sample of the same distribution: near 0, not 0
    assert 0 < frechet_distance(f, g) < 16 * 0.25


def check_kid_is_0_in_expectation(kernel_distance):
    """Two draws of one distribution: the mean KID over many pairs is 0 within its standard error; a shifted
    distribution is far from 0."""
    rng = np.random.default_rng(0)
    values = np.array([kernel_distance(rng.normal(size=(30, 8)), rng.normal(size=(30, 8))) for _ in range(300)])
    standard_error = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean()) < 3 * standard_error, (values.mean(), standard_error)
    assert kernel_distance(rng.normal(size=(30, 8)), rng.normal(0.5, 1, size=(30, 8))) > 20 * standard_error


# ---------------------------------------------------------------------------------------------------
# Each check passes on helpers' own function ...
# ---------------------------------------------------------------------------------------------------


def test_a_decoder_of_coin_flips_costs_784_ln_2_nats_per_binary_drawing(drawings):
    check_coin_flips_cost_784_ln_2(drawings)


def standard_normal_kl(mu, logvar):
    """The KL of the N(0, I) prior part, as the VAE takes it (through helpers.models.priors at call time)."""
    return H.StandardNormalPrior(mu.shape[1]).kl(mu, logvar)


def test_kl_of_n_2_1_from_the_standard_normal_is_2_nats_per_dimension():
    check_kl_of_n_2_1_is_2(standard_normal_kl)


def test_iwae_at_k_1_is_the_elbo_in_expectation_and_tightens_as_k_grows(drawings):
    check_iwae_is_the_elbo_at_k_1_and_tightens(drawings)


def test_the_entropy_floor_is_0_for_binary_drawings_784_ln_2_for_grey_ones_and_the_best_bce():
    check_entropy_floor(H.entropy_floor)
    with pytest.raises(ValueError, match="pixels in"):
        H.entropy_floor(np.full((1, 28, 28), 1.5))


def test_fid_of_a_set_with_itself_is_0():
    check_fid_of_a_set_with_itself_is_0(H.frechet_distance)


def test_kid_of_two_draws_of_one_distribution_is_0_in_expectation():
    check_kid_is_0_in_expectation(H.kernel_distance)


def test_bits_per_dimension_of_784_ln_2_nats_is_1():
    assert H.bits_per_dim(784 * math.log(2)) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------------
# ... and fails on a broken one
# ---------------------------------------------------------------------------------------------------


def break_helper(mp, module, name: str, old: str, new: str) -> None:
    """Replace ``module.name`` by a broken copy of its own source: ``old`` (once in it) changed to ``new``."""
    source = textwrap.dedent(inspect.getsource(getattr(module, name)))
    assert source.count(old) == 1, f"{module.__name__}.{name}: {old!r} is not in it once"
    namespace = dict(vars(module))
    exec(compile(source.replace(old, new), f"<broken {module.__name__}.{name}>", "exec"), namespace)
    mp.setattr(module, name, namespace[name])


MUTANTS = {
    "log-likelihood averaged over pixels": (
        lambda mp: break_helper(mp, decoders, "bernoulli_log_likelihood", ".flatten(1).sum(1)", ".flatten(1).mean(1)"),
        lambda d: check_coin_flips_cost_784_ln_2(d)),
    "KL without its factor 1/2": (
        lambda mp: break_helper(mp, priors, "kl_to_standard_normal", "-0.5 * (", "-1.0 * ("),
        lambda d: check_kl_of_n_2_1_is_2(standard_normal_kl)),
    "IWAE with a mean of log-weights for the log of the mean weight": (
        lambda mp: mp.setattr(bounds, "logsumexp", lambda a, axis: a.mean(axis) + math.log(a.shape[axis])),
        lambda d: check_iwae_is_the_elbo_at_k_1_and_tightens(d)),
    "entropy floor in bits": (
        lambda mp: mp.setattr(bounds, "entr", lambda p: entr(p) / math.log(2)),
        lambda d: check_entropy_floor(H.entropy_floor)),
    "FID with half the matrix square root": (
        lambda mp: mp.setattr(quality, "linalg", types.SimpleNamespace(sqrtm=lambda a: 0.5 * linalg.sqrtm(a))),
        lambda d: check_fid_of_a_set_with_itself_is_0(H.frechet_distance)),
    "KID with the kernel's diagonal": (
        lambda mp: break_helper(mp, quality, "kernel_distance", "(kernel_sum(a, a) - math.fsum(diagonal))",
                                "kernel_sum(a, a)"),
        lambda d: check_kid_is_0_in_expectation(quality.kernel_distance)),
}


@pytest.mark.parametrize("name", MUTANTS)
def test_each_known_answer_check_fails_on_a_broken_version(name, drawings, monkeypatch):
    patch, check = MUTANTS[name]
    if patch is not None:
        patch(monkeypatch)
    with pytest.raises(AssertionError):
        check(drawings)
