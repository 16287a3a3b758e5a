"""Training: seeds, the one training loop, and the summary of a trained run.

The loop trains for a number of steps or of epochs, shows a tqdm bar, records the training loss (and any
other parts the loss function returns) and a periodic loss on held-out data, stops with a clear message on
a NaN/inf loss, and writes atomic checkpoints (model, optimizer, step, history, RNG state) so that a killed
run resumes where it stopped and ends with the same weights as an uninterrupted one (on the CPU).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .devices import PRECISIONS, autocast, keep_freed_memory, rng_state, set_rng_state
from .files import atomic_torch_save
from .models import n_params

__all__ = [
    "set_seed", "progress_bar", "TrainConfig", "BATCH_SCHEDULES", "iid_batch", "epoch_permutation", "evaluate", "fit",
    "run_summary",
]


def set_seed(seed: int) -> None:
    """One seed for Python's random, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_bar(total: int, desc: str, progress: bool | str = True, **kw):
    """A tqdm bar. progress=True/'auto': a widget in JupyterLab, text in a terminal; 'text': plain text on
    stderr, updated at most every 5 s (what papermill logs show); False/'off': no bar."""
    if progress in ("text",):
        from tqdm.std import tqdm

        return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=5.0, ascii=True, **kw)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=progress in (False, "off", None), **kw)


BATCH_SCHEDULES = ("epochs", "iid")  # how TrainConfig.batches cuts the training split into batches


@dataclass
class TrainConfig:
    """How to train. Exactly one of ``steps`` and ``epochs``. Intervals are in steps (None: a default)."""

    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    eval_every: int | None = None  # held-out loss interval; default: each epoch, or 20 points over a run
    log_every: int | None = None  # training-loss averaging window; default: each epoch, or 10 steps
    ckpt_every: int = 500
    precision: str = "fp32"  # "bf16": forward passes (training and held-out loss) under bfloat16 autocast
    batches: str = "epochs"  # "epochs": seeded permutations cut into full batches; "iid": each batch drawn anew

    def __post_init__(self):
        if self.batches not in BATCH_SCHEDULES:
            raise ValueError(f"batches must be one of {', '.join(BATCH_SCHEDULES)}, got {self.batches!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"give exactly one of steps and epochs, got steps={self.steps}, epochs={self.epochs}")
        for name in ("steps", "epochs", "batch_size", "ckpt_every", "eval_every", "log_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")

    def total_steps(self, n: int) -> int:
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch(n)

    def steps_per_epoch(self, n: int) -> int:
        return max(1, n // min(self.batch_size, n))


def iid_batch(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """The indices of batch number ``step`` under the "iid" schedule: ``batch_size`` distinct drawings out of
    ``n``, drawn anew for every step (so one drawing may come twice in a row, another not for a while), from a
    CPU generator seeded by the run's seed and the step, the same on every device."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7_919)
    return torch.randperm(n, generator=g)[:batch_size]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the ``n`` training drawings in epoch ``epoch`` (0-based): a permutation from a CPU
    generator seeded by the run's seed and the epoch, the same on every device."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn, tensors: tuple[torch.Tensor, ...], batch_size: int = 500) -> dict:
    """The loss function's parts, averaged over all images of ``tensors`` (eval mode)."""
    was_training = model.training
    model.eval()
    n = len(tensors[0])
    totals: dict[str, float] = {}
    for start in range(0, n, batch_size):
        batch = [t[start:start + batch_size] for t in tensors]
        for k, v in loss_fn(model, *batch).items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(batch[0])
    model.train(was_training)
    return {k: v / n for k, v in totals.items()}


@contextlib.contextmanager
def _holding_interrupts():
    """Hold back Ctrl-C (SIGINT) until the block is done, then deliver it to the usual handler, so that a
    commit (Adam's update of every weight, the counters, the history) is never left half done. A no-op off
    the main thread, where Python cannot install signal handlers."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)


class _Run:
    """One training run and the state its checkpoint holds: weights, Adam's moments, step, elapsed time,
    history, the running sums of the current logging window, and the RNG state at the start of the next step.

    Ctrl-C can land anywhere; the checkpoint it writes is always the end of the last complete step. Work
    that is not done yet (forward and backward pass, evaluation) changes no saved state but the RNG and the
    buffers (batch norm's running statistics); each commit of done work runs under ``_holding_interrupts``
    and ends with ``mark_boundary``, which copies those two, and Ctrl-C puts the copies back. So a resumed
    run draws the same dropout masks, shifts and noise as an uninterrupted one. (Holding Ctrl-C only during
    commits keeps it responsive: a commit takes milliseconds, while copying the weights before each step
    instead would cost a model's worth of memory traffic per step.)
    """

    def __init__(self, model: nn.Module, loss_fn, train: tuple, val: tuple | None, cfg: TrainConfig, desc: str):
        self.model, self.loss_fn, self.train, self.val, self.cfg, self.desc = model, loss_fn, train, val, cfg, desc
        self.n = len(train[0])
        self.bs, self.total = min(cfg.batch_size, self.n), cfg.total_steps(self.n)
        self.per_epoch, self.epoch_mode = cfg.steps_per_epoch(self.n), cfg.epochs is not None
        self.log_every = cfg.log_every or (self.per_epoch if self.epoch_mode else 10)
        self.eval_every = cfg.eval_every or (self.per_epoch if self.epoch_mode else max(1, self.total // 20))
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.history: dict = {"train": {"step": []}, "val": {"step": []}, "steps_per_epoch": self.per_epoch,
                              "log_every": self.log_every}
        self.step, self.elapsed, self.saved_step = 0, 0.0, None
        self.device = train[0].device
        self.window: dict[str, float] = {}  # sums of the loss parts since the last logged point (flushed steps)
        self.pending: list[dict[str, torch.Tensor]] = []  # the parts of the steps since, still on the device
        self.order: tuple[int, torch.Tensor] | None = None  # (epoch, its permutation on the device)
        self.mark_boundary()

    def resume(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed, self.history = state["step"], state["elapsed"], state["history"]
        self.window = state["window"]
        rng = state["rng"]
        set_rng_state(rng if isinstance(rng, dict) else {"cpu": rng}, self.device)
        self.saved_step = self.step
        self.mark_boundary()

    def mark_boundary(self) -> None:
        """Copy what the next forward pass changes before its step commits: the RNG states (the CPU's and the
        device's) and the buffers."""
        self.rng = rng_state(self.device)
        self.buffers = [b.clone() for b in self.model.buffers()]

    def rewind(self) -> None:
        """Put back the RNG states and buffers of the last boundary (after Ctrl-C in an unfinished step)."""
        set_rng_state(self.rng, self.device)
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), self.buffers):
                b.copy_(saved)

    def save(self, path: Path) -> None:
        self.flush()  # a non-finite loss stops here, before its weights reach the checkpoint
        atomic_torch_save(path, {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                                 "step": self.step, "elapsed": self.elapsed, "history": self.history,
                                 "window": self.window, "rng": self.rng, "config": asdict(self.cfg)})
        self.saved_step = self.step

    def due(self, every: int) -> bool:
        """Whether the step just completed ends an interval of ``every`` steps (or the run)."""
        return self.step > 0 and (self.step % every == 0 or self.step == self.total)

    def append(self, where: str, values: dict) -> None:
        h = self.history[where]
        h["step"].append(self.step)
        for k, v in values.items():
            h.setdefault(k, []).append(v)

    def batch(self) -> torch.Tensor:
        """The indices of batch number ``self.step`` on the device: epochs are seeded permutations
        (``epoch_permutation``) cut into full batches, a function of the seed and the step only, so a resumed run
        sees the same batches. The permutation goes to the device once per epoch rather than once per step."""
        if self.cfg.batches == "iid":
            return iid_batch(self.n, self.bs, self.cfg.seed, self.step).to(self.device)
        epoch, i = divmod(self.step, self.per_epoch)
        if self.order is None or self.order[0] != epoch:
            self.order = (epoch, epoch_permutation(self.n, self.cfg.seed, epoch).to(self.device))
        return self.order[1][i * self.bs:(i + 1) * self.bs]

    def flush(self) -> None:
        """Add the pending steps' loss parts to the window's sums: one copy from the device for all of them
        (the loop itself never waits for the device). Raises FloatingPointError, naming the first step whose
        loss is NaN or infinite; it is at most a logging window old, and no checkpoint holds its weights."""
        if not self.pending:
            return
        keys = list(self.pending[0])
        values = torch.stack([torch.stack([p[k].float() for k in keys]) for p in self.pending]).cpu().tolist()
        first = self.step - len(self.pending) + 1
        for i, row in enumerate(values):
            loss = row[keys.index("loss")]
            if not math.isfinite(loss):
                self.pending = []
                raise FloatingPointError(f"{self.desc}: the loss became {loss} at step {first + i}; training "
                                         f"stopped. Try a lower learning rate than {self.cfg.lr}.")
            for k, v in zip(keys, row):
                self.window[k] = self.window.get(k, 0.0) + v
        self.pending = []

    def train_step(self) -> None:
        """One Adam step on batch number ``self.step``."""
        idx = self.batch()
        with autocast(self.device, self.cfg.precision):  # the forward pass and the loss
            parts = self.loss_fn(self.model, *(t[idx] for t in self.train), progress=self.step / self.total)
        self.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        with _holding_interrupts():
            self.optimizer.step()
            self.step += 1
            self.pending.append({k: v.detach() for k, v in parts.items()})
            if self.due(self.log_every):
                self.flush()
                count = (self.step - 1) % self.log_every + 1
                self.append("train", {k: v / count for k, v in self.window.items()})
                self.window = {}
                if self.epoch_mode:
                    self.history["train"].setdefault("epoch", []).append(self.step / self.per_epoch)
            self.mark_boundary()

    def finish_step(self, ckpt_path: Path | None) -> None:
        """The held-out loss and the checkpoint when due. Also run on resuming, to finish a step whose
        evaluation was interrupted (its checkpoint has no held-out point for it yet)."""
        if self.val is not None and self.due(self.eval_every) and self.history["val"]["step"][-1:] != [self.step]:
            with autocast(self.device, self.cfg.precision):
                values = evaluate(self.model, self.loss_fn, self.val)
            with _holding_interrupts():
                self.append("val", values)
                self.mark_boundary()
        if ckpt_path and self.due(self.cfg.ckpt_every) and self.saved_step != self.step:
            self.clock()
            self.save(ckpt_path)

    def clock(self) -> None:
        """Add the time since the last call to ``self.elapsed`` (s)."""
        now = time.perf_counter()
        self.elapsed += now - self.t0
        self.t0 = now

    def loop(self, ckpt_path: Path | None, progress: bool | str) -> dict:
        """Train up to the last step; on Ctrl-C write the checkpoint of the last complete step and re-raise."""
        self.model.train()
        bar = progress_bar(self.total, self.desc, progress, initial=self.step)
        self.t0 = time.perf_counter()
        try:
            self.finish_step(ckpt_path)
            while self.step < self.total:
                self.train_step()
                if self.due(self.log_every):
                    bar.set_postfix(loss=f"{self.history['train']['loss'][-1]:.4g}", refresh=False)
                bar.update(1)
                self.finish_step(ckpt_path)
        except KeyboardInterrupt:
            self.clock()
            self.rewind()
            if not ckpt_path:
                raise
            self.save(ckpt_path)
            raise KeyboardInterrupt(f"{self.desc} interrupted after step {self.step} of {self.total}; its checkpoint "
                                    f"is saved in {ckpt_path}") from None
        finally:
            bar.close()
        self.flush()
        self.clock()
        return {"history": self.history, "steps": self.total, "batch_size": self.bs, "wall_time_s": self.elapsed,
                "images_per_s": self.total * self.bs / self.elapsed if self.elapsed > 0 else float("nan")}


def fit(model: nn.Module, loss_fn, train: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...] | None,
        cfg: TrainConfig, ckpt_path: str | os.PathLike | None = None, progress: bool | str = True,
        desc: str = "train") -> dict:
    """Train ``model`` in place with Adam; return its record (history, wall time, images/s).

    ``train``/``val`` are tuples of tensors on the model's device, (X,) or (X, y). ``loss_fn(model, *batch,
    progress=f)`` returns a dict of scalar tensors with a "loss" key; ``f`` is the fraction of training done
    before the step (0 at the first), for schedules such as a KL warm-up; held-out losses leave it at its
    default. With ``ckpt_path`` a checkpoint is written every ``cfg.ckpt_every`` steps, at the end, and on
    Ctrl-C (the state after the last complete step); if it exists, training resumes from it, to the weights an
    uninterrupted run ends with (on the CPU).
    """
    if train[0].device.type == "cpu":
        keep_freed_memory()
    run = _Run(model, loss_fn, train, val, cfg, desc)
    ckpt_path = Path(ckpt_path) if ckpt_path else None
    if ckpt_path and ckpt_path.exists():
        run.resume(ckpt_path)
    return run.loop(ckpt_path, progress)


def run_summary(model: nn.Module, record: dict) -> dict:
    """Size and cost of a trained run: parameters, budget (steps or epochs), batch size, learning rate, seed,
    precision, wall time, images/s, device and the number of CPU threads it trained with (when recorded)."""
    cfg = record["train_config"]
    budget = {"epochs": cfg["epochs"]} if cfg.get("epochs") is not None else {"steps": record["steps"]}
    return {"params": n_params(model), **budget, "batch_size": record["batch_size"], "lr": cfg["lr"],
            "seed": cfg["seed"], "precision": cfg.get("precision", "fp32"), "wall_time_s": record["wall_time_s"],
            "images_per_s": record["images_per_s"], "device": record["device"],
            **({"threads": record["threads"]} if "threads" in record else {})}
