"""The evaluation classifier: the fixed judge of every generator (its penultimate features serve FID and KID,
its probabilities the Inception-style score and the class accuracy of samples). It is trained on the real
training drawings only, with its own seed (``Notebook.judge``), and never trains or selects a generator."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Classifier", "classifier_loss"]


class Classifier(nn.Module):
    """Small CNN: two conv blocks -> 128-d features -> 5 classes."""

    feature_dim = 128

    def __init__(self, n_classes: int = 5):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, self.feature_dim), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, 5) logits


def classifier_loss(model: Classifier, x: torch.Tensor, y: torch.Tensor, progress: float = 1.0):
    """Cross-entropy on drawings randomly shifted by up to 2 pixels (augmentation only while training)."""
    if model.training:
        dx, dy = torch.randint(-2, 3, (2,)).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(1) == y).float().mean()}
