"""Reconstructions and codes: what an autoencoder or a VAE gives back for real drawings, its per-pixel error
against two baselines, the latent codes, and the straight line between two drawings' codes. Images as in
``helpers.evaluation.inference``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .inference import batches, check_images, device_of, evaluating, is_conditional, is_vae, labels_for, to_host

__all__ = ["reconstruct", "reconstruction_mse", "mean_image_mse", "encode_all", "interpolate", "autoencoder_metrics"]



def _per_batch(model: nn.Module, X: torch.Tensor, y, batch_size: int, fn) -> torch.Tensor:
    """``fn(x, y)`` on each batch of X (and of the labels y, or None) on the model's device, in eval mode;
    the results concatenated as float32 on the CPU."""
    device, out = device_of(model), []
    with evaluating(model):
        for sl in batches(len(X), batch_size):
            out.append(fn(X[sl].to(device), None if y is None else y[sl].to(device)).float().cpu())
    return torch.cat(out)


def _code(model: nn.Module, x: torch.Tensor, y) -> torch.Tensor:
    """The code of drawings x: ``encode(x)`` of an autoencoder, the posterior mean of a VAE."""
    return model.encode(x, y)[0] if is_vae(model) else model.encode(x)


def reconstruct(model: nn.Module, X: torch.Tensor, batch_size: int = 500, *, y=None) -> torch.Tensor:
    """Reconstructions (N, 1, 28, 28) float32 in [0, 1] on the CPU.

    An autoencoder gives ``model(x)``; a VAE gives the decoder's pixel probabilities at the posterior mean,
    ``decode(mu(x))`` (deterministic, the usual picture of a VAE reconstruction). ``y``: labels (N,), only
    for a conditional VAE."""
    X = check_images(X)
    y = labels_for(model, y, len(X), "reconstruct")
    if is_vae(model):
        return _per_batch(model, X, y, batch_size, lambda x, yb: model.decode(_code(model, x, yb), yb))
    return _per_batch(model, X, y, batch_size, lambda x, yb: model(x))


def reconstruction_mse(model: nn.Module, X: torch.Tensor, batch_size: int = 500, *, y=None) -> float:
    """Per-pixel mean squared error of ``reconstruct`` (mean over pixels and images), in squared
    intensity units; comparable with the autoencoders' training loss."""
    X = check_images(X)
    y = labels_for(model, y, len(X), "reconstruction_mse")
    total = 0.0
    for sl in batches(len(X), batch_size):  # batch by batch, so no second copy of X is held
        rec = reconstruct(model, X[sl], batch_size, y=None if y is None else y[sl])
        total += float(np.square(to_host(rec) - to_host(X[sl])).sum())
    return total / X.numel()


def mean_image_mse(X_train: torch.Tensor, X_test: torch.Tensor) -> float:
    """Baseline for ``reconstruction_mse``: predict the mean training image for every test image.
    Returns the per-pixel MSE on X_test (mean over pixels and images)."""
    X_train, X_test = check_images(X_train, "X_train"), check_images(X_test, "X_test")
    mean = to_host(X_train).mean(0)  # (1, 28, 28)
    return float(np.square(to_host(X_test) - mean).mean())


def encode_all(model: nn.Module, X: torch.Tensor, y=None, batch_size: int = 500) -> np.ndarray:
    """Latent codes (N, D) float32: ``encode(x)`` of an autoencoder, the posterior means of a VAE
    (labels ``y`` (N,) needed for a conditional VAE)."""
    X = check_images(X)
    y = labels_for(model, y, len(X), "encode_all")
    return _per_batch(model, X, y, batch_size, lambda x, yb: _code(model, x, yb)).numpy()


def _one_drawing(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.numel() != 784:
        raise ValueError(f"{name} must be one drawing as a tensor (28, 28), (1, 28, 28) or (1, 1, 28, 28)")
    return check_images(x.reshape(1, 1, 28, 28), name)


def interpolate(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8,
                y_a=None, y_b=None) -> torch.Tensor:
    """Decode the straight line between the codes of two drawings: posterior means for a VAE, ``encode``
    outputs for an autoencoder. Returns (steps, 1, 28, 28) in [0, 1] on the CPU, x_a's end first.

    For a conditional VAE, ``y_a`` and ``y_b`` (class indices) are required; each drawing is encoded with
    its own class, and the decoder gets the one-hot vectors interpolated along with the codes."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    device = device_of(model)
    x = torch.cat([_one_drawing(x_a, "x_a"), _one_drawing(x_b, "x_b")]).to(device)  # (2, 1, 28, 28)
    t = torch.linspace(0, 1, steps, device=device)[:, None]  # (steps, 1)
    with evaluating(model):
        if not is_vae(model):
            z = model.encode(x)
            return model.decode((1 - t) * z[0] + t * z[1]).float().cpu()
        if is_conditional(model):
            if y_a is None or y_b is None:
                raise ValueError("interpolate: the model is a conditional VAE; pass both y_a and y_b")
            y = labels_for(model, [int(y_a), int(y_b)], 2, "interpolate").to(device)
            mu, _ = model.encode(x, y)
            c = model.one_hot(y)  # (2, n_classes)
            c = (1 - t) * c[0] + t * c[1]
            # Through the decoder module directly: decode(z, y) would only accept whole classes.
            return model.decoder.decode((1 - t) * mu[0] + t * mu[1], c).float().cpu()
        mu, _ = model.encode(x)
        return model.decode((1 - t) * mu[0] + t * mu[1]).float().cpu()


def autoencoder_metrics(model: nn.Module, untrained: nn.Module, X_train: torch.Tensor, X_test: torch.Tensor) -> dict:
    """The autoencoder table's row: per-pixel MSE on test and training drawings against two baselines (the
    same architecture untrained, and the mean training image for every drawing), and the latent size."""
    return {"test_mse": reconstruction_mse(model, X_test), "train_mse": reconstruction_mse(model, X_train),
            "untrained_test_mse": reconstruction_mse(untrained, X_test),
            "mean_image_test_mse": mean_image_mse(X_train, X_test),
            "latent_dim": int(encode_all(model, X_test[:1]).shape[1])}
