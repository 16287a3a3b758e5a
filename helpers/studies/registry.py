"""The registry of the report's runs: every model the notebooks train, with its label, model spec and
training budgets. The notebooks, the runner's quick and tiny runs, the report's tables and the tests read it,
so a model is trained with the same config wherever it is asked for (notebook 05 finds in the cache exactly the
models notebooks 02-04 trained). A new model is its class in helpers/models/, one line in helpers/models/build.py,
one entry in ``EXPERIMENTS`` and, if it has figures of its own, one notebook (README: "Adding a model").
Plain data: reading it needs no torch (the report reads the labels).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["BUDGETS", "FREE_BITS", "free_bits_candidates", "Experiment", "EXPERIMENTS", "runs_of", "run_named",
           "run_labelled", "conditional", "on_whole_training_split"]

BUDGETS = ("full", "quick", "tiny")  # the report's budget, a demo in minutes (QUICK=1), the tests' seconds
FAMILIES = ("autoencoder", "vae", "classifier", "conditional", "prior", "study")
TRAIN_ON = ("train", "train_minus_val")  # the whole training split, or the split without its validation part


@dataclass(frozen=True)
class Experiment:
    """One run of the report.

    ``family`` decides where it appears: "autoencoder" (the autoencoder table, notebook 05's latent spaces),
    "vae" (notebook 04's VAEs and notebook 05), "classifier" (the evaluation classifier, the judge), "conditional"
    (the candidate conditional designs of notebook 06, chosen between on the validation split), "prior" (the
    candidate learned priors of notebook 09, chosen between on the validation split) or "study" (runs of a study of
    one setting, trained by the notebook that studies it: ``nb.train(name)``).
    ``train_on`` is "train" (the whole training split) or "train_minus_val" (the training split without its
    validation part, ``helpers.split_validation``), for the models that choices are made between; their names
    end in "_minus_val", and ``on_whole_training_split`` gives the final run without it.
    ``spec`` is the model: ``{"kind": <a key of helpers.models.build.MODEL_KINDS>, **arguments of its class}``.
    ``full`` holds the report's TrainConfig fields (``steps`` or ``epochs``, ``batch_size``, ``lr``);
    ``quick`` and ``tiny`` the fields that change for ``QUICK=1`` and for the notebook tests."""

    name: str  # cache folder prefix in runs/models/, and metrics section of an autoencoder
    label: str  # how tables and figures name it
    family: str
    spec: dict
    full: dict
    quick: dict = field(default_factory=dict)
    tiny: dict = field(default_factory=dict)
    train_on: str = "train"

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family must be one of {FAMILIES}, got {self.family!r}")
        if self.train_on not in TRAIN_ON:
            raise ValueError(f"{self.name}: train_on must be one of {TRAIN_ON}, got {self.train_on!r}")
        if (self.train_on == "train_minus_val") != self.name.endswith("_minus_val"):
            raise ValueError(f"{self.name}: a run trained without the validation part is named <final name>_minus_val")

    def config(self, budget: str = "full", seed: int = 0, precision: str = "fp32"):
        """The TrainConfig of this run at ``budget`` ("full", "quick" or "tiny") and ``precision``."""
        from ..training.config import TrainConfig  # here, so that the registry (read by the report) needs no torch

        if budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
        changes = {"full": {}, "quick": self.quick, "tiny": self.tiny}[budget]
        return TrainConfig(**{**self.full, **changes}, seed=seed, precision=precision)

    def settings(self, budget: str = "full", seed: int = 0, precision: str = "fp32") -> dict:
        """The model's arguments and the training budget, flat, for results/metrics.json; ``length`` says the
        budget's length in words ("50 epochs", "8 steps"), whichever of the two it is given in."""
        cfg = self.config(budget, seed, precision)
        budget_keys = ("steps", "epochs", "batch_size", "lr", "seed", "precision", "batches")
        length = f"{cfg.epochs} epochs" if cfg.epochs is not None else f"{cfg.steps:,} steps"
        return {**{k: v for k, v in self.spec.items() if k != "kind"},
                **{k: getattr(cfg, k) for k in budget_keys if getattr(cfg, k) is not None}, "length": length}


def _vae_spec(encoder: str, n_classes: int = 0) -> dict:
    return {"kind": "vae", "encoder": encoder, "latent_dim": 32, "n_classes": n_classes, "beta": 1.0}


# The KL weights of the rate-distortion sweep, and whether that point has the KL warm-up (helpers.vae_loss).
BETA_SWEEP = ((0.25, False), (0.5, False), (1.0, False), (2.0, False), (4.0, False), (4.0, True))
# Free bits, nats per latent dimension, of the free-bits study (0: the plain ELBO, for comparison).
FREE_BITS = (0.0, 0.5, 1.0, 2.0)
_PRIOR_LABELS = {"vamp": "VampPrior", "mog": "mixture-of-Gaussians prior"}


def _tag(beta: float) -> str:
    """A KL weight as it appears in a run's name: 0.25 -> "0p25", 4.0 -> "4"."""
    return f"{beta:g}".replace(".", "p")


# The course report's hyperparameters; quick and tiny only shorten the runs. The quick ones are a demo that every
# notebook runs and draws its figures in a few minutes, not models: 30 steps of an autoencoder, 8 of a VAE (1,024
# drawings), each with a held-out loss every few steps instead of the default 20 points per run.
_AE_BUDGET = {"quick": {"steps": 30, "eval_every": 10}, "tiny": {"steps": 12, "batch_size": 32}}
_VAE_BUDGET = {"quick": {"epochs": None, "steps": 8, "eval_every": 4, "log_every": 2},
               "tiny": {"epochs": 1, "batch_size": 64}}

# The VQ-VAE of notebook 11 (helpers.models.vqvae): a 7x7 grid of 64 learned codes of 32 dimensions, convolutions of
# 64 channels, and a causal transformer over the grid given the class (3 blocks of width 96, dropout 0.2). Its two
# stages share one budget of 120 epochs: the autoencoder the first 30% (36 epochs), the prior over its codes the rest
# (a trial run of 100 epochs, 40% autoencoder, left the prior's held-out NLL still falling, equal to its training NLL).
_VQVAE_SPEC = {"kind": "vqvae", "n_codes": 64, "code_dim": 32, "channels": 64, "n_classes": 5, "prior_dropout": 0.2,
               "autoencoder_fraction": 0.3}
_VQVAE_BUDGET = {"quick": {"epochs": None, "steps": 10, "eval_every": 5, "log_every": 2},
                 "tiny": {"epochs": None, "steps": 5, "batch_size": 32}}

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("lstm_ae", "LSTM AE", "autoencoder", {"kind": "lstm_ae"},
               {"steps": 10_000, "batch_size": 256, "lr": 1e-3}, **_AE_BUDGET),
    Experiment("cnn_ae", "CNN AE", "autoencoder", {"kind": "cnn_ae"},
               {"steps": 1_000, "batch_size": 256, "lr": 1e-3}, **_AE_BUDGET),
    Experiment("vae_gru", "GRU-CNN VAE", "vae", _vae_spec("gru"),
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET),
    Experiment("vae_cnn", "CNN-CNN VAE", "vae", _vae_spec("cnn"),
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET),
    Experiment("classifier", "evaluation classifier", "classifier", {"kind": "classifier"},
               {"epochs": 15, "batch_size": 128, "lr": 1e-3}, quick={"epochs": 1}, tiny={"epochs": 1}),
    # Conditional designs that notebook 06 chooses between on the validation split: the course recipe (class
    # into encoder and decoder, prior N(0, I)) and two with a class prior N(m_c, I), same budget and size.
    Experiment("cvae_cnn_minus_val", "course recipe", "conditional", _vae_spec("cnn", 5),
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val"),
    Experiment("cvae_class_prior_decoder_minus_val", "class prior, class into the decoder", "conditional",
               {**_vae_spec("cnn", 5), "class_input": "decoder", "class_prior": True},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val"),
    Experiment("cvae_class_prior_minus_val", "class prior only", "conditional",
               {**_vae_spec("cnn", 5), "class_input": "none", "class_prior": True},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val"),
    # The course recipe's LSTM AE with each batch drawn anew (i.i.d.) instead of cut from epoch permutations.
    Experiment("lstm_ae_iid_batches", "LSTM AE, i.i.d. batches", "study", {"kind": "lstm_ae"},
               {"steps": 10_000, "batch_size": 256, "lr": 1e-3, "batches": "iid"}, **_AE_BUDGET),
    # The CNN-CNN VAE on a likelihood that is one: binary drawings, drawn anew from the grey pixels in every
    # batch (dynamic binarization, Burda et al., 2016), so that its IWAE bound can be set beside binarized MNIST.
    Experiment("vae_cnn_binarized", "CNN-CNN VAE, binarized drawings", "study", {**_vae_spec("cnn"), "binarize": True},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET),
    # The CNN-CNN VAE with its KL weight raised from 0 to 1 over the first fifth of training (helpers.vae_loss).
    Experiment("vae_cnn_kl_warmup", "CNN-CNN VAE, KL warm-up", "study", {**_vae_spec("cnn"), "kl_warmup": 0.2},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET),
    # The CNN-CNN VAE at five KL weights, and at the largest with the KL warm-up, on the training split without its
    # validation part: the rate-distortion study (notebook 09).
    *[Experiment(f"vae_cnn_beta{_tag(beta)}{'_warmup' if warmup else ''}_minus_val",
                 f"beta = {beta:g}" + (", KL warm-up" if warmup else ""), "study",
                 {**_vae_spec("cnn"), "beta": beta, **({"kl_warmup": 0.2} if warmup else {})},
                 {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val")
      for beta, warmup in BETA_SWEEP],
    # Priors learned with the CNN-CNN VAE (helpers.models.priors), K components; the learned-priors study (notebook
    # 09) chooses one on the validation split and trains it on the whole training split (on_whole_training_split).
    *[Experiment(f"vae_cnn_{prior}{k}_minus_val", f"{_PRIOR_LABELS[prior]}, K = {k}", "prior",
                 {**_vae_spec("cnn"), "prior": prior, "n_components": k},
                 {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val")
      for prior in ("vamp", "mog") for k in (10, 100)],
    # The binarized CNN-CNN VAE of notebook 07 with a PixelCNN decoder (helpers.models.pixelcnn), and the same decoder
    # under the conditional design notebook 06 usually chooses (class prior, class into the decoder): notebook 10.
    Experiment("vae_pixelcnn", "CNN-PixelCNN VAE, binarized drawings", "study",
               {**_vae_spec("cnn"), "binarize": True, "decoder": "pixelcnn"},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET),
    Experiment("cvae_pixelcnn_class_prior", "CNN-PixelCNN VAE, class prior, class into the decoder", "study",
               {**_vae_spec("cnn", 5), "binarize": True, "decoder": "pixelcnn", "class_input": "decoder",
                "class_prior": True},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET),
    # The same two with a more local PixelCNN (2 rows above a pixel instead of 5): more of the shape left to z.
    Experiment("vae_pixelcnn_local", "CNN-local PixelCNN VAE, binarized drawings", "study",
               {**_vae_spec("cnn"), "binarize": True, "decoder": "pixelcnn_local"},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET),
    Experiment("cvae_pixelcnn_local_class_prior", "CNN-local PixelCNN VAE, class prior, class into the decoder",
               "study", {**_vae_spec("cnn", 5), "binarize": True, "decoder": "pixelcnn_local", "class_input": "decoder",
                         "class_prior": True},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET),
    # The class-conditional local PixelCNN VAE above with free bits (helpers.vae_loss): each latent dimension's KL
    # is charged at least lambda nats, so the decoder gains nothing by leaving z unused. Trained without the
    # validation part; the free-bits study (notebook 12) chooses lambda, and the sampler, on the validation split.
    *[Experiment(f"cvae_pixelcnn_local_free_bits{_tag(free_bits)}_minus_val",
                 f"local PixelCNN VAE, class prior, free bits {free_bits:g}", "study",
                 {**_vae_spec("cnn", 5), "binarize": True, "decoder": "pixelcnn_local", "class_input": "decoder",
                  "class_prior": True, "free_bits": free_bits},
                 {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val")
      for free_bits in FREE_BITS],
    # The VQ-VAE, trained without the validation part: notebook 11 sets its samples beside the chosen conditional
    # design's on the validation split before the test split reports either (on_whole_training_split: the final run).
    Experiment("vqvae_minus_val", "VQ-VAE, class-conditional code prior", "study", _VQVAE_SPEC,
               {"epochs": 120, "batch_size": 128, "lr": 1e-3}, **_VQVAE_BUDGET, train_on="train_minus_val"),
]}


def runs_of(family: str | None = None) -> list[Experiment]:
    """The registered runs of one family (one of ``FAMILIES``), or all, in registry order."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return [e for e in EXPERIMENTS.values() if family in (None, e.family)]


def conditional(vae: Experiment, n_classes: int = 5) -> Experiment:
    """The class-conditional version of a registered VAE: same encoder, budgets and settings, and the
    one-hot class given to encoder and decoder (cache name ``cvae_<encoder>``)."""
    if vae.family != "vae":
        raise ValueError(f"conditional() needs a VAE run, got {vae.name!r} ({vae.family})")
    spec = {**vae.spec, "n_classes": n_classes}
    return Experiment(f"cvae_{spec['encoder']}", f"conditional {vae.label}", "vae", spec, vae.full,
                      vae.quick, vae.tiny)


def free_bits_candidates() -> list[Experiment]:
    """The free-bits study's candidates (notebook 12), trained without the validation part: one per value of
    ``FREE_BITS``, in that order."""
    return [EXPERIMENTS[f"cvae_pixelcnn_local_free_bits{_tag(free_bits)}_minus_val"] for free_bits in FREE_BITS]


def on_whole_training_split(run: Experiment) -> Experiment:
    """The same run trained on the whole training split: the final model once validation has chosen it."""
    return dataclasses.replace(run, name=run.name.removesuffix("_minus_val"), train_on="train")


def run_named(run: Experiment | str) -> Experiment:
    """A registered run, given as itself or by its name; a clear error for a name the registry does not hold."""
    if isinstance(run, Experiment):
        return run
    if run not in EXPERIMENTS:
        raise ValueError(f"no run named {run!r} in helpers.studies.registry.EXPERIMENTS; "
                         f"registered: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[run]


def run_labelled(label: str, runs: list[Experiment]) -> Experiment:
    """The run of ``runs`` that tables and figures show as ``label``."""
    found = [run for run in runs if run.label == label]
    if len(found) != 1:
        raise ValueError(f"no single run labelled {label!r} among {[run.label for run in runs]}")
    return found[0]
