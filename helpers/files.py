"""Paths and atomic file writes: every file this project writes goes through here.

Relative paths given to helpers (the notebooks' ``data_dir``, ``fig_dir``, ``results_path``, ``runs_dir``) are
taken from the repository root (``repo_path``), not from the working directory: a notebook finds the same
folders whether its kernel starts in notebooks/, in the root, or elsewhere (Colab starts in /content).

A write goes to a temporary file in the same folder, is flushed to disk, then renamed over the target
(``os.replace`` is atomic on POSIX and Windows), so an interrupted run leaves either the old file or the
new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "ROOT", "repo_path", "atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
    "atomic_save_npy", "atomic_torch_save", "atomic_savefig", "locked",
]


ROOT = Path(__file__).resolve().parent.parent  # the checkout that holds helpers/ (installed with pip -e)


def repo_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded, and a relative one taken from the repository root."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    if not (ROOT / "notebooks").is_dir():
        raise ValueError(f"relative path {str(path)!r}: helpers is installed at {ROOT}, which is not a checkout of "
                         f"this repository (no notebooks/ beside it); install it with `pip install -e .` from the "
                         f"checkout, or give an absolute path")
    return ROOT / path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # make the bytes durable before the rename makes them visible
            os.fsync(f.fileno())
        tmp.chmod(0o666 & ~_umask())  # mkstemp's file is private (0600); give it an ordinary file's mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read the umask is to set it; set it back at once
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def atomic_torch_save(path: str | os.PathLike, obj) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_savefig(fig, path: str | os.PathLike, dpi: int = 150, metadata: dict | None = None) -> Path:
    """Save a matplotlib figure as PNG atomically (figures/NN_name.png, dpi 150); ``metadata``: text entries
    of the PNG."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png", metadata=metadata)
    return path


@contextlib.contextmanager
def locked(path: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block: other processes (or threads) asking for the same
    path wait until it is released, which also happens when its holder dies. The lock is the file
    ``<path>.lock``, created beside ``path`` and left there (deleting it would let two processes lock two
    different files). ``waiting`` is printed when someone else holds the lock. fcntl.flock where there is
    fcntl (Linux, macOS), the filelock package elsewhere (Windows). Advisory: it keeps out only code that
    takes it too.
    """
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows
        yield from _locked_with_filelock(lock, waiting)
        return
    with open(lock, "a", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _locked_with_filelock(lock: Path, waiting: str | None) -> Iterator[None]:
    """``locked`` where there is no fcntl (Windows): the same, with the filelock package."""
    from filelock import FileLock, Timeout

    file_lock = FileLock(lock)
    try:
        file_lock.acquire(timeout=0)
    except Timeout:
        if waiting:
            print(waiting, file=sys.stderr, flush=True)
        file_lock.acquire()
    try:
        yield
    finally:
        file_lock.release()
