"""Rate against distortion: the CNN-CNN VAE at several KL weights (beta), each point measured on the validation
split: the KL (rate), the reconstruction term (distortion), the bounds, the 5-NN accuracy of its codes and the FID of
its ex-post mixture samples against the validation drawings (``rate_distortion``)."""

from __future__ import annotations

from torch import nn

from ..evaluation.bounds import iwae_bound, vae_elbo
from ..evaluation.judging import JudgedReference, sampler_metrics
from ..evaluation.latent import knn_accuracy
from ..evaluation.reconstruction import encode_all
from ..evaluation.samplers import MixtureSampler, choose_components, decode_samples
from .ex_post_samplers import VALIDATION_SEED_OFFSET
from .notebook import Notebook
from .registry import Experiment

__all__ = ["rate_distortion", "rate_distortion_summary"]


def rate_distortion(nb: Notebook, clf: nn.Module, runs: list[Experiment], n: int, val_features: JudgedReference,
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
        k, _ = choose_components(codes_fit, codes_val, seed=nb.seed, candidates=nb.mixture_candidates)
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
