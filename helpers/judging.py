"""What a VAE's samples and relabelled drawings are worth, as the judge (the evaluation classifier) sees them:
FID, Inception-style score and class accuracy of a sampler's drawings and of reconstructions (the bound no
sampler of that decoder passes), the class accuracy of a conditional VAE's prior samples, label adherence, and
a copy check against the training drawings. The maths is in ``helpers.quality``; the samples come from
``helpers.samplers``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .inference import evaluating, is_conditional
from .quality import class_scores, classifier_outputs, generative_metrics, nearest_training
from .reconstruction import reconstruct
from .samplers import conditional_samples, decode_samples, prior_samples

__all__ = ["sampler_metrics", "reconstruction_metrics", "conditional_accuracy", "relabel", "relabel_rows",
           "label_adherence", "memorisation"]


def sampler_metrics(clf: nn.Module, model: nn.Module, sampler, n: int, ref_features: np.ndarray,
                    seed: int = 0) -> dict:
    """FID against the reference features and Inception-style score of ``n`` decoded samples; with requested
    classes also the classifier's accuracy on them and the confusion matrix. ``sampler`` names the sampler."""
    samples, classes = decode_samples(model, sampler, n, seed)
    return {"sampler": sampler.label, **generative_metrics(clf, samples, None, ref_features, requested=classes)}


def reconstruction_metrics(clf: nn.Module, model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                           ref_features: np.ndarray) -> dict:
    """What any sampler of this decoder could reach at best: FID, Inception-style score and class accuracy
    of the decoded posterior means of real drawings X (labels y; given to a conditional model)."""
    recon = reconstruct(model, X, y=y if is_conditional(model) else None)
    return {"sampler": "test reconstructions (bound)",
            **generative_metrics(clf, recon, None, ref_features, requested=np.asarray(y.cpu()))}


def conditional_accuracy(clf: nn.Module, model: nn.Module, n_per_class: int = 200, n_classes: int = 5,
                         seed: int = 0) -> dict:
    """How often the classifier recognizes the requested class in drawings sampled from a conditional
    VAE's prior (``conditional_samples``: z ~ N(0, I), decoded with each class in turn).

    Returns ``accuracy``, ``per_class`` (n_classes floats), ``confusion`` (rows = requested class,
    columns = predicted class, counts) and ``n_per_class``."""
    if not is_conditional(model):
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


def relabel(model: nn.Module, X: torch.Tensor, y: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """Decode each drawing of X (encoded with its own class y) as the class ``new``: its posterior mean,
    moved by the difference of the prior means (zero for a N(0, I) prior), decoded with the new class."""
    device = next(model.parameters()).device
    X, y, new = X.to(device), y.to(device), new.to(device)
    with evaluating(model):
        mu, _ = model.encode(X, y)
        z = mu - model.prior_mean(mu, y) + model.prior_mean(mu, new)
        return model.decode(z, new).float().cpu()


def relabel_rows(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """For each drawing, a row: the drawing, then ``relabel`` as each class in turn; (k * (1 + C), 1, 28, 28)."""
    C, k = model.n_classes, len(X)
    as_each = relabel(model, X.repeat_interleave(C, 0), y.repeat_interleave(C), torch.arange(C).repeat(k))
    return torch.cat([X.cpu()[:, None], as_each.reshape(k, C, 1, 28, 28)], dim=1).reshape(-1, 1, 28, 28)


def label_adherence(clf: nn.Module, model: nn.Module, X: torch.Tensor, y, batch_size: int = 500) -> dict:
    """How often a conditional VAE follows a changed label: every drawing of X is decoded (``relabel``) as
    each class other than its own, and the classifier judges the result. Returns ``adherence`` (the
    fraction classified as the new class; 1 for a model that draws what its label says, near chance for
    one that ignores it), ``kept_original`` (the fraction still classified as the drawing's own class) and
    ``n`` (relabelled drawings)."""
    if not is_conditional(model):
        raise ValueError("label_adherence needs a conditional VAE (n_classes > 0)")
    y = torch.as_tensor(np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)).long()
    n_classes, hits, kept, total = model.n_classes, 0, 0, 0
    for shift in range(1, n_classes):
        new = (y + shift) % n_classes  # every other class exactly once per drawing
        for start in range(0, len(X), batch_size):
            sl = slice(start, start + batch_size)
            pred = classifier_outputs(clf, relabel(model, X[sl], y[sl], new[sl]))[1].argmax(1)
            hits += int((pred == new[sl].numpy()).sum())
            kept += int((pred == y[sl].numpy()).sum())
            total += len(pred)
    return {"adherence": hits / total, "kept_original": kept / total, "n": total}


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
