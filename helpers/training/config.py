"""How to train: the run's settings (``TrainConfig``), the optimizer they choose, and the order of the batches.

Batches are a function of the run's seed and the step only, drawn from CPU generators, so that a resumed run
sees the same batches as an uninterrupted one, on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..devices import PRECISIONS

__all__ = ["TrainConfig", "BATCH_SCHEDULES", "OPTIMIZERS", "configure_optimizer", "iid_batch", "epoch_permutation",
           "batch_indices"]

BATCH_SCHEDULES = ("epochs", "iid")  # how TrainConfig.batches cuts the training split into batches
OPTIMIZERS = ("adam", "adamw")  # Adam (the course recipe's); AdamW, whose weight decay is decoupled from the update


@dataclass
class TrainConfig:
    """How to train. Exactly one of ``steps`` and ``epochs``. Intervals are in steps (None: a default)."""

    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    eval_every: int | None = None  # held-out loss interval; default: each epoch, or 20 points over a run
    log_every: int | None = None  # training-loss averaging window; default: each epoch, or 10 steps
    ckpt_every: int = 500
    precision: str = "fp32"  # "bf16": forward passes (training and held-out loss) under bfloat16 autocast
    batches: str = "epochs"  # "epochs": seeded permutations cut into full batches; "iid": each batch drawn anew
    optimizer: str = "adam"  # one of OPTIMIZERS (configure_optimizer)
    weight_decay: float = 0.0  # the optimizer's weight decay
    grad_clip: float | None = None  # clip the gradients' global norm to this before each update (None: never)

    def __post_init__(self):
        if self.batches not in BATCH_SCHEDULES:
            raise ValueError(f"batches must be one of {', '.join(BATCH_SCHEDULES)}, got {self.batches!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"give exactly one of steps and epochs, got steps={self.steps}, epochs={self.epochs}")
        for name in ("steps", "epochs", "batch_size", "ckpt_every", "eval_every", "log_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive number or None, got {self.grad_clip!r}")

    def total_steps(self, n: int) -> int:
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch(n)

    def steps_per_epoch(self, n: int) -> int:
        return max(1, n // min(self.batch_size, n))


def configure_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer the run's config names, over all of the model's parameters."""
    make = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    return make(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def iid_batch(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """The indices of batch number ``step`` under the "iid" schedule: ``batch_size`` distinct drawings out of
    ``n``, drawn anew for every step (so one drawing may come twice in a row, another not for a while), from a
    CPU generator seeded by the run's seed and the step, the same on every device."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7_919)
    return torch.randperm(n, generator=g)[:batch_size]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the ``n`` training drawings in epoch ``epoch`` (0-based): a permutation from a CPU
    generator seeded by the run's seed and the epoch, the same on every device."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_indices(cfg: TrainConfig, n: int, device: torch.device):
    """``batch(step)``: the indices of batch number ``step`` on ``device``. Under "epochs", seeded permutations
    (``epoch_permutation``) cut into full batches; the permutation goes to the device once per epoch rather than
    once per step."""
    bs, per_epoch = min(cfg.batch_size, n), cfg.steps_per_epoch(n)
    current = {}  # {epoch: its permutation on the device}

    def batch(step: int) -> torch.Tensor:
        if cfg.batches == "iid":
            return iid_batch(n, bs, cfg.seed, step).to(device)
        epoch, i = divmod(step, per_epoch)
        if epoch not in current:
            current.clear()
            current[epoch] = epoch_permutation(n, cfg.seed, epoch).to(device)
        return current[epoch][i * bs:(i + 1) * bs]

    return batch
