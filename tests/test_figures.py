"""Every figure can be read at page width: the report and JupyterLab show a PNG about 900 pixels wide, so a
figure may be at most 3 times as wide as it is tall, at most 14 inches wide at 150 dpi (its 8-point labels
then stay about 7 pixels tall), and each drawing in it at least 40 pixels wide."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image

import helpers as H
from helpers.plotting import DRAWING_WIDTH_KEY, MAX_DRAWING_COLUMNS

PAGE_WIDTH = 900
MAX_ASPECT = 3.0
MAX_WIDTH_PX = 14 * 150
MIN_DRAWING_PX = 40

FIGURES = sorted((ROOT / "figures").glob("*.png"))


def readability_problems(path) -> list[str]:
    """What makes the PNG at ``path`` hard to read at page width (empty when nothing does)."""
    image = Image.open(path)
    width, height = image.size
    problems = []
    if width > MAX_ASPECT * height:
        problems.append(f"{width}x{height} pixels: more than {MAX_ASPECT:g} times as wide as tall")
    if width > MAX_WIDTH_PX:
        problems.append(f"{width} pixels wide: its text shrinks below 7 pixels at page width")
    drawing = image.text.get(DRAWING_WIDTH_KEY)
    if drawing is None:
        problems.append(f"no '{DRAWING_WIDTH_KEY}' entry: not written by helpers.savefig")
    elif drawing != "none" and float(drawing) * PAGE_WIDTH / width < MIN_DRAWING_PX:
        problems.append(f"its drawings are {float(drawing) * PAGE_WIDTH / width:.0f} pixels wide at page width "
                        f"(at least {MIN_DRAWING_PX})")
    return problems


def test_there_are_committed_figures():
    assert len(FIGURES) >= 20, f"expected the report's figures in {ROOT / 'figures'}, found {len(FIGURES)}"


@pytest.mark.parametrize("path", FIGURES, ids=[p.stem for p in FIGURES])
def test_committed_figure_is_readable_at_page_width(path):
    problems = readability_problems(path)
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems) + " (make reproduce redraws it)"


def _random_drawings(n):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("n_panels, nrow, n", [(4, 8, 64), (5, 5, 25), (2, 10, 50), (3, 16, 80), (1, 40, 40)])
def test_sample_grids_wrap_wide_figures_into_rows_of_panels(tmp_path, n_panels, nrow, n):
    fig = H.sample_grids({f"panel {i}": _random_drawings(n) for i in range(n_panels)}, nrow, title="samples",
                         row_labels=[f"row {i}" for i in range(-(-n // nrow))])
    path = H.savefig(fig, tmp_path, "grid.png")
    across = sum(ax.get_images()[0].get_array().shape[1] // 30 for ax in fig.axes
                 if ax.get_images() and abs(ax.get_position().y1 - fig.axes[0].get_position().y1) < 1e-6)
    assert across <= max(MAX_DRAWING_COLUMNS, nrow), f"{across} drawings side by side"
    if nrow <= MAX_DRAWING_COLUMNS:
        assert readability_problems(path) == []


def test_the_check_fails_a_figure_too_wide_to_read(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(20, 2))
    H.plotting._show_grid(ax, _random_drawings(64), 64)
    path = H.savefig(fig, tmp_path, "wide.png")
    problems = readability_problems(path)
    assert any("times as wide" in p for p in problems) and any("pixels wide at page width" in p for p in problems)
    # the axes take about 78% of the 20 inches: 64 drawings of 28 pixels (and their 2-pixel gaps) in 2,300 pixels
    assert 25 < float(Image.open(path).text[DRAWING_WIDTH_KEY]) < 40


def test_a_figure_without_drawings_says_so(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(np.arange(3))
    assert Image.open(H.savefig(fig, tmp_path, "plot.png")).text[DRAWING_WIDTH_KEY] == "none"
