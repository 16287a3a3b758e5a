"""Autoregressive (PixelCNN) decoders against the factorized one, on binary drawings (notebook 10 runs the
comparison; its steps are the package's samplers and judge): the bounds and sample lines it prints, and samples drawn
pixel by pixel with their wall time (``timed_samples``). The free-bits study (notebook 12): the candidates' validation
numbers (``free_bits_validation``) and the choice between them (``choose_free_bits``)."""

from __future__ import annotations

import time

import torch
from torch import nn

from ..evaluation.bounds import vae_elbo
from ..evaluation.judging import JudgedReference, sample_line, sampler_metrics
from ..evaluation.samplers import PriorSampler, decode_samples
from ..results import spread_cell
from .conditional_designs import class_mixture_sampler
from .ex_post_samplers import VALIDATION_SEED_OFFSET
from .notebook import Notebook
from .registry import Experiment

__all__ = ["bounds_summary", "conditional_summary_lines", "timed_samples", "free_bits_validation",
           "choose_free_bits", "free_bits_summary"]


def bounds_summary(bounds: dict, labels: dict) -> str:
    """One line per model of ``bounds`` ({key: ``vae_bounds``}), named by ``labels`` ({key: label})."""
    return "\n".join(f"{labels[key]:58s} -ELBO {b['neg_elbo']:7.2f} = rec {b['rec']:7.2f} + KL {b['kl']:6.2f};  "
                     f"IWAE {b['iwae']:7.2f};  active units {b['active_units']}/{b['latent_dim']}"
                     for key, b in bounds.items())


def conditional_summary_lines(conditional: dict) -> str:
    """Two sample lines (class prior, reconstructions) and the label adherence of each conditional model of
    ``conditional`` ({key: {"label", "prior", "reconstructions", "adherence"}})."""
    return "\n".join(f"{sample_line(c['label'] + ' · class prior', c['prior'])}\n"
                     f"{sample_line(c['label'] + ' · reconstructions', c['reconstructions'])}\n"
                     f"{c['label']}: label adherence {c['adherence']['adherence']:.1%} ({c['adherence']['n']} "
                     f"relabelled drawings)" for c in conditional.values())


def timed_samples(model: nn.Module, sampler, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """``decode_samples`` of ``n`` drawings with its wall time in seconds."""
    start = time.perf_counter()
    drawings, classes = decode_samples(model, sampler, n, seed)
    return drawings, classes, time.perf_counter() - start


def free_bits_validation(nb: Notebook, clf: nn.Module, runs: list[Experiment], val_reference: JudgedReference,
                         n: int, repeats: int = 1) -> dict:
    """Each free-bits candidate of ``runs`` (class-conditional VAEs of binary drawings trained without the
    validation part) on the validation split: its -ELBO, reconstruction term, KL and active units on the validation
    drawings' fixed binarization, and the samples of two samplers, its class prior and a Gaussian mixture per class
    fitted to its codes of the training drawings without the validation part: ``repeats`` draws of ``n`` samples, from
    the validation seed, scored against the validation drawings binarized by one draw (binary draws: like with
    like). {run name: {"label", "free_bits", "neg_elbo", "rec", "kl", "active_units",
    "samples": {sampler: metrics}}}."""
    out = {}
    for run in runs:
        model = nb.model(run)
        elbo = vae_elbo(model, nb.X_val, nb.y_val, seed=nb.seed)
        samplers = [PriorSampler(model), class_mixture_sampler(nb, model, "fit")]
        out[run.name] = {"label": run.label, "free_bits": float(run.spec.get("free_bits", 0.0)),
                         **{key: elbo[key] for key in ("neg_elbo", "rec", "kl", "active_units")},
                         "samples": {s.name: sampler_metrics(clf, model, s, n, val_reference,
                                                             nb.seed + VALIDATION_SEED_OFFSET, repeats)
                                     for s in samplers}}
    return out


def choose_free_bits(candidates: dict) -> tuple[str, str]:
    """(run name, sampler name) of the candidate sampler whose validation samples have the lowest FID (the mean over
    the draws)."""
    return min(((name, sampler) for name, c in candidates.items() for sampler in c["samples"]),
               key=lambda pair: candidates[pair[0]]["samples"][pair[1]]["fid"])


def free_bits_summary(candidates: dict, kept: tuple[str, str]) -> str:
    """One line per candidate: its validation bound and KL, and the FID and requested-class accuracy of each
    sampler's validation samples; then the one kept."""
    lines = []
    for c in candidates.values():
        scores = "; ".join(f"{sampler}: FID {spread_cell(m, 'fid', '.1f')}, requested class {m['class_accuracy']:.1%}"
                           for sampler, m in c["samples"].items())
        lines.append(f"free bits {c['free_bits']:<4g} -ELBO {c['neg_elbo']:6.1f} (KL {c['kl']:5.1f} nats, "
                     f"{c['active_units']:2d} active units);  {scores}")
    return "\n".join([*lines, f"kept: {candidates[kept[0]]['label']} · {kept[1]}"])
