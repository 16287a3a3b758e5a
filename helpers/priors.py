"""Priors learned with the VAE: a mixture of K diagonal Gaussians in the latent space, trained by the ELBO
together with the encoder and decoder (instead of fitted to the codes afterwards, ``helpers.samplers``).

- "mog": K free means, log-variances and mixture weights (a mixture-of-Gaussians prior).
- "vamp": the VampPrior (Tomczak & Welling, 2018, "VAE with a VampPrior"): p(z) = 1/K sum_k q(z | u_k), the
  mixture of the encoder's own posteriors at K learned pseudo-inputs u_k (28x28 images, pixels in (0, 1)).

Neither factorizes over the latent dimensions, so the KL of the ELBO has no closed form: it is estimated
with the same sample z ~ q(z|x) as the reconstruction term, log q(z|x) - log p(z) (Tomczak & Welling, eq. 3).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PRIOR_KINDS", "MixturePrior", "log_normal"]

PRIOR_KINDS = ("mog", "vamp")


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dimension, in nats."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


class MixturePrior(nn.Module):
    """p(z) = sum_k w_k N(z; m_k, diag s_k^2), K components in D dimensions. ``kind`` "mog" learns m, log s^2
    and the weights; "vamp" takes m_k, log s_k^2 from the encoder at pseudo-input k (weights 1/K), so its
    methods need the VAE's ``encoder``."""

    def __init__(self, kind: str, n_components: int, latent_dim: int):
        super().__init__()
        if kind not in PRIOR_KINDS:
            raise ValueError(f"prior must be one of {PRIOR_KINDS}, got {kind!r}")
        if n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        self.kind, self.n_components = kind, int(n_components)
        if kind == "mog":
            # Means spread like N(0, I) draws, unit variances, equal weights: N(0, I) blurred at the start.
            self.means = nn.Parameter(torch.randn(n_components, latent_dim))
            self.logvars = nn.Parameter(torch.zeros(n_components, latent_dim))
            self.weight_logits = nn.Parameter(torch.zeros(n_components))
        else:
            # Pseudo-inputs as logits of pixel intensities, near grey 0.5 at the start (Tomczak & Welling, sec. 3).
            self.pseudo_logits = nn.Parameter(0.01 * torch.randn(n_components, 1, 28, 28))

    def components(self, encoder: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means (K, D), log-variances (K, D) and log-weights (K,) of the mixture."""
        if self.kind == "mog":
            return self.means, self.logvars, torch.log_softmax(self.weight_logits, 0)
        if encoder is None:
            raise ValueError("a VampPrior needs the VAE's encoder")
        mu, logvar = encoder(torch.sigmoid(self.pseudo_logits), None)
        return mu, logvar, torch.full((self.n_components,), -math.log(self.n_components), device=mu.device)

    def log_prob(self, z: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
        """log p(z) for codes (..., D): (...), in nats (a log-sum-exp over the components)."""
        mu, logvar, log_w = self.components(encoder)
        return torch.logsumexp(log_normal(z.unsqueeze(-2), mu, logvar) + log_w, dim=-1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, encoder: nn.Module | None = None):
        """n codes (n, D) on the CPU: a component k ~ w, then z ~ N(m_k, s_k^2), from noise of ``generator``."""
        mu, logvar, log_w = (t.detach().float().cpu() for t in self.components(encoder))
        k = torch.multinomial(log_w.exp(), n, replacement=True, generator=generator)
        return mu[k] + torch.randn(n, mu.shape[1], generator=generator) * torch.exp(0.5 * logvar[k])
