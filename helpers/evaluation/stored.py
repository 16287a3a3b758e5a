"""Evaluation results kept beside the model they evaluate, so that a rerun never computes them twice.

``stored_evaluation`` wraps an evaluation function (``vae_bounds``, ``sampler_metrics``, ...). When one of its
arguments is a model from the model cache (``train_or_load`` sets ``model.cache_folder``), the result is written
to ``<the evaluated model's folder>/evaluations/<function>-<key>.json``, and a later call with the same key loads
it instead of computing it. A rerun after Ctrl-C, or after a change to a notebook's text, then re-renders in
seconds, and an interrupted notebook resumes at the first evaluation it had not finished.

The key is a hash of everything the result depends on: the function's name; every argument (a cached model by
its cache folder, which the model's config and the data's md5s name; arrays and tensors by their bytes; other
objects, such as a fitted mixture, by their attributes); the source of the code that computes it (every file of
``helpers/evaluation``, the model files it imports, and the files that define the classes of the models among the
arguments and of their submodules: an edit to the VAE recomputes the VAEs' evaluations, a new model file recomputes
nothing); and what moves the last bits of a float computation: torch's version, its number of threads and the
device. The functions wrapped
here draw their randomness from their ``seed`` arguments only, so the same key gives the same result.

An evaluation of arrays alone (the t-SNE of a model's codes) is stored where its caller says, ``stored_in=<a
folder>`` (``Notebook.evaluations_dir``); without it, models that did not come from the cache (a test's, or one
built by hand) have no folder: their evaluations are
computed every time, as are those with an argument that cannot be keyed or a result that JSON cannot hold (each
with a warning that names it). The results are JSON (arrays and tensors tagged with their dtype and shape, floats
written exactly), never pickles: reading one runs no code. ``QUICKDRAW_RECOMPUTE=1`` recomputes (and rewrites)
every stored result.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..files import ROOT, atomic_write_text

__all__ = ["stored_evaluation", "evaluation_key", "RECOMPUTE_ENV"]

RECOMPUTE_ENV = "QUICKDRAW_RECOMPUTE"
_EVALUATION_CODE = "helpers/evaluation"
_PACKAGE = "helpers"


def _hash_files(paths) -> str:
    h = hashlib.sha256()
    for path in sorted(set(paths)):
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _evaluation_code() -> tuple[Path, ...]:
    """The evaluation package's files and the package files they import from outside it (``from ..models.vae
    import ...``): the code every stored result may depend on, whatever its arguments."""
    files = sorted((ROOT / _EVALUATION_CODE).rglob("*.py"))
    imported = set()
    for path in files:
        for module in re.findall(r"^from \.\.([\w.]+) import", path.read_text(encoding="utf-8"), flags=re.M):
            target = ROOT / "helpers" / Path(*module.split("."))
            imported.add(target / "__init__.py" if target.is_dir() else target.with_suffix(".py"))
    return tuple(files) + tuple(sorted(imported))


def _model_code(args: tuple, kwargs: dict) -> set[Path]:
    """The source files of the package's classes behind every model among the arguments (a sampler's ``.model``
    included): each submodule's class and its base classes."""
    files = set()
    for obj in (*args, *kwargs.values()):
        for candidate in (obj, getattr(obj, "model", None)):
            if isinstance(candidate, nn.Module):
                for module in candidate.modules():
                    for cls in type(module).__mro__:
                        if cls.__module__.split(".")[0] == _PACKAGE:
                            files.add(Path(inspect.getsourcefile(cls)).resolve())
    return files


def _feed(h, obj, depth: int = 0) -> None:
    """Feed a canonical encoding of ``obj`` into the hash ``h``; an object it cannot encode is an error."""
    if depth > 20:
        raise TypeError("stored_evaluation: argument nested too deeply to be keyed")
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}[{len(obj)}](".encode())
        for x in obj:
            _feed(h, x, depth + 1)
        h.update(b")")
    elif isinstance(obj, dict):
        h.update(f"dict[{len(obj)}](".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k, depth + 1)
            _feed(h, obj[k], depth + 1)
        h.update(b")")
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"ndarray:{a.dtype}:{a.shape}:".encode())
        h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    elif isinstance(obj, (np.generic,)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, (torch.device, torch.dtype)):
        h.update(f"{obj};".encode())
    elif isinstance(obj, nn.Module):
        folder = getattr(obj, "cache_folder", None)
        if folder is not None:  # the folder's name is the model's config and data key
            h.update(f"cached-model:{Path(folder).name}:{getattr(obj, 'precision', 'fp32')};".encode())
        else:
            h.update(f"model:{type(obj).__qualname__}(".encode())
            _feed(h, dict(obj.state_dict()), depth + 1)
            h.update(b")")
    elif isinstance(obj, np.random.RandomState):
        _feed(h, obj.get_state(), depth + 1)
    elif hasattr(obj, "__dict__"):  # a sampler, a fitted mixture: its class and attributes
        h.update(f"object:{type(obj).__module__}.{type(obj).__qualname__}(".encode())
        _feed(h, {k: v for k, v in vars(obj).items()}, depth + 1)
        h.update(b")")
    else:
        raise TypeError(f"stored_evaluation cannot key an argument of type {type(obj).__qualname__}")


def evaluation_key(fn, args: tuple, kwargs: dict) -> str:
    """The hash that names a stored result of ``fn(*args, **kwargs)`` (module docstring)."""
    h = hashlib.sha256()
    code = _hash_files((*_evaluation_code(), *_model_code(args, kwargs)))
    h.update(f"{fn.__module__}.{fn.__qualname__};{code};torch {torch.__version__};"
             f"threads {torch.get_num_threads()};".encode())
    _feed(h, list(args))
    _feed(h, dict(kwargs))
    return h.hexdigest()


def _cache_folder(args: tuple, kwargs: dict) -> Path | None:
    """The cache folder of the last model among the arguments (a sampler holds its model as ``.model``): the
    model evaluated, which comes after the judge in the functions that take both; None when no argument is a
    model from the cache."""
    found = None
    for obj in (*args, *kwargs.values()):
        for candidate in (obj, getattr(obj, "model", None)):
            if isinstance(candidate, nn.Module) and getattr(candidate, "cache_folder", None) is not None:
                found = Path(candidate.cache_folder)
    return found


def _device_of(args: tuple, kwargs: dict) -> str:
    for obj in (*args, *kwargs.values()):
        if isinstance(obj, nn.Module):
            p = next(obj.parameters(), None)
            if p is not None:
                return str(p.device.type)
    return "cpu"


def _encode(obj):
    """``obj`` as JSON-ready data: arrays, tensors, tuples and dicts with keys other than strings are tagged so that
    ``_decode`` gives back the same types; floats are kept exactly (JSON writes their shortest repr)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return {"__ndarray__": obj.dtype.str, "shape": list(obj.shape), "data": obj.ravel().tolist()}
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        return {"__tensor__": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                "data": t.float().ravel().tolist() if t.dtype == torch.bfloat16 else t.ravel().tolist()}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(x) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x) for x in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: _encode(v) for k, v in obj.items()}
        return {"__items__": [[_encode(k), _encode(v)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a result holding {type(obj).__qualname__}")


def _decode(obj):
    if isinstance(obj, list):
        return [_decode(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "__ndarray__" in obj:
        return np.array(obj["data"], dtype=np.dtype(obj["__ndarray__"])).reshape(obj["shape"])
    if "__tensor__" in obj:
        dtype = getattr(torch, obj["__tensor__"])
        return torch.tensor(obj["data"], dtype=dtype).reshape(obj["shape"])
    if "__tuple__" in obj:
        return tuple(_decode(x) for x in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k): _decode(v) for k, v in obj["__items__"]}
    return {k: _decode(v) for k, v in obj.items()}


def stored_evaluation(fn):
    """Decorate an evaluation function whose result depends only on its arguments (module docstring)."""
    @functools.wraps(fn)
    def wrapper(*args, stored_in: str | os.PathLike | None = None, **kwargs):
        model_folder = _cache_folder(args, kwargs)
        if stored_in is not None:
            folder = Path(stored_in)
        elif model_folder is not None:
            folder = model_folder / "evaluations"
        else:
            return fn(*args, **kwargs)
        try:
            key = evaluation_key(fn, (_device_of(args, kwargs), *args), kwargs)
        except TypeError as e:  # the evaluation still runs; it is only not stored
            warnings.warn(f"{fn.__name__}: result not stored ({e})", stacklevel=2)
            return fn(*args, **kwargs)
        path = folder / f"{fn.__name__}-{key[:20]}.json"
        if path.exists() and os.environ.get(RECOMPUTE_ENV) != "1":
            try:
                return _decode(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
                warnings.warn(f"{path}: stored result unreadable ({type(e).__name__}: {e}); computing it again",
                              stacklevel=2)
        result = fn(*args, **kwargs)
        try:
            text = json.dumps(_encode(result))
        except TypeError as e:  # returned, only not stored
            warnings.warn(f"{fn.__name__}: result not stored ({e})", stacklevel=2)
            return result
        atomic_write_text(path, text)
        return result

    wrapper.compute = fn  # the undecorated function, for a caller that must not read a stored result
    return wrapper
