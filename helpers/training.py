"""Training: seeds, device choice, the one training loop, and the model cache in runs/.

The loop trains for a number of steps or of epochs, shows a tqdm bar, records the training loss (and any
other parts the loss function returns) and a periodic loss on held-out data, stops with a clear message on
a NaN/inf loss, and writes atomic checkpoints (model, optimizer, step, history, RNG state) so that a killed
run resumes where it stopped and ends with the same weights as an uninterrupted one (on the CPU).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import QuickDraw, to_tensor
from .io import atomic_torch_save
from .models import VAE, Classifier, CNNAutoencoder, LSTMAutoencoder, ae_loss, classifier_loss, vae_loss

DEFAULT_RUNS_DIR = "runs"


def set_seed(seed: int) -> None:
    """One seed for Python's random, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(device: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; 'cpu', 'cuda', 'cuda:1', 'mps' are taken as given."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = str(device).split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'mps', got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use 'auto' or 'cpu'")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} asked for, but MPS is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_KEEP_BYTES = 1 << 30
_kept_freed_memory: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS (CPU speed-up).

    Each training step allocates and frees the same large buffers (activations, gradients, oneDNN
    workspaces). With glibc's defaults, large blocks are mmap-ed and munmap-ed, or trimmed off the heap,
    so every step page-faults its buffers in again: about 19,000 page faults per LSTM AE step at batch 256
    (75 MB of fresh zeroed pages), 3,000-4,400 per CNN AE step. Raising the mmap and trim thresholds to
    1 GiB lets the heap reuse them: a few hundred faults per step at most, and `make bench` measures the
    time saved. The arithmetic, and so every result, is unchanged. PyTorch's CPU tuning guide gets the
    same by preloading jemalloc or tcmalloc; this needs no preload. The cost: the process keeps its peak
    memory until it exits. Process-wide and idempotent; returns whether it applied (False where the C
    library is not glibc, e.g. macOS, Windows, musl). ``fit`` calls it when training on the CPU.
    """
    global _kept_freed_memory
    if _kept_freed_memory is None:
        _kept_freed_memory = False
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            libc = ctypes.CDLL(None)
            _kept_freed_memory = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
                                      and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    return _kept_freed_memory


def progress_bar(total: int, desc: str, progress: bool | str = True, **kw):
    """A tqdm bar. progress=True/'auto': a widget in JupyterLab, text in a terminal; 'text': plain text on
    stderr, updated at most every 5 s (what papermill logs show); False/'off': no bar."""
    if progress in ("text",):
        from tqdm.std import tqdm

        return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=5.0, ascii=True, **kw)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=progress in (False, "off", None), **kw)


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

    def __post_init__(self):
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


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """The indices of batch ``step`` (0-based): epochs are seeded permutations of 0..n-1, cut into full
    batches. A pure function of its arguments, so a resumed run sees the same batches."""
    batch_size = min(batch_size, n)
    per_epoch = n // batch_size
    epoch, i = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)[i * batch_size:(i + 1) * batch_size]


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


def fit(model: nn.Module, loss_fn, train: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...] | None,
        cfg: TrainConfig, ckpt_path: str | os.PathLike | None = None, progress: bool | str = True,
        desc: str = "train") -> dict:
    """Train ``model`` in place with Adam; return its record (history, wall time, images/s).

    ``train``/``val`` are tuples of tensors on the model's device, (X,) or (X, y); ``loss_fn(model, *batch)``
    returns a dict of scalar tensors with a "loss" key. With ``ckpt_path`` a checkpoint is written every
    ``cfg.ckpt_every`` steps, on Ctrl-C, and at the end; if it exists, training resumes from it.
    """
    if train[0].device.type == "cpu":
        keep_freed_memory()
    n = len(train[0])
    total = cfg.total_steps(n)
    per_epoch = cfg.steps_per_epoch(n)
    epoch_mode = cfg.epochs is not None
    log_every = cfg.log_every or (per_epoch if epoch_mode else 10)
    eval_every = cfg.eval_every or (per_epoch if epoch_mode else max(1, total // 20))
    bs = min(cfg.batch_size, n)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: dict = {"train": {"step": []}, "val": {"step": []}, "steps_per_epoch": per_epoch,
                     "log_every": log_every}
    step, elapsed = 0, 0.0
    window: dict[str, float] = {}  # sums of the loss parts since the last logged point
    ckpt_path = Path(ckpt_path) if ckpt_path else None
    if ckpt_path and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, history, window = state["step"], state["elapsed"], state["history"], state.get("window", {})
        torch.set_rng_state(state["rng"])

    def save():
        if ckpt_path:
            atomic_torch_save(ckpt_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "step": step, "elapsed": elapsed, "history": history, "window": window,
                                          "rng": torch.get_rng_state(), "config": asdict(cfg)})

    def append(where: str, values: dict):
        h = history[where]
        h["step"].append(step)
        for k, v in values.items():
            h.setdefault(k, []).append(v)

    model.train()
    bar = progress_bar(total, desc, progress, initial=step)
    t0 = time.perf_counter()
    try:
        while step < total:
            idx = batch_indices(n, bs, cfg.seed, step).to(train[0].device)
            parts = loss_fn(model, *(t[idx] for t in train))
            loss = parts["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{desc}: the loss became {loss.item()} at step {step + 1}; training stopped. "
                    f"Try a lower learning rate than {cfg.lr}.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            for k, v in parts.items():
                window[k] = window.get(k, 0.0) + v.item()
            if step % log_every == 0 or step == total:
                count = (step - 1) % log_every + 1
                append("train", {k: v / count for k, v in window.items()})
                window = {}
                if epoch_mode:
                    history["train"].setdefault("epoch", []).append(step / per_epoch)
                bar.set_postfix(loss=f"{history['train']['loss'][-1]:.4g}", refresh=False)
            if val is not None and (step % eval_every == 0 or step == total):
                append("val", evaluate(model, loss_fn, val))
            bar.update(1)
            if step % cfg.ckpt_every == 0 or step == total:
                elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                save()
    except KeyboardInterrupt:
        elapsed += time.perf_counter() - t0
        t0 = time.perf_counter()
        save()
        raise
    finally:
        bar.close()
    elapsed += time.perf_counter() - t0
    return {"history": history, "steps": total, "batch_size": bs, "wall_time_s": elapsed,
            "images_per_s": total * bs / elapsed if elapsed > 0 else float("nan")}


# ---------------------------------------------------------------------------------------------------
# The model cache: a trained model is stored under runs/models/<name>-<hash of its config and data>/
# ---------------------------------------------------------------------------------------------------

MODEL_KINDS = {"lstm_ae": LSTMAutoencoder, "cnn_ae": CNNAutoencoder, "vae": VAE, "classifier": Classifier}


def build_model(spec: dict) -> tuple[nn.Module, callable]:
    """A model and its loss function from a spec such as {"kind": "vae", "encoder": "gru", "beta": 1.0}."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    beta = spec.pop("beta", 1.0)
    model = MODEL_KINDS[kind](**spec)
    if kind == "vae":
        return model, lambda m, x, y: vae_loss(m, x, y, beta=beta)
    if kind == "classifier":
        return model, classifier_loss
    return model, ae_loss


def config_key(spec: dict, cfg: TrainConfig, data: QuickDraw) -> str:
    """A short hash of everything that determines the trained weights."""
    cfg_d = asdict(cfg)
    cfg_d.pop("ckpt_every")  # checkpoint frequency does not change the weights
    blob = json.dumps({"model": spec, "train": cfg_d, "data": data.md5 or str(data.data_dir)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_or_load(name: str, spec: dict, cfg: TrainConfig, data: QuickDraw, device: str | torch.device = "cpu",
                  runs_dir: str | os.PathLike | None = None, progress: bool | str = True,
                  verbose: bool = True) -> tuple[nn.Module, dict]:
    """Train the model described by ``spec`` on the training split (held-out curve on the test split), or
    load it when this exact config was trained before. Returns the model (eval mode) and its record, with
    ``record["trained_now"]`` telling which happened. Checkpoints load with ``weights_only=True``."""
    device = torch.device(device)
    runs_dir = Path(runs_dir or os.environ.get("QUICKDRAW_RUNS", DEFAULT_RUNS_DIR))
    key = config_key(spec, cfg, data)
    folder = runs_dir / "models" / f"{name}-{key}"
    final, ckpt = folder / "model.pt", folder / "checkpoint.pt"
    set_seed(cfg.seed)
    model, loss_fn = build_model(spec)
    model.to(device)
    if final.exists():
        state = torch.load(final, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        record = state["record"]
        record["trained_now"] = False
        if verbose:
            print(f"{name}: loaded from {final} (trained {record['steps']} steps in {record['wall_time_s']:.0f} s)")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"name": name, "model": spec, "train": asdict(cfg),
                                                         "data": data.provenance()}, indent=2))
        train = (to_tensor(data.x_train, device), torch.from_numpy(data.y_train).to(device))
        val = (to_tensor(data.x_test, device), torch.from_numpy(data.y_test).to(device))
        if verbose and ckpt.exists():
            print(f"{name}: resuming from {ckpt}")
        record = fit(model, loss_fn, train, val, cfg, ckpt_path=ckpt, progress=progress, desc=name)
        record.update(name=name, key=key, spec=spec, train_config=asdict(cfg), device=str(device))
        atomic_torch_save(final, {"model": model.state_dict(), "record": record})
        ckpt.unlink(missing_ok=True)
        record["trained_now"] = True
        if verbose:
            print(f"{name}: trained {record['steps']} steps in {record['wall_time_s']:.0f} s "
                  f"({record['images_per_s']:.0f} images/s); saved {final}")
    model.eval()
    return model, record


def untrained_model(spec: dict, seed: int, device: str | torch.device = "cpu") -> nn.Module:
    """The model as ``train_or_load`` initialises it (same seed), before any training; eval mode."""
    set_seed(seed)
    model, _ = build_model(spec)
    return model.to(device).eval()
