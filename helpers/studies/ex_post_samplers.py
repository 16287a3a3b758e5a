"""Ex-post samplers of the unconditional VAEs: besides the prior, Gaussian mixtures fitted to the codes of the
training drawings (one over all codes, one per class), their sizes chosen on the validation codes (``fit_samplers``),
scored on the test split against the decoded test drawings (``sampler_results``).

Results come back as nested data, model then sampler (``{"CNN-CNN VAE": {"prior": {...}, "mixture": {...}}}``, by
display label; the results file keys them by run name, ``helpers.keyed_by_name``)."""

from __future__ import annotations

from torch import nn

from ..data.quickdraw import VALIDATION
from ..evaluation.bounds import vae_elbo
from ..evaluation.judging import JudgedReference, reconstruction_metrics, sample_table, sampler_metrics
from ..evaluation.reconstruction import encode_all
from ..evaluation.samplers import (
    ClassMixtureSampler,
    MixtureSampler,
    PriorSampler,
    choose_components,
    class_rows,
    decode_samples,
)
from ..models.vae import model_inputs
from .notebook import Notebook

__all__ = ["VALIDATION_SEED_OFFSET", "fit_samplers", "choices_summary", "sampler_results", "samples_summary",
           "validation_summary", "sampler_grids"]


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
    k, scores = choose_components(codes_fit, codes_val, seed=nb.seed, candidates=nb.mixture_candidates)
    kc, class_scores = choose_components(codes_fit, codes_val, seed=nb.seed, candidates=nb.mixture_candidates,
                                         train_labels=y_fit, val_labels=y_val)
    choice = {"val_neg_elbo": vae_elbo(vae, X_val, seed=nb.seed)["neg_elbo"], "mixture_components": k,
              "val_loglik": scores, "class_mixture_components": kc, "val_loglik_per_class": class_scores}
    codes = encode_all(vae, X_train)
    return choice, [PriorSampler(vae), MixtureSampler(codes, k, nb.seed),
                    ClassMixtureSampler(codes, nb.data.y_train, kc, nb.seed)]


def choices_summary(choices: dict) -> str:
    """One line per VAE: its validation -ELBO and the mixture sizes chosen on the validation codes."""
    return "\n".join(f"{label}: validation -ELBO {c['val_neg_elbo']:.1f}; mixture of {c['mixture_components']} "
                     f"components, {c['class_mixture_components']} per class (validation log-likelihood "
                     f"{c['val_loglik'][c['mixture_components']]:.1f} and "
                     f"{c['val_loglik_per_class'][c['class_mixture_components']]:.1f} nats per code)"
                     for label, c in choices.items())


def sampler_results(nb: Notebook, clf: nn.Module, model: nn.Module, samplers: list, n: int,
                    test_features: JudgedReference, repeats: int = 1, n_recon: int | None = None) -> dict:
    """{sampler name: FID, KID, Inception-style score and class accuracy of ``n`` decoded samples, over ``repeats``
    draws, and of the same samples decoded to each pixel's mode}, and under "reconstructions" the same numbers
    for the decoded test drawings (a reference for this decoder's samplers, not a bound): all of them, or the first
    ``n_recon``, as the model reads them (``model_inputs``)."""
    out = {s.name: sampler_metrics(clf, model, s, n, test_features, nb.seed, repeats) for s in samplers}
    X, y = nb.X_test[:n_recon], nb.y_test[:n_recon]
    out["reconstructions"] = reconstruction_metrics(clf, model, model_inputs(model, X), y, test_features)
    return out


def samples_summary(results: dict, reference: dict | None = None) -> str:
    """A sample table (``helpers.sample_table``) of every model and sampler of ``results`` ({model: {sampler:
    metrics}}), after the real drawings' ``reference`` row when given."""
    rows = {} if reference is None else {reference["sampler"]: reference}
    rows.update({f"{label} · {m['sampler']}": m for label, by_sampler in results.items() for m in by_sampler.values()})
    return sample_table(rows)


def validation_summary(nb: Notebook) -> str:
    """How the validation split was carved out of the training split."""
    return (f"validation split: {len(nb.y_val)} of the {len(nb.data.y_train)} training drawings "
            f"({VALIDATION['fraction']:.0%} of each class, seed {VALIDATION['seed']}); models chosen on it are "
            f"trained on the other {len(nb.fit.y_train)}")


def sampler_grids(nb: Notebook, model: nn.Module, samplers: list, n_per_class: int = 8) -> dict:
    """{sampler label: n_per_class decoded samples of each class, class by class} for a figure."""
    rows = class_rows(n_per_class)
    return {s.label: decode_samples(model, s, len(rows), nb.seed, classes=rows)[0] for s in samplers}
