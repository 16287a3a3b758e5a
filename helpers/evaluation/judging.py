"""What a VAE's samples and relabelled drawings are worth, as the judge (the evaluation classifier) sees them:
FID, Inception-style score and class accuracy of a sampler's drawings and of reconstructions (the bound no
sampler of that decoder passes), the class accuracy of a conditional VAE's prior samples, label adherence, and
a copy check against the training drawings. The maths is in ``helpers.evaluation.sample_quality``; the samples come from
``helpers.evaluation.samplers``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.quickdraw import random_subset
from ..models.vae import binarize
from ..results import spread_cell
from .inference import evaluating, is_conditional
from .reconstruction import reconstruct
from .sample_quality import classifier_outputs, generative_metrics, nearest_training
from .samplers import PriorSampler, decode_samples
from .stored import stored_evaluation

__all__ = ["DRAW_SEED_STEP", "SPREAD_KEYS", "draw_seeds", "over_draws", "mode_of", "JudgedReference", "judge_accuracy",
           "reference_features", "sampler_metrics",
           "sample_line", "sample_table", "real_reference", "reconstruction_metrics",
           "relabel", "relabel_rows",
           "label_adherence", "memorisation"]


# Repeated draws of one sampler use seeds seed, seed + 1000, ...: apart from the seed + 1 of validation draws.
DRAW_SEED_STEP = 1000
SPREAD_KEYS = ("fid", "kid", "inception_score", "class_accuracy")  # the numbers that get a sampling spread


def draw_seeds(seed: int, repeats: int) -> list[int]:
    """The seeds of ``repeats`` independent draws of one sampler, the first of them ``seed``."""
    if repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    return [seed + DRAW_SEED_STEP * r for r in range(repeats)]


def over_draws(draws: list[dict]) -> dict:
    """``generative_metrics`` of repeated draws (same model, sampler, judge and N) in one record: each number of
    ``SPREAD_KEYS`` is the mean over the draws, with its sample standard deviation in ``<key>_sd`` (None for a
    single draw); the class histogram and confusion matrix are summed over the draws, ``draws`` counts them."""
    out = dict(draws[0])
    for key in SPREAD_KEYS:
        if key in out:
            values = np.array([d[key] for d in draws], dtype=np.float64)
            out[key], out[key + "_sd"] = float(values.mean()), float(values.std(ddof=1)) if len(draws) > 1 else None
    for key in ("class_histogram", "confusion"):
        if key in out:
            out[key] = np.sum([d[key] for d in draws], axis=0).tolist()
    if "confusion" in out:
        confusion = np.asarray(out["confusion"])
        out["per_class"] = (np.diag(confusion) / np.maximum(confusion.sum(1), 1)).tolist()
    return {**out, "draws": len(draws)}


def mode_of(probs: torch.Tensor) -> torch.Tensor:
    """The most probable binary drawing under a factorized Bernoulli decoder: each pixel's mode (p > 0.5)."""
    return (probs > 0.5).to(probs.dtype)


# The forms a drawing can take, and what each is scored against: like with like.
REFERENCE_FORMS = {
    "grey": "grey test drawings",  # a decoder's means: grey, like the drawings
    "mode": "test drawings thresholded at 0.5",  # each pixel at its mode: binary, as a grey pixel's mode is
    "drawn": "test drawings binarized by one draw",  # drawn from a binary likelihood, as the model's data was
}


@dataclass(frozen=True)
class JudgedReference:
    """The judge's features (N, F) of one set of reference drawings in each form a drawing can take, so that every
    drawing is scored against references of its own form: ``grey`` the drawings themselves; ``mode`` the drawings
    thresholded at 0.5 (``mode_of``: what mode-decoded samples are compared with); ``drawn`` the drawings binarized
    by one draw per pixel (``binarize``, seed 0: the data of a model of binary drawings, what drawings sampled
    from a binary likelihood are compared with). Scoring binary drawings against grey ones measures mostly the
    judge's view of grey against binary: under the fixed judge, real training drawings thresholded at 0.5 score
    an FID of about 15 against the grey test drawings and about 3 against the thresholded ones."""
    grey: np.ndarray
    mode: np.ndarray
    drawn: np.ndarray


def reference_features(clf: nn.Module, X: torch.Tensor) -> JudgedReference:
    """The judge's features of the reference drawings X (N, 1, 28, 28) in [0, 1], in each form."""
    return JudgedReference(classifier_outputs(clf, X)[0], classifier_outputs(clf, mode_of(X))[0],
                           classifier_outputs(clf, binarize(X))[0])


def judge_accuracy(clf: nn.Module, X: torch.Tensor, y) -> dict:
    """The judge's accuracy on real drawings X (N, 1, 28, 28) in [0, 1] of classes y, in each form a drawing can
    take: {"grey": X itself, "thresholded": at 0.5 (``mode_of``), "drawn": binarized by one draw (``binarize``,
    seed 0)}. The yardstick of the requested-class accuracy of samples of that form."""
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    return {form: float((classifier_outputs(clf, x)[1].argmax(1) == y).mean())
            for form, x in (("grey", X), ("thresholded", mode_of(X)), ("drawn", binarize(X)))}


def _reference_of(reference, form: str) -> np.ndarray:
    """The features of ``form`` of a ``JudgedReference``; one array of features (N, F) is the reference of every
    form (a caller that compares grey and binary drawings with the same drawings, as a test may)."""
    return getattr(reference, form) if isinstance(reference, JudgedReference) else np.asarray(reference)


def _scored(clf: nn.Module, drawings: list[tuple[torch.Tensor, object]], reference, form: str) -> dict:
    """``over_draws`` of the drawings scored against the reference of ``form``, which the record names."""
    features = _reference_of(reference, form)
    record = over_draws([generative_metrics(clf, x, None, features, requested=c) for x, c in drawings])
    return {**record, "reference": REFERENCE_FORMS[form] if isinstance(reference, JudgedReference) else "given"}


def _judged(clf: nn.Module, drawings: list[tuple[torch.Tensor, object]], reference) -> dict:
    """Drawings scored like with like: grey drawings (a decoder's pixel probabilities) against the grey reference,
    and under "mode" the same drawings at each pixel's mode against the thresholded reference; binary drawings
    (an autoregressive decoder's draws from its Bernoulli pixels) against the reference binarized by one draw.
    Binary drawings are their own mode: they get no "mode" record."""
    if all(bool(((x == 0) | (x == 1)).all()) for x, _ in drawings):
        return _scored(clf, drawings, reference, "drawn")
    return {**_scored(clf, drawings, reference, "grey"),
            "mode": _scored(clf, [(mode_of(x), c) for x, c in drawings], reference, "mode")}


@stored_evaluation
def sampler_metrics(clf: nn.Module, model: nn.Module, sampler, n: int, ref_features: JudgedReference,
                    seed: int = 0, repeats: int = 1) -> dict:
    """FID and KID against the reference features of the drawings' own form (``_judged``), Inception-style score
    and, with requested classes, the classifier's accuracy on them, for ``repeats`` independent draws of ``n``
    decoded samples (``over_draws``: the mean and the sampling spread); under "mode" the same for the same codes
    decoded to each pixel's mode. ``sampler`` names the sampler."""
    drawings = [decode_samples(model, sampler, n, s) for s in draw_seeds(seed, repeats)]
    return {"sampler": sampler.label, **_judged(clf, drawings, ref_features)}


def sample_line(label: str, m: dict) -> str:
    """One line of a sample table: FID, KID and Inception-style score as mean ± sd over the draws, the
    class accuracy where classes were requested, and the FID and KID of the mode-decoded drawings."""
    line = (f"{label:44s} FID {spread_cell(m, 'fid', '.1f')}  KID {spread_cell(m, 'kid', '.1f')}  "
            f"IS {m['inception_score']:.2f}")
    if m.get("class_accuracy") is not None:
        line += f"  class {m['class_accuracy']:.1%}"
    if "mode" in m:
        line += f"  | mode: FID {m['mode']['fid']:.1f}, KID {m['mode']['kid']:.1f}"
    return line


def sample_table(results: dict) -> str:
    """``sample_line`` of every {label: metrics} of ``results``, with the N and number of draws."""
    first = next(iter(results.values()))
    head = f"N = {first['n']} per draw, {first['draws']} draws, {first['feature_dim']}-d judge features"
    return "\n".join([head, *(sample_line(label, m) for label, m in results.items())])


@stored_evaluation
def real_reference(clf: nn.Module, X: torch.Tensor, n: int, ref_features: JudgedReference, seed: int = 0,
                   repeats: int = 1, y=None) -> dict:
    """What real drawings score against the reference at the samples' N, in each form: ``repeats`` random subsets
    of ``n`` drawings of X (the training split) in place of samples (their classes ``y`` as the requested ones)
    against the grey reference; under "mode" the same drawings thresholded at 0.5 against the thresholded
    reference (the yardstick of mode-decoded samples), and under "drawn" the same drawings binarized by one draw
    against the reference binarized so (the yardstick of drawings sampled from a binary likelihood)."""
    X_host, labels = X.float().cpu(), None if y is None else np.asarray(y.cpu())
    binary = binarize(X_host)  # one draw per pixel of the whole split: a drawing binarizes the same in every subset
    drawings, drawn = [], []
    for s in draw_seeds(seed, repeats):
        idx = random_subset(torch.arange(len(X)), n, s)  # the drawings helpers.random_subset(X, n, s) picks
        c = None if labels is None else labels[idx.numpy()]
        drawings.append((X_host[idx], c))
        drawn.append((binary[idx], c))
    return {"sampler": "real training drawings (reference)", **_judged(clf, drawings, ref_features),
            "drawn": _scored(clf, drawn, ref_features, "drawn")}


@stored_evaluation
def reconstruction_metrics(clf: nn.Module, model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                           ref_features: JudgedReference) -> dict:
    """A reference for the samplers of this decoder: what it draws from the codes of real drawings (samplers can
    beat it, since a sample need not look like a reconstruction). FID, KID, Inception-style score and class accuracy
    of the decoded posterior means of real drawings X (labels y; given to a conditional model), and under "mode"
    of the same decodes at each pixel's mode."""
    recon = reconstruct(model, X, y=y if is_conditional(model) else None)
    return {"sampler": "test reconstructions (reference)",
            **_judged(clf, [(recon, np.asarray(y.cpu()))], ref_features)}


def relabel(model: nn.Module, X: torch.Tensor, y: torch.Tensor, new: torch.Tensor, means=None) -> torch.Tensor:
    """Decode each drawing of X (encoded with its own class y) as the class ``new``: its posterior mean,
    moved by the difference of the prior means (zero for a N(0, I) prior), decoded with the new class. With
    ``means`` (C, D), e.g. the class means of the training codes (``helpers.class_means``), the code is moved by
    their difference instead: class arithmetic, from the drawing's class's mean code to the new class's."""
    device = next(model.parameters()).device
    X, y, new = X.to(device), y.to(device), new.to(device)
    with evaluating(model):
        mu, _ = model.encode(X, y)
        if means is None:
            z = mu - model.class_mean(mu, y) + model.class_mean(mu, new)
        else:
            means = torch.as_tensor(np.asarray(means), dtype=mu.dtype, device=device)
            z = mu - means[y] + means[new]
        return model.decode(z, new).float().cpu()


def relabel_rows(model: nn.Module, X: torch.Tensor, y: torch.Tensor, means=None) -> torch.Tensor:
    """For each drawing, a row: the drawing, then ``relabel`` as each class in turn; (k * (1 + C), 1, 28, 28)."""
    C, k = model.n_classes, len(X)
    as_each = relabel(model, X.repeat_interleave(C, 0), y.repeat_interleave(C), torch.arange(C).repeat(k), means)
    return torch.cat([X.cpu()[:, None], as_each.reshape(k, C, 1, 28, 28)], dim=1).reshape(-1, 1, 28, 28)


@stored_evaluation
def label_adherence(clf: nn.Module, model: nn.Module, X: torch.Tensor, y, batch_size: int = 500, means=None) -> dict:
    """How often a conditional VAE follows a changed label: every drawing of X is decoded (``relabel``, with
    ``means`` for class arithmetic) as each class other than its own, and the classifier judges the result.
    Returns ``adherence`` (the fraction classified as the new class; 1 for a model that draws what its label says,
    near chance for one that ignores it), ``kept_original`` (the fraction still classified as the drawing's own
    class) and ``n`` (relabelled drawings)."""
    if not is_conditional(model):
        raise ValueError("label_adherence needs a conditional VAE (n_classes > 0)")
    y = torch.as_tensor(np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)).long()
    n_classes, shifts = model.n_classes, model.n_classes - 1
    # Every drawing once as each other class: shift by shift, all in one sequence of batches.
    idx = torch.arange(len(X)).repeat(shifts)
    old = y[idx]
    new = (old + torch.arange(1, n_classes).repeat_interleave(len(X))) % n_classes
    hits = kept = 0
    for start in range(0, len(idx), batch_size):
        sl = slice(start, start + batch_size)
        pred = classifier_outputs(clf, relabel(model, X[idx[sl].to(X.device)], old[sl], new[sl], means))[1].argmax(1)
        hits += int((pred == new[sl].numpy()).sum())
        kept += int((pred == old[sl].numpy()).sum())
    total = len(idx)
    return {"adherence": hits / total, "kept_original": kept / total, "n": total}


@stored_evaluation
def memorisation(model: nn.Module, X_train: torch.Tensor, X_test: torch.Tensor, n: int = 1000, n_show: int = 8,
                 seed: int = 1, sampler=None) -> tuple[torch.Tensor, np.ndarray, np.ndarray, dict]:
    """A copy check: the L2 distance (pixel intensities in [0, 1]) from each of ``n`` samples (decoded codes of
    ``sampler``, by default the prior, seeded with ``seed``) to its nearest training drawing, beside the same for up
    to ``n`` real test drawings. Like with like: when the samples are binary draws (an autoregressive decoder), the
    training and test drawings are binarized by one draw each (``binarize``, seeds 0 and 1), as the model's data
    was. A model that copied some training drawings would put the low percentiles of its samples' distances far
    below the test drawings'. Returns the ``n_show`` samples nearest to a training drawing (the most copy-like), the
    index and distance of each one's nearest training drawing, and the percentiles (1st, 5th, median) and minimum
    of both sets of distances. L2 in pixels sees copies and near-copies; it cannot see a sample that reproduces a
    training drawing shifted by a pixel or two, nor tell a novel drawing from a blurry average of several."""
    samples = decode_samples(model, sampler or PriorSampler(model), n, seed)[0]
    if bool(((samples == 0) | (samples == 1)).all()):
        X_train, X_test = binarize(X_train, seed=0), binarize(X_test[:n], seed=1)
    idx, dist = nearest_training(samples, X_train)
    test_dist = nearest_training(X_test[:n], X_train)[1]
    show = np.argsort(dist, kind="stable")[:n_show]
    stats = {"n_samples": len(dist), "n_test": len(test_dist)}
    for name, d in (("samples", dist), ("test", test_dist)):
        stats.update({f"{name}_min": float(d.min()), f"{name}_p1": float(np.percentile(d, 1)),
                      f"{name}_p5": float(np.percentile(d, 5)), f"{name}_median": float(np.median(d))})
    return samples[torch.as_tensor(show)], idx[show], dist[show], stats
