"""The results file, results/metrics.json: reading it, merging a section into it (atomically, under a lock, so
that processes merging at once keep every section), finding a number in it by its dotted path, and where its
headline numbers live.

Results are nested data keyed by stable names, model (its registry name) then sampler or metric
(``beyond.samples["vae_cnn"]["mixture"]["fid"]``; a model's display label is its record's "label"), written once
by the notebook that computes them and read by the same paths by the report (helpers.report.render), the seed
spread (helpers.pipeline.reruns) and the notebooks. Keys hold no structure of their own: nothing splits a key again.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .files import ROOT, atomic_write_json, locked, repo_path

__all__ = ["HEADLINE", "JUDGE_HEADLINE", "JUDGED", "CLAIMS", "JUDGE_CLAIMS", "flatten_stats", "default_outputs",
           "read_metrics", "merge_metrics", "lookup", "keyed_by_name", "spread_cell", "bits_per_dim"]

# The headline numbers: dotted paths into the metrics, "*" standing for every key at that level (every model).
HEADLINE = [
    "lstm_ae.test_mse", "cnn_ae.test_mse",
    "vae.models.*.neg_elbo", "vae.models.*.iwae", "vae.models.*.fid",
    "vae.classifier.test_accuracy", "vae.models.*.class_accuracy",
    "latent.models.*.knn5_accuracy", "latent.models.*.silhouette",
    "beyond.conditional.*.neg_elbo", "beyond.conditional.*.iwae", "beyond.conditional.*.adherence",
    "beyond.samples.*.*.fid", "beyond.samples.*.*.class_accuracy",
    "beyond.conditional.*.samples.*.fid", "beyond.conditional.*.samples.*.class_accuracy",
    "vae.models.*.kid", "beyond.samples.*.*.kid", "beyond.conditional.*.samples.*.kid",
    "beyond.samples.*.*.mode.fid", "beyond.conditional.*.samples.*.mode.fid",
]
# Numbers that only the judge reruns gather (``make judges``, which also reruns notebooks 10 and 12): the samples of
# the local PixelCNN decoder with the class prior (notebook 10's nearest) and of the free-bits model kept on
# validation.
JUDGE_HEADLINE = [
    "pixel.conditional.local_conditional.prior.fid", "pixel.conditional.local_conditional.prior.class_accuracy",
    "free_bits.samples.*.fid", "free_bits.samples.*.class_accuracy", "free_bits.adherence.adherence",
]
# The headline numbers that the evaluation classifier gives (what the judge spread is about).
JUDGED = ("fid", "kid", "class_accuracy", "accuracy", "adherence", "inception_score", "test_accuracy")

# The report's comparisons, checked seed by seed: each is a chain of headline numbers that should increase
# from left to right (lower-is-better numbers first, the winner first).
CLAIMS = {
    "cnn_ae_beats_lstm_ae": ["cnn_ae.test_mse", "lstm_ae.test_mse"],
    "cnn_encoder_lower_elbo": ["vae.models.vae_cnn.neg_elbo", "vae.models.vae_gru.neg_elbo"],
    "conditioning_lowers_elbo": ["vae.models.cvae_cnn.neg_elbo", "vae.models.vae_cnn.neg_elbo"],
    "iwae_ranking": ["vae.models.cvae_cnn.iwae", "vae.models.vae_cnn.iwae",
                     "vae.models.vae_gru.iwae"],
    "fid_ranking": ["vae.models.cvae_cnn.fid", "vae.models.vae_cnn.fid",
                    "vae.models.vae_gru.fid"],
    "mixture_beats_prior": ["beyond.samples.vae_cnn.mixture.fid", "beyond.samples.vae_cnn.prior.fid"],
    "class_prior_adherence": ["beyond.conditional.course recipe.adherence", "beyond.conditional.chosen.adherence"],
    "class_prior_accuracy": ["beyond.conditional.course recipe.samples.prior.class_accuracy",
                             "beyond.conditional.chosen.samples.prior.class_accuracy"],
}
# Comparisons checked judge by judge only (their numbers come from ``JUDGE_HEADLINE``): the free-bits model's samples
# (binary draws, against test drawings binarized the same way) below the best binary samples before it, of each kind.
JUDGE_CLAIMS = {
    "free_bits_beats_pixel_decoder": ["free_bits.samples.class mixture.fid",
                                      "pixel.conditional.local_conditional.prior.fid"],
    "free_bits_beats_class_prior_design": ["free_bits.samples.class mixture.fid",
                                           "beyond.conditional.chosen.samples.class mixture.mode.fid"],
}



def flatten_stats(nested: dict, path: tuple = ()) -> dict:
    """The stats tree of a seeds or judges section as {dotted path: stats}; a leaf is a dict with "values"."""
    if isinstance(nested, dict) and "values" in nested:
        return {".".join(path): nested}
    children = nested.items() if isinstance(nested, dict) else []
    return {k: v for key, child in children for k, v in flatten_stats(child, (*path, key)).items()}


def default_outputs(budget: str = "full") -> tuple[Path, Path]:
    """(figures folder, results file) of a run at ``budget``: the committed figures/ and results/metrics.json for
    the report's run, runs/quick/ for a quick one (never over the committed results)."""
    if budget == "quick":
        return ROOT / "runs" / "quick" / "figures", ROOT / "runs" / "quick" / "metrics.json"
    return ROOT / "figures", ROOT / "results" / "metrics.json"


def _plain(value):
    """numpy/torch scalars and arrays -> JSON-ready Python values; floats rounded to 6 significant digits
    so that reruns on the same machine compare equal and diffs stay readable."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to write a non-finite number ({value}) to the metrics")
        return float(f"{value:.6g}")
    return value


def read_metrics(path: str | os.PathLike) -> dict:
    """The metrics so far ({} when the file does not exist yet); a corrupt file is an error, never reset.
    A relative ``path`` is taken from the repository root."""
    path = repo_path(path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); fix or delete it, then rerun") from e


def merge_metrics(path: str | os.PathLike, section: str, values: dict, update: bool = False) -> dict:
    """Replace ``section`` of the metrics file with ``values`` (``update=True``: add and replace only the keys
    of ``values`` in it), other sections kept; written atomically. The read-modify-write holds a lock
    (``<path>.lock``), so processes merging at once keep every section. Returns the section. A relative
    ``path`` is taken from the repository root."""
    path = repo_path(path)
    values = _plain(values)
    with locked(path):
        metrics = read_metrics(path)
        metrics[section] = {**metrics.get(section, {}), **values} if update else values
        atomic_write_json(path, metrics)
    return metrics[section]


def lookup(metrics: dict, dotted: str):
    """metrics["a"]["b"]... for "a.b..."; keys may contain spaces (model labels). A missing key is an error."""
    node = metrics
    for part in dotted.split("."):
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"results have no {dotted!r} (missing {part!r}): run the notebook that writes it")
    return node


def bits_per_dim(nats_per_image: float, n_pixels: int = 784) -> float:
    """A negative log-likelihood in nats per image (the unit of every likelihood in the results) as bits per
    pixel: nats / (pixels x ln 2)."""
    return nats_per_image / (n_pixels * math.log(2))


def spread_cell(x: dict, key: str, spec: str) -> str:
    """A sample metric of a record as "mean ± sd" over its draws (the sampling spread, ``<key>_sd``), or the single
    value when there was one draw."""
    sd = x.get(key + "_sd")
    return format(x[key], spec) + ("" if sd is None else f" ± {format(sd, spec)}")


def keyed_by_name(by_label: dict, runs) -> dict:
    """Records of registered runs keyed by their display labels ({label: record}, how a notebook shows them) as the
    results file keeps them: {run name: {"label": label, **record}}, in the order of ``runs``, those present."""
    return {run.name: {"label": run.label, **by_label[run.label]} for run in runs if run.label in by_label}
