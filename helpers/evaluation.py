"""Evaluation: reconstructions, ELBO and importance-weighted bounds, latent-space metrics, and the
classifier-based metrics of generated drawings (FID, Inception score, conditional accuracy).

Shapes and units: images are torch tensors (N, 1, 28, 28) float32 in [0, 1] (``helpers.to_tensor``);
they are moved batch by batch to the model's device. Likelihoods and bounds are in nats per image
(summed over the 784 pixels and the latent dimensions, averaged over images), like ``vae_loss``.
Every function puts the models it uses in eval mode under ``torch.no_grad()`` (and bfloat16 autocast for a
model trained at ``precision="bf16"``) and restores their mode. Tensors on the model's device stay float32
(MPS has no float64): sums and other float64 arithmetic happen in NumPy, after ``_host``.

A model counts as a VAE when it has ``decode_logits`` (see ``helpers.models.VAE``); otherwise it is an
autoencoder with ``encode``/``decode``/``forward``. A conditional VAE (``n_classes`` > 0) needs the class
labels ``y``; nothing is filled in for missing inputs: a clear ValueError is raised instead.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
from scipy import linalg
from scipy.special import logsumexp, rel_entr, softmax
from torch import nn
from torch.nn import functional as F

from .devices import autocast
from .models import n_params

__all__ = [
    "reconstruct", "reconstruction_mse", "mean_image_mse", "encode_all", "vae_elbo", "iwae_bound", "active_units",
    "classifier_outputs", "frechet_distance", "inception_score", "generative_metrics", "conditional_accuracy",
    "knn_accuracy", "silhouette", "tsne_embed", "nearest_training", "interpolate", "prior_samples", "class_rows",
    "conditional_samples", "class_scores", "vae_bounds", "memorisation", "autoencoder_metrics", "run_summary",
]

# At most this many drawings go through the decoder at once in iwae_bound (k samples x images).
_MAX_DECODE = 1000

# ---------------------------------------------------------------------------------------------------
# Small shared pieces
# ---------------------------------------------------------------------------------------------------


@contextmanager
def _evaluating(*models: nn.Module):
    """Eval mode and no gradients inside the block; each model's previous mode is restored after. The forward
    passes run under bfloat16 autocast when a model was trained with ``precision="bf16"`` (``model.precision``,
    set by ``train_or_load``); results leave the functions as float32 or float64 either way."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    precision = "bf16" if any(getattr(m, "precision", "fp32") == "bf16" for m in models) else "fp32"
    try:
        with torch.no_grad(), autocast(_device(models[0]), precision):
            yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def _device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_images(X, name: str = "X") -> torch.Tensor:
    """Refuse anything but a non-empty float tensor (N, 1, 28, 28): uint8 arrays would be off by 255."""
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor (N, 1, 28, 28) float in [0, 1] "
                         f"(see helpers.to_tensor), got {type(X).__name__}")
    if X.ndim != 4 or tuple(X.shape[1:]) != (1, 28, 28) or len(X) == 0:
        raise ValueError(f"{name} must have shape (N, 1, 28, 28) with N > 0, got {tuple(X.shape)}")
    if not X.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1], got dtype {X.dtype}; use helpers.to_tensor")
    return X


def _is_vae(model: nn.Module) -> bool:
    return hasattr(model, "decode_logits")


def _is_conditional(model: nn.Module) -> bool:
    return _is_vae(model) and bool(getattr(model, "n_classes", 0))


def _labels(model: nn.Module, y, n: int, where: str) -> torch.Tensor | None:
    """Class labels as an int64 CPU tensor (n,) for a conditional VAE; None for other models."""
    if not _is_conditional(model):
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


def _batches(n: int, batch_size: int):
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _host(t: torch.Tensor) -> np.ndarray:
    """A device tensor as a float64 NumPy array on the CPU (converted there, never on the device)."""
    return t.detach().float().cpu().numpy().astype(np.float64)


def _bernoulli_log_lik(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) of a Bernoulli decoder, summed over the pixels: (..., 1, 28, 28) -> (...), in nats.
    It is minus the binary cross-entropy of ``vae_loss`` (pixels in [0, 1] act as soft targets)."""
    bce = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
    return -bce.flatten(-3).sum(-1)


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dimension, in nats."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


# ---------------------------------------------------------------------------------------------------
# Reconstruction
# ---------------------------------------------------------------------------------------------------


def reconstruct(model: nn.Module, X: torch.Tensor, batch_size: int = 500, *, y=None) -> torch.Tensor:
    """Reconstructions (N, 1, 28, 28) float32 in [0, 1] on the CPU.

    An autoencoder gives ``model(x)``; a VAE gives the decoder's pixel probabilities at the posterior mean,
    ``decode(mu(x))`` (deterministic, the usual picture of a VAE reconstruction). ``y``: labels (N,), only
    for a conditional VAE."""
    X = _check_images(X)
    y = _labels(model, y, len(X), "reconstruct")
    device, out = _device(model), []
    with _evaluating(model):
        for sl in _batches(len(X), batch_size):
            x = X[sl].to(device)
            if _is_vae(model):
                yb = None if y is None else y[sl].to(device)
                mu, _ = model.encode(x, yb)
                out.append(model.decode(mu, yb).float().cpu())
            else:
                out.append(model(x).float().cpu())
    return torch.cat(out)


def reconstruction_mse(model: nn.Module, X: torch.Tensor, batch_size: int = 500, *, y=None) -> float:
    """Per-pixel mean squared error of ``reconstruct`` (mean over pixels and images), in squared
    intensity units; comparable with the autoencoders' training loss."""
    X = _check_images(X)
    y = _labels(model, y, len(X), "reconstruction_mse")
    total = 0.0
    for sl in _batches(len(X), batch_size):  # batch by batch, so no second copy of X is held
        rec = reconstruct(model, X[sl], batch_size, y=None if y is None else y[sl])
        total += float(np.square(_host(rec) - _host(X[sl])).sum())
    return total / X.numel()


def mean_image_mse(X_train: torch.Tensor, X_test: torch.Tensor) -> float:
    """Baseline for ``reconstruction_mse``: predict the mean training image for every test image.
    Returns the per-pixel MSE on X_test (mean over pixels and images)."""
    X_train, X_test = _check_images(X_train, "X_train"), _check_images(X_test, "X_test")
    mean = _host(X_train).mean(0)  # (1, 28, 28)
    return float(np.square(_host(X_test) - mean).mean())


# ---------------------------------------------------------------------------------------------------
# Latent codes and VAE bounds
# ---------------------------------------------------------------------------------------------------


def encode_all(model: nn.Module, X: torch.Tensor, y=None, batch_size: int = 500) -> np.ndarray:
    """Latent codes (N, D) float32: ``encode(x)`` of an autoencoder, the posterior means of a VAE
    (labels ``y`` (N,) needed for a conditional VAE)."""
    X = _check_images(X)
    y = _labels(model, y, len(X), "encode_all")
    device, out = _device(model), []
    with _evaluating(model):
        for sl in _batches(len(X), batch_size):
            x = X[sl].to(device)
            if _is_vae(model):
                z, _ = model.encode(x, None if y is None else y[sl].to(device))
            else:
                z = model.encode(x)
            out.append(z.float().cpu())
    return torch.cat(out).numpy()


def _require_vae(model: nn.Module, where: str) -> None:
    if not _is_vae(model):
        raise ValueError(f"{where} needs a VAE (a model with encode(x, y) -> (mu, logvar) and "
                         f"decode_logits), got {type(model).__name__}")


def vae_elbo(model: nn.Module, X: torch.Tensor, y=None, batch_size: int = 500, seed: int = 0) -> dict:
    """The negative ELBO of a VAE on X, in nats per image (Kingma & Welling, 2014, eq. 10, beta = 1).

    Returns ``rec`` (Bernoulli negative log-likelihood summed over pixels, one Monte Carlo sample of
    z ~ q(z|x) per image, drawn from a torch.Generator seeded with ``seed``), ``kl`` (analytic KL to
    N(0, I)), ``neg_elbo`` = rec + kl, ``kl_per_dim`` (D floats, nats per image) and ``active_units``
    (see ``active_units``, computed from the posterior means)."""
    _require_vae(model, "vae_elbo")
    X = _check_images(X)
    y = _labels(model, y, len(X), "vae_elbo")
    device, g = _device(model), torch.Generator().manual_seed(seed)
    rec_sum, kl_sum, mus, eps = 0.0, 0.0, [], None  # float64 sums, on the CPU
    with _evaluating(model):
        for sl in _batches(len(X), batch_size):
            x, yb = X[sl].to(device), None if y is None else y[sl].to(device)
            mu, logvar = model.encode(x, yb)
            # Own noise instead of model.reparameterize, whose randn_like uses the global RNG; drawn for all
            # of X at once, so that it does not depend on the batch size (torch.randn fills blocks of 16).
            if eps is None:
                eps = torch.randn((len(X), mu.shape[1]), generator=g)
            z = mu + eps[sl].to(device) * torch.exp(0.5 * logvar)
            rec_sum -= float(_host(_bernoulli_log_lik(model.decode_logits(z, yb), x)).sum())
            kl_sum = kl_sum + _host(model.kl(mu, logvar, yb)).sum(0)  # (D,)
            mus.append(mu.float().cpu())
    n = len(X)
    kl_per_dim = (kl_sum / n).tolist()
    rec, kl = rec_sum / n, float(sum(kl_per_dim))
    return {"neg_elbo": rec + kl, "rec": rec, "kl": kl, "kl_per_dim": kl_per_dim,
            "active_units": active_units(torch.cat(mus).numpy())}


def iwae_bound(model: nn.Module, X: torch.Tensor, y=None, k: int = 100, batch_size: int = 50,
               seed: int = 0) -> float:
    """Estimate of -log p(x) by the importance-weighted bound with k samples (Burda et al., 2016,
    "Importance Weighted Autoencoders", eq. 8), in nats per image:

        -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x),

    computed with logsumexp. It is an upper bound of -log p(x) that tightens as k grows and, on average,
    is at most the negative ELBO (k = 1). Samples come from a torch.Generator seeded with ``seed``."""
    _require_vae(model, "iwae_bound")
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    X = _check_images(X)
    y = _labels(model, y, len(X), "iwae_bound")
    device, g = _device(model), torch.Generator().manual_seed(seed)
    total = 0.0
    with _evaluating(model):
        for sl in _batches(len(X), batch_size):
            x, yb = X[sl].to(device), None if y is None else y[sl].to(device)
            mu, logvar = model.encode(x, yb)  # (B, D)
            B, D = mu.shape
            chunk = max(1, _MAX_DECODE // B)  # samples per decoder pass, to bound memory
            log_w = []
            for start in range(0, k, chunk):
                kc = min(chunk, k - start)
                eps = torch.randn((kc, B, D), generator=g).to(device)
                z = mu + eps * torch.exp(0.5 * logvar)  # (kc, B, D)
                y_rep = None if yb is None else yb.repeat(kc)  # z.reshape below is sample-major
                logits = model.decode_logits(z.reshape(kc * B, D), y_rep).reshape(kc, B, 1, 28, 28)
                log_px = _bernoulli_log_lik(logits, x)  # (kc, B)
                y_rep_z = None if yb is None else y_rep.reshape(kc, B)
                log_pz = _log_normal(z, model.prior_mean(z, y_rep_z), torch.zeros_like(z))
                log_qz = _log_normal(z, mu, logvar)
                log_w.append(_host(log_px + log_pz - log_qz))
            bound = logsumexp(np.concatenate(log_w), axis=0) - math.log(k)  # (B,) lower bound of log p(x)
            total -= float(bound.sum())
    return total / len(X)


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Number of latent dimensions u with Cov_x(E_q[z_u | x]) > threshold (Burda et al., 2016, sec. 5.2).
    ``mu``: posterior means (N, D); the variance over the N images is the population variance."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or len(mu) < 2:
        raise ValueError(f"mu must be (N, D) with N >= 2, got shape {mu.shape}")
    return int((mu.var(axis=0) > threshold).sum())


# ---------------------------------------------------------------------------------------------------
# Classifier-based metrics of generated drawings
# ---------------------------------------------------------------------------------------------------


def classifier_outputs(clf: nn.Module, X: torch.Tensor,
                       batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, 128) float64 and class probabilities (N, n_classes) float64 of the
    evaluation classifier (eval mode: no dropout, BatchNorm running statistics)."""
    X = _check_images(X)
    device, feats, probs = _device(clf), [], []
    with _evaluating(clf):
        for sl in _batches(len(X), batch_size):
            x = X[sl].to(device)
            f = clf.features(x)
            # The head on the features equals clf(x) and saves a second pass through the body.
            logits = clf.head(f) if hasattr(clf, "head") else clf(x)
            feats.append(_host(f))
            probs.append(softmax(_host(logits), axis=1))
    return np.concatenate(feats), np.concatenate(probs)


def frechet_distance(f1: np.ndarray, f2: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, F) and (N2, F), the formula of
    the FID (Heusel et al., 2017): |m1 - m2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    Near 0 for a set with itself. As in the reference implementation, ``eps`` is added to the diagonals
    only when the square root is not finite (singular covariances), and tiny imaginary parts of the
    square root (numerical error) are dropped; a large one raises ValueError."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"need two feature sets (N, F) with the same F and N >= 2, "
                         f"got {f1.shape} and {f2.shape}")
    m1, m2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.atleast_2d(np.cov(f1, rowvar=False)), np.atleast_2d(np.cov(f2, rowvar=False))
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = eps * np.eye(len(s1))
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: the matrix square root has an imaginary part of "
                             f"{np.abs(covmean.imag).max():.3g}; use more samples than feature dimensions")
        covmean = covmean.real
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def inception_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) (Salimans et al., 2016), with p(y) the mean of the rows of ``probs``
    (N, C) and a single split. Between 1 (every drawing gets the same distribution) and C (confident
    predictions spread evenly over the C classes)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"probs must be (N, C) with N > 0, got shape {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any() or not np.allclose(probs.sum(1), 1, atol=1e-4):
        raise ValueError("probs must be probabilities: non-negative rows summing to 1 (softmax outputs)")
    p_y = probs.mean(0, keepdims=True)
    kl = rel_entr(probs, p_y).sum(1)  # rel_entr takes 0 log 0 = 0
    return float(np.exp(kl.mean()))


def class_scores(probs: np.ndarray, requested, n_classes: int) -> dict:
    """Accuracy, per-class accuracy and confusion matrix (rows requested class, columns predicted, counts) of
    drawings with class probabilities ``probs`` (N, C) that were meant to show the classes ``requested`` (N,)."""
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(requested), probs.argmax(1)), 1)
    per_class = np.diag(confusion) / np.maximum(confusion.sum(1), 1)
    return {"class_accuracy": float(np.trace(confusion) / confusion.sum()), "per_class": per_class.tolist(),
            "confusion": confusion.tolist()}


def generative_metrics(clf: nn.Module, samples: torch.Tensor, X_ref: torch.Tensor | None,
                       ref_features: np.ndarray | None = None, requested=None) -> dict:
    """FID between generated drawings and reference drawings in the classifier's feature space, the
    Inception score of the generated drawings, and the histogram of their predicted classes; with the
    ``requested`` class of each drawing (N,), also ``class_scores``.

    ``samples``, ``X_ref``: (N, 1, 28, 28) in [0, 1]. Pass ``ref_features`` (from
    ``classifier_outputs(clf, X_ref)[0]``) to reuse the reference features; X_ref may then be None.
    Note that the FID depends on N (it is biased upwards for small sets): compare values at equal N."""
    feats, probs = classifier_outputs(clf, samples)
    if ref_features is None:
        if X_ref is None:
            raise ValueError("generative_metrics: give X_ref or ref_features")
        ref_features = classifier_outputs(clf, X_ref)[0]
    predicted = probs.argmax(1)
    out = {"fid": frechet_distance(feats, ref_features), "inception_score": inception_score(probs),
           "n": int(len(feats)), "n_ref": int(len(ref_features)), "feature_dim": int(feats.shape[1]),
           "class_histogram": np.bincount(predicted, minlength=probs.shape[1]).tolist()}
    if requested is not None:
        out.update(class_scores(probs, requested, probs.shape[1]))
    return out


def conditional_accuracy(clf: nn.Module, model: nn.Module, n_per_class: int = 200, n_classes: int = 5,
                         seed: int = 0) -> dict:
    """How often the classifier recognizes the requested class in drawings sampled from a conditional
    VAE's prior (``conditional_samples``: z ~ N(0, I), decoded with each class in turn).

    Returns ``accuracy``, ``per_class`` (n_classes floats), ``confusion`` (rows = requested class,
    columns = predicted class, counts) and ``n_per_class``."""
    if not _is_conditional(model):
        raise ValueError("conditional_accuracy needs a conditional VAE (n_classes > 0), "
                         f"got {type(model).__name__} with n_classes={getattr(model, 'n_classes', None)}")
    if model.n_classes != n_classes:
        raise ValueError(f"n_classes={n_classes} but the model has n_classes={model.n_classes}")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be positive, got {n_per_class}")
    samples, requested = conditional_samples(model, n_per_class, seed)
    scores = class_scores(classifier_outputs(clf, samples)[1], requested, n_classes)
    return {"accuracy": scores["class_accuracy"], "per_class": scores["per_class"], "confusion": scores["confusion"],
            "n_per_class": int(n_per_class)}


# ---------------------------------------------------------------------------------------------------
# Samples from the prior
# ---------------------------------------------------------------------------------------------------


def prior_samples(model: nn.Module, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` drawings decoded from z ~ N(0, I) (a torch.Generator seeded with ``seed``), as pixel
    probabilities (n, 1, 28, 28) on the CPU. A conditional VAE is asked for each class in turn
    (0, 1, ..., C-1, 0, 1, ...), so the requested classes are balanced."""
    _require_vae(model, "prior_samples")
    y = torch.arange(n) % model.n_classes if _is_conditional(model) else None
    with _evaluating(model):
        return model.sample(n, y, generator=torch.Generator().manual_seed(seed)).cpu()


def class_rows(n_per_class: int, n_classes: int = 5) -> torch.Tensor:
    """Requested classes class by class, (n_classes * n_per_class,): one row per class in a grid."""
    return torch.arange(n_classes).repeat_interleave(n_per_class)


def conditional_samples(model: nn.Module, n_per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` prior samples of each class of a conditional VAE, class by class (one row per class
    in a grid): drawings (C * n_per_class, 1, 28, 28) on the CPU and the requested classes (C * n_per_class,).
    z ~ N(0, I) from a torch.Generator seeded with ``seed``, decoded 500 at a time."""
    if not _is_conditional(model):
        raise ValueError(f"conditional_samples needs a conditional VAE, got {type(model).__name__} "
                         f"with n_classes={getattr(model, 'n_classes', None)}")
    requested = class_rows(n_per_class, model.n_classes)
    g = torch.Generator().manual_seed(seed)
    with _evaluating(model):
        samples = torch.cat([model.sample(len(requested[sl]), requested[sl], generator=g).float().cpu()
                             for sl in _batches(len(requested), 500)])
    return samples, requested


# ---------------------------------------------------------------------------------------------------
# Latent-space structure
# ---------------------------------------------------------------------------------------------------


def knn_accuracy(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray,
                 k: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbour classifier (Euclidean) fitted on the training codes."""
    from sklearn.neighbors import KNeighborsClassifier

    return float(KNeighborsClassifier(n_neighbors=k).fit(z_train, y_train).score(z_test, y_test))


def silhouette(z: np.ndarray, y: np.ndarray, sample_size: int | None = None, seed: int = 0) -> float:
    """Mean silhouette coefficient of the classes in latent space (Euclidean), in [-1, 1]; on a random
    subset of ``sample_size`` codes when given (the full computation is O(N^2))."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(z, y, sample_size=sample_size, random_state=seed))


def tsne_embed(z: np.ndarray, seed: int = 0, pca_dims: int = 50, *, perplexity: float = 30.0,
               method: str = "auto", n_jobs: int | None = None) -> np.ndarray:
    """2-D t-SNE embedding (N, 2) float64 of codes (N, D), with openTSNE (Policar et al., 2024): PCA to
    ``pca_dims`` first when D is larger (denoises and speeds up t-SNE, as van der Maaten & Hinton, 2008,
    recommend), then ``openTSNE.TSNE`` with PCA initialization, ``perplexity`` and ``random_state=seed``.
    ``perplexity`` must be below N (openTSNE lowers it, with a warning, to (N - 1) / 3 when it is above that).

    ``method`` approximates the repulsive forces: "fft" (FFT-accelerated interpolation, Linderman et al., 2019;
    linear in N, but with a fixed cost per iteration), "bh" (Barnes-Hut, O(N log N)) or "auto" (openTSNE's own
    rule: Barnes-Hut below 10,000 points, FFT from there). ``n_jobs``: threads; None takes OMP_NUM_THREADS when
    set, else all cores.

    Why openTSNE and not scikit-learn's Barnes-Hut TSNE (``bench/bench_tsne.py``, on a 2-core machine loaded by
    training runs): at the course's size, 25,000 codes, FFT took 79-89 s of CPU against sklearn's 159-208 s on
    one thread, and 290-311 s of wall time against 705-738 s on two; the 5-NN accuracy of the 2-D points and
    their trustworthiness stayed within 0.01 of sklearn's (largest gaps: accuracy 0.009, openTSNE's the
    higher; trustworthiness 0.004). At 4,000 codes FFT is slower than sklearn (29-37 s of CPU against 17-22 s),
    openTSNE's Barnes-Hut quicker (13 s), with accuracy within 0.002 and trustworthiness within 0.007.

    The same seed gives the same output, bit for bit, whatever ``n_jobs``: from 1,000 points on, the approximate
    nearest neighbours (Annoy, built as openTSNE builds it) are found on one thread, because Annoy's trees depend
    on the number of threads that build them; the rest of openTSNE gives identical results on any number of
    threads (checked with FFT at 1,500 and 25,000 points, with Barnes-Hut at 4,000)."""
    import os

    import openTSNE
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2 or z.shape[1] < 1:
        raise ValueError(f"z must be (N, D) with N >= 2 codes, got shape {z.shape}")
    n = len(z)
    if not 0 < perplexity < n:
        raise ValueError(f"perplexity must be positive and below N = {n}, got {perplexity}")
    if method not in ("auto", "fft", "bh"):
        raise ValueError(f"method must be 'auto', 'fft' or 'bh', got {method!r}")
    if n_jobs is None:
        omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        n_jobs = int(omp) if omp.isdigit() and int(omp) > 0 else os.cpu_count() or 1
    if z.shape[1] > pca_dims:
        z = PCA(n_components=min(pca_dims, n), random_state=seed).fit_transform(z)
    neighbors = "exact"  # openTSNE's own choice below 1,000 points
    if n >= 1000:  # Annoy with the k and seed openTSNE would use, but on one thread
        k = min(n - 1, int(3 * min(perplexity, (n - 1) / 3)))
        neighbors = openTSNE.nearest_neighbors.Annoy(z, k, n_jobs=1, random_state=seed)
    embedding = openTSNE.TSNE(n_components=2, perplexity=perplexity, initialization="pca", neighbors=neighbors,
                              negative_gradient_method=method, n_jobs=n_jobs, random_state=seed).fit(z)
    return np.array(embedding, dtype=np.float64)  # a plain array: not holding openTSNE's affinities


# ---------------------------------------------------------------------------------------------------
# Memorization check and interpolation
# ---------------------------------------------------------------------------------------------------


def nearest_training(samples: torch.Tensor, X_train: torch.Tensor,
                     chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each sample, the index (int64) of the nearest training drawing and the L2 distance (float64,
    pixel intensities in [0, 1], over 784 pixels). Computed on X_train's device, ``chunk`` samples at a
    time."""
    samples, X_train = _check_images(samples, "samples"), _check_images(X_train, "X_train")
    train = X_train.flatten(1).float()
    idx, dist = [], []
    for sl in _batches(len(samples), chunk):
        s = samples[sl].flatten(1).float().to(train.device)
        # cdist's fast matrix-product path finds the neighbour; the distance to it is then recomputed
        # directly, since that path loses precision near 0 (an exact copy would not come out as 0).
        nearest = torch.cdist(s, train).argmin(1)
        idx.append(nearest.cpu())
        dist.append(np.linalg.norm(_host(s) - _host(train[nearest]), axis=1))
    return torch.cat(idx).numpy().astype(np.int64), np.concatenate(dist)


def _one_drawing(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.numel() != 784:
        raise ValueError(f"{name} must be one drawing as a tensor (28, 28), (1, 28, 28) or (1, 1, 28, 28)")
    return _check_images(x.reshape(1, 1, 28, 28), name)


def interpolate(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8,
                y_a=None, y_b=None) -> torch.Tensor:
    """Decode the straight line between the codes of two drawings: posterior means for a VAE, ``encode``
    outputs for an autoencoder. Returns (steps, 1, 28, 28) in [0, 1] on the CPU, x_a's end first.

    For a conditional VAE, ``y_a`` and ``y_b`` (class indices) are required; each drawing is encoded with
    its own class, and the decoder gets the one-hot vectors interpolated along with the codes."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    device = _device(model)
    x = torch.cat([_one_drawing(x_a, "x_a"), _one_drawing(x_b, "x_b")]).to(device)  # (2, 1, 28, 28)
    t = torch.linspace(0, 1, steps, device=device)[:, None]  # (steps, 1)
    with _evaluating(model):
        if not _is_vae(model):
            z = model.encode(x)
            return model.decode((1 - t) * z[0] + t * z[1]).float().cpu()
        if _is_conditional(model):
            if y_a is None or y_b is None:
                raise ValueError("interpolate: the model is a conditional VAE; pass both y_a and y_b")
            y = _labels(model, [int(y_a), int(y_b)], 2, "interpolate").to(device)
            mu, _ = model.encode(x, y)
            c = model.one_hot(y)  # (2, n_classes)
            c = (1 - t) * c[0] + t * c[1]
            # Through the decoder module directly: decode(z, y) would only accept whole classes.
            return torch.sigmoid(model.decoder((1 - t) * mu[0] + t * mu[1], c)).float().cpu()
        mu, _ = model.encode(x)
        return model.decode((1 - t) * mu[0] + t * mu[1]).float().cpu()


# ---------------------------------------------------------------------------------------------------
# The numbers the notebooks write to results/metrics.json
# ---------------------------------------------------------------------------------------------------


def vae_bounds(model: nn.Module, X: torch.Tensor, y=None, n_iwae: int = 1000, k: int = 100,
                seed: int = 0) -> dict:
    """``vae_elbo`` on all of X, plus ``iwae``: the IWAE bound with k samples on the first ``n_iwae``
    drawings (nats per image)."""
    bounds = vae_elbo(model, X, y, seed=seed)
    bounds["iwae"] = iwae_bound(model, X[:n_iwae], None if y is None else y[:n_iwae], k=k, seed=seed)
    return bounds


def memorisation(model: nn.Module, X_train: torch.Tensor, X_test: torch.Tensor, n: int = 10, n_test: int = 200,
                 seed: int = 1) -> tuple[torch.Tensor, np.ndarray, np.ndarray, dict]:
    """A copy check: ``n`` prior samples (seeded with ``seed``), the index and L2 distance of each one's
    nearest training drawing, and the medians of those distances for the samples and for the first
    ``n_test`` real test drawings (a copying model would put its samples much nearer than real drawings)."""
    samples = prior_samples(model, n, seed)
    idx, dist = nearest_training(samples, X_train)
    test_dist = nearest_training(X_test[:n_test], X_train)[1]
    return samples, idx, dist, {"median_nn_distance_samples": float(np.median(dist)),
                                "median_nn_distance_test": float(np.median(test_dist))}


def run_summary(model: nn.Module, record: dict) -> dict:
    """Size and cost of a trained run: parameters, budget (steps or epochs), batch size, learning rate, seed,
    precision, wall time, images/s, device and the number of CPU threads it trained with (when recorded)."""
    cfg = record["train_config"]
    budget = {"epochs": cfg["epochs"]} if cfg.get("epochs") is not None else {"steps": record["steps"]}
    return {"params": n_params(model), **budget, "batch_size": record["batch_size"], "lr": cfg["lr"],
            "seed": cfg["seed"], "precision": cfg.get("precision", "fp32"), "wall_time_s": record["wall_time_s"],
            "images_per_s": record["images_per_s"], "device": record["device"],
            **({"threads": record["threads"]} if "threads" in record else {})}


def autoencoder_metrics(model: nn.Module, untrained: nn.Module, record: dict, X_train: torch.Tensor,
                        X_test: torch.Tensor) -> dict:
    """The autoencoder table's row: per-pixel MSE on test and training drawings against two baselines (the
    same architecture untrained, and the mean training image for every drawing), the latent size and
    ``run_summary``."""
    return {"test_mse": reconstruction_mse(model, X_test), "train_mse": reconstruction_mse(model, X_train),
            "untrained_test_mse": reconstruction_mse(untrained, X_test),
            "mean_image_test_mse": mean_image_mse(X_train, X_test),
            "latent_dim": int(encode_all(model, X_test[:1]).shape[1]), **run_summary(model, record)}
