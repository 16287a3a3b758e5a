"""The course's autoencoders, trained on per-pixel MSE. Hyperparameters of the course report are the defaults.

Shapes: images are (B, 1, 28, 28) float32 in [0, 1]; a drawing read "row by row" is a sequence of 28 rows
of 28 pixels, (B, 28, 28).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LSTMAutoencoder", "CNNAutoencoder", "ae_loss"]


class LSTMAutoencoder(nn.Module):
    """Rows as a time series, as in the course report. Encoder: 2-layer LSTM (hidden 128) over the 28 rows;
    the last layer's final hidden state -> linear -> latent. Decoder: latent -> linear -> 128, the same vector
    fed at each of the 28 steps of a 2-layer LSTM whose hidden size is the row width (28): its outputs are the
    reconstructed rows directly (an LSTM output lies in (-1, 1); no output layer)."""

    def __init__(self, input_dim: int = 28, hidden_dim: int = 128, latent_dim: int = 128, num_layers: int = 2):
        super().__init__()
        self.encoder = nn.LSTM(input_dim, hidden_dim, num_layers, batch_first=True)
        self.to_latent = nn.Linear(hidden_dim, latent_dim)
        self.from_latent = nn.Linear(latent_dim, hidden_dim)
        self.decoder = nn.LSTM(hidden_dim, input_dim, num_layers, batch_first=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(x.shape[0], 28, 28)  # (B, T=28 rows, 28 pixels)
        _, (h, _) = self.encoder(seq)  # h: (layers, B, H)
        return self.to_latent(h[-1])  # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        step_input = self.from_latent(z).unsqueeze(1).expand(-1, 28, -1)  # (B, 28, H), same at every step
        rows, _ = self.decoder(step_input)  # (B, 28 rows, 28 pixels)
        return rows.unsqueeze(1)  # (B, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class CNNAutoencoder(nn.Module):
    """Conv(1->16, 3x3, s2) -> ReLU -> Conv(16->32, 3x3, s2) -> ReLU -> linear 32*7*7 -> latent, and the
    mirror image back (linear, two transposed convolutions, sigmoid output)."""

    def __init__(self, latent_dim: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),  # (B, 32, 7, 7)
            nn.Flatten(), nn.Linear(32 * 7 * 7, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # (B, 16, 14, 14)
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),  # (B, 1, 28, 28)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def ae_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
            progress: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-pixel MSE (mean over pixels and images)."""
    return {"loss": F.mse_loss(model(x), x)}
