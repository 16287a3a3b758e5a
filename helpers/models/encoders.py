"""Encoders of a VAE: ``forward(x, c)`` maps drawings x (B, 1, 28, 28) (and one-hot classes c (B, K) when
``n_classes`` > 0, else None) to the mean and log-variance (B, D) of the diagonal Gaussian q(z|x, c).

The log-variance is left unbounded (VampPrior's code and pythae clamp it): the loss stops with a clear message on
a non-finite value (``helpers.fit``), no run here has met one, and a clamp would change every trained model.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GRUEncoder", "CNNEncoder"]


class GRUEncoder(nn.Module):
    """Bidirectional GRU (hidden 256) over the 28 rows; the final states of both directions -> mean and
    log-variance. With ``n_classes`` > 0, the one-hot class is appended to every row (conditional VAE)."""

    def __init__(self, latent_dim: int = 32, hidden_dim: int = 256, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.gru = nn.GRU(28 + n_classes, hidden_dim, batch_first=True, bidirectional=True)
        self.mu = nn.Linear(2 * hidden_dim, latent_dim)
        self.logvar = nn.Linear(2 * hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        seq = x.reshape(x.shape[0], 28, 28)  # (B, 28, 28)
        if self.n_classes:
            seq = torch.cat([seq, c.unsqueeze(1).expand(-1, 28, -1)], dim=2)  # (B, 28, 28 + K)
        _, h = self.gru(seq)  # (2, B, H): forward and backward final states
        h = torch.cat([h[0], h[1]], dim=1)  # (B, 2H)
        return self.mu(h), self.logvar(h)


class CNNEncoder(nn.Module):
    """Conv(1->32, s2) -> Conv(32->64, s2) -> Conv(64->128, s1), ReLUs, then mean and log-variance.
    With ``n_classes`` > 0, the one-hot class enters as K constant extra input channels."""

    def __init__(self, latent_dim: int = 32, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.conv = nn.Sequential(
            nn.Conv2d(1 + n_classes, 32, 3, stride=2, padding=1), nn.ReLU(),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),  # (B, 64, 7, 7)
            nn.Conv2d(64, 128, 3, stride=1, padding=1), nn.ReLU(),  # (B, 128, 7, 7)
            nn.Flatten(),
        )
        self.mu = nn.Linear(128 * 7 * 7, latent_dim)
        self.logvar = nn.Linear(128 * 7 * 7, latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n_classes:
            x = torch.cat([x, c[:, :, None, None].expand(-1, -1, 28, 28)], dim=1)  # (B, 1 + K, 28, 28)
        h = self.conv(x)
        return self.mu(h), self.logvar(h)
