"""The one training loop (``fit``), and what it shares with evaluation: seeds, progress bars, held-out losses.

The loop trains for a number of steps or of epochs, shows a tqdm bar, records the training loss (and any
other parts the loss function returns) and a periodic loss on held-out data, stops with a clear message on
a NaN/inf loss, and writes atomic checkpoints (``helpers.training.checkpoint``) so that a killed run resumes
where it stopped and ends with the same weights as an uninterrupted one (on the CPU).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..devices import autocast, keep_freed_memory
from .checkpoint import Boundary, RunState, holding_interrupts, load_checkpoint, save_checkpoint
from .config import TrainConfig, batch_indices, configure_optimizer

__all__ = ["set_seed", "progress_bar", "evaluate", "fit"]


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


def _log_losses(run: RunState, pending: list[dict], desc: str, lr: float) -> None:
    """Add the pending steps' loss parts to the logging window's sums: one copy from the device for all of them
    (the loop itself never waits for the device). Raises FloatingPointError, naming the first step whose loss is
    NaN or infinite; it is at most a logging window old, and no checkpoint holds its weights."""
    if not pending:
        return
    keys = list(pending[0])
    values = torch.stack([torch.stack([p[k].float() for k in keys]) for p in pending]).cpu().tolist()
    first = run.step - len(pending) + 1
    pending.clear()
    for i, row in enumerate(values):
        loss = row[keys.index("loss")]
        if not math.isfinite(loss):
            raise FloatingPointError(f"{desc}: the loss became {loss} at step {first + i}; training stopped. "
                                     f"Try a lower learning rate than {lr}.")
        for k, v in zip(keys, row):
            run.window[k] = run.window.get(k, 0.0) + v


def fit(model: nn.Module, loss_fn, train: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...] | None,
        cfg: TrainConfig, ckpt_path: str | os.PathLike | None = None, progress: bool | str = True,
        desc: str = "train") -> dict:
    """Train ``model`` in place with the optimizer of ``cfg``; return its record (history, wall time, images/s).

    ``train``/``val`` are tuples of tensors on the model's device, (X,) or (X, y). ``loss_fn(model, *batch,
    progress=f)`` returns a dict of scalar tensors with a "loss" key; ``f`` is the fraction of training done
    before the step (0 at the first), for schedules such as a KL warm-up; held-out losses leave it at its
    default. With ``ckpt_path`` a checkpoint is written every ``cfg.ckpt_every`` steps, at the end, and on
    Ctrl-C (the state after the last complete step); if it exists, training resumes from it, to the weights an
    uninterrupted run ends with (on the CPU).
    """
    # -- the run's shape: steps, batches, logging and held-out intervals
    device = train[0].device
    if device.type == "cpu":
        keep_freed_memory()
    n = len(train[0])
    batch_size, total, per_epoch = min(cfg.batch_size, n), cfg.total_steps(n), cfg.steps_per_epoch(n)
    log_every = cfg.log_every or (per_epoch if cfg.epochs is not None else 10)
    eval_every = cfg.eval_every or (per_epoch if cfg.epochs is not None else max(1, total // 20))
    batch = batch_indices(cfg, n, device)
    optimizer = configure_optimizer(model, cfg)

    # -- a new run, or the one its checkpoint left
    ckpt_path = Path(ckpt_path) if ckpt_path else None
    if ckpt_path and ckpt_path.exists():
        run = load_checkpoint(ckpt_path, model, optimizer, device)
    else:
        run = RunState(history={"train": {"step": []}, "val": {"step": []}, "steps_per_epoch": per_epoch,
                                "log_every": log_every})
    saved_step = run.step if ckpt_path and ckpt_path.exists() else None
    boundary = Boundary(model, device)
    pending: list[dict] = []  # the loss parts of the steps since the last logged point, still on the device

    def due(every: int) -> bool:  # whether the step just completed ends an interval of `every` steps (or the run)
        return run.step > 0 and (run.step % every == 0 or run.step == total)

    def append(where: str, values: dict) -> None:
        run.history[where]["step"].append(run.step)
        for k, v in values.items():
            run.history[where].setdefault(k, []).append(v)

    def checkpoint() -> None:
        nonlocal saved_step
        _log_losses(run, pending, desc, cfg.lr)  # a non-finite loss stops here, before its weights are saved
        save_checkpoint(ckpt_path, model, optimizer, run, boundary, cfg)
        saved_step = run.step

    model.train()
    bar = progress_bar(total, desc, progress, initial=run.step)
    clock = time.perf_counter()
    try:
        while True:
            # -- held-out loss and checkpoint of the step just done, when due (also on resuming: a step whose
            #    evaluation Ctrl-C interrupted has no held-out point in its checkpoint yet)
            if val is not None and due(eval_every) and run.history["val"]["step"][-1:] != [run.step]:
                with autocast(device, cfg.precision):
                    values = evaluate(model, loss_fn, val)
                with holding_interrupts():
                    append("val", values)
                    boundary.mark()
            if ckpt_path and due(cfg.ckpt_every) and saved_step != run.step:
                run.elapsed, clock = run.elapsed + time.perf_counter() - clock, time.perf_counter()
                checkpoint()
            if run.step >= total:
                break

            # -- forward and backward on batch number `step`: until the commit, only the random generators and
            #    the buffers change, and Ctrl-C puts them back
            idx = batch(run.step)
            with autocast(device, cfg.precision):
                parts = loss_fn(model, *(t[idx] for t in train), progress=run.step / total)
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)

            # -- commit: the update, the step, the logged loss; all of it or none under Ctrl-C
            with holding_interrupts():
                optimizer.step()
                run.step += 1
                pending.append({k: v.detach() for k, v in parts.items()})
                if due(log_every):
                    _log_losses(run, pending, desc, cfg.lr)
                    count = (run.step - 1) % log_every + 1
                    append("train", {k: v / count for k, v in run.window.items()})
                    run.window = {}
                    if cfg.epochs is not None:
                        run.history["train"].setdefault("epoch", []).append(run.step / per_epoch)
                boundary.mark()

            # -- progress
            if due(log_every):
                bar.set_postfix(loss=f"{run.history['train']['loss'][-1]:.4g}", refresh=False)
            bar.update(1)
    except KeyboardInterrupt:
        run.elapsed += time.perf_counter() - clock
        boundary.rewind()
        if not ckpt_path:
            raise
        checkpoint()
        raise KeyboardInterrupt(f"{desc} interrupted after step {run.step} of {total}; its checkpoint "
                                f"is saved in {ckpt_path}") from None
    finally:
        bar.close()
    _log_losses(run, pending, desc, cfg.lr)
    run.elapsed += time.perf_counter() - clock
    return {"history": run.history, "steps": total, "batch_size": batch_size, "wall_time_s": run.elapsed,
            "images_per_s": total * batch_size / run.elapsed if run.elapsed > 0 else float("nan")}
