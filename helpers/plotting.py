"""Plotting: every figure of the notebooks. Functions return a matplotlib Figure; ``savefig`` writes it.

Drawings are shown as black strokes on white (``gray_r``), the way they were drawn. Image grids come from
``grid_image``.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .data.quickdraw import CLASS_NAMES, ink_fraction
from .files import atomic_savefig, repo_path

__all__ = [
    "savefig", "grid_image", "class_counts", "examples_per_class", "mean_drawings", "ink_histograms",
    "loss_curves", "vae_loss_parts", "compare_curves", "reconstruction_grid", "sample_grids", "relabel_grids",
    "confusion_matrices", "conditional_grid", "interpolation_rows", "nearest_neighbour_pairs",
    "confusion_matrix_plot", "tsne_panels", "iwae_curves", "rate_distortion_figure",
]

CMAP = "gray_r"
PAD = 2  # pixels between drawings in a grid
# At most this many drawings side by side in one figure: shown at page width (about 900 pixels), each drawing
# then keeps about 50 pixels, enough to see its strokes. Wider grids are wrapped into rows of panels.
MAX_DRAWING_COLUMNS = 16
# The PNG text key under which savefig records the width (pixels) of the narrowest drawing in the figure.
DRAWING_WIDTH_KEY = "quickdraw-ae drawing width px"


def savefig(fig, fig_dir: str | os.PathLike, name: str, dpi: int = 150) -> Path:
    """Write ``fig`` to ``fig_dir/name`` (PNG, atomically; a relative ``fig_dir`` is taken from the repository
    root) and return the path. The width in pixels of the figure's narrowest drawing thumbnail goes into the
    PNG's metadata (``DRAWING_WIDTH_KEY``; "none" for a figure without drawings), so that a test can tell how
    large drawings appear at page width."""
    width = drawing_width_px(fig, dpi)
    metadata = {DRAWING_WIDTH_KEY: "none" if width is None else f"{width:.1f}"}
    return atomic_savefig(fig, repo_path(fig_dir) / name, dpi=dpi, metadata=metadata)


def drawing_width_px(fig, dpi: float) -> float | None:
    """The displayed width, in pixels of a PNG saved at ``dpi``, of the narrowest 28-pixel drawing in ``fig``'s
    image grids (``grid_image``) and single drawings; None when the figure shows no drawing."""
    fig.canvas.draw()
    widths = []
    for ax in fig.axes:
        for im in ax.get_images():
            if not getattr(im, "shows_drawings", False):
                continue
            shown = im.get_window_extent().width * dpi / fig.dpi  # the whole image, in saved pixels
            widths.append(shown * 28 / im.get_array().shape[1])
    return min(widths) if widths else None


def _as_images(x) -> torch.Tensor:
    """uint8 (N, 28, 28) array or float tensor (N, 1, 28, 28) -> float tensor (N, 1, 28, 28) in [0, 1]."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    x = x.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255
    if x.ndim == 3:
        x = x.unsqueeze(1)
    return x.float()


def grid_image(images, nrow: int, pad_value: float = 0.35) -> np.ndarray:
    """(N, 1, 28, 28) -> one (H, W) float32 array with ``nrow`` drawings per row and ``PAD`` pixels of
    gray between and around them (the layout of torchvision's ``make_grid``, without needing torchvision,
    whose builds are tied to one torch release each)."""
    x = _as_images(images)[:, 0].numpy()  # (N, h, w)
    n, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((rows * (h + PAD) + PAD, cols * (w + PAD) + PAD), pad_value, dtype=np.float32)
    for i, image in enumerate(x):
        r, c = divmod(i, cols)
        grid[PAD + r * (h + PAD):PAD + r * (h + PAD) + h, PAD + c * (w + PAD):PAD + c * (w + PAD) + w] = image
    return grid


def _show_grid(ax, images, nrow: int, row_labels=None, col_labels=None):
    im = ax.imshow(grid_image(images, nrow), cmap=CMAP, vmin=0, vmax=1, interpolation="nearest")
    im.shows_drawings = True  # read by drawing_width_px
    cell = 28 + PAD
    ax.set_xticks([PAD + 14 + cell * i for i in range(len(col_labels))] if col_labels else [])
    ax.set_xticklabels(col_labels or [], rotation=0, fontsize=8)
    if col_labels:
        ax.xaxis.tick_top()
    ax.set_yticks([PAD + 14 + cell * i for i in range(len(row_labels))] if row_labels else [])
    ax.set_yticklabels(row_labels or [])
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)


# --- data -------------------------------------------------------------------------------------------

def class_counts(data, class_names=CLASS_NAMES):
    """Bar chart: drawings per class in each split."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(class_names))
    for off, split, y in [(-0.2, "train", data.y_train), (0.2, "test", data.y_test)]:
        counts = np.bincount(y, minlength=len(class_names))
        bars = ax.bar(x + off, counts, width=0.4, label=f"{split} ({len(y)})")
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x, class_names)
    ax.set_ylabel("drawings")
    ax.set_title("Drawings per class")
    ax.legend()
    return fig


def examples_per_class(images, labels, n_per_class: int = 10, class_names=CLASS_NAMES, seed: int = 0,
                       title: str = "Example drawings"):
    """One row per class of ``n_per_class`` randomly chosen drawings, labelled with the class name."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), n_per_class, replace=False) for c in range(len(class_names))]
    fig, ax = plt.subplots(figsize=(n_per_class * 0.75 + 1, len(class_names) * 0.8 + 0.6))
    _show_grid(ax, images[np.concatenate(picks)], n_per_class, row_labels=list(class_names))
    ax.set_title(title)
    return fig


def mean_drawings(images, labels, class_names=CLASS_NAMES):
    """Per class, the mean drawing (top row) and the standard deviation of each pixel (bottom row), both of
    intensities in [0, 1]: where a class's drawings agree and where they vary."""
    fig, axes = plt.subplots(2, len(class_names), figsize=(1.9 * len(class_names), 4.3), squeeze=False)
    for c in range(len(class_names)):
        x = images[labels == c].astype(np.float32) / 255
        for ax, image, what in ((axes[0][c], x.mean(0), "mean"), (axes[1][c], x.std(0), "sd")):
            im = ax.imshow(image, cmap=CMAP, vmin=0, vmax=1 if what == "mean" else 0.5)
            im.shows_drawings = True
            ax.set_title(f"{class_names[c]}: {what}", fontsize=10)
            ax.axis("off")
    fig.suptitle("Mean and standard deviation of each pixel, per class (training split)")
    fig.tight_layout()
    return fig


def ink_histograms(images, labels, class_names=CLASS_NAMES, threshold: int = 0):
    """Per class, the distribution of the fraction of lit pixels (value > ``threshold``) per drawing."""
    ink = ink_fraction(images, threshold)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0, ink.max() * 1.02, 40)
    for c, name in enumerate(class_names):
        ax.hist(ink[labels == c], bins=bins, histtype="step", linewidth=1.5,
                label=f"{name} (mean {ink[labels == c].mean():.3f})")
    ax.set_xlabel("fraction of lit pixels per drawing")
    ax.set_ylabel("drawings")
    ax.set_title("Ink per drawing (training split)")
    ax.legend(fontsize=8)
    return fig


# --- training -----------------------------------------------------------------------------------------

def loss_curves(record: dict, title: str, ylabel: str = "per-pixel MSE", log_y: bool = True,
                baseline: tuple[str, float] | None = None):
    """Training loss (window means) and held-out loss against training steps; ``baseline``: (label, value),
    drawn as a dashed horizontal line (e.g. the test MSE of the mean training image)."""
    h = record["history"]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    every = h["log_every"]
    label = "train (epoch means)" if every == h["steps_per_epoch"] else f"train ({every}-step means)"
    ax.plot(h["train"]["step"], h["train"]["loss"], lw=1, alpha=0.8, label=label)
    if h["val"]["step"]:
        ax.plot(h["val"]["step"], h["val"]["loss"], "o-", ms=3, label="held-out (test split)")
    if baseline is not None:
        ax.axhline(baseline[1], ls="--", color="0.4", lw=1, label=f"{baseline[0]} ({baseline[1]:.4f})")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def vae_loss_parts(records: dict[str, dict]):
    """Per model: negative ELBO, reconstruction and KL (nats per image), train and test, per epoch."""
    parts = [("loss", "negative ELBO"), ("rec", "reconstruction (BCE)"), ("kl", "KL")]
    fig, axes = plt.subplots(len(records), 3, figsize=(13, 3.2 * len(records)), squeeze=False)
    for row, (name, rec) in zip(axes, records.items()):
        h = rec["history"]
        per_epoch = h["steps_per_epoch"]
        for ax, (key, label) in zip(row, parts):
            ax.plot(np.array(h["train"]["step"]) / per_epoch, h["train"][key], label="train")
            ax.plot(np.array(h["val"]["step"]) / per_epoch, h["val"][key], label="test")
            ax.set_title(f"{name}: {label}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("nats per image")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    return fig


def compare_curves(records: dict[str, dict], key: str = "loss", ylabel: str = "test negative ELBO (nats per image)",
                   x: str = "epoch"):
    """Held-out curves of several models on one plot, against the epoch or (``x="step"``) the step."""
    if x not in ("epoch", "step"):
        raise ValueError(f"x must be 'epoch' or 'step', got {x!r}")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, rec in records.items():
        h = rec["history"]
        steps = np.array(h["val"]["step"])
        ax.plot(steps / h["steps_per_epoch"] if x == "epoch" else steps, h["val"][key], label=name)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


# --- reconstructions and samples ------------------------------------------------------------------

def reconstruction_grid(rows: dict[str, torch.Tensor], labels, class_names=CLASS_NAMES, title: str = ""):
    """Rows of drawings (e.g. original / untrained / trained), one column per drawing, named by class."""
    n = len(labels)
    stacked = torch.cat([_as_images(v) for v in rows.values()])
    fig, ax = plt.subplots(figsize=(n * 0.8 + 1.5, len(rows) * 0.9 + 0.9))
    _show_grid(ax, stacked, n, row_labels=list(rows), col_labels=[class_names[int(c)] for c in labels])
    ax.tick_params(axis="x", labelrotation=60)
    ax.set_title(title)
    return fig


def panel_layout(n_panels: int, columns: int, rows: int, max_aspect: float = 2.6) -> int:
    """How many panels of ``columns`` x ``rows`` drawings to put side by side: as many as keep at most
    ``MAX_DRAWING_COLUMNS`` drawings across the figure and its width at most ``max_aspect`` times its height,
    at least one."""
    best = 1
    for per_row in range(1, n_panels + 1):
        n_rows = -(-n_panels // per_row)
        width, height = per_row * columns, n_rows * (rows + 0.8)  # 0.8: a panel title's height in drawings
        if per_row * columns <= MAX_DRAWING_COLUMNS and width <= max_aspect * height:
            best = per_row
    return best


def sample_grids(samples: dict[str, torch.Tensor], nrow: int = 8, title: str = "Samples from the prior z ~ N(0, I)",
                 row_labels=None):
    """Grids of samples, one panel per model or sampler, ``nrow`` drawings per grid row; the panels are set side
    by side, wrapped into rows of panels where a single row would be too wide to read at page width
    (``panel_layout``). ``row_labels``: a label per grid row, for the first panel of each row of panels (a list)
    or for the panels it names (a dict {panel name: labels})."""
    rows = max((len(s) + nrow - 1) // nrow for s in samples.values())
    columns = min(nrow, max(len(s) for s in samples.values()))
    per_row = panel_layout(len(samples), columns, rows)
    n_rows = -(-len(samples) // per_row)
    label_width = 1.6 if row_labels is not None else 0.3
    fig, axes = plt.subplots(n_rows, per_row, figsize=(0.65 * columns * per_row + label_width,
                                                       (0.65 * rows + 0.5) * n_rows + 0.5), squeeze=False)
    if row_labels is not None and not isinstance(row_labels, dict):
        row_labels = {name: row_labels for i, name in enumerate(samples) if i % per_row == 0}
    for ax in axes.flat[len(samples):]:
        ax.axis("off")
    for ax, (name, s) in zip(axes.flat, samples.items()):
        _show_grid(ax, s, nrow, row_labels=(row_labels or {}).get(name))
        ax.set_title(name, fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def conditional_grid(samples, n_per_class: int, class_names=CLASS_NAMES, title: str = ""):
    """``samples`` ordered class by class: one labelled row per class."""
    fig, ax = plt.subplots(figsize=(n_per_class * 0.75 + 1.2, len(class_names) * 0.8 + 0.6))
    _show_grid(ax, samples, n_per_class, row_labels=list(class_names))
    ax.set_title(title)
    return fig


def relabel_grids(rows: dict[str, torch.Tensor], labels, class_names=CLASS_NAMES, title: str = ""):
    """Per model, one row per drawing: the drawing, then the drawing decoded as each class in turn.
    ``rows[model]``: (len(labels) * (1 + C), 1, 28, 28), row by row."""
    n_cols = 1 + len(class_names)
    fig, axes = plt.subplots(1, len(rows), figsize=(0.75 * n_cols * len(rows) + 1.5, 0.8 * len(labels) + 1.2),
                             squeeze=False)
    for i, (ax, (name, images)) in enumerate(zip(axes[0], rows.items())):
        _show_grid(ax, images, n_cols, row_labels=[class_names[int(c)] for c in labels] if i == 0 else None,
                   col_labels=["drawing", *[f"as {c}" for c in class_names]])
        ax.tick_params(axis="x", labelrotation=60)
        ax.set_xlabel(name)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.96))  # room for the title above the rotated column labels
    return fig


def interpolation_rows(rows: dict[str, torch.Tensor], title: str):
    """One panel per model, titled with its name: the two endpoints' decodings and the path between them."""
    n = len(next(iter(rows.values())))
    fig, axes = plt.subplots(len(rows), 1, figsize=(n * 0.7 + 0.4, len(rows) * 1.05 + 0.5), squeeze=False)
    for ax, (name, images) in zip(axes[:, 0], rows.items()):
        _show_grid(ax, images, n)
        ax.set_title(name, fontsize=9, loc="left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def nearest_neighbour_pairs(samples, neighbours, distances, title: str, per_row: int = 8):
    """Pairs of rows, ``per_row`` columns each: samples, and under each one its nearest training drawing, with
    the L2 distance (pixel intensities in [0, 1]) above the column."""
    n = len(samples)
    blocks = -(-n // per_row)
    fig, axes = plt.subplots(blocks, 1, figsize=(min(n, per_row) * 0.75 + 2.2, 2.3 * blocks + 0.9), squeeze=False)
    samples, neighbours = _as_images(samples), _as_images(neighbours)
    for b, ax in enumerate(axes[:, 0]):
        sl = slice(b * per_row, min(n, (b + 1) * per_row))
        _show_grid(ax, torch.cat([samples[sl], neighbours[sl]]), sl.stop - sl.start,
                   row_labels=["sample", "nearest train"], col_labels=[f"{d:.1f}" for d in distances[sl]])
    fig.suptitle(title + "\n(L2 distance in pixel space above each column)", fontsize=10)
    fig.tight_layout()
    return fig


def confusion_matrix_plot(cm, class_names=CLASS_NAMES, title: str = "", xlabel: str = "predicted",
                          ylabel: str = "requested class"):
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.5, 4.6))
    sns.heatmap(np.asarray(cm), annot=True, fmt="d", cmap="Blues", xticklabels=class_names,
                yticklabels=class_names, ax=ax, cbar=False)
    ax.tick_params(axis="y", labelrotation=0)  # horizontal class names stay clear of the axis label
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def confusion_matrices(cms: dict, class_names=CLASS_NAMES, title: str = ""):
    """Confusion matrices side by side (rows: requested class, columns: predicted), one per model."""
    import seaborn as sns

    fig, axes = plt.subplots(1, len(cms), figsize=(4.8 * len(cms), 4.6), squeeze=False)
    for i, (ax, (name, cm)) in enumerate(zip(axes[0], cms.items())):
        sns.heatmap(np.asarray(cm), annot=True, fmt="d", cmap="Blues", xticklabels=class_names,
                    yticklabels=class_names if i == 0 else False, ax=ax, cbar=False)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_xlabel("predicted")
        ax.set_title(name, fontsize=10)
    axes[0][0].set_ylabel("requested class")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def tsne_panels(embeddings: dict[str, np.ndarray], labels, class_names=CLASS_NAMES, title: str = ""):
    """One t-SNE scatter per model, coloured by class, one shared legend of class names."""
    import seaborn as sns

    colors = sns.color_palette("tab10", len(class_names))
    cols = min(2, len(embeddings))  # two panels per row: four panels read at page width as a 2 x 2 grid
    n_rows = -(-len(embeddings) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(4.2 * cols, 4.0 * n_rows + 0.6), squeeze=False)
    for ax in axes.flat[len(embeddings):]:
        ax.axis("off")
    for ax, (name, e) in zip(axes.flat, embeddings.items()):
        for c, cname in enumerate(class_names):
            m = labels == c
            ax.scatter(e[m, 0], e[m, 1], s=3, alpha=0.6, color=colors[c], label=cname, rasterized=True)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[c], label=n) for c, n in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=len(class_names), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def iwae_curves(curves: dict[str, dict], title: str = "How tight is the bound? IWAE against k"):
    """The IWAE bound against k for each model (``helpers.iwae_curve``), as its fall below the k = 1 estimate (the
    ELBO's), so that models of different likelihoods share one axis; error bars: the sd over repeated estimates.
    The legend gives each model's bound at k = 1 and at its largest k, in nats per image."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, curve in curves.items():
        ks = sorted(curve, key=int)
        base = curve[ks[0]]["mean"]
        gain = [curve[k]["mean"] - base for k in ks]
        ax.errorbar([int(k) for k in ks], gain, yerr=[curve[k]["sd"] for k in ks], marker="o", capsize=3,
                    label=f"{label}: {base:.1f} at k=1, {curve[ks[-1]]['mean']:.1f} at k={ks[-1]}")
    ax.set_xscale("log")
    ax.set_xlabel("importance samples k")
    ax.set_ylabel("IWAE bound minus its k = 1 value (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def rate_distortion_figure(points: dict, title: str = "Rate against distortion (validation split)"):
    """Each point of ``rate_distortion`` at (rate, distortion), labelled with its KL weight, the FID of its
    mixture samples and the 5-NN accuracy of its codes; the dotted lines are constant -ELBO (rate + distortion)."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    rates = np.array([p["rate"] for p in points.values()])
    dists = np.array([p["distortion"] for p in points.values()])
    best = float((rates + dists).min())
    xs = np.linspace(0, rates.max() * 1.15, 2)
    for offset in (0, 10, 20):  # lines of constant -ELBO = rate + distortion, labelled where they leave the plot
        ax.plot(xs, best + offset - xs, ":", color="0.6", lw=1,
                label="constant −ELBO: the best, +10, +20 nats" if offset == 0 else None)
    for p in points.values():
        warm = bool(p["kl_warmup"])
        ax.scatter(p["rate"], p["distortion"], s=50, marker="s" if warm else "o", color="C1" if warm else "C0",
                   zorder=3)
        ax.annotate(f"β = {p['beta']:g}{', warm-up' if warm else ''}\nFID {p['samples']['fid']:.0f} · "
                    f"5-NN {p['knn_accuracy']:.0%}", (p["rate"], p["distortion"]), textcoords="offset points",
                    xytext=(8, -22 if warm else 6), fontsize=8)
    pad = 0.1 * (dists.max() - dists.min() + 1)
    ax.set_xlim(0, rates.max() * 1.3)
    ax.set_ylim(dists.min() - pad, dists.max() + 2 * pad)
    ax.set_xlabel("rate: KL(q(z|x) || p(z)), nats per drawing")
    ax.set_ylabel("distortion: −E log p(x|z), nats per drawing")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig
