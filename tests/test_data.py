"""The loader accepts the course format and rejects every malformed input with a message naming the file."""

import pickle
import shutil

import numpy as np
import pytest

import helpers as H


@pytest.fixture
def folder(synthetic_dir, tmp_path):
    """A fresh, valid copy of the synthetic folder that a test may break."""
    return shutil.copytree(synthetic_dir, tmp_path / "quickdraw")


def test_load_accepts_valid_folder(synthetic_dir):
    d = H.load_quickdraw(synthetic_dir)
    assert d.x_train.shape == (200, 28, 28) and d.x_train.dtype == np.uint8
    assert d.x_test.shape == (50, 28, 28)
    assert d.y_train.dtype == np.int64 and set(d.y_train) == {0, 1, 2, 3, 4}
    assert d.class_names == ("rabbit", "yoga", "hand", "snowman", "motorbike")
    assert d.synthetic is True
    assert set(d.md5) == set(H.FILES) and all(len(v) == 32 for v in d.md5.values())


def test_load_accepts_flat_784_images(folder):
    x = np.load(folder / "train_images.npy")
    np.save(folder / "train_images.npy", x.reshape(len(x), 784))
    assert H.load_quickdraw(folder).x_train.shape == (len(x), 28, 28)


def test_load_rejects_missing_folder(tmp_path):
    with pytest.raises(H.DataError, match="data folder not found.*quickdraw_subset_np"):
        H.load_quickdraw(tmp_path / "nowhere")


def test_load_rejects_missing_file(folder):
    (folder / "test_labels.npy").unlink()
    with pytest.raises(H.DataError, match=r"missing test_labels\.npy.*make data"):
        H.load_quickdraw(folder)


def test_load_rejects_file_that_is_not_npy(folder):
    (folder / "train_images.npy").write_text("hello, not numpy", encoding="utf-8")
    with pytest.raises(H.DataError, match=r"train_images\.npy: not a valid \.npy file"):
        H.load_quickdraw(folder)


def test_load_rejects_truncated_file(folder):
    path = folder / "train_images.npy"
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(H.DataError, match=r"train_images\.npy: truncated"):
        H.load_quickdraw(folder)


def test_load_rejects_pickled_object_array(folder):
    arr = np.empty(200, dtype=object)
    arr[:] = [{"x": 1}] * 200
    np.save(folder / "train_labels.npy", arr, allow_pickle=True)
    with pytest.raises(H.DataError, match=r"train_labels\.npy: holds a pickled object array"):
        H.load_quickdraw(folder)


def test_load_rejects_plain_pickle_file(folder):
    (folder / "test_images.npy").write_bytes(pickle.dumps(np.zeros((50, 28, 28), np.uint8)))
    with pytest.raises(H.DataError, match=r"test_images\.npy: not a valid \.npy file"):
        H.load_quickdraw(folder)


def test_load_rejects_wrong_shape(folder):
    np.save(folder / "train_images.npy", np.zeros((200, 32, 32), np.uint8))
    with pytest.raises(
        H.DataError, match=r"train_images\.npy: images have shape \(200, 32, 32\); expected \(N, 28, 28\)",
    ):
        H.load_quickdraw(folder)


def test_load_rejects_float_images(folder):
    np.save(folder / "train_images.npy", np.random.rand(200, 28, 28).astype(np.float32))
    with pytest.raises(H.DataError, match=r"train_images\.npy: images have dtype float32; expected uint8"):
        H.load_quickdraw(folder)


def test_load_rejects_image_values_out_of_range(folder):
    x = np.load(folder / "test_images.npy").astype(np.int64)
    x[0, 0, 0] = 300
    np.save(folder / "test_images.npy", x)
    with pytest.raises(H.DataError, match=r"test_images\.npy: image values span 0\.\.300; expected 0\.\.255"):
        H.load_quickdraw(folder)


def test_load_rejects_non_integer_labels(folder):
    np.save(folder / "train_labels.npy", np.load(folder / "train_labels.npy").astype(np.float64))
    with pytest.raises(H.DataError, match=r"train_labels\.npy: labels have dtype float64; expected integers"):
        H.load_quickdraw(folder)


def test_load_rejects_labels_out_of_range(folder):
    y = np.load(folder / "test_labels.npy")
    y[3] = 7
    np.save(folder / "test_labels.npy", y)
    with pytest.raises(H.DataError, match=r"test_labels\.npy: labels \[7\] out of range; expected 0\.\.4"):
        H.load_quickdraw(folder)


def test_load_rejects_counts_that_differ(folder):
    np.save(folder / "train_labels.npy", np.load(folder / "train_labels.npy")[:-1])
    with pytest.raises(H.DataError, match=r"train_images\.npy: 200 images but train_labels\.npy has 199 labels"):
        H.load_quickdraw(folder)


def test_load_rejects_empty_split(folder):
    np.save(folder / "test_images.npy", np.zeros((0, 28, 28), np.uint8))
    np.save(folder / "test_labels.npy", np.zeros((0,), np.int64))
    with pytest.raises(H.DataError, match=r"test_images\.npy: the test split is empty"):
        H.load_quickdraw(folder)


def test_synthetic_generator_is_deterministic():
    a, ya = H.make_synthetic_images(6, seed=3)
    b, yb = H.make_synthetic_images(6, seed=3)
    c, _ = H.make_synthetic_images(6, seed=4)
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == (30, 28, 28) and np.bincount(ya).tolist() == [6] * 5
    assert a.max() == 255 and 0.02 < (a > 0).mean() < 0.5  # real strokes, not blank or full images


def test_synthetic_folder_is_marked_synthetic(synthetic_dir):
    assert (synthetic_dir / H.SYNTHETIC_MARKER).exists()
    assert H.load_quickdraw(synthetic_dir).provenance()["synthetic"] is True


def test_quickdraw_dir_variable_overrides_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("QUICKDRAW_DIR", str(tmp_path))
    assert H.resolve_data_dir("elsewhere") == tmp_path
    monkeypatch.delenv("QUICKDRAW_DIR")
    assert H.resolve_data_dir("elsewhere") == H.ROOT / "elsewhere"  # a notebook's data_dir: from the root


def test_real_data_folder_loads(real_data_dir):
    d = H.load_quickdraw(real_data_dir)
    assert d.synthetic is False
    assert len(d.y_train) > 0 and len(d.y_test) > 0
    assert np.bincount(d.y_train, minlength=5).min() > 0
