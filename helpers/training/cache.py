"""The model cache: a trained model is stored under runs/models/<name>-<hash of its config and data>/, so that
every notebook, and every rerun, that asks for the same config loads it instead of training it again.
Models are built from specs such as {"kind": "vae", "encoder": "gru"} (``helpers.models.build``)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ..data.quickdraw import QuickDraw, to_tensor
from ..devices import check_precision
from ..files import atomic_torch_save, locked, repo_path
from ..models.build import build_model, n_params
from ..models.vae import model_inputs
from .config import TrainConfig
from .loop import fit, set_seed

__all__ = ["config_key", "train_or_load", "untrained_model", "run_summary"]

DEFAULT_RUNS_DIR = "runs"
# Settings that joined TrainConfig after models had been cached: at their defaults they stay out of the key, as an
# unset data subset does, so that a model trained before keeps its key.
_KEYED_ONLY_WHEN_SET = {"precision": "fp32", "batches": "epochs", "optimizer": "adam", "weight_decay": 0.0,
                        "grad_clip": None}



def config_key(spec: dict, cfg: TrainConfig, data: QuickDraw) -> str:
    """A short hash of everything that determines the trained weights."""
    cfg_d = asdict(cfg)
    cfg_d.pop("ckpt_every")  # checkpoint frequency does not change the weights
    for name, default in _KEYED_ONLY_WHEN_SET.items():
        if cfg_d[name] == default:
            del cfg_d[name]
    data_id = {"data": data.md5 or str(data.data_dir), **({"subset": data.subset} if data.subset else {})}
    blob = json.dumps({"model": spec, "train": cfg_d, **data_id}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_or_load(name: str, spec: dict, cfg: TrainConfig, data: QuickDraw, device: str | torch.device = "cpu",
                  runs_dir: str | os.PathLike | None = None, progress: bool | str = True,
                  verbose: bool = True) -> tuple[nn.Module, dict]:
    """Train the model described by ``spec`` on the training split (held-out curve on the test split), or
    load it when this exact config was trained before. Returns the model (eval mode, with ``model.precision``
    set to ``cfg.precision``) and its record, with ``record["trained_now"]`` telling which happened.
    Checkpoints load with ``weights_only=True``. A process asking for a config that another one is training
    waits for it, then loads its model."""
    device = torch.device(device)
    check_precision(device, cfg.precision)
    runs_dir = repo_path(runs_dir or DEFAULT_RUNS_DIR)
    key = config_key(spec, cfg, data)
    folder = runs_dir / "models" / f"{name}-{key}"
    final, ckpt = folder / "model.pt", folder / "checkpoint.pt"
    set_seed(cfg.seed)
    model, loss_fn = build_model(spec)
    model.to(device)
    model.precision = cfg.precision  # helpers.evaluation.inference runs its forward passes at this precision
    model.cache_folder = folder  # where helpers.evaluation.stored keeps this model's evaluation results
    waiting = f"{name}: waiting for another process training {folder} ..." if verbose else None
    with locked(runs_dir / "locks" / folder.name, waiting):  # held while training: one process per config
        if final.exists():
            return _load_trained(model, final, device, name, verbose)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"name": name, "model": spec, "train": asdict(cfg),
                                                         "data": data.provenance()}, indent=2),
                                             encoding="utf-8")
        train = (to_tensor(data.x_train, device), torch.from_numpy(data.y_train).to(device))
        # The held-out curve reads the test drawings as the model does (a binarized model: one fixed draw).
        val = (model_inputs(model, to_tensor(data.x_test, device)), torch.from_numpy(data.y_test).to(device))
        if verbose and ckpt.exists():
            print(f"{name}: resuming from {ckpt}")
        record = fit(model, loss_fn, train, val, cfg, ckpt_path=ckpt, progress=progress, desc=name)
        record.update(name=name, key=key, spec=spec, train_config=asdict(cfg), device=str(device),
                      threads=torch.get_num_threads(),  # CPU results are bit-identical per machine and thread count
                      run_id=os.environ.get("QUICKDRAW_RUN_ID"))  # the runner's notebook run that trained it
        atomic_torch_save(final, {"model": model.state_dict(), "record": record})
        ckpt.unlink(missing_ok=True)
    record["trained_now"] = True
    if verbose:
        print(f"{name}: trained {record['steps']} steps in {record['wall_time_s']:.0f} s "
              f"({record['images_per_s']:.0f} images/s); saved {final}")
    return model.eval(), record


def _load_trained(model: nn.Module, final: Path, device: torch.device, name: str,
                  verbose: bool) -> tuple[nn.Module, dict]:
    """``model`` with the weights of ``final`` (a model.pt), in eval mode, and the record saved with them."""
    state = torch.load(final, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    record = state["record"]
    record["trained_now"] = False
    if verbose:
        print(f"{name}: loaded from {final} (trained {record['steps']} steps in {record['wall_time_s']:.0f} s)")
    return model.eval(), record


def untrained_model(spec: dict, seed: int, device: str | torch.device = "cpu") -> nn.Module:
    """The model as ``train_or_load`` initialises it (same seed), before any training; eval mode."""
    set_seed(seed)
    model, _ = build_model(spec)
    return model.to(device).eval()


def run_summary(model: nn.Module, record: dict) -> dict:
    """Size and cost of a trained run: parameters, budget (steps or epochs), batch size, learning rate, seed,
    precision, wall time, images/s, device and the number of CPU threads it trained with (when recorded)."""
    cfg = record["train_config"]
    budget = {"epochs": cfg["epochs"]} if cfg.get("epochs") is not None else {"steps": record["steps"]}
    return {"params": n_params(model), **budget, "batch_size": record["batch_size"], "lr": cfg["lr"],
            "seed": cfg["seed"], "precision": cfg.get("precision", "fp32"), "wall_time_s": record["wall_time_s"],
            "images_per_s": record["images_per_s"], "device": record["device"],
            **({"threads": record["threads"]} if "threads" in record else {})}
