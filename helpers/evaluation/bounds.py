"""Likelihood bounds of a VAE: the ELBO with its parts, the importance-weighted bound, active units.

Likelihoods and bounds are in nats per image (summed over the 784 pixels and the latent dimensions, averaged
over images), like ``vae_loss``. Sums are float64, on the host. Images as in ``helpers.evaluation.inference``."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import entr, logsumexp
from torch import nn

from ..models.priors import log_normal
from ..models.vae import model_inputs
from .inference import batches, check_images, device_of, evaluating, labels_for, require_vae, to_host
from .stored import stored_evaluation

__all__ = ["entropy_floor", "vae_elbo", "iwae_bound", "active_units", "vae_bounds", "iwae_curve"]

# At most this many drawings go through the decoder at once in iwae_bound (k samples x images).
_MAX_DECODE = 1000


def vae_elbo(model: nn.Module, X: torch.Tensor, y=None, batch_size: int = 500, seed: int = 0) -> dict:
    """The negative ELBO of a VAE on X, in nats per image (Kingma & Welling, 2014, eq. 10, beta = 1). A VAE of
    binary drawings reads X as ``model_inputs`` gives it (grey drawings: their fixed binarization).

    Returns ``rec`` (Bernoulli negative log-likelihood summed over pixels, one Monte Carlo sample of
    z ~ q(z|x) per image, drawn from a torch.Generator seeded with ``seed``), ``kl`` (the KL to the prior:
    analytic, or for a learned prior the estimate at the same z), ``neg_elbo`` = rec + kl, ``kl_per_dim`` (D floats,
    nats per image; one for a learned prior, which does not factorize), ``latent_dim`` and ``active_units``
    (see ``active_units``, computed from the posterior means)."""
    require_vae(model, "vae_elbo")
    X = model_inputs(model, check_images(X))  # a VAE of binary drawings scores their fixed binarization
    y = labels_for(model, y, len(X), "vae_elbo")
    device, g = device_of(model), torch.Generator().manual_seed(seed)
    rec_sum, kl_sum, mus, eps = 0.0, 0.0, [], None  # float64 sums, on the CPU
    with evaluating(model):
        for sl in batches(len(X), batch_size):
            x, yb = X[sl].to(device), None if y is None else y[sl].to(device)
            mu, logvar = model.encode(x, yb)
            # Own noise instead of model.reparameterize, whose randn_like uses the global RNG; drawn for all
            # of X at once, so that it does not depend on the batch size (torch.randn fills blocks of 16).
            if eps is None:
                eps = torch.randn((len(X), mu.shape[1]), generator=g)
            z = mu + eps[sl].to(device) * torch.exp(0.5 * logvar)
            rec_sum -= float(to_host(model.log_likelihood(x, z, yb)).sum())
            kl_sum = kl_sum + to_host(model.kl(mu, logvar, yb, z)).sum(0)  # (D,), or (1,) for a learned prior
            mus.append(mu.float().cpu())
    n = len(X)
    kl_per_dim = (kl_sum / n).tolist()
    rec, kl = rec_sum / n, float(sum(kl_per_dim))
    return {"neg_elbo": rec + kl, "rec": rec, "kl": kl, "kl_per_dim": kl_per_dim, "latent_dim": int(mu.shape[1]),
            "active_units": active_units(torch.cat(mus).numpy())}


@stored_evaluation
def iwae_bound(model: nn.Module, X: torch.Tensor, y=None, k: int = 100, batch_size: int = 50,
               seed: int = 0, log_prior=None) -> float:
    """Estimate of -log p(x) by the importance-weighted bound with k samples (Burda et al., 2016,
    "Importance Weighted Autoencoders", eq. 8), in nats per image:

        -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x),

    computed with logsumexp. It is an upper bound of -log p(x) that tightens as k grows and, on average,
    is at most the negative ELBO (k = 1). Samples come from a torch.Generator seeded with ``seed``.
    ``log_prior``: a density (codes (..., D) -> log p(z) (...)) to use instead of the model's prior, e.g. an ex-post
    mixture's (``MixtureSampler.log_prob``): the bound of the decoder under that prior."""
    require_vae(model, "iwae_bound")
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    X = model_inputs(model, check_images(X))
    y = labels_for(model, y, len(X), "iwae_bound")
    device, g = device_of(model), torch.Generator().manual_seed(seed)
    total = 0.0
    with evaluating(model):
        for sl in batches(len(X), batch_size):
            x, yb = X[sl].to(device), None if y is None else y[sl].to(device)
            mu, logvar = model.encode(x, yb)  # (B, D)
            B, D = mu.shape
            chunk = max(1, _MAX_DECODE // B)  # samples per decoder pass, to bound memory
            log_w = []
            for start in range(0, k, chunk):
                kc = min(chunk, k - start)
                eps = torch.randn((kc, B, D), generator=g).to(device)
                z = mu + eps * torch.exp(0.5 * logvar)  # (kc, B, D)
                y_rep = None if yb is None else yb.repeat(kc)  # z.reshape below is sample-major
                x_rep = x.expand(kc, *x.shape).reshape(kc * B, *x.shape[1:])
                log_px = model.log_likelihood(x_rep, z.reshape(kc * B, D), y_rep).reshape(kc, B)
                log_pz = (model.log_prior(z, None if yb is None else y_rep.reshape(kc, B)) if log_prior is None
                          else log_prior(z))
                log_qz = log_normal(z, mu, logvar)
                log_w.append(to_host(log_px + log_pz - log_qz))
            bound = logsumexp(np.concatenate(log_w), axis=0) - math.log(k)  # (B,) lower bound of log p(x)
            total -= float(bound.sum())
    return total / len(X)


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Number of latent dimensions u with Cov_x(E_q[z_u | x]) > threshold (Burda et al., 2016, sec. 5.2).
    ``mu``: posterior means (N, D); the variance over the N images is the population variance."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or len(mu) < 2:
        raise ValueError(f"mu must be (N, D) with N >= 2, got shape {mu.shape}")
    return int((mu.var(axis=0) > threshold).sum())


@stored_evaluation
def vae_bounds(model: nn.Module, X: torch.Tensor, y=None, n_iwae: int = 1000, k: int = 100,
                seed: int = 0) -> dict:
    """``vae_elbo`` on all of X, plus ``iwae``: the IWAE bound with k samples on the first ``n_iwae``
    drawings (nats per image)."""
    bounds = vae_elbo(model, X, y, seed=seed)
    bounds["iwae"] = iwae_bound(model, X[:n_iwae], None if y is None else y[:n_iwae], k=k, seed=seed)
    return bounds


def entropy_floor(X) -> float:
    """The lowest negative log-likelihood a Bernoulli decoder can reach on grayscale targets, in nats per image:
    the mean over drawings of the sum over pixels of the binary entropy H(x) = -x ln x - (1 - x) ln(1 - x).

    Binary cross-entropy against a target x in [0, 1] is at least H(x) (equal when the decoder outputs x), so this
    part of a VAE's -ELBO is a constant of the data, 0 for binary drawings. ``X``: (N, 28, 28) uint8 (0..255) or
    images in [0, 1] (an array or tensor of any shape (N, ...)); computed in float64 on the host."""
    x = X.detach().float().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    x = x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if len(x) == 0 or x.min() < 0 or x.max() > 1:
        raise ValueError("entropy_floor needs N > 0 images with pixels in [0, 1] (or uint8 0..255)")
    h = entr(x) + entr(1.0 - x)  # entr(p) = -p ln p, 0 at p = 0
    return float(h.reshape(len(x), -1).sum(1).mean())


@stored_evaluation
def iwae_curve(model: nn.Module, X: torch.Tensor, y=None, k_max: int = 1000, repeats: int = 3,
               seed: int = 0) -> dict:
    """The IWAE bound (``iwae_bound``) on X at k = 1, 10, 100, ... up to ``k_max``, each estimated ``repeats``
    times with independent samples (seeds seed, seed + 1, ...): {k: {"mean", "sd" (sample sd over the repeats),
    "values"}}, nats per image. At k = 1 it estimates the negative ELBO; the fall from there to the largest k is
    what a better q(z|x) could still gain, and the flattening of the curve says how near the largest k is to
    -log p(x)."""
    if repeats < 2:
        raise ValueError(f"repeats must be at least 2 for a spread, got {repeats!r}")
    ks = [1]
    while ks[-1] * 10 <= k_max:
        ks.append(ks[-1] * 10)
    curve = {}
    for k in ks:
        values = [iwae_bound(model, X, y, k=k, seed=seed + r) for r in range(repeats)]
        curve[int(k)] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)), "values": values}
    return curve
