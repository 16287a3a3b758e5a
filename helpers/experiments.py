"""The experiments of the report: names, model specs and training configs shared by notebooks 02-05, so
that notebook 05 finds in the cache exactly the models that notebooks 02-04 trained."""

from __future__ import annotations

from .training import TrainConfig

VAE_ENCODERS = {"gru": "GRU-CNN VAE", "cnn": "CNN-CNN VAE"}


def autoencoder_run(kind: str, steps: int, batch_size: int = 256, lr: float = 1e-3, seed: int = 0):
    """(cache name, spec, config) of the LSTM ("lstm_ae") or CNN ("cnn_ae") autoencoder."""
    if kind not in ("lstm_ae", "cnn_ae"):
        raise ValueError(f"kind must be 'lstm_ae' or 'cnn_ae', got {kind!r}")
    return kind, {"kind": kind}, TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed)


def vae_run(encoder: str, epochs: int, batch_size: int = 128, lr: float = 1e-3, latent_dim: int = 32,
            beta: float = 1.0, conditional: bool = False, seed: int = 0):
    """(cache name, spec, config) of a VAE with a "gru" or "cnn" encoder, optionally class-conditional."""
    if encoder not in VAE_ENCODERS:
        raise ValueError(f"encoder must be one of {sorted(VAE_ENCODERS)}, got {encoder!r}")
    spec = {"kind": "vae", "encoder": encoder, "latent_dim": latent_dim, "n_classes": 5 if conditional else 0,
            "beta": float(beta)}
    name = f"{'cvae' if conditional else 'vae'}_{encoder}"
    return name, spec, TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)


def classifier_run(epochs: int, batch_size: int = 128, lr: float = 1e-3, seed: int = 0):
    """(cache name, spec, config) of the evaluation classifier."""
    return "classifier", {"kind": "classifier"}, TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
