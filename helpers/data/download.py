"""Build the course-format QuickDraw folder from Google's public bitmap files (standard library HTTP only).

Google publishes one file per class, ``<base_url><class>.npy``: a .npy of shape (n, 784) uint8 (28x28
bitmaps, white strokes on black, row-major), some hundreds of MB. We read only its header and the first
``n_train_per_class + n_test_per_class`` rows, using HTTP Range requests when the server honours them and
otherwise stopping the plain download once we have enough bytes.

Interrupted runs resume: finished classes are cached as ``<out_dir>.partial/<class>.rows.npy`` and a
class in progress as ``<class>.part`` (its raw row bytes so far). The four course files are assembled in
``<out_dir>.tmp-<pid>`` and renamed to ``out_dir`` only once complete, so ``out_dir`` is never half-built.

    python -m helpers.data.download --out data/quickdraw_subset_np [--train-per-class 4000] [--test-per-class 1000]
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import numpy as np
from tqdm.auto import tqdm

from ..files import atomic_save_npy
from .quickdraw import CLASS_NAMES, HOW_TO_GET_DATA, DataError, load_quickdraw

__all__ = [
    "DownloadError", "download_quickdraw",
]

QUICKDRAW_BASE_URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/"
ROW_BYTES = 28 * 28  # one uint8 bitmap per row
HEADER_PROBE_BYTES = 1024  # first request: enough for any ordinary .npy header (Google's are < 128 bytes)
MAX_HEADER_BYTES = 64 * 1024  # a longer header is not a QuickDraw file; refuse rather than read on
CHUNK_BYTES = 64 * 1024


class DownloadError(RuntimeError):
    """Fetching a QuickDraw file failed or it was not what we expected; the message names the URL."""


def check_url(url: str) -> str:
    """Return ``url`` if it is a QuickDraw URL (or a loopback test server's), else raise ValueError."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{url!r}: invalid port ({e})") from None
    quickdraw = (parts.scheme == "https" and parts.hostname == "storage.googleapis.com"
                 and port in (None, 443) and parts.path.startswith("/quickdraw_dataset/"))
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and port is not None
    # userinfo ("host@evil") and ".." segments could point the request somewhere the prefix check didn't see
    sneaky = (parts.username is not None or ".." in unquote(parts.path).split("/")
              or parts.query or parts.fragment)
    if not (quickdraw or loopback) or sneaky:
        raise ValueError(f"{url!r}: only {QUICKDRAW_BASE_URL.rsplit('full/', 1)[0]} URLs are allowed "
                         "(or http://127.0.0.1:<port>/ and http://localhost:<port>/ for tests)")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect could leave the allowed hosts, so a 3xx answer becomes an HTTPError


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list = [_NoRedirect]
    if urlsplit(url).scheme == "http":  # loopback test server: never send it through a configured proxy
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def _failed(url: str, reason: object) -> str:
    return (f"QuickDraw download failed: {url}: {reason}. Partial downloads are kept and resumed on the next "
            f"run. Without network access: {HOW_TO_GET_DATA}")


def _skip(resp, n: int) -> None:
    """Read and drop the first ``n`` bytes of a response (a server that ignored the Range)."""
    while n:
        chunk = resp.read(min(CHUNK_BYTES, n))
        if not chunk:
            break
        n -= len(chunk)


def _fetch(url: str, start: int, length: int, write, timeout: float, exact: bool = True) -> int:
    """Pass bytes [start, start + length) of ``url`` to ``write``; return how many (``length`` if exact).

    Asks for a Range. A 206 answer must cover exactly that range (a larger one is refused); a 200 answer
    (Range ignored) is the whole file, so we skip ``start`` bytes and hang up after ``length`` more.
    """
    request = urllib.request.Request(url, headers={
        "Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity",
        "User-Agent": "quickdraw-ae"})
    got = 0
    try:
        with _opener(url).open(request, timeout=timeout) as resp:
            if resp.status == 206:
                m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", "").strip())
                size = resp.length or 0  # the parsed Content-Length (None when absent)
                if not m or int(m[1]) != start or int(m[2]) - start + 1 > length or size > length:
                    raise DownloadError(f"{url}: asked for bytes {start}-{start + length - 1}, server "
                                        f"answered {m and m[0]!r}, Content-Length {size}; refused")
            elif resp.status == 200:
                _skip(resp, start)
            else:
                raise DownloadError(_failed(url, f"unexpected HTTP status {resp.status}"))
            while got < length:
                chunk = resp.read(min(CHUNK_BYTES, length - got))
                if not chunk:
                    break
                write(chunk)
                got += len(chunk)
            if resp.status == 206 and resp.read(1):  # without Content-Length, the body could run on
                raise DownloadError(f"{url}: server sent more than the {length} bytes requested; refused")
    except urllib.error.HTTPError as e:
        raise DownloadError(_failed(url, f"HTTP {e.code} {e.reason}")) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # also socket timeouts, resets
        raise DownloadError(_failed(url, getattr(e, "reason", None) or repr(e))) from None
    if exact and got < length:
        raise DownloadError(_failed(url, f"connection ended after {got} of {length} bytes"))
    return got


def _read_header(url: str, n_rows: int, timeout: float) -> int:
    """Fetch and check the .npy header of ``url``; return the byte offset where row 0 starts."""
    buf = bytearray()
    _fetch(url, 0, HEADER_PROBE_BYTES, buf.extend, timeout, exact=False)
    if bytes(buf[:6]) != b"\x93NUMPY" or len(buf) < 12 or buf[6] not in (1, 2, 3):
        raise DownloadError(f"{url}: not a .npy file; expected a numpy array of shape (n, 784) uint8")
    # version 1 stores the header length in 2 bytes, versions 2 and 3 in 4
    size_bytes = 2 if buf[6] == 1 else 4
    head_end = 8 + size_bytes + int.from_bytes(buf[8:8 + size_bytes], "little")
    if head_end > MAX_HEADER_BYTES:
        raise DownloadError(f"{url}: .npy header of {head_end} bytes; expected at most {MAX_HEADER_BYTES}")
    if head_end > len(buf):
        _fetch(url, len(buf), head_end - len(buf), buf.extend, timeout)
    f = io.BytesIO(bytes(buf[:head_end]))
    try:  # numpy's parser evaluates the header as a Python literal only: no pickle, no eval
        fmt = np.lib.format
        read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(f, max_header_size=MAX_HEADER_BYTES)
    except (ValueError, EOFError) as e:
        raise DownloadError(f"{url}: unreadable .npy header ({e})") from None
    if dtype != np.uint8 or fortran or len(shape) != 2 or shape[1] != ROW_BYTES or shape[0] < n_rows:
        raise DownloadError(f"{url}: holds shape {shape} dtype {dtype} fortran_order={fortran}; expected "
                            f"shape (n >= {n_rows}, {ROW_BYTES}) dtype uint8 ('|u1') in C order")
    return head_end


def _class_rows(url: str, name: str, n_rows: int, work: Path, bar, timeout: float) -> np.ndarray:
    """The first ``n_rows`` rows of one class file, (n_rows, 784) uint8, cached in ``work``."""
    rows_path, part = work / f"{name}.rows.npy", work / f"{name}.part"
    need = n_rows * ROW_BYTES
    if rows_path.is_file():
        rows = np.load(rows_path, allow_pickle=False)
        if rows.dtype == np.uint8 and rows.ndim == 2 and rows.shape[1] == ROW_BYTES and len(rows) >= n_rows:
            bar.update(need)
            return rows[:n_rows]
        rows_path.unlink()  # cached for a smaller request: download again
    offset = _read_header(url, n_rows, timeout)
    have = part.stat().st_size if part.is_file() else 0
    with open(part, "ab") as f:
        if have > need:  # the .part is a prefix of the rows, so a longer one can simply be cut
            f.truncate(need)
            have = need
        bar.update(have)

        def write(chunk: bytes) -> None:
            f.write(chunk)
            f.flush()  # what arrived survives an interruption and is resumed from next time
            bar.update(len(chunk))

        if have < need:
            _fetch(url, offset + have, need - have, write, timeout)
    if part.stat().st_size != need:  # belt and braces: never build rows from a torn file
        part.unlink()
        raise DownloadError(_failed(url, "cached bytes have the wrong length; discarded, run again"))
    rows = np.fromfile(part, dtype=np.uint8).reshape(n_rows, ROW_BYTES)
    atomic_save_npy(rows_path, rows)
    part.unlink()
    return rows


def download_quickdraw(out_dir: str | os.PathLike, n_train_per_class: int = 4000,
                       n_test_per_class: int = 1000, *, classes: tuple[str, ...] = CLASS_NAMES,
                       base_url: str = QUICKDRAW_BASE_URL, seed: int = 597, progress: bool = True,
                       timeout: float = 20.0) -> Path:
    """Write a course-format folder at ``out_dir`` from the QuickDraw bitmap files; return its path.

    Writes train_images.npy (N, 28, 28) uint8 and train_labels.npy (N,) int64 with
    N = len(classes) * n_train_per_class, likewise test_* (M = len(classes) * n_test_per_class). Labels
    index ``classes``. Each class contributes its file's first n_train + n_test rows, split by a permutation
    seeded with ``seed``; each split is then shuffled with the same generator.
    ``timeout`` (seconds) bounds each connection and read. An existing valid ``out_dir`` is returned as is.
    Raises ValueError (bad arguments or URL), DownloadError (network, server, file format).
    """
    urls = _class_urls(n_train_per_class, n_test_per_class, classes, base_url)
    out_dir = Path(out_dir).expanduser().resolve()
    if _is_complete_folder(out_dir):
        return out_dir
    work = out_dir.with_name(out_dir.name + ".partial")
    work.mkdir(parents=True, exist_ok=True)
    n_rows = n_train_per_class + n_test_per_class
    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    with tqdm(total=len(classes) * n_rows * ROW_BYTES, unit="B", unit_scale=True, unit_divisor=1024,
              desc="QuickDraw", disable=not progress) as bar:
        for label, (name, url) in enumerate(zip(classes, urls, strict=True)):
            bar.set_postfix_str(name)
            rows = _class_rows(url, name, n_rows, work, bar, timeout).reshape(n_rows, 28, 28)
            perm = rng.permutation(n_rows)
            for split, idx in (("train", perm[:n_train_per_class]), ("test", perm[n_train_per_class:])):
                splits[split][0].append(rows[idx])
                splits[split][1].append(np.full(len(idx), label, dtype=np.int64))
    _write_course_folder(out_dir, splits, rng)
    shutil.rmtree(work, ignore_errors=True)
    return out_dir


def _class_urls(n_train_per_class: int, n_test_per_class: int, classes: tuple[str, ...], base_url: str) -> list:
    """The checked URL of each class's file; ValueError on bad arguments."""
    if n_train_per_class < 1 or n_test_per_class < 1:
        raise ValueError("n_train_per_class and n_test_per_class must be >= 1 (an empty split is invalid)")
    if not 1 <= len(classes) <= len(CLASS_NAMES) or len(set(classes)) != len(classes) or not all(
            re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _-]*", c) for c in classes):  # names become file names
        raise ValueError(f"classes {classes!r}: expected 1 to {len(CLASS_NAMES)} distinct plain names")
    base = check_url(base_url.rstrip("/") + "/")
    return [check_url(base + quote(name) + ".npy") for name in classes]


def _is_complete_folder(out_dir: Path) -> bool:
    """True for a valid course-format folder, False for a missing or empty one; DownloadError otherwise
    (never delete what the user put there)."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return False
    try:
        load_quickdraw(out_dir, with_md5=False)
        return True
    except DataError as e:
        raise DownloadError(f"{out_dir} exists but is not a complete course-format folder ({e}). "
                            "Move it away or choose another output folder.") from None


def _write_course_folder(out_dir: Path, splits: dict, rng: np.random.Generator) -> None:
    """Shuffle each split, write the four files to a temporary folder, check it like every notebook will,
    then rename it to ``out_dir``."""
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run that had our pid
    tmp.mkdir()
    try:
        for split, (xs, ys) in splits.items():
            order = rng.permutation(sum(len(y) for y in ys))
            atomic_save_npy(tmp / f"{split}_images.npy", np.concatenate(xs)[order])
            atomic_save_npy(tmp / f"{split}_labels.npy", np.concatenate(ys)[order])
        load_quickdraw(tmp, with_md5=False)
        if out_dir.is_dir():
            out_dir.rmdir()  # empty (checked before); rename cannot replace a folder on every OS
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.data.download", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder, e.g. data/quickdraw_subset_np")
    parser.add_argument("--train-per-class", type=int, default=4000, help="training drawings per class")
    parser.add_argument("--test-per-class", type=int, default=1000, help="test drawings per class")
    parser.add_argument("--base-url", default=QUICKDRAW_BASE_URL, help="folder URL holding <class>.npy")
    parser.add_argument("--seed", type=int, default=597, help="seed of the split and the shuffle")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        out = download_quickdraw(args.out, args.train_per_class, args.test_per_class, base_url=args.base_url,
                                 seed=args.seed, progress=not args.no_progress)
    except (DownloadError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
