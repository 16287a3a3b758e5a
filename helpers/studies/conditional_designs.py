"""Conditional designs: every registry entry of family "conditional" (which parts see the class, and whether the
prior has a region per class), trained without the validation part and compared on it (``compare_designs``); the
winner (``choose_design``) trained on the whole training split and evaluated on the test split beside the course
recipe (``conditional_results``)."""

from __future__ import annotations

from torch import nn

from ..data.quickdraw import VALIDATION
from ..evaluation.bounds import vae_bounds, vae_elbo
from ..evaluation.judging import JudgedReference, label_adherence, sampler_metrics
from ..evaluation.reconstruction import encode_all
from ..evaluation.samplers import ClassMixtureSampler, PriorSampler, choose_components
from ..models.vae import model_inputs
from ..results import keyed_by_name, read_metrics
from .ex_post_samplers import VALIDATION_SEED_OFFSET, sampler_results
from .notebook import Notebook
from .registry import EXPERIMENTS, Experiment, on_whole_training_split, run_labelled, runs_of

__all__ = ["compare_designs", "choose_design", "class_mixture_sampler", "designs_summary", "evaluate_conditional",
           "conditional_results", "conditional_summary", "chosen_design", "beyond_section"]


def _design_scores(nb: Notebook, clf: nn.Module, run: Experiment, n: int, val_features: JudgedReference) -> dict:
    model = nb.model(run)
    val_samples = sampler_metrics(clf, model, PriorSampler(model), n, val_features, nb.seed + VALIDATION_SEED_OFFSET)
    return {"label": run.label, "val_neg_elbo": vae_elbo(model, nb.X_val, nb.y_val, seed=nb.seed)["neg_elbo"],
            "val_adherence": label_adherence(clf, model, nb.X_val, nb.y_val)["adherence"],
            "class_accuracy": val_samples["class_accuracy"]}


def compare_designs(nb: Notebook, clf: nn.Module, n: int, val_features: JudgedReference) -> dict:
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


def class_mixture_sampler(nb: Notebook, model: nn.Module, codes_of: str = "train") -> ClassMixtureSampler:
    """A Gaussian mixture per class fitted to a conditional VAE's codes of the whole training split ("train"), or of
    the training split without its validation part ("fit": for a model trained without it, compared on it), its
    number of components chosen on the validation codes (``choose_components``). A VAE of binary drawings encodes
    their fixed binarization (``model_inputs``), as it read them in training."""
    if codes_of not in ("train", "fit"):
        raise ValueError(f'codes_of must be "train" or "fit", got {codes_of!r}')
    X_fit, X_val, X_train = (model_inputs(model, X) for X in (nb.X_fit, nb.X_val, nb.X_train))  # as it reads them
    codes_fit, codes_val = encode_all(model, X_fit, nb.fit.y_train), encode_all(model, X_val, nb.y_val)
    kc, _ = choose_components(codes_fit, codes_val, seed=nb.seed, candidates=nb.mixture_candidates,
                              train_labels=nb.fit.y_train, val_labels=nb.y_val.cpu().numpy())
    if codes_of == "fit":
        return ClassMixtureSampler(codes_fit, nb.fit.y_train, kc, nb.seed)
    return ClassMixtureSampler(encode_all(model, X_train, nb.data.y_train), nb.data.y_train, kc, nb.seed)


def evaluate_conditional(nb: Notebook, clf: nn.Module, run: Experiment, label: str, n: int,
                         test_features: JudgedReference, n_eval: int, iwae_k: int,
                         repeats: int = 1) -> tuple[nn.Module, dict]:
    """A conditional design trained on the whole training split, on the test split: its bounds, label adherence,
    and ``sampler_results`` of its prior and of a mixture per class fitted to its training codes (components
    chosen on the validation codes). Returns (model, results)."""
    model = nb.model(on_whole_training_split(run))
    class_mixture = class_mixture_sampler(nb, model)
    return model, {"label": label, **vae_bounds(model, nb.X_test, nb.y_test, n_iwae=n_eval, k=iwae_k, seed=nb.seed),
                   **label_adherence(clf, model, nb.X_test, nb.y_test),
                   "samples": sampler_results(nb, clf, model, [PriorSampler(model), class_mixture], n, test_features,
                                              repeats)}


def conditional_results(nb: Notebook, clf: nn.Module, chosen: str, n: int, test_features: JudgedReference,
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
    """The ``beyond`` section of the results file (report section 6). ``choices`` and ``samples`` come keyed by the
    VAEs' labels, ``best`` is a label; the section keys them by run name, a VAE's label in its ``unconditional``
    record."""
    vaes = [run for run in runs_of("vae") if run.label in choices]
    return {"validation": {**VALIDATION, "n": len(nb.y_val), "n_fit": len(nb.fit.y_train)},
            "unconditional": keyed_by_name(choices, vaes), "best_unconditional": run_labelled(best, vaes).name,
            "samples": {run.name: samples[run.label] for run in vaes}, "candidates": candidates,
            "chosen": chosen, "conditional": conditional, "n_samples": n_samples, "n_draws": n_draws,
            "reference_real": reference, "judge_seed": judge_seed}
