"""Priors p(z|y) of a VAE, one part each. Every prior has the same methods, which the VAE and the evaluation call:

- ``log_prob(z, y)``: log p(z|y) summed over the latent dimensions, (..., D) -> (...), in nats;
- ``kl(mu, logvar, y, z)``: KL(q(z|x) || p(z|y)) of a diagonal Gaussian posterior: (B, D) in closed form where
  the prior factorizes, else (B, 1), the one-sample estimate log q(z|x) - log p(z|y) at ``z``;
- ``sample(n, y, generator)``: n codes (n, D) on the CPU, from noise of a CPU ``generator``;
- ``class_mean(z, y)``: the centre of class y's part of the prior, shaped like z (zeros where the prior does not
  depend on the class): relabelling a code moves it between class centres (``helpers.relabel``);
- ``conditional``: whether the prior needs the class labels y.

The priors here:

- ``StandardNormalPrior``: N(0, I), the VAE of Kingma & Welling (2014).
- ``ClassMeansPrior``: N(m_y, I) with a learned mean per class, so each class gets a region of the latent space.
- ``MixturePrior``: a mixture of K diagonal Gaussians learned with the model. "mog": free means, log-variances and
  weights; "vamp": the VampPrior (Tomczak & Welling, 2018, "VAE with a VampPrior"), p(z) = 1/K sum_k q(z | u_k),
  the mixture of the encoder's own posteriors at K learned pseudo-inputs u_k (28x28 images, pixels in (0, 1)).
  Neither factorizes over the latent dimensions, so the KL has no closed form: it is estimated with the same
  sample z ~ q(z|x) as the reconstruction term (Tomczak & Welling, eq. 3).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["log_normal", "kl_to_standard_normal", "kl_to_normal", "StandardNormalPrior", "ClassMeansPrior",
           "MixturePrior", "MIXTURE_KINDS"]

MIXTURE_KINDS = ("mog", "vamp")


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dimension, in nats."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per latent dimension, (B, D), in nats.
    Closed form from Kingma & Welling (2014), Appendix B: -1/2 (1 + log s^2 - mu^2 - s^2)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def kl_to_normal(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(prior_mu, I)) per latent dimension, (B, D), in nats: the closed form
    above with mu - prior_mu in place of mu (a unit-variance prior is a shifted standard normal)."""
    return kl_to_standard_normal(mu - prior_mu, logvar)


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I) in ``latent_dim`` dimensions; no parameters."""

    conditional = False

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def class_mean(self, z: torch.Tensor, y=None) -> torch.Tensor:
        return torch.zeros_like(z)

    def log_prob(self, z: torch.Tensor, y=None) -> torch.Tensor:
        return log_normal(z, torch.zeros_like(z), torch.zeros_like(z))

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, y=None, z=None) -> torch.Tensor:
        return kl_to_standard_normal(mu, logvar)

    @torch.no_grad()
    def sample(self, n: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)


class ClassMeansPrior(nn.Module):
    """p(z|y) = N(m_y, I) with a learned mean m_y (``means``, (C, D)) per class."""

    conditional = True

    def __init__(self, latent_dim: int, n_classes: int):
        super().__init__()
        self.latent_dim = latent_dim
        # N(0, 1) initial means lie about sqrt(2 D) = 8 apart for D = 32: separate regions from the start.
        self.means = nn.Parameter(torch.randn(n_classes, latent_dim))

    def class_mean(self, z: torch.Tensor, y=None) -> torch.Tensor:
        if y is None:
            raise ValueError("a VAE with a class prior needs the class labels y")
        return self.means[y].expand_as(z)

    def log_prob(self, z: torch.Tensor, y=None) -> torch.Tensor:
        return log_normal(z, self.class_mean(z, y), torch.zeros_like(z))

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, y=None, z=None) -> torch.Tensor:
        return kl_to_normal(mu, logvar, self.class_mean(mu, y))

    @torch.no_grad()
    def sample(self, n: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        if y is None or len(y) != n:
            raise ValueError("a VAE with a class prior samples the prior of a class: give the class of each of the "
                             "n codes")
        z = torch.randn(n, self.latent_dim, generator=generator)
        return z + self.means.detach().float().cpu()[torch.as_tensor(y).cpu()]


class MixturePrior(nn.Module):
    """p(z) = sum_k w_k N(z; m_k, diag s_k^2), K components in D dimensions. ``kind`` "mog" learns m, log s^2
    and the weights; "vamp" takes m_k, log s_k^2 from ``encoder`` at pseudo-input k (weights 1/K). The encoder is
    the VAE's own, held by reference (not as a submodule, so its weights are saved once, with the VAE's)."""

    conditional = False

    def __init__(self, kind: str, n_components: int, latent_dim: int, encoder: nn.Module | None = None):
        super().__init__()
        if kind not in MIXTURE_KINDS:
            raise ValueError(f"prior must be one of {MIXTURE_KINDS}, got {kind!r}")
        if n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        if kind == "vamp" and encoder is None:
            raise ValueError("a VampPrior needs the VAE's encoder")
        self.kind, self.n_components, self.latent_dim = kind, int(n_components), latent_dim
        self.__dict__["encoder"] = encoder  # a reference: nn.Module.__setattr__ would register it as a submodule
        if kind == "mog":
            # Means spread like N(0, I) draws, unit variances, equal weights: N(0, I) blurred at the start.
            self.means = nn.Parameter(torch.randn(n_components, latent_dim))
            self.logvars = nn.Parameter(torch.zeros(n_components, latent_dim))
            self.weight_logits = nn.Parameter(torch.zeros(n_components))
        else:
            # Pseudo-inputs as logits of pixel intensities, near grey 0.5 at the start (Tomczak & Welling, sec. 3).
            self.pseudo_logits = nn.Parameter(0.01 * torch.randn(n_components, 1, 28, 28))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means (K, D), log-variances (K, D) and log-weights (K,) of the mixture."""
        if self.kind == "mog":
            return self.means, self.logvars, torch.log_softmax(self.weight_logits, 0)
        mu, logvar = self.encoder(torch.sigmoid(self.pseudo_logits), None)
        return mu, logvar, torch.full((self.n_components,), -math.log(self.n_components), device=mu.device)

    def class_mean(self, z: torch.Tensor, y=None) -> torch.Tensor:
        return torch.zeros_like(z)

    def log_prob(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """log p(z) for codes (..., D): (...), in nats (a log-sum-exp over the components)."""
        mu, logvar, log_w = self.components()
        return torch.logsumexp(log_normal(z.unsqueeze(-2), mu, logvar) + log_w, dim=-1)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, y=None, z=None) -> torch.Tensor:
        """(B, 1): log q(z|x) - log p(z) at ``z`` (drawn from q if None)."""
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if z is None else z
        return (log_normal(z, mu, logvar) - self.log_prob(z)).unsqueeze(1)

    @torch.no_grad()
    def sample(self, n: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, D) on the CPU: a component k ~ w, then z ~ N(m_k, s_k^2), from noise of ``generator``."""
        mu, logvar, log_w = (t.detach().float().cpu() for t in self.components())
        k = torch.multinomial(log_w.exp(), n, replacement=True, generator=generator)
        return mu[k] + torch.randn(n, mu.shape[1], generator=generator) * torch.exp(0.5 * logvar[k])
