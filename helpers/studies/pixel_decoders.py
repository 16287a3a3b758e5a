"""Autoregressive (PixelCNN) decoders against the factorized one, on binary drawings (notebook 10 runs the
comparison; its steps are the package's samplers and judge): the bounds and sample lines it prints, and samples drawn
pixel by pixel with their wall time (``timed_samples``)."""

from __future__ import annotations

import time

import torch
from torch import nn

from ..evaluation.judging import sample_line
from ..evaluation.samplers import decode_samples

__all__ = ["bounds_summary", "conditional_summary_lines", "timed_samples"]


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
