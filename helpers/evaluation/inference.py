"""How the evaluation functions run a model: eval mode without gradients at the model's precision, batch by
batch on its device, with float64 arithmetic only on the host (MPS has no float64).

Shapes and units: images are torch tensors (N, 1, 28, 28) float32 in [0, 1] (``helpers.to_tensor``); they are
moved batch by batch to the model's device. A model counts as a VAE when it has ``decode_logits`` (see
``helpers.models.vae``); otherwise it is an autoencoder with ``encode``/``decode``/``forward``. A conditional
VAE (``n_classes`` > 0) needs the class labels ``y``; nothing is filled in for missing inputs: a clear
ValueError is raised instead.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ..devices import autocast

__all__ = [
    "evaluating", "device_of", "check_images", "is_vae", "is_conditional", "require_vae", "labels_for",
    "batches", "to_host",
]



@contextmanager
def evaluating(*models: nn.Module):
    """Eval mode and no gradients inside the block; each model's previous mode is restored after. The forward
    passes run under bfloat16 autocast when a model was trained with ``precision="bf16"`` (``model.precision``,
    set by ``train_or_load``); results leave the functions as float32 or float64 either way."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    precision = "bf16" if any(getattr(m, "precision", "fp32") == "bf16" for m in models) else "fp32"
    try:
        with torch.no_grad(), autocast(device_of(models[0]), precision):
            yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def check_images(X, name: str = "X") -> torch.Tensor:
    """Refuse anything but a non-empty float tensor (N, 1, 28, 28): uint8 arrays would be off by 255."""
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor (N, 1, 28, 28) float in [0, 1] "
                         f"(see helpers.to_tensor), got {type(X).__name__}")
    if X.ndim != 4 or tuple(X.shape[1:]) != (1, 28, 28) or len(X) == 0:
        raise ValueError(f"{name} must have shape (N, 1, 28, 28) with N > 0, got {tuple(X.shape)}")
    if not X.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1], got dtype {X.dtype}; use helpers.to_tensor")
    return X


def is_vae(model: nn.Module) -> bool:
    return hasattr(model, "decode_logits")


def is_conditional(model: nn.Module) -> bool:
    return is_vae(model) and bool(getattr(model, "n_classes", 0))


def require_vae(model: nn.Module, where: str) -> None:
    if not is_vae(model):
        raise ValueError(f"{where} needs a VAE (a model with encode(x, y) -> (mu, logvar) and "
                         f"decode_logits), got {type(model).__name__}")


def labels_for(model: nn.Module, y, n: int, where: str) -> torch.Tensor | None:
    """Class labels as an int64 CPU tensor (n,) for a conditional VAE; None for other models."""
    if not is_conditional(model):
        return None  # an unconditional model does not use labels, so any given ones are ignored
    if y is None:
        raise ValueError(f"{where}: the model is a conditional VAE (n_classes={model.n_classes}); "
                         f"pass the class labels y")
    y = torch.as_tensor(np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)).long().reshape(-1)
    if len(y) != n:
        raise ValueError(f"{where}: {n} images but {len(y)} labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= model.n_classes):
        raise ValueError(f"{where}: labels must be in 0..{model.n_classes - 1}")
    return y


def batches(n: int, batch_size: int):
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def to_host(t: torch.Tensor) -> np.ndarray:
    """A device tensor as a float64 NumPy array on the CPU (converted there, never on the device)."""
    return t.detach().float().cpu().numpy().astype(np.float64)
