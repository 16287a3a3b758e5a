"""The experiments of notebook 06, "Beyond the course recipe", as named steps.

1. Samplers for the unconditional VAEs: mixtures fitted to the codes, their sizes chosen on the validation
   split (``fit_samplers``), scored on the test split (``sampler_results``).
2. Conditional designs, every registry entry of family "conditional": trained without the validation part,
   compared on it (``compare_designs``), the winner (``choose_design``) trained on the whole training split
   and evaluated on the test split beside the course recipe (``evaluate_conditional``).

Results come back as nested data, model then sampler (``{"CNN-CNN VAE": {"prior": {...}, "mixture": {...}}}``),
the layout of the ``beyond`` section of results/metrics.json (helpers.results).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .bounds import vae_bounds, vae_elbo
from .data import VALIDATION
from .experiments import EXPERIMENTS, Experiment, on_whole_training_split, runs_of
from .inference import model_inputs
from .judging import label_adherence, reconstruction_metrics, relabel_rows, sample_table, sampler_metrics
from .notebook import Notebook
from .reconstruction import encode_all
from .results import read_metrics
from .samplers import (
    ClassMixtureSampler,
    MixtureSampler,
    PriorSampler,
    choose_components,
    class_rows,
    conditional_samples,
    decode_samples,
)

__all__ = [
    "VALIDATION_SEED_OFFSET", "fit_samplers", "choose_samplers", "choices_summary", "sampler_results",
    "score_samplers", "samples_summary", "validation_summary", "lowest_validation_elbo", "sampler_grids",
    "compare_designs", "choose_design", "designs_summary", "evaluate_conditional", "conditional_results",
    "conditional_summary", "conditional_grids", "relabel_figure_rows", "prior_confusions", "chosen_design",
    "beyond_section",
]

# Validation samples are drawn with seed + 1, so that no choice is made on the draws the test split reports.
VALIDATION_SEED_OFFSET = 1


def fit_samplers(nb: Notebook, vae: nn.Module) -> tuple[dict, list]:
    """The numbers of mixture components chosen on the validation codes (one mixture over all codes, and one
    per class), and the three samplers of ``vae``: its prior, and both mixtures fitted to the codes of the whole
    training split (a VAE of binary drawings encodes their fixed binarization, ``model_inputs``). Returns (the
    choice's record, [prior, mixture, class mixture])."""
    X_fit, X_val, X_train = (model_inputs(vae, X) for X in (nb.X_fit, nb.X_val, nb.X_train))
    codes_fit, codes_val = encode_all(vae, X_fit), encode_all(vae, X_val)
    y_fit, y_val = nb.fit.y_train, nb.y_val.cpu().numpy()
    k, scores = choose_components(codes_fit, codes_val, seed=nb.seed)
    kc, class_scores = choose_components(codes_fit, codes_val, seed=nb.seed, train_labels=y_fit, val_labels=y_val)
    choice = {"val_neg_elbo": vae_elbo(vae, X_val, seed=nb.seed)["neg_elbo"], "mixture_components": k,
              "val_loglik": scores, "class_mixture_components": kc, "val_loglik_per_class": class_scores}
    codes = encode_all(vae, X_train)
    return choice, [PriorSampler(vae), MixtureSampler(codes, k, nb.seed),
                    ClassMixtureSampler(codes, nb.data.y_train, kc, nb.seed)]


def choose_samplers(nb: Notebook, vaes: dict) -> tuple[dict, dict]:
    """``fit_samplers`` of every VAE of ``vaes`` ({label: model}): ({label: choice}, {label: samplers})."""
    fitted = {label: fit_samplers(nb, vae) for label, vae in vaes.items()}
    return {label: f[0] for label, f in fitted.items()}, {label: f[1] for label, f in fitted.items()}


def choices_summary(choices: dict) -> str:
    """One line per VAE: its validation -ELBO and the mixture sizes chosen on the validation codes."""
    return "\n".join(f"{label}: validation -ELBO {c['val_neg_elbo']:.1f}; mixture of {c['mixture_components']} "
                     f"components, {c['class_mixture_components']} per class (validation log-likelihood "
                     f"{c['val_loglik'][c['mixture_components']]:.1f} and "
                     f"{c['val_loglik_per_class'][c['class_mixture_components']]:.1f} nats per code)"
                     for label, c in choices.items())


def score_samplers(nb: Notebook, clf: nn.Module, vaes: dict, samplers: dict, n: int, test_features: np.ndarray,
                   repeats: int = 1) -> dict:
    """``sampler_results`` of every VAE of ``vaes`` with its samplers: {label: {sampler: metrics}}."""
    return {label: sampler_results(nb, clf, vae, samplers[label], n, test_features, repeats)
            for label, vae in vaes.items()}


def samples_summary(results: dict, reference: dict | None = None) -> str:
    """A sample table (``helpers.sample_table``) of every model and sampler of ``results`` ({model: {sampler:
    metrics}}), after the real drawings' ``reference`` row when given."""
    rows = {} if reference is None else {reference["sampler"]: reference}
    rows.update({f"{label} · {m['sampler']}": m for label, by_sampler in results.items() for m in by_sampler.values()})
    return sample_table(rows)


def sampler_results(nb: Notebook, clf: nn.Module, model: nn.Module, samplers: list, n: int,
                    test_features: np.ndarray, repeats: int = 1, n_recon: int | None = None) -> dict:
    """{sampler name: FID, KID, Inception-style score and class accuracy of ``n`` decoded samples, over ``repeats``
    draws, and of the same samples decoded to each pixel's mode}, and under "reconstructions" the same numbers
    for the decoded test drawings (the bound no sampler of this decoder passes): all of them, or the first
    ``n_recon``, as the model reads them (``model_inputs``)."""
    out = {s.name: sampler_metrics(clf, model, s, n, test_features, nb.seed, repeats) for s in samplers}
    X, y = nb.X_test[:n_recon], nb.y_test[:n_recon]
    out["reconstructions"] = reconstruction_metrics(clf, model, model_inputs(model, X), y, test_features)
    return out


def validation_summary(nb: Notebook) -> str:
    """How the validation split was carved out of the training split."""
    return (f"validation split: {len(nb.y_val)} of the {len(nb.data.y_train)} training drawings "
            f"({VALIDATION['fraction']:.0%} of each class, seed {VALIDATION['seed']}); models chosen on it are "
            f"trained on the other {len(nb.fit.y_train)}")


def lowest_validation_elbo(choices: dict) -> str:
    """The VAE (a key of ``choices``, from ``fit_samplers``) with the lowest validation negative ELBO."""
    return min(choices, key=lambda label: choices[label]["val_neg_elbo"])


def sampler_grids(nb: Notebook, model: nn.Module, samplers: list, n_per_class: int = 8) -> dict:
    """{sampler label: n_per_class decoded samples of each class, class by class} for a figure."""
    rows = class_rows(n_per_class)
    return {s.label: decode_samples(model, s, len(rows), nb.seed, classes=rows)[0] for s in samplers}


def _design_scores(nb: Notebook, clf: nn.Module, run: Experiment, n: int, val_features: np.ndarray) -> dict:
    model = nb.model(run)
    val_samples = sampler_metrics(clf, model, PriorSampler(model), n, val_features, nb.seed + VALIDATION_SEED_OFFSET)
    return {"label": run.label, "val_neg_elbo": vae_elbo(model, nb.X_val, nb.y_val, seed=nb.seed)["neg_elbo"],
            "val_adherence": label_adherence(clf, model, nb.X_val, nb.y_val)["adherence"],
            "class_accuracy": val_samples["class_accuracy"]}


def compare_designs(nb: Notebook, clf: nn.Module, n: int, val_features: np.ndarray) -> dict:
    """Every conditional design of the registry (family "conditional"), trained without the validation part,
    on the validation split: {name: label, -ELBO, label adherence, class accuracy of ``n`` prior samples}."""
    return {run.name: _design_scores(nb, clf, run, n, val_features) for run in runs_of("conditional")}


def choose_design(candidates: dict) -> str:
    """The design with the highest mean of validation label adherence and prior samples' class accuracy: a
    conditional VAE should follow a changed label and draw the class it is asked for, both."""
    return max(candidates, key=lambda name: candidates[name]["val_adherence"] + candidates[name]["class_accuracy"])


def designs_summary(candidates: dict, chosen: str) -> str:
    """The validation numbers of each design, one line each, and which was chosen."""
    lines = [f"{c['label']:38s} validation: -ELBO {c['val_neg_elbo']:.1f}, label adherence {c['val_adherence']:.1%}; "
             f"prior samples of the requested class {c['class_accuracy']:.1%}" for c in candidates.values()]
    return "\n".join([*lines, f"chosen: {candidates[chosen]['label']}"])


def evaluate_conditional(nb: Notebook, clf: nn.Module, run: Experiment, label: str, n: int,
                         test_features: np.ndarray, n_eval: int, iwae_k: int,
                         repeats: int = 1) -> tuple[nn.Module, dict]:
    """A conditional design trained on the whole training split, on the test split: its bounds, label adherence,
    and ``sampler_results`` of its prior and of a mixture per class fitted to its training codes (components
    chosen on the validation codes). Returns (model, results)."""
    model = nb.model(on_whole_training_split(run))
    codes_fit, codes_val = encode_all(model, nb.X_fit, nb.fit.y_train), encode_all(model, nb.X_val, nb.y_val)
    kc, _ = choose_components(codes_fit, codes_val, seed=nb.seed, train_labels=nb.fit.y_train,
                              val_labels=nb.y_val.cpu().numpy())
    class_mixture = ClassMixtureSampler(encode_all(model, nb.X_train, nb.data.y_train), nb.data.y_train, kc, nb.seed)
    return model, {"label": label, **vae_bounds(model, nb.X_test, nb.y_test, n_iwae=n_eval, k=iwae_k, seed=nb.seed),
                   **label_adherence(clf, model, nb.X_test, nb.y_test),
                   "samples": sampler_results(nb, clf, model, [PriorSampler(model), class_mixture], n, test_features,
                                              repeats)}


def conditional_results(nb: Notebook, clf: nn.Module, chosen: str, n: int, test_features: np.ndarray,
                        n_eval: int, iwae_k: int, repeats: int = 1) -> tuple[dict, dict]:
    """``evaluate_conditional`` of the course recipe and of the chosen design (the same model when the recipe
    was chosen): ({"course recipe": model, "chosen": model}, {"course recipe": results, "chosen": results})."""
    chosen_run = EXPERIMENTS[chosen]
    finals = {"course recipe": (EXPERIMENTS["cvae_cnn_minus_val"], "course recipe"),
              "chosen": (chosen_run, f"{chosen_run.label} (chosen)")}
    models, results = {}, {}
    for key, (run, label) in finals.items():
        models[key], results[key] = evaluate_conditional(nb, clf, run, label, n, test_features, n_eval, iwae_k,
                                                         repeats)
    return models, results


def conditional_summary(conditional: dict) -> str:
    """The test numbers of each final conditional VAE, one line each."""
    return "\n".join(f"{c['label']}: test -ELBO {c['neg_elbo']:.1f}, IWAE {c['iwae']:.1f}; label adherence "
                     f"{c['adherence']:.1%}; prior samples of the requested class "
                     f"{c['samples']['prior']['class_accuracy']:.1%}" for c in conditional.values())


def conditional_grids(models: dict, conditional: dict, seed: int, n_per_class: int = 10) -> dict:
    """{label: n_per_class prior samples of each class, class by class} of each final conditional VAE."""
    return {conditional[key]["label"]: conditional_samples(model, n_per_class, seed)[0]
            for key, model in models.items()}


def relabel_figure_rows(models: dict, conditional: dict, X: torch.Tensor, y: torch.Tensor) -> dict:
    """{label: ``relabel_rows`` of drawings X (classes y)} of each final conditional VAE."""
    return {conditional[key]["label"]: relabel_rows(model, X, y) for key, model in models.items()}


def prior_confusions(conditional: dict) -> dict:
    """{label: the judge's confusion matrix of the prior samples} of each final conditional VAE."""
    return {c["label"]: c["samples"]["prior"]["confusion"] for c in conditional.values()}


def chosen_design(results_path) -> str:
    """The registry name of the conditional design that notebook 06 chose on the validation split, from the
    results file; a clear error when notebook 06 has not run yet."""
    beyond = read_metrics(results_path).get("beyond", {})
    if "chosen" not in beyond:
        raise RuntimeError(f"{results_path}: no conditional design chosen yet (no beyond.chosen); run notebook 06 "
                           f"with the same results_path first")
    return beyond["chosen"]


def beyond_section(nb: Notebook, choices: dict, best: str, samples: dict, candidates: dict, chosen: str,
                   conditional: dict, n_samples: int, reference: dict, judge_seed: int, n_draws: int) -> dict:
    """The ``beyond`` section of the results file (report section 6)."""
    return {"validation": {**VALIDATION, "n": len(nb.y_val), "n_fit": len(nb.fit.y_train)},
            "unconditional": choices, "best_unconditional": best, "samples": samples, "candidates": candidates,
            "chosen": chosen, "conditional": conditional, "n_samples": n_samples, "n_draws": n_draws,
            "reference_real": reference, "judge_seed": judge_seed}
