"""Models' shapes and the training engine: loss falls, resume is exact, NaN guard, the model cache."""

import pytest
import torch

import helpers as H


@pytest.fixture
def tensors(synthetic):
    return H.to_tensor(synthetic.x_train), torch.from_numpy(synthetic.y_train)


@pytest.mark.parametrize("spec, latent, low", [
    ({"kind": "lstm_ae"}, 128, -1), ({"kind": "cnn_ae"}, 64, 0),  # LSTM outputs lie in (-1, 1), sigmoid in (0, 1)
])
def test_autoencoder_output_shapes(spec, latent, low, tensors):
    model, _ = H.build_model(spec)
    x = tensors[0][:7]
    assert model.encode(x).shape == (7, latent)
    out = model(x)
    assert out.shape == (7, 1, 28, 28) and out.min() >= low and out.max() <= 1


@pytest.mark.parametrize("encoder", ["gru", "cnn"])
@pytest.mark.parametrize("n_classes", [0, 5])
def test_vae_output_shapes(encoder, n_classes, tensors):
    x, y = tensors[0][:6], tensors[1][:6]
    vae = H.VAE(encoder, latent_dim=32, n_classes=n_classes)
    logits, mu, logvar = vae(x, y)
    assert logits.shape == (6, 1, 28, 28) and mu.shape == logvar.shape == (6, 32)


def test_classifier_shapes(tensors):
    clf = H.Classifier()
    assert clf(tensors[0][:4]).shape == (4, 5) and clf.features(tensors[0][:4]).shape == (4, 128)


@pytest.mark.parametrize("spec", [{"kind": "lstm_ae"}, {"kind": "cnn_ae"}, {"kind": "vae", "encoder": "cnn"}])
def test_loss_falls_within_a_few_steps(spec, tensors):
    H.set_seed(0)
    model, loss_fn = H.build_model(spec)
    before = H.evaluate(model, loss_fn, tensors)["loss"]
    H.fit(model, loss_fn, tensors, None, H.TrainConfig(steps=15, batch_size=64, lr=3e-3), progress=False)
    after = H.evaluate(model, loss_fn, tensors)["loss"]
    assert after < 0.9 * before


class Interrupt(Exception):
    pass


def _run(spec, tensors, steps, ckpt=None, stop_at=None):
    H.set_seed(0)
    model, loss_fn = H.build_model(spec)
    calls = {"n": 0}

    def interrupted_loss(m, *batch):
        calls["n"] += 1
        if stop_at and calls["n"] > stop_at:
            raise Interrupt  # like a crash: no checkpoint written at this point
        return loss_fn(m, *batch)

    cfg = H.TrainConfig(steps=steps, batch_size=32, lr=1e-3, ckpt_every=4)
    record = H.fit(model, interrupted_loss, tensors, None, cfg, ckpt_path=ckpt, progress=False)
    return model, record


@pytest.mark.parametrize("spec", [{"kind": "cnn_ae"}, {"kind": "vae", "encoder": "cnn"}])
def test_interrupted_and_resumed_run_ends_with_same_weights(spec, tensors, tmp_path):
    reference, ref_record = _run(spec, tensors, 12)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(Interrupt):
        _run(spec, tensors, 12, ckpt=ckpt, stop_at=10)  # dies during step 11; last checkpoint: step 8
    assert torch.load(ckpt, weights_only=True)["step"] == 8
    resumed, record = _run(spec, tensors, 12, ckpt=ckpt)  # a fresh process would do exactly this
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert record["history"]["train"]["loss"] == pytest.approx(ref_record["history"]["train"]["loss"])


def test_nan_guard_stops_with_step_in_message(tensors):
    model, loss_fn = H.build_model({"kind": "cnn_ae"})

    def nan_after_three(m, *batch, calls=[0]):  # noqa: B006 - a counter
        calls[0] += 1
        out = loss_fn(m, *batch)
        return {"loss": out["loss"] * float("nan")} if calls[0] == 4 else out

    with pytest.raises(FloatingPointError, match="loss became nan at step 4"):
        H.fit(model, nan_after_three, tensors, None, H.TrainConfig(steps=10, batch_size=32), progress=False)


def test_cache_trains_once_then_loads(synthetic, tmp_path):
    cfg = H.TrainConfig(steps=5, batch_size=32)
    m1, r1 = H.train_or_load("cnn_ae", {"kind": "cnn_ae"}, cfg, synthetic, runs_dir=tmp_path, progress=False)
    m2, r2 = H.train_or_load("cnn_ae", {"kind": "cnn_ae"}, cfg, synthetic, runs_dir=tmp_path, progress=False)
    assert r1["trained_now"] is True and r2["trained_now"] is False
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert r2["history"] == r1["history"]
    _, r3 = H.train_or_load("cnn_ae", {"kind": "cnn_ae"}, H.TrainConfig(steps=6, batch_size=32), synthetic,
                            runs_dir=tmp_path, progress=False)
    assert r3["trained_now"] is True  # another config is another model


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="steps must be a positive integer, got -5"):
        H.TrainConfig(steps=-5)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        H.TrainConfig(steps=5, batch_size=0)
    with pytest.raises(ValueError, match="exactly one of steps and epochs"):
        H.TrainConfig(steps=5, epochs=2)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        H.TrainConfig(steps=5, lr=0.0)
    with pytest.raises(ValueError, match=r"lr must be a positive number, got -0\.001"):
        H.TrainConfig(steps=5, lr=-0.001)


def test_pick_device_rejects_unknown_device():
    assert H.pick_device("cpu").type == "cpu"
    assert H.pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'mps', got 'gpu'"):
        H.pick_device("gpu")
