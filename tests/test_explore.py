"""The latent-space explorer of notebook 06 (helpers/explore.py), without a browser: where its sliders lead,
what it decodes, and what it shows where no widget manager runs. tests/test_lab.py drags it in JupyterLab."""

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

import helpers as H


def test_the_directions_are_those_of_the_variation_within_classes_in_standard_deviations():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 500)
    # The classes lie 20 apart along axis 0; within a class, codes vary most along axis 1 (sd 2), then 2 (sd 0.5).
    codes = rng.normal(size=(1000, 3)) * [0.1, 2.0, 0.5] + np.where(labels[:, None] == 0, -10, 10) * [1, 0, 0]
    means, directions, sds = H.latent_directions(codes, labels, n_directions=2)
    np.testing.assert_allclose(means, [codes[labels == 0].mean(0), codes[labels == 1].mean(0)])
    np.testing.assert_allclose(directions @ directions.T, np.eye(2), atol=1e-9)
    assert abs(directions[0, 1]) > 0.99 and abs(directions[1, 2]) > 0.99, directions  # not the class axis
    np.testing.assert_allclose(sds, [2.0, 0.5], rtol=0.1)


def test_the_code_is_the_class_mean_moved_by_steps_of_standard_deviations():
    means, directions, sds = np.array([[1.0, 2.0], [3.0, 4.0]]), np.eye(2), np.array([0.5, 2.0])
    np.testing.assert_allclose(H.explorer_code(means, directions, sds, 1, [0, 0]), [3.0, 4.0])
    np.testing.assert_allclose(H.explorer_code(means, directions, sds, 0, [2, -1]), [1.0 + 1.0, 2.0 - 2.0])


def test_a_class_without_codes_is_refused():
    with pytest.raises(ValueError, match=r"no codes of class\(es\) \[1\]"):
        H.latent_directions(np.zeros((4, 2)), [0, 0, 2, 2])


@pytest.fixture
def explorer():
    torch.manual_seed(0)
    model = H.build_vae(n_classes=5, class_prior=True)  # untrained: its drawings still depend on the code and class
    codes = np.random.default_rng(0).normal(size=(100, model.latent_dim)).astype(np.float32)
    labels = np.arange(100) % 5
    return model, codes, labels, H.latent_explorer(model, codes, labels, title="test: ")


def test_the_explorer_starts_at_the_first_class_mean_and_redraws_when_a_control_moves(explorer):
    model, codes, labels, ex = explorer
    means, directions, sds = H.latent_directions(codes, labels)
    assert [s.description for s in ex.sliders] == [f"direction {i} (sd)" for i in (1, 2, 3, 4)]
    assert [name for name, _ in ex.classes.options] == list(H.CLASS_NAMES)
    np.testing.assert_allclose(ex.code, means[0], rtol=1e-6)
    first = ex.png

    ex.sliders[1].value = 2.0
    np.testing.assert_allclose(ex.code, means[0] + 2.0 * sds[1] * directions[1], rtol=1e-6)
    moved = H.decode_code(model, ex.code, 0)
    assert np.abs(moved - H.decode_code(model, means[0], 0)).max() > 1e-3, "the drawing did not change"
    assert ex.png != first

    ex.classes.value = 3
    np.testing.assert_allclose(ex.code, means[3] + 2.0 * sds[1] * directions[1], rtol=1e-6)


def test_the_explorer_offers_its_drawing_as_a_png_to_viewers_without_widgets(explorer):
    *_, ex = explorer
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # JupyterLab shows the widgets...
    image = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))  # ...a static viewer this
    assert image.format == "PNG" and image.size[0] >= 200 and image.size[1] >= 200


def test_decode_code_gives_pixel_probabilities_of_one_drawing():
    torch.manual_seed(0)
    image = H.decode_code(H.build_vae(n_classes=5), np.zeros(32), 2)
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1


def _conditional_vae():
    torch.manual_seed(0)
    return H.build_vae("cnn", latent_dim=6, n_classes=5).eval()


def test_a_traversal_row_is_one_direction_and_its_middle_drawing_is_the_class_mean_code():
    model, rng = _conditional_vae(), np.random.default_rng(1)
    codes, labels = rng.normal(size=(100, 6)), np.arange(100) % 5
    rows = H.traversal_rows(model, codes, labels, n_directions=3, steps=(-1.0, 0.0, 1.0))
    assert sorted(rows) == [0, 1, 2, 3, 4] and rows[2].shape == (9, 1, 28, 28)
    mean_drawing = H.decode_codes(model, H.class_means(codes, labels)[2:3], 2)
    for direction in range(3):  # the middle of each row: 0 sd along it
        assert torch.allclose(rows[2][3 * direction + 1], mean_drawing[0], atol=1e-6)
    assert not torch.allclose(rows[2][0], rows[2][2], atol=1e-3)  # -1 sd and +1 sd differ


def test_class_arithmetic_moves_the_code_from_its_class_mean_to_the_new_ones():
    model, rng = _conditional_vae(), np.random.default_rng(2)
    X, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    means = rng.normal(size=(5, 6))
    new = torch.tensor([4, 4, 0, 1])
    mu = model.encode(X, y)[0].detach().numpy()
    expected = H.decode_codes(model, mu[:1] - means[0] + means[4], 4)
    assert torch.allclose(H.relabel(model, X, y, new, means)[:1], expected, atol=1e-6)
    # Without means, the course recipe's prior N(0, I) moves nothing: only the decoder's class input changes.
    assert torch.allclose(H.relabel(model, X, y, new)[:1], H.decode_codes(model, mu[:1], 4), atol=1e-6)
    with pytest.raises(ValueError, match="no codes of class"):
        H.class_means(rng.normal(size=(4, 6)), np.array([0, 0, 2, 2]))
