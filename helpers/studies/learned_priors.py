"""Priors learned with the VAE against N(0, I) with an ex-post mixture: every registry entry of family "prior",
trained without the validation part, compared by its validation IWAE bound (``compare_priors``, ``choose_prior``);
the winner, trained on the whole training split, beside the N(0, I) VAE and its ex-post mixtures on the test split
(``prior_table``), with the bound of each decoder under each density (``model_bounds``)."""

from __future__ import annotations

from torch import nn

from ..evaluation.bounds import iwae_bound, vae_bounds, vae_elbo
from ..evaluation.judging import JudgedReference, sampler_metrics
from .ex_post_samplers import fit_samplers, samples_summary
from .notebook import Notebook
from .registry import runs_of

__all__ = ["compare_priors", "choose_prior", "priors_summary", "model_bounds", "prior_table", "prior_summary"]


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


def prior_table(nb: Notebook, clf: nn.Module, models: dict, labels: dict, n: int, test_features: JudgedReference,
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
