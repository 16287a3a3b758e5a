"""Data: the course's QuickDraw folder format, its validating loader, a synthetic stand-in for tests.

Course format (``quickdraw_subset_np/``)::

    train_images.npy  (N, 28, 28) or (N, 784) uint8 in 0..255, white strokes on black
    train_labels.npy  (N,) integers in 0..4
    test_images.npy   (M, 28, 28) or (M, 784)
    test_labels.npy   (M,)

Classes: 0 rabbit, 1 yoga, 2 hand, 3 snowman, 4 motorbike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_save_npy, atomic_write_text, repo_path

__all__ = [
    "CLASS_NAMES", "FILES", "DEFAULT_DATA_DIR", "SYNTHETIC_MARKER", "DataError", "QuickDraw", "resolve_data_dir",
    "md5sum", "load_quickdraw", "to_tensor", "make_synthetic_images", "write_synthetic_quickdraw",
    "pick_per_class", "pick_pair", "random_subset", "ink_fraction", "VALIDATION", "split_validation",
]

CLASS_NAMES = ("rabbit", "yoga", "hand", "snowman", "motorbike")
SPLITS = ("train", "test")
FILES = tuple(f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels"))
DEFAULT_DATA_DIR = "data/quickdraw_subset_np"
SYNTHETIC_MARKER = "SYNTHETIC.txt"
HOW_TO_GET_DATA = (
    "Copy the course's quickdraw_subset_np folder to data/quickdraw_subset_np, point QUICKDRAW_DIR at "
    "a folder in the same format, or run `make data` to build one from Google's QuickDraw files."
)


class DataError(ValueError):
    """A data file or folder is missing or not in the course format; the message names the file."""


@dataclass
class QuickDraw:
    """The two splits of a course-format folder. Images (N, 28, 28) uint8, labels (N,) int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    data_dir: Path
    class_names: tuple[str, ...] = CLASS_NAMES
    synthetic: bool = False
    md5: dict[str, str] = field(default_factory=dict)
    subset: str = ""  # "" for the folder's whole training split; else which part of it x_train holds

    def provenance(self) -> dict:
        """What was loaded, from where: for results/metrics.json and the report."""
        return {
            "data_dir": str(self.data_dir),
            "synthetic": self.synthetic,
            "class_names": list(self.class_names),
            "n_train": int(len(self.y_train)),
            "n_test": int(len(self.y_test)),
            "train_per_class": np.bincount(self.y_train, minlength=len(self.class_names)).tolist(),
            "test_per_class": np.bincount(self.y_test, minlength=len(self.class_names)).tolist(),
            "md5": dict(self.md5),
        }


VALIDATION = {"fraction": 0.1, "seed": 0}  # the fixed validation part of the training split


def split_validation(data: QuickDraw, fraction: float = VALIDATION["fraction"], seed: int = VALIDATION["seed"]):
    """Carve a stratified validation part (``fraction`` of each class, seeded) out of the training split.

    Returns ``(fit, x_val, y_val)``: ``fit`` is ``data`` with x_train/y_train cut down to the rest (its
    ``subset`` says so, which keeps models trained on it apart in the cache), and the validation drawings
    (N, 28, 28) uint8 with their labels. Every choice between models or settings is made on this part; the
    test split only reports. The same data, fraction and seed always give the same split."""
    from sklearn.model_selection import train_test_split

    if data.subset:
        raise ValueError(f"split_validation needs the whole training split, got a subset: {data.subset}")
    fit_idx, val_idx = train_test_split(np.arange(len(data.y_train)), test_size=fraction, stratify=data.y_train,
                                        random_state=seed)
    fit_idx, val_idx = np.sort(fit_idx), np.sort(val_idx)
    fit = dataclasses.replace(data, x_train=data.x_train[fit_idx], y_train=data.y_train[fit_idx],
                              subset=f"training split without the validation part ({fraction:g}, seed {seed})")
    return fit, data.x_train[val_idx], data.y_train[val_idx]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``$QUICKDRAW_DIR`` when set (a path as the shell sees it: relative to the working
    directory), else ``data_dir``, else data/quickdraw_subset_np (both relative to the repository root)."""
    env = os.environ.get("QUICKDRAW_DIR")
    if env:
        return Path(env).expanduser().absolute()
    return repo_path(data_dir or DEFAULT_DATA_DIR)


def md5sum(path: str | os.PathLike) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_npy(path: Path) -> np.ndarray:
    """Read a .npy file without ever unpickling; check its header against its size first."""
    if not path.is_file():
        raise DataError(f"{path}: file not found. {HOW_TO_GET_DATA}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(f)
        except (ValueError, EOFError, OSError) as e:
            raise DataError(f"{path}: not a valid .npy file ({e}); expected an array saved by numpy.save") from e
        if dtype.hasobject:
            raise DataError(
                f"{path}: holds a pickled object array (dtype {dtype}); expected a plain numeric array. "
                "Pickled arrays can run code when loaded, so they are refused."
            )
        expected = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < expected:
        raise DataError(f"{path}: truncated: {size} bytes, but its header {shape} {dtype} needs {expected}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:  # pragma: no cover - header checks catch these first
        raise DataError(f"{path}: could not be read as .npy ({e})") from e


def _validated_images(path: Path, x: np.ndarray) -> np.ndarray:
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{path}: images have shape {x.shape}; expected (N, 28, 28) or (N, 784)")
    if not np.issubdtype(x.dtype, np.integer):
        raise DataError(
            f"{path}: images have dtype {x.dtype}; expected uint8 in 0..255 "
            "(float images in [0, 1] can be converted with (x * 255).round().astype(np.uint8))"
        )
    if len(x) and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{path}: image values span {x.min()}..{x.max()}; expected 0..255")
    return x.astype(np.uint8, copy=False)


def _validated_labels(path: Path, y: np.ndarray, n_classes: int) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: labels have dtype {y.dtype}; expected integers 0..{n_classes - 1}")
    if y.ndim != 1:
        raise DataError(f"{path}: labels have shape {y.shape}; expected (N,)")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        bad = np.unique(y[(y < 0) | (y >= n_classes)])[:5].tolist()
        raise DataError(f"{path}: labels {bad} out of range; expected 0..{n_classes - 1} ({', '.join(CLASS_NAMES)})")
    return y.astype(np.int64, copy=False)


def load_quickdraw(data_dir: str | os.PathLike, with_md5: bool = True) -> QuickDraw:
    """Load and validate a course-format folder. Every problem raises DataError naming the file."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found. {HOW_TO_GET_DATA}")
    missing = [name for name in FILES if not (data_dir / name).is_file()]
    if missing:
        raise DataError(f"{data_dir}: missing {', '.join(missing)}; expected {', '.join(FILES)}. {HOW_TO_GET_DATA}")
    arrays = {}
    for split in SPLITS:
        xp, yp = data_dir / f"{split}_images.npy", data_dir / f"{split}_labels.npy"
        x = _validated_images(xp, _read_npy(xp))
        y = _validated_labels(yp, _read_npy(yp), len(CLASS_NAMES))
        if len(x) != len(y):
            raise DataError(f"{xp}: {len(x)} images but {yp.name} has {len(y)} labels; expected equal counts")
        if len(x) == 0:
            raise DataError(f"{xp}: the {split} split is empty; expected at least one drawing")
        arrays[split] = (x, y)
    md5 = {name: md5sum(data_dir / name) for name in FILES} if with_md5 else {}
    return QuickDraw(
        *arrays["train"], *arrays["test"], data_dir=data_dir,
        synthetic=(data_dir / SYNTHETIC_MARKER).exists(), md5=md5,
    )


def to_tensor(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255.0).unsqueeze(1)


# ---------------------------------------------------------------------------------------------------
# Synthetic data, for tests only. The folder carries a SYNTHETIC.txt marker, which load_quickdraw
# reports as ``synthetic=True``; nothing falls back to it.
# ---------------------------------------------------------------------------------------------------

def _stroke(img: np.ndarray, pts: np.ndarray, width: float = 1.2) -> None:
    """Draw a polyline of (x, y) points in 28x28 pixel units with soft edges."""
    yy, xx = np.mgrid[0:28, 0:28]
    dense = []
    for a, b in zip(pts[:-1], pts[1:]):
        n = max(2, int(np.hypot(*(b - a)) * 3))
        dense.append(a + (b - a) * np.linspace(0, 1, n)[:, None])
    p = np.concatenate(dense)
    d = np.sqrt((xx[..., None] - p[:, 0]) ** 2 + (yy[..., None] - p[:, 1]) ** 2).min(-1)
    np.maximum(img, np.clip(1.5 - d / width, 0, 1), out=img)


def _ellipse(cx, cy, rx, ry, n=24):
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _synthetic_drawing(label: int, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((28, 28), np.float32)
    j = lambda s=1.0: rng.normal(0, s)  # noqa: E731 - jitter
    if label == 0:  # rabbit: head and two long ears
        _stroke(img, _ellipse(14 + j(), 18 + j(), 6 + j(0.5), 5 + j(0.5)))
        _stroke(img, _ellipse(11 + j(), 8 + j(), 1.5, 5 + j(0.5)))
        _stroke(img, _ellipse(17 + j(), 8 + j(), 1.5, 5 + j(0.5)))
    elif label == 1:  # yoga: stick figure with raised arms
        cx = 14 + j()
        _stroke(img, _ellipse(cx, 5 + j(0.5), 2, 2, 12))
        _stroke(img, np.array([[cx, 7], [cx + j(), 17], [cx - 6 + j(), 25], [cx - 6, 25]]))
        _stroke(img, np.array([[cx + j(), 17], [cx + 6 + j(), 25]]))
        _stroke(img, np.array([[cx - 8 + j(), 3 + j()], [cx, 10], [cx + 8 + j(), 3 + j()]]))
    elif label == 2:  # hand: palm and five fingers
        _stroke(img, _ellipse(14 + j(), 19 + j(), 6, 5))
        for k in range(5):
            x = 8 + 3 * k + j(0.4)
            _stroke(img, np.array([[x, 15], [x + j(0.5), 4 + abs(k - 2) * 2 + j(0.5)]]))
    elif label == 3:  # snowman: two stacked circles
        cx = 14 + j()
        _stroke(img, _ellipse(cx, 19 + j(0.5), 7 + j(0.4), 6))
        _stroke(img, _ellipse(cx + j(0.5), 8 + j(0.5), 4 + j(0.3), 4))
    else:  # motorbike: two wheels and a frame
        y = 19 + j()
        _stroke(img, _ellipse(7 + j(), y, 4, 4))
        _stroke(img, _ellipse(21 + j(), y, 4, 4))
        _stroke(img, np.array([[7, y], [12, y - 7 + j()], [18, y - 7 + j()], [21, y], [12, y - 7]]))
    return (img * 255).round().astype(np.uint8)


def make_synthetic_images(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic synthetic drawings: (5 * n_per_class, 28, 28) uint8 and their labels (int64)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASS_NAMES)), n_per_class)
    rng.shuffle(labels)
    images = [_synthetic_drawing(int(c), rng) for c in labels]
    images = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    return images, labels.astype(np.int64)


def write_synthetic_quickdraw(out_dir: str | os.PathLike, n_train_per_class: int = 40,
                              n_test_per_class: int = 10, seed: int = 0) -> Path:
    """Write a SYNTHETIC course-format folder (for tests and demos only; marked with SYNTHETIC.txt)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = make_synthetic_images(n_train_per_class, seed)
    x_te, y_te = make_synthetic_images(n_test_per_class, seed + 1)
    atomic_write_text(out_dir / SYNTHETIC_MARKER,
                      "SYNTHETIC data from helpers.write_synthetic_quickdraw, for tests only; not QuickDraw.\n")
    for name, arr in [("train_images", x_tr), ("train_labels", y_tr), ("test_images", x_te), ("test_labels", y_te)]:
        atomic_save_npy(out_dir / f"{name}.npy", arr)
    return out_dir


def pick_per_class(labels: np.ndarray, n_per_class: int, seed: int = 0,
                   n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Indices of ``n_per_class`` randomly chosen items of each class, class by class (for figures)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < n_per_class:
            raise ValueError(f"class {CLASS_NAMES[c]} has {len(pool)} drawings; {n_per_class} asked for")
        out.append(np.sort(rng.choice(pool, n_per_class, replace=False)))
    return np.concatenate(out)


def pick_pair(labels: np.ndarray, class_a: str, class_b: str, seed: int = 0) -> tuple[int, int]:
    """One drawing of each of two classes named as in CLASS_NAMES: the picks of ``pick_per_class(labels, 1,
    seed)`` for those classes (e.g. the end points of an interpolation)."""
    for name in (class_a, class_b):
        if name not in CLASS_NAMES:
            raise ValueError(f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}")
    picks = pick_per_class(labels, 1, seed)
    return int(picks[CLASS_NAMES.index(class_a)]), int(picks[CLASS_NAMES.index(class_b)])


def random_subset(X: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` rows of X chosen at random without replacement (all of them, shuffled, when n >= len(X)); a
    torch.Generator seeded with ``seed`` draws the permutation."""
    return X[torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:n].to(X.device)]


def ink_fraction(images: np.ndarray, threshold: int = 0) -> np.ndarray:
    """(N,) fraction of pixels brighter than ``threshold`` in each (N, 28, 28) uint8 drawing."""
    return (images.reshape(len(images), -1) > threshold).mean(1)
