"""The set-up every model notebook shares, in one object: ``nb = H.Notebook(data_dir, seed, device, budget,
precision, runs_dir, progress)`` (the notebook's parameters) picks the device, loads the data, holds the
splits as tensors on the device, and trains or loads registered runs with those settings (``nb.train``)."""

from __future__ import annotations

import functools

import torch
from torch import nn

from ..data.quickdraw import load_quickdraw, resolve_data_dir, split_validation, to_tensor
from ..devices import check_precision, pick_device
from ..evaluation.bounds import vae_elbo
from ..training.cache import train_or_load
from .registry import Experiment, run_named

__all__ = ["JUDGE_SEED", "MIXTURE_CANDIDATES", "train_experiment", "Notebook"]

JUDGE_SEED = 0  # the evaluation classifier's own seed, whatever the seed of the models it scores


# The mixture sizes that the ex-post samplers choose between on the validation codes, by budget: the report's five;
# the small runs fewer (each candidate is fitted once over all codes and once per class), to keep them short.
MIXTURE_CANDIDATES = {"full": (1, 2, 5, 10, 20), "quick": (1, 10), "tiny": (1, 2)}


def train_experiment(run: Experiment | str, data, budget: str = "full", seed: int = 0, precision: str = "fp32",
                     **kwargs):
    """``train_or_load`` of a registered run (or its name) at ``budget`` and ``precision`` ("fp32" or "bf16",
    see ``helpers.devices.autocast``): (model in eval mode, record).
    ``data`` is the loaded folder; a run with ``train_on="train_minus_val"`` trains without the validation part.
    ``kwargs`` go to ``train_or_load`` (device, runs_dir, progress, verbose)."""
    run = run_named(run)
    if run.train_on == "train_minus_val":
        data = split_validation(data)[0]
    return train_or_load(run.name, run.spec, run.config(budget, seed, precision), data, **kwargs)


class Notebook:
    """A notebook's data and training settings.

    ``data`` is the loaded folder (``helpers.QuickDraw``); ``X_train``, ``X_test`` (N, 1, 28, 28) float32 and
    ``y_train``, ``y_test`` (N,) int64 are its splits on ``dev``. ``fit``, ``X_fit``, ``X_val``, ``y_val``: the
    training split without its validation part, and that part (``helpers.split_validation``), made on first
    use. ``bf16`` where the device has no native bfloat16 is refused here, before anything trains."""

    def __init__(self, data_dir: str, seed: int = 0, device: str = "auto", budget: str = "full",
                 precision: str = "fp32", runs_dir: str = "runs", progress: str = "auto"):
        self.dev = pick_device(device)
        check_precision(self.dev, precision)
        self.seed, self.budget, self.precision = seed, budget, precision
        if budget not in MIXTURE_CANDIDATES:
            raise ValueError(f"budget must be one of {', '.join(MIXTURE_CANDIDATES)}, got {budget!r}")
        self.mixture_candidates = MIXTURE_CANDIDATES[budget]
        self.runs_dir, self.progress = runs_dir, progress
        self.data = load_quickdraw(resolve_data_dir(data_dir))
        self.X_train, self.X_test = to_tensor(self.data.x_train, self.dev), to_tensor(self.data.x_test, self.dev)
        self.y_train = torch.from_numpy(self.data.y_train).to(self.dev)
        self.y_test = torch.from_numpy(self.data.y_test).to(self.dev)

    def train(self, run: Experiment | str) -> tuple[nn.Module, dict]:
        """The model of a registered run (or its name) at this notebook's budget, seed and precision, trained
        or loaded from the cache: (model in eval mode, its record). The judge is ``judge()``, never this."""
        if run_named(run).family == "classifier":
            raise ValueError("the evaluation classifier is the fixed judge, with its own seed and in float32: "
                             "use nb.judge(), not nb.train or nb.model")
        return train_experiment(run, self.data, self.budget, self.seed, self.precision, device=self.dev,
                                runs_dir=self.runs_dir, progress=self.progress)

    @property
    def evaluations_dir(self):
        """Where evaluations of arrays alone (the t-SNE of codes) are stored: ``<runs_dir>/evaluations``
        (helpers.evaluation.stored)."""
        from ..files import repo_path

        return repo_path(self.runs_dir) / "evaluations"

    def judge(self, seed: int = JUDGE_SEED) -> tuple[nn.Module, dict]:
        """The evaluation classifier, the judge of every sample metric: trained with its own seed (not the
        notebook's, so that every seed's models are scored by one instrument, like FID's fixed Inception network)
        and always in float32, or loaded from the cache. Returns (model in eval mode, its record)."""
        return train_experiment("classifier", self.data, self.budget, seed, "fp32", device=self.dev,
                                runs_dir=self.runs_dir, progress=self.progress)

    def lowest_validation_elbo(self, runs: list[Experiment]) -> Experiment:
        """The run whose model (trained or loaded) has the lowest negative ELBO on the validation split: how a
        choice between VAEs is made, never on the test split."""
        return min(runs, key=lambda run: vae_elbo(self.model(run), self.X_val, seed=self.seed)["neg_elbo"])

    def model(self, run: Experiment | str) -> nn.Module:
        """``train(run)`` without the record."""
        return self.train(run)[0]

    def models(self, runs: list[Experiment]) -> dict[str, nn.Module]:
        """{label: model} of registered runs, e.g. ``nb.models(H.runs_of("vae"))``."""
        return {run.label: self.model(run) for run in runs}

    @functools.cached_property
    def _split(self):
        fit, x_val, y_val = split_validation(self.data)
        return fit, to_tensor(fit.x_train, self.dev), to_tensor(x_val, self.dev), torch.from_numpy(y_val).to(self.dev)

    @property
    def fit(self):
        return self._split[0]

    @property
    def X_fit(self) -> torch.Tensor:
        return self._split[1]

    @property
    def X_val(self) -> torch.Tensor:
        return self._split[2]

    @property
    def y_val(self) -> torch.Tensor:
        return self._split[3]
