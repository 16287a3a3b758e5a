"""Interactive exploration in JupyterLab: walk through a conditional VAE's latent space with widgets.

``latent_explorer`` shows a class menu and sliders along the leading principal directions of the training
codes; every change decodes the code they point at (ipywidgets ``interactive_output``). The code is

    z = (mean code of the chosen class's training drawings) + sum_i slider_i * sd_i * direction_i,

decoded with the chosen class, so at all sliders 0 the drawing is the class's "average" drawing and a slider
at +-2 moves two standard deviations of the codes along its direction. Where no widget manager runs
(papermill's executed copies, nbconvert, a notebook viewer), the cell shows the drawing of the initial state.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from torch import nn

from ..data.quickdraw import CLASS_NAMES
from .latent import class_means

__all__ = ["latent_directions", "explorer_code", "decode_code", "decode_codes", "traversal_rows",
           "drawing_png", "LatentExplorer", "latent_explorer"]


def latent_directions(codes: np.ndarray, labels, n_directions: int = 4):
    """Where each class's codes lie and how they vary around that place.

    ``codes`` (N, D) posterior means (``encode_all``), ``labels`` (N,) class ids 0..K-1, each present.
    Returns the class means (K, D), the leading principal directions (n, D, unit rows) of the codes minus their
    class's mean, and the standard deviation of those codes along each direction (n,). The directions are
    fitted within classes (pooled), so that a slider changes the drawing rather than walking to another
    class's region, which a class-prior VAE's first directions would otherwise do."""
    from sklearn.decomposition import PCA

    means = class_means(codes, labels)  # (K, D); checks the shapes and that every class has codes
    codes, labels = np.asarray(codes, dtype=np.float64), np.asarray(labels).reshape(-1)
    n = min(n_directions, codes.shape[1], len(codes) - 1)
    pca = PCA(n_components=n).fit(codes - means[labels])
    return means, pca.components_, np.sqrt(pca.explained_variance_)


def explorer_code(means: np.ndarray, directions: np.ndarray, sds: np.ndarray, label: int, steps) -> np.ndarray:
    """The code (D,) at ``steps`` (n,) standard deviations along ``directions`` from class ``label``'s mean."""
    return means[label] + (np.asarray(steps, dtype=np.float64) * sds) @ directions


@torch.no_grad()
def decode_codes(model: nn.Module, z: np.ndarray, label: int) -> torch.Tensor:
    """A VAE's drawings of codes ``z`` (n, D), all as class ``label``: (n, 1, 28, 28) on the CPU."""
    device = next(model.parameters()).device
    z = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=device)
    return model.decode(z, torch.full((len(z),), label, device=device)).float().cpu()


def decode_code(model: nn.Module, z: np.ndarray, label: int) -> np.ndarray:
    """A VAE's drawing of one code ``z`` (D,) as class ``label``: pixel probabilities (28, 28) in [0, 1]."""
    return decode_codes(model, np.asarray(z).reshape(1, -1), label)[0, 0].numpy()


def traversal_rows(model: nn.Module, codes: np.ndarray, labels, n_directions: int = 4,
                   steps=(-2.0, -1.0, 0.0, 1.0, 2.0)) -> dict[int, torch.Tensor]:
    """For each class: its mean code moved along each of the leading within-class principal directions of the
    training ``codes`` (``latent_directions``) by ``steps`` standard deviations, decoded as that class. Returns
    {class: (n_directions * len(steps), 1, 28, 28)}, direction by direction (a grid row each)."""
    means, directions, sds = latent_directions(codes, labels, n_directions)
    unit = np.eye(len(sds))
    return {label: decode_codes(model, np.stack([explorer_code(means, directions, sds, label, unit[i] * s)
                                                 for i in range(len(sds)) for s in steps]), label)
            for label in range(len(means))}


def drawing_png(image: np.ndarray, title: str = "") -> bytes:
    """One drawing (28, 28) in [0, 1] as a PNG (black strokes on white), about 250 px wide."""
    from matplotlib.figure import Figure  # no pyplot: nothing is left open for the notebook to show again

    fig = Figure(figsize=(2.6, 3.0), dpi=96)
    ax = fig.add_subplot()
    ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class LatentExplorer:
    """The widgets of ``latent_explorer``: ``classes`` (a Dropdown), ``sliders`` (FloatSliders, in standard
    deviations), ``output`` (the drawing), ``box`` (all of them); ``code`` and ``png`` hold the state shown.

    Displayed, it offers the widget and, for viewers without a widget manager, the PNG of the state it shows."""

    def __init__(self):
        self.box = self.classes = self.output = self.code = None
        self.sliders, self.png = [], b""

    def _repr_mimebundle_(self, **kwargs):
        # JupyterLab ranks the widget view above image/png; a viewer without widgets falls back to the image.
        return {**self.box._repr_mimebundle_(**kwargs), "image/png": base64.b64encode(self.png).decode("ascii")}


def latent_explorer(model: nn.Module, codes: np.ndarray, labels, n_directions: int = 4, span: float = 3.0,
                    class_names=CLASS_NAMES, title: str = "") -> LatentExplorer:
    """Widgets that redraw ``model``'s drawing as the user picks a class and moves along the leading
    principal directions of the training ``codes`` (N, D) with labels (N,) (see ``latent_directions``).
    Sliders run from -span to +span standard deviations. The last line of a cell displays the result."""
    import ipywidgets as widgets
    from IPython.display import Image, display

    means, directions, sds = latent_directions(codes, labels, n_directions)
    ex = LatentExplorer()
    wide = {"description_width": "initial"}
    ex.classes = widgets.Dropdown(options=[(class_names[k], k) for k in range(len(means))], value=0,
                                  description="class", style=wide)
    ex.sliders = [widgets.FloatSlider(0.0, min=-span, max=span, step=0.1, description=f"direction {i + 1} (sd)",
                                      continuous_update=False, readout_format="+.1f", style=wide,
                                      layout=widgets.Layout(width="360px"))
                  for i in range(len(sds))]

    def draw(label, **steps):
        steps = [steps[f"s{i}"] for i in range(len(sds))]
        ex.code = explorer_code(means, directions, sds, label, steps)
        where = " ".join(f"{s:+.1f}" for s in steps)  # the state in the picture: a static copy says what it shows
        ex.png = drawing_png(decode_code(model, ex.code, label), f"{title}{class_names[label]}\nat {where} sd")
        display(Image(data=ex.png, format="png"))

    controls = {"label": ex.classes, **{f"s{i}": s for i, s in enumerate(ex.sliders)}}
    ex.output = widgets.interactive_output(draw, controls)  # draws the initial state at once
    ex.box = widgets.HBox([widgets.VBox([ex.classes, *ex.sliders]), ex.output])
    return ex
