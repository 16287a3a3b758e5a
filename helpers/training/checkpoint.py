"""Exact resume: what a checkpoint holds, and how Ctrl-C never leaves one half written or out of step.

A checkpoint is the end of the last complete step: weights, the optimizer's state, the step, the elapsed time,
the history, the running sums of the current logging window, and the random state (every device's generator)
at the start of the next step. Resuming from it ends with the weights an uninterrupted run ends with.

Ctrl-C can land anywhere. Work that is not done yet (forward and backward pass, evaluation) changes no saved
state but the random generators and the buffers (batch norm's running statistics); each commit of done work
runs under ``holding_interrupts`` and ends with ``Boundary.mark``, which copies those two, and after Ctrl-C
``Boundary.rewind`` puts the copies back. So a resumed run draws the same dropout masks, shifts and noise as an
uninterrupted one. (Holding Ctrl-C only during commits keeps it responsive: a commit takes milliseconds, while
copying the weights before each step instead would cost a model's worth of memory traffic per step.)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..devices import rng_state, set_rng_state
from ..files import atomic_torch_save

__all__ = ["RunState", "Boundary", "holding_interrupts", "save_checkpoint", "load_checkpoint"]


@dataclass
class RunState:
    """The counters and records of a run that a checkpoint holds besides the weights and the optimizer."""

    step: int = 0
    elapsed: float = 0.0  # seconds of training so far, over every resumed part
    history: dict = field(default_factory=dict)  # {"train": {"step": [...], "loss": [...]}, "val": {...}, ...}
    window: dict = field(default_factory=dict)  # sums of the loss parts since the last logged point


@contextlib.contextmanager
def holding_interrupts():
    """Hold back Ctrl-C (SIGINT) until the block is done, then deliver it to the usual handler, so that a
    commit (the optimizer's update of every weight, the counters, the history) is never left half done. A no-op
    off the main thread, where Python cannot install signal handlers."""
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


class Boundary:
    """The random states (the CPU's and the device's) and the model's buffers at the end of the last commit."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.device = model, device
        self.mark()

    def mark(self) -> None:
        """Copy what the next forward pass changes before its step commits."""
        self.rng = rng_state(self.device)
        self.buffers = [b.clone() for b in self.model.buffers()]

    def rewind(self) -> None:
        """Put back the random states and buffers of the last mark (after Ctrl-C in an unfinished step)."""
        set_rng_state(self.rng, self.device)
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), self.buffers):
                b.copy_(saved)


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, run: RunState,
                    boundary: Boundary, config) -> None:
    """Write the checkpoint atomically: a crash while writing leaves the previous one."""
    atomic_torch_save(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": run.step,
                             "elapsed": run.elapsed, "history": run.history, "window": run.window,
                             "rng": boundary.rng, "config": asdict(config)})


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device) -> RunState:
    """Load the weights and the optimizer's state into ``model`` and ``optimizer``, set the random state of the
    next step, and return the run's counters and records."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])  # matched to the parameters by their order, not their names
    for group in optimizer.param_groups:
        for p in group["params"]:
            if any(torch.is_tensor(v) and v.ndim and v.shape != p.shape for v in optimizer.state.get(p, {}).values()):
                raise ValueError(f"{path}: its optimizer state does not fit this model's parameters (written before "
                                 f"a change to the model's layout); delete it to train this model from the start")
    rng = state["rng"]
    set_rng_state(rng if isinstance(rng, dict) else {"cpu": rng}, device)
    return RunState(state["step"], state["elapsed"], state["history"], state["window"])
