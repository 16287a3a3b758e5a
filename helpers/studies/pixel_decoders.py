"""Autoregressive (PixelCNN) decoders against the factorized one, on binary drawings: bounds, samples of the prior
and of an ex-post mixture, reconstructions (``decoder_comparison``), and the conditional designs' class-prior samples
and label adherence (``conditional_comparison``); samples drawn pixel by pixel with their wall time
(``timed_samples``)."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..evaluation.judging import label_adherence, sample_line
from ..evaluation.samplers import PriorSampler, decode_samples
from ..models.vae import model_inputs
from .ex_post_samplers import fit_samplers, sampler_results
from .notebook import Notebook

__all__ = ["bounds_summary", "decoder_comparison", "conditional_comparison", "conditional_summary_lines",
    "timed_samples"]


def bounds_summary(bounds: dict, labels: dict) -> str:
    """One line per model of ``bounds`` ({key: ``vae_bounds``}), named by ``labels`` ({key: label})."""
    return "\n".join(f"{labels[key]:58s} -ELBO {b['neg_elbo']:7.2f} = rec {b['rec']:7.2f} + KL {b['kl']:6.2f};  "
                     f"IWAE {b['iwae']:7.2f};  active units {b['active_units']}/{b['latent_dim']}"
                     for key, b in bounds.items())


def decoder_comparison(nb: Notebook, clf: nn.Module, models: dict, n: int, test_features: np.ndarray,
                       repeats: int) -> tuple[dict, dict, dict]:
    """For each unconditional VAE of ``models`` ({key: model}): the mixture sizes chosen on the validation codes,
    its samplers [prior, ex-post mixture] (``fit_samplers``), and {sampler name: ``sampler_metrics``} of ``repeats``
    draws of ``n``, with under "reconstructions" those of the first ``n`` test drawings as the model reads them
    (``model_inputs``). Returns (choices, samplers, results), each keyed like ``models``."""
    choices, samplers, results = {}, {}, {}
    for key, model in models.items():
        choices[key], fitted = fit_samplers(nb, model)
        samplers[key] = fitted[:2]
        results[key] = sampler_results(nb, clf, model, samplers[key], n, test_features, repeats, n_recon=n)
    return choices, samplers, results


def conditional_comparison(nb: Notebook, clf: nn.Module, models: dict, labels: dict, n: int,
                           test_features: np.ndarray, repeats: int, n_adherence: int) -> dict:
    """For each conditional VAE of ``models`` ({key: model}): its label, ``sampler_metrics`` of its class prior
    (requested classes balanced), the reconstructions of the first ``n`` test drawings and the label adherence of
    the first ``n_adherence`` (each decoded as each other class), test drawings as the model reads them."""
    return {key: {"label": labels[key],
                  **sampler_results(nb, clf, model, [PriorSampler(model)], n, test_features, repeats, n_recon=n),
                  "adherence": label_adherence(clf, model, model_inputs(model, nb.X_test[:n_adherence]),
                                               nb.y_test[:n_adherence])}
            for key, model in models.items()}


def conditional_summary_lines(conditional: dict) -> str:
    """Two sample lines and the label adherence of each model of ``conditional_comparison``."""
    return "\n".join(f"{sample_line(c['label'] + ' · class prior', c['prior'])}\n"
                     f"{sample_line(c['label'] + ' · reconstructions', c['reconstructions'])}\n"
                     f"{c['label']}: label adherence {c['adherence']['adherence']:.1%} ({c['adherence']['n']} "
                     f"relabelled drawings)" for c in conditional.values())


def timed_samples(model: nn.Module, sampler, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """``decode_samples`` of ``n`` drawings with its wall time in seconds."""
    start = time.perf_counter()
    drawings, classes = decode_samples(model, sampler, n, seed)
    return drawings, classes, time.perf_counter() - start
