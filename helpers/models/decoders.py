"""Decoders of a VAE with their likelihood p(x|z, c). Every decoder has the same methods, which the VAE and the
evaluation call (z (B, D) codes; c (B, K) one-hot classes when ``n_classes`` > 0, else None):

- ``forward(z, c, x=None)``: Bernoulli logits (B, 1, 28, 28); an autoregressive decoder predicts each pixel from
  the pixels of x before it, so it needs x;
- ``log_likelihood(x, z, c)``: log p(x|z, c) summed over the 784 pixels, (B,) in nats;
- ``decode(z, c, seed)``: drawings of the codes, (B, 1, 28, 28): the pixel probabilities of a factorized decoder
  (the mean of p(x|z)), or binary drawings that an autoregressive one draws from noise seeded with ``seed``;
- ``n_classes`` (how many classes c has, 0 for none) and ``autoregressive``.

``BernoulliDecoder`` gives the last two methods to any factorized decoder that defines ``forward``; the PixelCNN
decoder (``helpers.models.pixelcnn``) is the autoregressive one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["bernoulli_log_likelihood", "BernoulliDecoder", "CNNDecoder"]


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x) of independent Bernoulli pixels with these logits, summed over the pixels: (B,) in nats, minus the
    binary cross-entropy (grey pixels in [0, 1] act as soft targets)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


class BernoulliDecoder(nn.Module):
    """A factorized decoder: independent Bernoulli pixels given z (and c). Subclasses define ``forward(z, c)``."""

    autoregressive = False
    n_classes = 0

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return bernoulli_log_likelihood(self(z, c), x)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        return torch.sigmoid(self(z, c))


class CNNDecoder(BernoulliDecoder):
    """linear -> 128x7x7 -> ConvT(128->64, 4x4, s2) -> ConvT(64->32, 4x4, s2) -> Conv(32->1, 3x3).
    Returns Bernoulli logits (B, 1, 28, 28); sigmoid gives pixel probabilities. With ``n_classes`` > 0 the
    one-hot class is concatenated to z."""

    def __init__(self, latent_dim: int = 32, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.net = nn.Sequential(
            nn.Linear(latent_dim + n_classes, 128 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),  # (B, 64, 14, 14)
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, 28, 28)
            nn.Conv2d(32, 1, 3, padding=1),  # (B, 1, 28, 28) logits
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, x: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            z = torch.cat([z, c], dim=1)
        return self.net(z)
