"""Where students run it: the invariants of every device path, held on this CPU.

MPS has no float64, CUDA and MPS have generators of their own, CUDA defaults to TF32, a GPU may be too old
or too new for the torch build, a CPU may lack native bf16, Windows reads text as cp1252 and a Colab kernel
starts in /content. None of those machines is here, so each test pins the behaviour that makes the code
right there, on the CPU (README: "Where it runs").
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    ROOT,  # noqa: E402
    child_env,
)
from torch.overrides import TorchFunctionMode

import helpers as H
from helpers import devices
from helpers.pipeline import runner

# ---------------------------------------------------------------------------------------------------
# MPS: no float64 tensor anywhere in evaluation (float64 arithmetic happens in NumPy, on the CPU)
# ---------------------------------------------------------------------------------------------------

class NoFloat64(TorchFunctionMode):
    """Fails as soon as a torch operation returns a float64 tensor: on MPS that operation would crash."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                raise AssertionError(f"{getattr(func, '__name__', func)} returned a float64 tensor")
        return out


def test_the_float64_guard_catches_a_double_on_a_tensor():
    with pytest.raises(AssertionError, match="float64"), NoFloat64():
        torch.ones(3).double()
    with NoFloat64():
        torch.ones(3).float().sum()


@pytest.fixture(scope="module")
def models(synthetic):
    torch.manual_seed(0)
    return {"ae": H.CNNAutoencoder(), "vae": H.build_vae("cnn", latent_dim=8),
            "cvae": H.build_vae("cnn", latent_dim=8, n_classes=5),
            "cpvae": H.build_vae("cnn", latent_dim=8, n_classes=5, class_input="none", class_prior=True),
            "clf": H.Classifier()}


def test_no_evaluation_function_makes_a_float64_tensor(models, synthetic):
    X, y = H.to_tensor(synthetic.x_test), torch.from_numpy(synthetic.y_test)
    X_train = H.to_tensor(synthetic.x_train)
    ae, vae, cvae, cpvae, clf = (models[k] for k in ("ae", "vae", "cvae", "cpvae", "clf"))
    with NoFloat64():
        H.reconstruction_mse(ae, X)
        H.mean_image_mse(X_train, X)
        H.autoencoder_metrics(ae, ae, X_train, X)
        H.vae_bounds(vae, X, n_iwae=10, k=3)
        H.vae_bounds(cvae, X, y, n_iwae=10, k=3)
        H.iwae_bound(cpvae, X[:5], y[:5], k=3)
        feats, probs = H.classifier_outputs(clf, X)
        assert feats.dtype == probs.dtype == np.float64  # float64 in NumPy
        H.generative_metrics(clf, H.decode_samples(vae, H.PriorSampler(vae), 20)[0], X)
        H.sampler_metrics(clf, cvae, H.PriorSampler(cvae), 10, feats)
        H.memorisation(vae, X_train, X, n=5, n_show=3)
        H.interpolate(cvae, X[0], X[1], y_a=0, y_b=1)
        codes = H.encode_all(vae, X_train)
        mixture = H.MixtureSampler(codes, 2)
        H.sampler_metrics(clf, vae, mixture, 20, feats)
        class_mixture = H.ClassMixtureSampler(codes, synthetic.y_train, 1)
        H.sampler_metrics(clf, vae, class_mixture, 20, feats)
        H.sampler_metrics(clf, cpvae, H.PriorSampler(cpvae), 20, feats)
        H.reconstruction_metrics(clf, cvae, X, y, feats)
        H.label_adherence(clf, cpvae, X[:10], y[:10])
        means, directions, sds = H.latent_directions(H.encode_all(cpvae, X_train, synthetic.y_train),
                                                     synthetic.y_train)
        H.decode_code(cpvae, H.explorer_code(means, directions, sds, 1, [0.5] * len(sds)), 1)
        H.evaluate(clf, H.classifier_loss, (X, y))


def test_learned_priors_and_the_pixelcnn_decoder_make_no_float64_tensor(synthetic):
    torch.manual_seed(0)
    X, y = H.to_tensor(synthetic.x_test[:6]), torch.from_numpy(synthetic.y_test[:6])
    codes = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    with NoFloat64():
        for spec in ({"prior": "vamp", "n_components": 3}, {"prior": "mog", "n_components": 3},
                     {"decoder": "pixelcnn", "binarize": True}):
            model = H.build_vae("cnn", latent_dim=8, **spec)
            H.vae_loss(model, X)["loss"].backward()
            model.eval()
            H.vae_bounds(model, H.model_inputs(model, X), n_iwae=3, k=2)
            H.iwae_bound(model, X[:3], k=2, log_prior=H.MixtureSampler(codes, 1).log_prob)
            H.decode_samples(model, H.PriorSampler(model), 3, seed=0)
        cpixel = H.build_vae("cnn", latent_dim=8, n_classes=5, class_input="decoder", class_prior=True,
                             decoder="pixelcnn", binarize=True).eval()
        H.vae_bounds(cpixel, H.binarize(X), y, n_iwae=3, k=2)
        H.decode_samples(cpixel, H.PriorSampler(cpixel), 3, seed=0)


def test_training_makes_no_float64_tensor(synthetic):
    X, y = H.to_tensor(synthetic.x_train), torch.from_numpy(synthetic.y_train)
    for spec in ({"kind": "lstm_ae"}, {"kind": "vae", "encoder": "gru", "latent_dim": 4}, {"kind": "classifier"}):
        model, loss_fn = H.build_model(spec)
        with NoFloat64():
            H.fit(model, loss_fn, (X, y), (X[:20], y[:20]), H.TrainConfig(steps=3, batch_size=16, eval_every=2),
                  progress=False)


# ---------------------------------------------------------------------------------------------------
# The loop never waits for the device: no per-step synchronisation, the epoch order copied once
# ---------------------------------------------------------------------------------------------------

class CountSyncs(TorchFunctionMode):
    """Counts the calls of the project's own code (helpers/) that make the host wait for the device (a value
    read back), and its copies of index tensors to the device. (Adam reads its step counts back with .item(),
    but they live on the CPU whatever the device.)"""

    SYNCS = {torch.Tensor.item, torch.Tensor.__bool__, torch.Tensor.tolist, torch.Tensor.__float__,
             torch.Tensor.cpu, torch.Tensor.numpy}

    def __init__(self):
        super().__init__()
        self.syncs, self.index_copies = 0, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if Path(sys._getframe(1).f_code.co_filename).parent == ROOT / "helpers":
            if func in self.SYNCS:
                self.syncs += 1
            if func is torch.Tensor.to and args and args[0].dtype == torch.int64:
                self.index_copies += 1
        return func(*args, **(kwargs or {}))


def test_the_training_loop_reads_the_loss_back_once_per_logging_window(synthetic):
    X = H.to_tensor(synthetic.x_train)  # 200 drawings: 6 batches of 32 per epoch
    model, loss_fn = H.build_model({"kind": "vae", "encoder": "cnn", "latent_dim": 4})
    cfg = H.TrainConfig(steps=40, batch_size=32, log_every=20)
    with CountSyncs() as count:
        record = H.fit(model, loss_fn, (X,), None, cfg, progress=False)
    assert len(record["history"]["train"]["loss"]) == 2
    assert count.syncs <= 2 * 2, f"{count.syncs} reads from the device in 40 steps with 2 logging windows"
    assert count.index_copies <= 7, f"{count.index_copies} copies of batch indices in 7 epochs"


def test_a_nan_is_caught_at_the_next_log_and_never_reaches_a_checkpoint(tensors_and_ckpt):
    X, ckpt = tensors_and_ckpt
    model, loss_fn = H.build_model({"kind": "cnn_ae"})
    calls = [0]

    def nan_at_step_6(m, *batch, **kw):
        calls[0] += 1
        out = loss_fn(m, *batch, **kw)
        return {"loss": out["loss"] * float("nan")} if calls[0] == 6 else out

    cfg = H.TrainConfig(steps=20, batch_size=32, log_every=5, ckpt_every=5)
    with pytest.raises(FloatingPointError, match="loss became nan at step 6"):
        H.fit(model, nan_at_step_6, (X,), None, cfg, ckpt_path=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 5 and all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.fixture
def tensors_and_ckpt(synthetic, tmp_path):
    return H.to_tensor(synthetic.x_train), tmp_path / "ckpt.pt"


# ---------------------------------------------------------------------------------------------------
# Every device's generator in a checkpoint; CUDA's fp32 is IEEE float32 and deterministic
# ---------------------------------------------------------------------------------------------------

def test_a_checkpoint_holds_the_cpu_generator_and_resuming_restores_it(tensors_and_ckpt):
    X, ckpt = tensors_and_ckpt
    model, loss_fn = H.build_model({"kind": "cnn_ae"})
    H.fit(model, loss_fn, (X,), None, H.TrainConfig(steps=3, batch_size=32, ckpt_every=1), ckpt_path=ckpt,
          progress=False)
    rng = torch.load(ckpt, weights_only=True)["rng"]
    assert set(rng) == {"cpu"} and torch.equal(rng["cpu"], torch.get_rng_state())


class FakeGenerator:
    def __init__(self):
        self.state, self.calls = torch.tensor([1, 2, 3], dtype=torch.uint8), []

    def get(self, device=None):
        return self.state.clone()

    def set(self, state, device=None):
        self.calls.append(state.clone())


@pytest.mark.parametrize("kind", ["cuda", "mps"])
def test_rng_state_holds_the_device_generator_and_set_rng_state_restores_it(kind, monkeypatch):
    fake = FakeGenerator()
    module = torch.cuda if kind == "cuda" else torch.mps
    monkeypatch.setattr(module, "get_rng_state", fake.get)
    monkeypatch.setattr(module, "set_rng_state", fake.set)
    device = torch.device(kind)
    state = H.rng_state(device)
    assert set(state) == {"cpu", kind} and torch.equal(state[kind], fake.state)
    torch.manual_seed(5)
    H.set_rng_state(state, device)
    assert len(fake.calls) == 1 and torch.equal(fake.calls[0], fake.state)
    assert torch.equal(torch.get_rng_state(), state["cpu"])
    with pytest.raises(ValueError, match=f"holds the random state of cpu, not of {kind}"):
        H.set_rng_state({"cpu": state["cpu"]}, device)


@pytest.fixture
def restore_cuda_flags():
    saved = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
             torch.backends.cudnn.rnn.fp32_precision, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
     torch.backends.cudnn.rnn.fp32_precision, torch.backends.cudnn.deterministic,
     torch.backends.cudnn.benchmark) = saved[:5]
    torch.use_deterministic_algorithms(saved[5], warn_only=saved[6])
    if saved[7] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def test_reproducible_cuda_means_ieee_float32_and_deterministic_algorithms(restore_cuda_flags):
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    H.reproducible_cuda()
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee" and torch.backends.cudnn.rnn.fp32_precision == "ieee"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


# ---------------------------------------------------------------------------------------------------
# CUDA: a GPU this torch build has no kernels for is passed over with a reason
# ---------------------------------------------------------------------------------------------------

@pytest.fixture
def fake_gpu(monkeypatch, restore_cuda_flags):
    def install(capability, archs):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: archs)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
        monkeypatch.setattr(devices, "_mps_available", lambda: False)
    return install


@pytest.mark.parametrize("capability, archs, usable", [
    ((7, 5), ["sm_75", "sm_80", "sm_90"], True),  # a T4 on a build with its code
    ((8, 6), ["sm_80", "sm_90"], True),  # sm_80 code runs on sm_86
    ((12, 0), ["sm_80", "sm_90", "compute_90"], True),  # PTX compiles for newer GPUs
    ((6, 1), ["sm_75", "sm_80", "sm_90", "compute_90"], False),  # a Pascal GPU: too old for the build
    ((9, 0), ["sm_75", "sm_80"], False),  # too new, no PTX
    ((8, 0), ["sm_86"], False),  # sm_86 code does not run on sm_80
])
def test_cuda_problem_says_when_the_build_cannot_run_on_the_gpu(capability, archs, usable, fake_gpu):
    fake_gpu(capability, archs)
    problem = H.cuda_problem(0)
    assert (problem is None) == usable, problem
    if not usable:
        assert f"compute capability {capability[0]}.{capability[1]}" in problem and archs[0] in problem


def test_auto_passes_over_an_unusable_gpu_with_a_warning_and_cuda_is_refused(fake_gpu):
    fake_gpu((6, 1), ["sm_75", "sm_80"])
    with pytest.warns(RuntimeWarning, match="compute capability 6.1.*not using it"):
        assert H.pick_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="compute capability 6.1.*install a torch build for this GPU"):
        H.pick_device("cuda")


def test_auto_takes_a_usable_gpu_and_sets_it_up(fake_gpu):
    fake_gpu((8, 6), ["sm_80", "sm_90"])
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    assert H.pick_device("auto").type == "cuda"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"


def test_auto_says_so_when_an_nvidia_driver_is_there_but_cuda_is_not_usable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(devices, "_nvidia_driver_present", lambda: True)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="NVIDIA driver is installed.*cannot use it"):
        assert H.pick_device("auto").type == "cpu"


# ---------------------------------------------------------------------------------------------------
# bf16 needs native bfloat16; where there is none it is refused before anything runs
# ---------------------------------------------------------------------------------------------------

@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setattr(devices, "native_bf16", lambda device="cpu": False)


def test_bf16_without_native_support_is_refused_before_training(no_native_bf16, synthetic, tmp_path):
    with pytest.raises(ValueError, match="precision 'bf16' needs native bfloat16 on the cpu.*use precision 'fp32'"):
        H.check_precision("cpu", "bf16")
    with pytest.raises(ValueError, match="needs native bfloat16"):
        H.train_or_load("cnn_ae", {"kind": "cnn_ae"}, H.TrainConfig(steps=2, precision="bf16"), synthetic,
                        runs_dir=tmp_path, progress=False)
    assert not (tmp_path / "models").exists()  # nothing was written
    H.check_precision("cpu", "fp32")


def test_the_runner_refuses_bf16_without_native_support_before_any_notebook(no_native_bf16, monkeypatch, tmp_path,
                                                                           synthetic_dir):
    monkeypatch.setenv("QUICKDRAW_DIR", str(synthetic_dir))
    ran = []
    monkeypatch.setattr(runner, "run_notebook", lambda *args, **kwargs: ran.append(args))
    with pytest.raises(runner.ParameterError, match="needs native bfloat16"):
        runner.reproduce(only=["02", "03"], budget="tiny", extra={"precision": "bf16"}, fig_dir=tmp_path,
                         results_path=tmp_path / "m.json", runs_dir=tmp_path, out_dir=tmp_path)
    assert ran == []


AVX2_PROBE = """
import torch, helpers as H
lstm = torch.nn.LSTM(28, 16, batch_first=True)
try:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lstm(torch.zeros(2, 28, 28))
    print("lstm ran")
except RuntimeError as e:
    print("lstm failed:", str(e)[:60])
print("native", H.native_bf16("cpu"))
try:
    H.check_precision("cpu", "bf16")
    print("bf16 allowed")
except ValueError as e:
    print("bf16 refused:", e)
"""


def test_on_an_avx2_only_cpu_bf16_is_refused_where_onednn_cannot_run_the_lstm():
    """oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA) behaves like an AVX2-only CPU, such as AMD Zen 3."""
    proc = subprocess.run([sys.executable, "-c", AVX2_PROBE], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert proc.returncode == 0, proc.stderr
    assert "lstm failed: could not create a primitive descriptor" in proc.stdout  # the crash users met
    assert "native False" in proc.stdout and "bf16 refused: precision 'bf16' needs native bfloat16" in proc.stdout


# ---------------------------------------------------------------------------------------------------
# Windows: every text file is read and written as UTF-8
# ---------------------------------------------------------------------------------------------------

def _text_calls_without_encoding(tree):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or any(k.arg == "encoding" for k in node.keywords):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if name in ("read_text", "write_text"):
            yield node
        elif name == "open" and isinstance(f, ast.Name):  # the builtin: open(path, mode)
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"),
                                                               None)
            if not (isinstance(mode, ast.Constant) and "b" in mode.value):
                yield node


def test_every_text_read_and_write_names_utf8():
    bad, seen = [], 0
    for path in sorted([*ROOT.glob("helpers/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("bench/*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        seen += sum(isinstance(n, ast.Call) for n in ast.walk(tree))
        bad += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in _text_calls_without_encoding(tree)]
    assert not bad, "text read or written in the locale's encoding (cp1252 on Windows):\n" + "\n".join(bad)
    assert len(list(_text_calls_without_encoding(ast.parse("open('a')\np.read_text()\nopen('b', 'rb')")))) == 2


def test_the_report_renders_and_merges_without_the_locale_encoding(tmp_path):
    """Python's own check (-X warn_default_encoding) on the report's whole read-render-write path, as an error
    where the project's code opens a file (matplotlib's font cache does so too, which is not ours to fix)."""
    script = ("import sys, warnings\n"
              "warnings.filterwarnings('error', category=EncodingWarning, module=r'helpers\\b')\n"
              "import helpers as H\n"
              "H.merge_metrics(sys.argv[1], 'x', {'a · b': 1.5})\n"
              "from helpers.report import render\n"
              "sys.exit(render.main(['--metrics', sys.argv[1], '--template', sys.argv[2], '--out', sys.argv[3]]))\n")
    metrics, template, out = tmp_path / "m.json", tmp_path / "t.md", tmp_path / "out.md"
    template.write_text("± – · <!-- value:x.a · b:.1f -->?<!-- /value -->\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-X", "warn_default_encoding", "-c", script, str(metrics), str(template),
                           str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == "± – · <!-- value:x.a · b:.1f -->1.5<!-- /value -->\n"


# ---------------------------------------------------------------------------------------------------
# Colab: paths come from the repository root, not from the kernel's working directory
# ---------------------------------------------------------------------------------------------------

def test_relative_paths_are_taken_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert H.repo_path("figures") == ROOT / "figures"
    assert H.repo_path(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("QUICKDRAW_DIR", raising=False)
    assert H.resolve_data_dir() == ROOT / "data" / "quickdraw_subset_np"
    monkeypatch.setenv("QUICKDRAW_DIR", "here")  # a shell's path: from the working directory
    assert H.resolve_data_dir("elsewhere") == tmp_path / "here"


def test_a_notebook_run_from_another_working_directory_finds_and_writes_the_same_folders(synthetic_dir, tmp_path,
                                                                                        monkeypatch):
    import papermill

    monkeypatch.delenv("QUICKDRAW_DIR", raising=False)
    rel = Path("runs") / f"test-cwd-{uuid.uuid4().hex[:8]}"
    shutil.copytree(synthetic_dir, ROOT / rel / "data")
    elsewhere = tmp_path / "content"  # where Colab starts its kernel
    elsewhere.mkdir()
    try:
        params = {"data_dir": str(rel / "data"), "budget": "tiny", "fig_dir": str(rel / "figures"),
                  "results_path": str(rel / "metrics.json"), "runs_dir": str(rel / "runs"), "progress": "off",
                  "n_show": 1}
        papermill.execute_notebook(str(runner.notebooks(["03"])[0]), str(tmp_path / "out.ipynb"), parameters=params,
                                   cwd=str(elsewhere), kernel_name="python3", progress_bar=False)
        assert (ROOT / rel / "figures" / "03_cnn_reconstructions.png").is_file()
        assert "cnn_ae" in json.loads((ROOT / rel / "metrics.json").read_text(encoding="utf-8"))
        assert list((ROOT / rel / "runs" / "models").glob("cnn_ae-*/model.pt"))
        assert list(elsewhere.iterdir()) == []
    finally:
        shutil.rmtree(ROOT / rel)


# ---------------------------------------------------------------------------------------------------
# Ctrl-C in a terminal: one line that says what stopped, that its checkpoint is saved, how to resume
# ---------------------------------------------------------------------------------------------------

def test_ctrl_c_during_training_ends_with_one_line_and_a_checkpoint(synthetic_dir, tmp_path):
    env = child_env(QUICKDRAW_DIR=synthetic_dir)
    # The full budget (10,000 steps): training is surely still running when the signal comes.
    cmd = [sys.executable, "-m", "helpers.pipeline.runner", "--only", "02", "--budget", "full", "--out",
           str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs")]
    # A session of its own, as a terminal's foreground job is a process group; SIGINT as a terminal sends it.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err_lines, training = [], threading.Event()

    def read_stderr():  # the runner logs the text progress bar: a step count above 0 means the loop is running
        for line in proc.stderr:
            err_lines.append(line)
            if re.match(r"lstm_ae: .*\| *[1-9]\d*/\d+", line):
                training.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert training.wait(180), "".join(err_lines)[-3000:]
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.stdout.read()
    proc.wait(timeout=120)
    reader.join(timeout=30)
    err = "".join(err_lines)
    assert proc.returncode == 130, out + err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("lstm_ae:")]  # no bar
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("interrupted: 02_lstm_autoencoder.ipynb stopped in cell")
    assert "lstm_ae interrupted after step" in lines[0] and "its checkpoint is saved in" in lines[0]
    assert "Run the same command again" in lines[0]
    assert list((tmp_path / "runs" / "models").glob("lstm_ae-*/checkpoint.pt"))


# ---------------------------------------------------------------------------------------------------
# Windows: the README's commands without make do what the Makefile's targets do
# ---------------------------------------------------------------------------------------------------

def _commands_without_make() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- without-make -->", 1)[1].split("<!-- /without-make -->", 1)[0]
    lines = [line.strip() for line in block.strip().strip("`").splitlines() if line.strip()]
    return [line.replace(".venv\\Scripts\\python", sys.executable).split() for line in lines]


def test_the_commands_without_make_run_as_the_readme_gives_them(synthetic_dir, tmp_path):
    commands = _commands_without_make()
    assert commands[0][:3] == ["py", "-3.12", "-m"] and commands[0][3:] == ["venv", ".venv"]
    assert commands[1][1:] == ["-m", "pip", "install", "-r", "requirements.txt"]  # what make setup installs
    assert commands[2][1:] == ["-m", "pip", "install", "--no-deps", "-e", "."]
    pytest_cmd, runner_cmd, report_cmd = commands[3:]
    env = child_env(QUICKDRAW_DIR=synthetic_dir)
    runs = {
        "pytest": pytest_cmd + ["--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_package.py"],
        "runner": runner_cmd + ["--only", "01", "--budget", "tiny", "--out", str(tmp_path / "out")],
        "report": report_cmd + ["--out", str(tmp_path / "report.md")],
    }
    for name, cmd in runs.items():
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{name}: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    assert (tmp_path / "out" / "figures" / "01_examples.png").is_file()
    assert "data" in json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    rendered = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert rendered == H.render_report((ROOT / "report.md").read_text(encoding="utf-8"), H.read_metrics(
        ROOT / "results" / "metrics.json"))


# ---------------------------------------------------------------------------------------------------
# The Python floor: make setup says which Python it needs before it creates anything
# ---------------------------------------------------------------------------------------------------

def test_make_setup_refuses_an_older_python_and_says_how_to_point_at_another(tmp_path):
    fake = tmp_path / "python3.10"  # Ubuntu 22.04's python3: its version, and the version check failing
    fake.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Python 3.10.12"; exit 0; fi\nexit 1\n',
                    encoding="utf-8")
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    proc = subprocess.run(["make", "-C", str(ROOT), "setup", f"PYTHON={fake}", f"VENV={venv}"], capture_output=True,
                          text=True, timeout=60, env=child_env())
    assert proc.returncode != 0
    assert "needs Python 3.11 or newer" in proc.stdout and "Python 3.10.12" in proc.stdout, proc.stdout + proc.stderr
    assert "make setup PYTHON=python3.12" in proc.stdout
    assert not venv.exists()


def test_the_lock_lies_within_the_declared_ranges():
    """requirements.txt (what make setup and CI install) satisfies pyproject.toml's ranges (what `pip install -e .`
    asks for beside a user's own torch), so the tested set is one that the ranges allow."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]
    lock = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        pin = line.split("#")[0].strip()
        if pin:
            name, version = pin.split("==")
            lock[name.lower()] = version
    for dep in map(Requirement, declared):
        assert dep.name.lower() in lock, f"{dep.name} is declared but not locked in requirements.txt"
        assert dep.specifier.contains(lock[dep.name.lower()]), f"the lock's {dep.name}=={lock[dep.name.lower()]} " \
                                                               f"is outside the declared {dep.specifier}"
    assert "torchvision" not in {Requirement(d).name for d in declared}  # tied to one torch release per build


def test_image_grids_are_torchvisions_make_grid_without_torchvision():
    make_grid = pytest.importorskip("torchvision.utils").make_grid
    torch.manual_seed(0)
    for n, nrow in [(2, 2), (7, 3), (10, 10), (40, 8), (5, 8)]:
        x = torch.rand(n, 1, 28, 28)
        expected = make_grid(x, nrow=nrow, padding=H.plotting.PAD, pad_value=0.35)[0].numpy()
        assert np.array_equal(H.grid_image(x, nrow), expected), (n, nrow)
    assert H.grid_image(torch.rand(1, 1, 28, 28), 1).shape == (32, 32)  # one drawing keeps its frame too
