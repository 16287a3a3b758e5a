"""Models' shapes and the training engine: loss falls, resume is exact, NaN guard, the model cache."""

import random
import signal
import threading
import time

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
    vae = H.build_vae(encoder, latent_dim=32, n_classes=n_classes)
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

    def interrupted_loss(m, *batch, **kw):
        calls["n"] += 1
        if stop_at and calls["n"] > stop_at:
            raise Interrupt  # like a crash: no checkpoint written at this point
        return loss_fn(m, *batch, **kw)

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


# Ctrl-C: KeyboardInterrupt can land anywhere in a step, after the step has drawn its random numbers (the
# classifier's shift and dropout, the VAE's noise). The checkpoint it leaves must be the end of the last
# complete step, so that resuming from it gives the weights of an uninterrupted run, bit for bit.

# The VQ-VAE's run crosses from its autoencoder stage to its prior stage at step 4 of 10, and its codebook moves
# by buffers (moving averages, restarts drawn from the random state): Ctrl-C must put all of them back.
SMALL_VQVAE = {"kind": "vqvae", "n_codes": 16, "code_dim": 8, "channels": 16, "prior_width": 32, "prior_layers": 1}
# The free-bits PixelCNN VAE of notebook 12 also draws each training batch's binarization from the random state.
FREE_BITS_PIXELCNN = {**H.EXPERIMENTS["cvae_pixelcnn_local_free_bits1_minus_val"].spec, "free_bits": 0.5}
CTRL_C_SPECS = [{"kind": "classifier"}, {"kind": "vae", "encoder": "cnn"}, SMALL_VQVAE, FREE_BITS_PIXELCNN]
CTRL_C_IDS = ["classifier", "vae", "vqvae", "pixelcnn_free_bits"]
CTRL_C_CFG = H.TrainConfig(steps=10, batch_size=8, eval_every=2, ckpt_every=100)  # checkpoints: Ctrl-C, end


@pytest.fixture
def small_split():
    x, y = H.make_synthetic_images(8, seed=1)  # 40 drawings: 32 to train on, 8 held out
    x = H.to_tensor(x)
    y = torch.from_numpy(y)
    return (x[:32], y[:32]), (x[32:], y[32:])


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler (KeyboardInterrupt), also where the test process was started with SIGINT
    ignored, as a background job of a non-interactive shell is (`nohup make test &`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread here (2 cores, shared with other tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ctrl_c_run(spec, split, cfg=CTRL_C_CFG, ckpt=None, on_loss=None):
    """Train ``spec`` from seed 0; ``on_loss(training, calls)`` runs after each call of the loss function
    (which has drawn its random numbers by then)."""
    H.set_seed(0)
    model, loss_fn = H.build_model(spec)
    calls = {True: 0, False: 0}  # loss calls while training, while evaluating

    def loss_then_hook(m, *batch, **kw):
        parts = loss_fn(m, *batch, **kw)
        calls[m.training] += 1
        if on_loss:
            on_loss(m.training, calls[m.training])
        return parts

    (x_train, y_train), (x_held, y_held) = split
    held_out = (H.model_inputs(model, x_held), y_held)  # a VAE of binary drawings scores their fixed binarization
    record = H.fit(model, loss_then_hook, (x_train, y_train), held_out, cfg, ckpt_path=ckpt, progress=False)
    return model, record


def _assert_same_run(a, b):
    (model_a, record_a), (model_b, record_b) = a, b
    for (name, wa), wb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(wa, wb), name
    assert record_a["history"] == record_b["history"]


def sigint_after_adam_step(monkeypatch, step: int) -> None:
    """A real SIGINT as Adam finishes updating the weights of step ``step`` (1-based), before the step counts."""
    adam_step, steps = torch.optim.Adam.step, [0]

    def step_then_sigint(self, *args, **kwargs):
        out = adam_step(self, *args, **kwargs)
        steps[0] += 1
        if steps[0] == step:
            signal.raise_signal(signal.SIGINT)
        return out
    monkeypatch.setattr(torch.optim.Adam, "step", step_then_sigint)


def _raise_in(where: str, step: int):
    """An ``on_loss`` hook that raises KeyboardInterrupt in training step ``step`` (1-based), or in the
    evaluation after it, after the loss has been computed."""
    def hook(training, calls):
        if (where == "loss" and training) or (where == "evaluation" and not training):
            if calls == (step if training else step // CTRL_C_CFG.eval_every):
                raise KeyboardInterrupt
    return hook


@pytest.mark.parametrize("spec", CTRL_C_SPECS, ids=CTRL_C_IDS)
@pytest.mark.parametrize("where, step, saved_step", [("loss", 7, 6), ("evaluation", 6, 6), ("optimizer.step", 7, 7)])
def test_ctrl_c_anywhere_in_a_step_then_resume_gives_the_uninterrupted_weights(spec, where, step, saved_step,
                                                                               small_split, tmp_path, monkeypatch,
                                                                               one_thread, sigint_raises):
    reference = _ctrl_c_run(spec, small_split)
    ckpt = tmp_path / "ckpt.pt"
    if where == "optimizer.step":  # a real SIGINT as Adam finishes updating the weights, before the step counts
        sigint_after_adam_step(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        _ctrl_c_run(spec, small_split, ckpt=ckpt, on_loss=None if where == "optimizer.step" else _raise_in(where, step))
    monkeypatch.undo()
    assert torch.load(ckpt, weights_only=True)["step"] == saved_step
    _assert_same_run(reference, _ctrl_c_run(spec, small_split, ckpt=ckpt))


@pytest.mark.parametrize("spec", CTRL_C_SPECS, ids=CTRL_C_IDS)
def test_sigint_at_a_random_moment_then_resume_gives_the_uninterrupted_weights(spec, small_split, tmp_path,
                                                                               one_thread, sigint_raises):
    cfg = H.TrainConfig(steps=20, batch_size=8, eval_every=2, ckpt_every=3)
    t0 = time.perf_counter()
    reference = _ctrl_c_run(spec, small_split, cfg)
    per_step = (time.perf_counter() - t0) / cfg.steps
    # Seeded: anywhere in steps 5-8 (forward, backward, update, evaluation, save), as fast as this machine runs them.
    delay = random.Random(0).uniform(0, 3 * per_step)
    timer = threading.Timer(delay, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))

    def start_timer(training, calls):
        if training and calls == 5:
            timer.start()
    ckpt = tmp_path / "ckpt.pt"
    try:
        with pytest.raises(KeyboardInterrupt):
            _ctrl_c_run(spec, small_split, cfg, ckpt=ckpt, on_loss=start_timer)
    finally:
        timer.cancel()
        timer.join()
    assert 4 <= torch.load(ckpt, weights_only=True)["step"] < cfg.steps, f"SIGINT after {delay:.3f} s"
    _assert_same_run(reference, _ctrl_c_run(spec, small_split, cfg, ckpt=ckpt))


def test_nan_guard_stops_with_step_in_message(tensors):
    model, loss_fn = H.build_model({"kind": "cnn_ae"})

    def nan_after_three(m, *batch, calls=[0], **kw):  # noqa: B006 - a counter
        calls[0] += 1
        out = loss_fn(m, *batch, **kw)
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


def test_the_optimizer_is_the_configs_and_in_the_cache_key_only_when_not_the_default(synthetic):
    model = torch.nn.Linear(3, 1)
    assert type(H.configure_optimizer(model, H.TrainConfig(steps=1))) is torch.optim.Adam
    adamw = H.configure_optimizer(model, H.TrainConfig(steps=1, optimizer="adamw", weight_decay=0.1))
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["weight_decay"] == 0.1
    spec, plain = {"kind": "cnn_ae"}, H.TrainConfig(steps=5)
    for changed in ({"optimizer": "adamw"}, {"weight_decay": 1e-4}, {"grad_clip": 1.0}):
        assert H.config_key(spec, H.TrainConfig(steps=5, **changed), synthetic) != H.config_key(spec, plain, synthetic)
    with pytest.raises(ValueError, match="optimizer must be one of adam, adamw"):
        H.TrainConfig(steps=1, optimizer="sgd")


def test_grad_clip_bounds_the_gradient_norm_of_every_update(tensors, monkeypatch):
    seen = []

    def loss_fn(model, x, y=None, progress=1.0):
        return {"loss": 1e3 * model(x).pow(2).mean()}  # steep: unclipped gradients are far above 0.5

    class Spy(torch.optim.Adam):
        def step(self, *args, **kwargs):
            seen.append(float(torch.cat([p.grad.flatten() for p in self.param_groups[0]["params"]]).norm()))
            return super().step(*args, **kwargs)

    model = H.build_model({"kind": "cnn_ae"})[0]
    monkeypatch.setattr(torch.optim, "Adam", Spy)  # the run's "adam", as configure_optimizer looks it up
    H.fit(model, loss_fn, tensors, None, H.TrainConfig(steps=3, batch_size=8, grad_clip=0.5), progress=False)
    assert len(seen) == 3 and max(seen) <= 0.5 + 1e-4, seen


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


# ---------------------------------------------------------------------------------------------------
# Precision: "fp32" (the default) or "bf16" (torch.autocast of the forward passes)
# ---------------------------------------------------------------------------------------------------


def test_precision_is_validated_and_in_the_cache_key_only_when_not_the_default(synthetic):
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        H.TrainConfig(steps=5, precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        H.autocast("cpu", "half")
    spec = {"kind": "cnn_ae"}
    fp32, bf16 = H.TrainConfig(steps=5), H.TrainConfig(steps=5, precision="bf16")
    assert H.config_key(spec, fp32, synthetic) != H.config_key(spec, bf16, synthetic)
    # The fp32 key is the hash of the config without the precision field: models cached before it existed
    # keep their keys (the report's models are not retrained).
    import hashlib
    import json
    from dataclasses import asdict

    added_later = ("precision", "batches", "optimizer", "weight_decay", "grad_clip")
    train = {k: v for k, v in asdict(fp32).items() if k not in ("ckpt_every", *added_later)}
    blob = json.dumps({"model": spec, "train": train, "data": synthetic.md5}, sort_keys=True)
    assert H.config_key(spec, fp32, synthetic) == hashlib.sha256(blob.encode()).hexdigest()[:12]
    assert H.EXPERIMENTS["vae_cnn"].config("full", 0, "bf16").precision == "bf16"
    assert H.EXPERIMENTS["vae_cnn"].settings("full", 0, "bf16")["precision"] == "bf16"


@pytest.mark.skipif(not H.native_bf16("cpu"), reason="bf16 is refused on a CPU without native bfloat16 "
                    "(test_platforms.py checks the refusal)")
@pytest.mark.parametrize("spec", [{"kind": "lstm_ae"}, {"kind": "vae", "encoder": "cnn"}])
def test_a_bf16_run_trains_in_bf16_and_its_loss_falls(spec, tensors, synthetic, tmp_path):
    cfg = H.TrainConfig(steps=15, batch_size=64, lr=3e-3, precision="bf16")
    model, record = H.train_or_load(spec["kind"], spec, cfg, synthetic, runs_dir=tmp_path, progress=False)
    losses = record["history"]["train"]["loss"]
    assert all(map(torch.isfinite, torch.tensor(losses))) and losses[-1] < 0.9 * losses[0]
    assert model.precision == "bf16" and record["train_config"]["precision"] == "bf16"
    seen = []
    hook = next(m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.LSTM))).register_forward_hook(
        lambda m, args, out: seen.append((out[0] if isinstance(out, tuple) else out).dtype))
    rec = H.reconstruct(model, tensors[0][:8])  # evaluation runs the model under the same autocast
    hook.remove()
    assert seen and seen[0] == torch.bfloat16
    assert rec.dtype == torch.float32 and rec.shape == (8, 1, 28, 28)  # results leave as float32
    assert H.run_summary(model, record)["precision"] == "bf16"
    loaded, again = H.train_or_load(spec["kind"], spec, cfg, synthetic, runs_dir=tmp_path, progress=False)
    assert again["trained_now"] is False and loaded.precision == "bf16"


# ---------------------------------------------------------------------------------------------------
# The loss sees the step: a KL warm-up (registry entry vae_cnn_kl_warmup)
# ---------------------------------------------------------------------------------------------------


def test_the_kl_weight_rises_from_zero_to_beta_over_the_warm_up(tensors):
    run = H.EXPERIMENTS["vae_cnn_kl_warmup"]
    torch.manual_seed(0)
    vae = H.build_model(run.spec)[0].eval()
    x = tensors[0][:8]
    at = {}
    for progress in (0.0, 0.1, 0.2, 0.7):
        torch.manual_seed(1)  # the same noise at every point
        with torch.no_grad():  # the loss's value is all this test reads
            at[progress] = H.vae_loss(vae, x, progress=progress)
    rec, kl = at[0.0]["rec"], at[0.0]["kl"]
    assert torch.equal(at[0.0]["loss"], rec)  # KL weight 0 at the first step
    assert float(at[0.1]["loss"]) == pytest.approx(float(rec + 0.5 * kl), abs=1e-3)  # halfway through 0.2
    assert torch.equal(at[0.2]["loss"], rec + kl) and torch.equal(at[0.7]["loss"], rec + kl)
    torch.manual_seed(1)
    with torch.no_grad():
        assert torch.equal(H.vae_loss(vae, x)["loss"], rec + kl)  # held-out losses: the full ELBO


# ---------------------------------------------------------------------------------------------------
# Free bits: each latent dimension's KL charged at least lambda nats (registry entries *_free_bits*)
# ---------------------------------------------------------------------------------------------------


def _loss_and_kl_terms(vae, x, y):
    """vae_loss of x and the per-drawing, per-dimension KL (B, D) it saw, under the same noise."""
    torch.manual_seed(1)
    out = H.vae_loss(vae, x, y)
    torch.manual_seed(1)
    with torch.no_grad():
        mu, logvar = vae.encode(x, y)
        return out, vae.kl(mu, logvar, y, vae.reparameterize(mu, logvar))


def test_free_bits_charge_each_dimension_its_batch_mean_kl_or_lambda_whichever_is_larger(tensors):
    spec = {**H.EXPERIMENTS["cvae_pixelcnn_local_free_bits1_minus_val"].spec, "decoder": "cnn"}
    x, y = H.binarize(tensors[0][:16]), torch.arange(16) % 5
    vaes = {}
    for free_bits in (0.0, 0.05, 1000.0):
        torch.manual_seed(0)  # the same weights for every lambda
        vaes[free_bits] = H.build_model({**spec, "free_bits": free_bits})[0].eval()
    plain, plain_kl = _loss_and_kl_terms(vaes[0.0], x, y)
    assert torch.equal(plain["loss"], plain["rec"] + plain["kl"])  # lambda = 0: the ELBO
    per_dim = plain_kl.mean(0)  # (32,)
    assert bool((per_dim < 0.05).any()) and bool((per_dim > 0.05).any()), per_dim  # lambda = 0.05 splits them
    some, _ = _loss_and_kl_terms(vaes[0.05], x, y)
    expected = plain["rec"].detach() + per_dim.clamp(min=0.05).sum()
    assert float(some["loss"].detach()) == pytest.approx(float(expected), abs=1e-4)
    assert float(some["kl"].detach()) == pytest.approx(float(plain["kl"].detach()), abs=1e-5)  # "kl" stays the KL
    free, _ = _loss_and_kl_terms(vaes[1000.0], x, y)
    assert float(free["loss"].detach()) == pytest.approx(float(free["rec"].detach()) + 1000.0 * 32, abs=1e-2)
    free["loss"].backward()  # every dimension below lambda: the KL term gives the encoder no gradient
    grads_with_kl_free = [p.grad.clone() for p in vaes[1000.0].encoder.parameters()]
    vaes[1000.0].zero_grad()
    torch.manual_seed(1)
    H.vae_loss(vaes[1000.0], x, y)["rec"].backward()
    for g, g_rec in zip(grads_with_kl_free, (p.grad for p in vaes[1000.0].encoder.parameters())):
        assert torch.allclose(g, g_rec, rtol=1e-4, atol=1e-6)


def test_free_bits_hold_a_kl_without_closed_form_at_lambda_times_the_dimensions():
    torch.manual_seed(0)
    vae = H.build_vae(prior="mog", n_components=2, free_bits=1000.0).eval()
    torch.manual_seed(1)
    out = H.vae_loss(vae, torch.rand(8, 1, 28, 28))
    assert float(out["loss"].detach()) == pytest.approx(float(out["rec"].detach()) + 1000.0 * 32, abs=1e-2)


def test_free_bits_are_checked_and_keyed(synthetic):
    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        H.build_vae(free_bits=-0.5)
    keys = {H.config_key(run.spec, run.config("tiny"), synthetic) for run in H.free_bits_candidates()}
    assert len(keys) == len(H.FREE_BITS) and [run.spec["free_bits"] for run in H.free_bits_candidates()] == list(
        H.FREE_BITS)


@pytest.mark.parametrize("where, step, saved_step", [("loss", 4, 3), ("optimizer.step", 6, 6)])
def test_a_kl_warmup_run_resumes_after_ctrl_c_to_the_uninterrupted_weights(where, step, saved_step, small_split,
                                                                           tmp_path, monkeypatch, one_thread,
                                                                           sigint_raises):
    spec = H.EXPERIMENTS["vae_cnn_kl_warmup"].spec
    cfg = H.TrainConfig(steps=10, batch_size=8, eval_every=2, ckpt_every=100)  # warm-up: steps 1-2
    reference = _ctrl_c_run(spec, small_split, cfg)
    ckpt = tmp_path / "ckpt.pt"
    if where == "optimizer.step":
        sigint_after_adam_step(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        hook = None if where == "optimizer.step" else _raise_in(where, step)
        _ctrl_c_run(spec, small_split, cfg, ckpt=ckpt, on_loss=hook)
    monkeypatch.undo()
    assert torch.load(ckpt, weights_only=True)["step"] == saved_step
    _assert_same_run(reference, _ctrl_c_run(spec, small_split, cfg, ckpt=ckpt))


def test_a_kl_warmup_run_has_a_cache_key_of_its_own(synthetic):
    run = H.EXPERIMENTS["vae_cnn_kl_warmup"]
    plain = H.EXPERIMENTS["vae_cnn"]
    assert H.config_key(run.spec, run.config("tiny"), synthetic) != H.config_key(plain.spec, plain.config("tiny"),
                                                                                 synthetic)


# ---------------------------------------------------------------------------------------------------
# The batch schedule (TrainConfig.batches) and the binarized VAE
# ---------------------------------------------------------------------------------------------------


def _batches_seen(cfg: H.TrainConfig, n: int = 32) -> list[list[int]]:
    x = torch.arange(n, dtype=torch.float32)[:, None]
    seen = []

    def loss_fn(model, xb, progress=1.0):
        seen.append(xb[:, 0].long().tolist())
        return {"loss": (model(xb) ** 2).mean()}

    H.fit(torch.nn.Linear(1, 1), loss_fn, (x,), None, cfg, progress=False)
    return seen


def test_iid_batches_are_drawn_anew_each_step_and_epoch_batches_cover_the_split_once_per_epoch():
    epochs = _batches_seen(H.TrainConfig(steps=8, batch_size=8))
    iid = _batches_seen(H.TrainConfig(steps=8, batch_size=8, batches="iid"))
    assert sorted(sum(epochs[:4], [])) == list(range(32))  # every drawing once in an epoch of 4 batches
    assert all(len(set(b)) == 8 for b in iid)  # no drawing twice within a batch
    assert sorted(sum(iid[:4], [])) != list(range(32))  # but some twice, some never, in 4 batches
    assert iid == _batches_seen(H.TrainConfig(steps=8, batch_size=8, batches="iid"))  # seeded
    assert iid != _batches_seen(H.TrainConfig(steps=8, batch_size=8, batches="iid", seed=1))
    with pytest.raises(ValueError, match="batches must be one of"):
        H.TrainConfig(steps=1, batches="random")


def test_the_batch_schedule_is_in_the_cache_key_only_when_it_is_not_the_default(synthetic):
    spec = {"kind": "cnn_ae"}
    default = H.config_key(spec, H.TrainConfig(steps=10), synthetic)
    assert H.config_key(spec, H.TrainConfig(steps=10, batches="epochs"), synthetic) == default
    assert H.config_key(spec, H.TrainConfig(steps=10, batches="iid"), synthetic) != default
    assert H.EXPERIMENTS["lstm_ae_iid_batches"].config().batches == "iid"
    assert H.EXPERIMENTS["lstm_ae_iid_batches"].spec == H.EXPERIMENTS["lstm_ae"].spec


def test_binarize_is_a_fixed_draw_with_the_grey_pixels_as_probabilities():
    x = torch.rand(200, 1, 28, 28)
    b = H.binarize(x, seed=3)
    assert set(b.unique().tolist()) <= {0.0, 1.0} and torch.equal(b, H.binarize(x, seed=3))
    assert not torch.equal(b, H.binarize(x, seed=4))
    assert float(b.mean()) == pytest.approx(float(x.mean()), abs=0.005)  # 156,800 coins: sd 0.0013
    assert torch.equal(H.binarize(b, seed=9), b)  # binary drawings come back unchanged


def test_the_binarized_vae_trains_on_fresh_coins_and_is_scored_on_a_fixed_draw():
    torch.manual_seed(0)
    vae = H.build_vae("cnn", latent_dim=4, binarize=True).eval()
    x = torch.rand(6, 1, 28, 28)
    with pytest.raises(ValueError, match="model_inputs"):  # eval: grey drawings would be soft targets
        H.vae_loss(vae, x)
    assert torch.equal(H.model_inputs(vae, x), H.binarize(x, seed=0))  # held out: one fixed draw of the whole set
    # One draw for the whole set: the same drawing twice gets two different coin flips (a draw per batch of the
    # held-out loss gave every batch the same noise).
    twice = H.model_inputs(vae, torch.cat([x, x]))
    assert not torch.equal(twice[:6], twice[6:])
    # The bounds read grey drawings as the model does: the same numbers as for their fixed binarization.
    assert H.vae_elbo(vae, x)["neg_elbo"] == pytest.approx(H.vae_elbo(vae, H.binarize(x))["neg_elbo"], abs=1e-9)
    assert H.iwae_bound(vae, x, k=2) == pytest.approx(H.iwae_bound(vae, H.binarize(x), k=2), abs=1e-9)
    seen = []
    vae.train()
    vae.encode = lambda xb, y=None: (seen.append(xb) or torch.zeros(6, 4), torch.zeros(6, 4))
    H.vae_loss(vae, x), H.vae_loss(vae, x)
    assert set(seen[0].unique().tolist()) <= {0.0, 1.0} and not torch.equal(seen[0], seen[1])  # fresh coins


def test_a_checkpoint_whose_optimizer_state_fits_another_parameter_order_is_refused(tmp_path, small_split):
    """Adam's state is matched to the parameters by order: a checkpoint from another layout of the model must
    stop with a message, not put one weight's moments on another."""
    cfg = H.TrainConfig(steps=4, batch_size=8, ckpt_every=2)
    ckpt = tmp_path / "ckpt.pt"
    H.set_seed(0)
    model, loss_fn = H.build_model({"kind": "cnn_ae"})
    H.fit(model, loss_fn, (small_split[0][0],), None, H.TrainConfig(steps=2, batch_size=8, ckpt_every=2),
          ckpt_path=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=True)
    state["optimizer"]["state"] = {len(state["optimizer"]["state"]) - 1 - k: v
                                   for k, v in state["optimizer"]["state"].items()}  # the order reversed
    torch.save(state, ckpt)
    H.set_seed(0)
    again, _ = H.build_model({"kind": "cnn_ae"})
    with pytest.raises(ValueError, match="does not fit this model's parameters"):
        H.fit(again, loss_fn, (small_split[0][0],), None, cfg, ckpt_path=ckpt, progress=False)
