"""What drawings are worth to the judge, the evaluation classifier: its features and class probabilities,
the Fréchet distance and Inception-style score computed from them, how often drawings show a requested class,
and each drawing's nearest training drawing. The judge scores drawings; it never trains a generator."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy import linalg
from scipy.linalg import LinAlgWarning
from scipy.special import rel_entr, softmax
from torch import nn

from ..devices import one_blas_thread
from .inference import batches, check_images, device_of, evaluating, to_host

__all__ = [
    "classifier_outputs", "frechet_distance", "kernel_distance", "inception_score", "class_scores",
    "generative_metrics",
    "nearest_training",
]



def classifier_outputs(clf: nn.Module, X: torch.Tensor,
                       batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, 128) float64 and class probabilities (N, n_classes) float64 of the
    evaluation classifier (eval mode: no dropout, BatchNorm running statistics)."""
    X = check_images(X)
    device, feats, probs = device_of(clf), [], []
    with evaluating(clf):
        for sl in batches(len(X), batch_size):
            x = X[sl].to(device)
            f = clf.features(x)
            # The head on the features equals clf(x) and saves a second pass through the body.
            logits = clf.head(f) if hasattr(clf, "head") else clf(x)
            feats.append(to_host(f))
            probs.append(softmax(to_host(logits), axis=1))
    return np.concatenate(feats), np.concatenate(probs)


@one_blas_thread
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
    # The judge's ReLU features leave some dimensions constant, so the covariances are singular and scipy warns
    # that the root "might be inaccurate" on every call; what it could get wrong is checked below instead (a
    # non-finite root, a large imaginary part), so the warning is not shown.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)
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


def kernel_distance(f1: np.ndarray, f2: np.ndarray, block: int = 1000) -> float:
    """The kernel inception distance (KID, Bińkowski et al., 2018, "Demystifying MMD GANs"): the unbiased
    estimate of the squared maximum mean discrepancy between two feature sets (N1, F) and (N2, F) under the
    cubic polynomial kernel k(a, b) = (a.b / F + 1)^3,

        sum_{i != j} k(x_i, x_j) / (N1 (N1 - 1)) + sum_{i != j} k(y_i, y_j) / (N2 (N2 - 1)) - 2 mean k(x_i, y_j).

    Unlike the FID it has no bias that depends on N: its expectation for two samples of one distribution is 0
    (a single estimate can be slightly negative). Sums in float64, ``block`` rows of a kernel matrix at a time."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"need two feature sets (N, F) with the same F and N >= 2, got {f1.shape} and {f2.shape}")
    d = f1.shape[1]

    def kernel_sum(a: np.ndarray, b: np.ndarray) -> float:
        return math.fsum(float(((a[i:i + block] @ b.T / d + 1) ** 3).sum()) for i in range(0, len(a), block))

    def within(a: np.ndarray) -> float:  # the mean over pairs i != j: the diagonal k(a_i, a_i) left out
        diagonal = ((a * a).sum(1) / d + 1) ** 3
        return (kernel_sum(a, a) - math.fsum(diagonal)) / (len(a) * (len(a) - 1))

    return within(f1) + within(f2) - 2 * kernel_sum(f1, f2) / (len(f1) * len(f2))


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
    """FID and KID between generated drawings and reference drawings in the classifier's feature space, the
    Inception score of the generated drawings, and the histogram of their predicted classes; with the
    ``requested`` class of each drawing (N,), also ``class_scores``.

    ``samples``, ``X_ref``: (N, 1, 28, 28) in [0, 1]. Pass ``ref_features`` (from
    ``classifier_outputs(clf, X_ref)[0]``) to reuse the reference features; X_ref may then be None.
    Note that the FID depends on N (it is biased upwards for small sets): compare values at equal N; the KID
    does not."""
    feats, probs = classifier_outputs(clf, samples)
    if ref_features is None:
        if X_ref is None:
            raise ValueError("generative_metrics: give X_ref or ref_features")
        ref_features = classifier_outputs(clf, X_ref)[0]
    predicted = probs.argmax(1)
    out = {"fid": frechet_distance(feats, ref_features), "kid": kernel_distance(feats, ref_features),
           "inception_score": inception_score(probs),
           "n": int(len(feats)), "n_ref": int(len(ref_features)), "feature_dim": int(feats.shape[1]),
           "class_histogram": np.bincount(predicted, minlength=probs.shape[1]).tolist()}
    if requested is not None:
        out.update(class_scores(probs, requested, probs.shape[1]))
    return out


def nearest_training(samples: torch.Tensor, X_train: torch.Tensor,
                     chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each sample, the index (int64) of the nearest training drawing and the L2 distance (float64,
    pixel intensities in [0, 1], over 784 pixels). Computed on X_train's device, ``chunk`` samples at a
    time."""
    samples, X_train = check_images(samples, "samples"), check_images(X_train, "X_train")
    train = X_train.flatten(1).float()
    idx, dist = [], []
    for sl in batches(len(samples), chunk):
        s = samples[sl].flatten(1).float().to(train.device)
        # cdist's fast matrix-product path finds the neighbour; the distance to it is then recomputed
        # directly, since that path loses precision near 0 (an exact copy would not come out as 0).
        nearest = torch.cdist(s, train).argmin(1)
        idx.append(nearest.cpu())
        dist.append(np.linalg.norm(to_host(s) - to_host(train[nearest]), axis=1))
    return torch.cat(idx).numpy().astype(np.int64), np.concatenate(dist)
