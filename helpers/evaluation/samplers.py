"""Samplers of latent codes for any VAE, and what their decoded samples are worth.

A VAE is trained so that its codes should look like the prior, but they never quite do: parts of N(0, I)
that no training drawing maps to decode into blurry non-drawings. Ex-post density estimation (Ghosh et
al., 2020, "From Variational to Deterministic Autoencoders", sec. 4) fits a density to the posterior means
of the training drawings after training and samples from it instead. Three samplers:

- ``PriorSampler``: the model's own prior, N(0, I) (or N(m_c, I) for a VAE with a class prior).
- ``MixtureSampler``: a Gaussian mixture fitted to the training codes (sklearn ``GaussianMixture``, full
  covariances); ``choose_components`` picks the number of components by the validation codes' likelihood.
- ``ClassMixtureSampler``: one such mixture per class, which makes any VAE, conditional or not, draw a
  requested class.

Every sampler draws from its own seeded generator: the same seed gives the same codes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..devices import one_blas_thread
from .inference import evaluating, is_conditional

__all__ = ["PriorSampler", "MixtureSampler", "ClassMixtureSampler", "fit_mixture", "choose_components",
           "decode_samples", "class_rows"]


@one_blas_thread
def fit_mixture(codes: np.ndarray, n_components: int, seed: int = 0):
    """A Gaussian mixture with full covariances fitted to ``codes`` (N, D) by EM (sklearn)."""
    from sklearn.mixture import GaussianMixture

    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < n_components:
        raise ValueError(f"need codes (N, D) with N >= n_components={n_components}, got shape {codes.shape}")
    return GaussianMixture(n_components, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(codes)


@one_blas_thread
def choose_components(train_codes: np.ndarray, val_codes: np.ndarray, candidates=(1, 2, 5, 10, 20), seed: int = 0,
                      train_labels=None, val_labels=None) -> tuple[int, dict]:
    """The number of components whose mixture, fitted to ``train_codes``, gives the validation codes the
    highest mean log-likelihood (nats per code); returns it and the log-likelihood of every candidate.
    With labels, one mixture per class (``ClassMixtureSampler``), each validation code scored under its own
    class's mixture. Candidates with more components than codes (of a class) are skipped."""
    def score(k: int) -> float:
        if train_labels is None:
            return float(fit_mixture(train_codes, k, seed).score(val_codes))
        total = sum(float(fit_mixture(train_codes[train_labels == c], k, seed)
                          .score_samples(val_codes[val_labels == c]).sum()) for c in np.unique(train_labels))
        return total / len(val_codes)

    smallest = len(train_codes) if train_labels is None else int(np.unique(train_labels, return_counts=True)[1].min())
    scores = {k: score(k) for k in candidates if k <= smallest}
    if not scores:
        raise ValueError(f"every candidate of {tuple(candidates)} has more components than the {smallest} codes "
                         f"{'of the smallest class' if train_labels is not None else ''}")
    return max(scores, key=scores.get), scores


def _draw_from(gmm, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws (n, D) from a fitted GaussianMixture, in random component order."""
    comps = rng.choice(len(gmm.weights_), size=n, p=gmm.weights_ / gmm.weights_.sum())
    eps = rng.standard_normal((n, gmm.means_.shape[1]))
    chol = np.linalg.cholesky(gmm.covariances_)  # (K, D, D)
    return gmm.means_[comps] + np.einsum("nij,nj->ni", chol[comps], eps)


class PriorSampler:
    """z from the model's prior: N(0, I), N(m_c, I) for the requested classes of a class-prior VAE, or the
    mixture of a learned prior (``VAE.sample_prior``)."""

    takes_classes = False

    def __init__(self, model: nn.Module):
        self.model = model
        self.name = self.label = "prior"

    def sample(self, n: int, classes: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        return self.model.sample_prior(n, classes, torch.Generator().manual_seed(seed))


class MixtureSampler:
    """z from a Gaussian mixture fitted to training codes (N, D)."""

    takes_classes = False

    def __init__(self, codes: np.ndarray, n_components: int, seed: int = 0):
        self.gmm = fit_mixture(codes, n_components, seed)
        self.name, self.label = "mixture", f"mixture ({n_components} components)"

    def sample(self, n: int, classes: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        return torch.from_numpy(_draw_from(self.gmm, n, np.random.default_rng(seed))).float()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """The mixture's log-density of codes z (..., D), (...), in nats: float64 on the host, returned in z's
        dtype on z's device."""
        flat = z.detach().reshape(-1, z.shape[-1]).float().cpu().numpy().astype(np.float64)
        scores = self.gmm.score_samples(flat).astype(np.float32)
        return torch.from_numpy(scores).reshape(z.shape[:-1]).to(z.dtype).to(z.device)


class ClassMixtureSampler:
    """z of a requested class from a Gaussian mixture fitted to that class's training codes."""

    takes_classes = True

    def __init__(self, codes: np.ndarray, labels: np.ndarray, n_components: int, seed: int = 0,
                 n_classes: int = 5):
        labels = np.asarray(labels)
        self.gmms = [fit_mixture(codes[labels == c], n_components, seed) for c in range(n_classes)]
        self.n_classes = n_classes
        self.name, self.label = "class mixture", f"class mixture ({n_components} per class)"

    def sample(self, n: int, classes: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        if classes is None or len(classes) != n:
            raise ValueError("ClassMixtureSampler.sample needs the requested class of each of the n codes")
        rng, classes = np.random.default_rng(seed), np.asarray(classes)
        z = np.zeros((n, self.gmms[0].means_.shape[1]))
        for c in np.unique(classes):  # in class order: reordering the requested classes changes no class's codes
            z[classes == c] = _draw_from(self.gmms[c], int((classes == c).sum()), rng)
        return torch.from_numpy(z).float()


def decode_samples(model: nn.Module, sampler, n: int, seed: int = 0, classes: torch.Tensor | None = None,
                   batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` drawings (n, 1, 28, 28) in [0, 1] on the CPU, decoded from the sampler's codes, and the
    requested classes (n,) or None. When the model or the sampler takes a class and ``classes`` is None,
    the classes are balanced: 0, 1, ..., C-1, 0, 1, ..."""
    takes_classes = is_conditional(model) or sampler.takes_classes
    if takes_classes and classes is None:
        classes = torch.arange(n) % (model.n_classes if is_conditional(model) else sampler.n_classes)
    z = sampler.sample(n, classes, seed)
    device = next(model.parameters()).device
    out = []
    with evaluating(model):
        for start in range(0, n, batch_size):
            zb = z[start:start + batch_size].to(device)
            yb = None if classes is None or not is_conditional(model) else classes[start:start + batch_size].to(device)
            # An autoregressive decoder draws its pixels from noise of its own: a seed per batch and draw.
            out.append(model.decode(zb, yb, seed=seed + start).float().cpu())
    return torch.cat(out), classes if takes_classes else None


def class_rows(n_per_class: int, n_classes: int = 5) -> torch.Tensor:
    """Requested classes class by class, (n_classes * n_per_class,): one row per class in a grid."""
    return torch.arange(n_classes).repeat_interleave(n_per_class)
