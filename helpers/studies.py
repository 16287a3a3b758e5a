"""The studies of notebooks 09 and 10 ("Beyond, round 2"), as named steps.

1. Rate against distortion (``rate_distortion``): the CNN-CNN VAE at several KL weights, each point measured on
   the validation split: the KL (rate), the reconstruction term (distortion), the 5-NN accuracy of its codes and
   the FID of its mixture samples against the validation drawings.
2. Learned priors (``compare_priors``, ``choose_prior``): every registry entry of family "prior", trained without
   the validation part and compared by its validation IWAE bound; the winner is trained on the whole training
   split and set beside the N(0, I) VAE with an ex-post mixture (``prior_table``).
3. The autoregressive decoder (``timed_samples``): samples drawn pixel by pixel, with their wall time.
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .beyond import VALIDATION_SEED_OFFSET, fit_samplers, sampler_results, samples_summary
from .bounds import iwae_bound, vae_bounds, vae_elbo
from .experiments import Experiment, runs_of
from .inference import model_inputs
from .judging import label_adherence, sample_line, sampler_metrics
from .latent import knn_accuracy
from .notebook import Notebook
from .reconstruction import encode_all
from .samplers import MixtureSampler, PriorSampler, choose_components, decode_samples

__all__ = ["rate_distortion", "rate_distortion_summary", "rate_distortion_figure", "compare_priors", "choose_prior",
           "priors_summary", "model_bounds", "prior_table", "prior_summary", "bounds_summary", "decoder_comparison",
           "conditional_comparison", "conditional_summary_lines", "timed_samples"]


def rate_distortion(nb: Notebook, clf: nn.Module, runs: list[Experiment], n: int, val_features: np.ndarray,
                    repeats: int = 1, iwae_k: int = 100, n_show: int = 10) -> tuple[dict, dict]:
    """({run name: one point of the rate-distortion picture}, {run name: ``n_show`` mixture samples}). Each point
    is measured on the validation split: ``rate`` (KL to the prior, nats per image), ``distortion`` (the
    reconstruction term, -E log p(x|z)), the ELBO at beta = 1, the IWAE bound with ``iwae_k`` samples, the active
    units; ``knn_accuracy`` (5 nearest training codes vote the class of a validation code); and FID, KID and class
    histogram of ``n`` samples (``repeats`` draws, validation seeds) from a Gaussian mixture fitted to the training
    codes, its size chosen on the validation codes."""
    y_val = nb.y_val.cpu().numpy()
    points, grids = {}, {}
    for run in runs:
        model = nb.model(run)
        bounds = vae_elbo(model, nb.X_val, seed=nb.seed)
        codes_fit, codes_val = encode_all(model, nb.X_fit), encode_all(model, nb.X_val)
        k, _ = choose_components(codes_fit, codes_val, seed=nb.seed)
        mixture = MixtureSampler(codes_fit, k, nb.seed)
        samples = sampler_metrics(clf, model, mixture, n, val_features, nb.seed + VALIDATION_SEED_OFFSET, repeats)
        grids[run.name] = decode_samples(model, mixture, n_show, nb.seed + VALIDATION_SEED_OFFSET)[0]
        points[run.name] = {
            "label": run.label, "beta": model.beta, "kl_warmup": model.kl_warmup, "rate": bounds["kl"],
            "distortion": bounds["rec"], "neg_elbo": bounds["neg_elbo"], "active_units": bounds["active_units"],
            "iwae": iwae_bound(model, nb.X_val, k=iwae_k, seed=nb.seed), "iwae_k": iwae_k,
            "knn_accuracy": knn_accuracy(codes_fit, nb.fit.y_train, codes_val, y_val, k=5),
            "mixture_components": k, "samples": samples}
    return points, grids


def rate_distortion_summary(points: dict) -> str:
    """One line per point of ``rate_distortion``."""
    return "\n".join(f"{p['label']:24s} rate {p['rate']:6.1f}  distortion {p['distortion']:6.1f}  -ELBO "
                     f"{p['neg_elbo']:6.1f}  IWAE {p['iwae']:6.1f}  active {p['active_units']:2d}  5-NN "
                     f"{p['knn_accuracy']:.1%}  mixture FID {p['samples']['fid']:.1f} (mode "
                     f"{p['samples']['mode']['fid']:.1f})" for p in points.values())


def compare_priors(nb: Notebook, iwae_k: int = 100) -> dict:
    """Every learned prior of the registry (family "prior"), trained without the validation part: {run name:
    its label, validation -ELBO and validation IWAE bound (``iwae_k`` samples), active units}."""
    out = {}
    for run in runs_of("prior"):
        model = nb.model(run)
        elbo = vae_elbo(model, nb.X_val, seed=nb.seed)
        out[run.name] = {"label": run.label, "val_neg_elbo": elbo["neg_elbo"], "val_kl": elbo["kl"],
                         "active_units": elbo["active_units"],
                         "val_iwae": iwae_bound(model, nb.X_val, k=iwae_k, seed=nb.seed), "iwae_k": iwae_k}
    return out


def choose_prior(candidates: dict) -> str:
    """The candidate of ``compare_priors`` with the lowest validation IWAE bound (the best likelihood)."""
    return min(candidates, key=lambda name: candidates[name]["val_iwae"])


def priors_summary(candidates: dict, chosen: str) -> str:
    return "\n".join(f"{c['label']:36s} validation -ELBO {c['val_neg_elbo']:.2f}  IWAE(k={c['iwae_k']}) "
                     f"{c['val_iwae']:.2f}  KL {c['val_kl']:.1f}  active {c['active_units']}"
                     + ("   <- chosen" if name == chosen else "") for name, c in candidates.items())


def model_bounds(nb: Notebook, model: nn.Module, n_iwae: int, iwae_k: int, samplers: list | None = None) -> dict:
    """``vae_bounds`` on the test split and, for each sampler of ``samplers`` that has a density (``log_prob``),
    the IWAE bound of the same decoder with that density as its prior, under "iwae_with": the likelihood of the
    model a sampler's drawings come from (an ex-post mixture makes a new generative model)."""
    bounds = vae_bounds(model, nb.X_test, nb.y_test, n_iwae=n_iwae, k=iwae_k, seed=nb.seed)
    bounds["iwae_with"] = {s.name: iwae_bound(model, nb.X_test[:n_iwae], None, k=iwae_k, seed=nb.seed,
                                              log_prior=s.log_prob)
                           for s in samplers or [] if hasattr(s, "log_prob")}
    return bounds


def prior_table(nb: Notebook, clf: nn.Module, models: dict, labels: dict, n: int, test_features: np.ndarray,
                repeats: int, n_iwae: int, iwae_k: int) -> tuple[dict, dict]:
    """({key: {"label", "choice": mixture sizes chosen on the validation codes, "bounds": ``model_bounds`` with the
    mixture's density, "samples": {sampler name: metrics}}}, {key: samplers}) of each unconditional VAE of
    ``models`` ({key: model}, named by ``labels``) with its own prior and the ex-post mixtures of notebook 06
    (``fit_samplers``)."""
    out, all_samplers = {}, {}
    for key, model in models.items():
        choice, samplers = fit_samplers(nb, model)
        all_samplers[key] = samplers
        out[key] = {"label": labels[key], "choice": choice,
                    "bounds": model_bounds(nb, model, n_iwae, iwae_k, samplers[1:2]),
                    "samples": {s.name: sampler_metrics(clf, model, s, n, test_features, nb.seed, repeats)
                                for s in samplers}}
    return out, all_samplers


def prior_summary(table: dict, reference: dict) -> str:
    """The bounds of each model of ``prior_table`` (with its own prior, and with the ex-post mixture as its prior),
    then the sample table of all of them after the real drawings' ``reference``."""
    lines = []
    for t in table.values():
        b = t["bounds"]
        with_mixture = "".join(f"; with the {name} as prior {v:.2f}" for name, v in b["iwae_with"].items())
        lines.append(f"{t['label']}: test -ELBO {b['neg_elbo']:.2f}, IWAE {b['iwae']:.2f}{with_mixture}; "
                     f"active units {b['active_units']}/{b['latent_dim']}")
    return "\n".join([*lines, samples_summary({t["label"]: t["samples"] for t in table.values()}, reference)])


def rate_distortion_figure(points: dict, title: str = "Rate against distortion (validation split)"):
    """Each point of ``rate_distortion`` at (rate, distortion), labelled with its KL weight, the FID of its
    mixture samples and the 5-NN accuracy of its codes; the dotted lines are constant -ELBO (rate + distortion)."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    rates = np.array([p["rate"] for p in points.values()])
    dists = np.array([p["distortion"] for p in points.values()])
    best = float((rates + dists).min())
    xs = np.linspace(0, rates.max() * 1.15, 2)
    for offset in (0, 10, 20):
        ax.plot(xs, best + offset - xs, ":", color="0.6", lw=1)
    for p in points.values():
        warm = bool(p["kl_warmup"])
        ax.scatter(p["rate"], p["distortion"], s=50, marker="s" if warm else "o", color="C1" if warm else "C0",
                   zorder=3)
        ax.annotate(f"β = {p['beta']:g}{', warm-up' if warm else ''}\nFID {p['samples']['fid']:.0f} · "
                    f"5-NN {p['knn_accuracy']:.0%}", (p["rate"], p["distortion"]), textcoords="offset points",
                    xytext=(8, -22 if warm else 6), fontsize=8)
    pad = 0.1 * (dists.max() - dists.min() + 1)
    ax.set_xlim(0, rates.max() * 1.3)
    ax.set_ylim(dists.min() - pad, dists.max() + 2 * pad)
    ax.set_xlabel("rate: KL(q(z|x) || p(z)), nats per drawing")
    ax.set_ylabel("distortion: −E log p(x|z), nats per drawing")
    ax.set_title(title)
    fig.tight_layout()
    return fig


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
