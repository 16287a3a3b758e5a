"""Devices: which one to train on, what precision it can run, its random generators, and CPU memory reuse.

Every device path is written for the CPU (AVX2, AVX-512, AMX), CUDA and Apple MPS:

- ``pick_device("auto")`` takes CUDA only when this torch build has kernels for the GPU, else says why and
  uses the next device; on CUDA it makes fp32 mean IEEE float32 with deterministic algorithms.
- ``check_precision`` refuses "bf16" where the device has no native bfloat16, before anything runs.
- ``rng_state``/``set_rng_state`` hold the CPU's generator and the device's own (CUDA, MPS), so that a
  checkpoint resumes a run with the same noise on any device.
- ``one_blas_thread`` runs the evaluation's small numpy matrix work on one BLAS thread.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import shutil
import sys
import warnings

import torch

__all__ = ["pick_device", "cuda_problem", "reproducible_cuda", "PRECISIONS", "native_bf16", "check_precision",
           "autocast", "rng_state", "set_rng_state", "keep_freed_memory", "machine_summary",
           "busy_cpu_seconds", "one_blas_thread"]


def one_blas_thread(fn):
    """Decorate ``fn`` to run with numpy's and scipy's BLAS on one thread (threadpoolctl; torch's own threads are
    untouched). The evaluation's numpy work, EM of Gaussian mixtures on a few thousand 32-d codes and the FID's
    matrix square root of 128 x 128 covariances, is many small matrix products, which OpenBLAS runs several times
    slower on two threads than on one (bench/README.md); on one thread their last bits also no longer depend on
    the machine's number of cores."""
    from threadpoolctl import threadpool_limits

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def cuda_problem(index: int = 0) -> str | None:
    """Why CUDA device ``index`` cannot run this torch build's kernels, or None when it can.

    A build carries machine code for some GPU architectures (``torch.cuda.get_arch_list()``: sm_75, sm_80,
    ...) and maybe PTX (compute_XY) that the driver compiles for newer ones. Machine code for sm_XY runs on
    a GPU of the same major version and at least that minor; PTX on any GPU of at least its version.
    A GPU outside both fails at its first kernel with "no kernel image is available"."""
    archs = torch.cuda.get_arch_list()
    if not archs:
        return None  # a build that does not say (ROCm): nothing to check
    major, minor = torch.cuda.get_device_capability(index)
    cap = major * 10 + minor
    sm = [int(a.split("_")[1]) for a in archs if a.startswith("sm_")]
    ptx = [int(a.split("_")[1]) for a in archs if a.startswith("compute_")]
    if any(s // 10 == major and s <= cap for s in sm) or any(p <= cap for p in ptx):
        return None
    return (f"GPU {index} ({torch.cuda.get_device_name(index)}) has compute capability {major}.{minor}, but this "
            f"torch {torch.__version__} build has kernels for {' '.join(archs)} only")


def _nvidia_driver_present() -> bool:
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def pick_device(device: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; 'cpu', 'cuda', 'cuda:1', 'mps' are taken as given.

    'auto' passes over a GPU that this torch build cannot run (``cuda_problem``), or an NVIDIA driver that
    CUDA cannot use, with a warning that says why; asking for 'cuda' there is an error. A CUDA device is
    set up by ``reproducible_cuda``."""
    if device == "auto":
        if torch.cuda.is_available():
            problem = cuda_problem(0)
            if problem is None:
                return _cuda(torch.device("cuda"))
            warnings.warn(f"device 'auto': {problem}; not using it (README: 'On a CUDA GPU')", RuntimeWarning,
                          stacklevel=2)
        elif torch.version.cuda and _nvidia_driver_present():
            warnings.warn(f"device 'auto': an NVIDIA driver is installed, but this torch {torch.__version__} "
                          f"(CUDA {torch.version.cuda}) cannot use it, often because the driver is older than the "
                          f"build needs; not using the GPU (README: 'On a CUDA GPU')", RuntimeWarning, stacklevel=2)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    kind = str(device).split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'mps', got {device!r}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use 'auto' or 'cpu'")
        chosen = torch.device(device)
        problem = cuda_problem(chosen.index or 0)
        if problem:
            raise ValueError(f"device {device!r}: {problem}; install a torch build for this GPU "
                             f"(README: 'On a CUDA GPU') or use 'cpu'")
        return _cuda(chosen)
    if kind == "mps" and not _mps_available():
        raise ValueError(f"device {device!r} asked for, but MPS is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


def _cuda(device: torch.device) -> torch.device:
    reproducible_cuda()
    return device


def reproducible_cuda() -> None:
    """Make CUDA's float32 IEEE float32 and its algorithms deterministic, process-wide.

    PyTorch defaults cuDNN's convolutions and RNNs to TF32 (10-bit mantissas) on Ampere and newer GPUs, and
    picks nondeterministic algorithms where they are faster. Here fp32 means float32 and the same result on
    every run on one GPU model with one software stack (NVIDIA gives no such promise across GPU models).
    Ops without a deterministic CUDA implementation warn rather than fail (``warn_only``). bf16 autocast
    is not affected. cuBLAS needs its workspace setting before its first call, hence here, before training."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if hasattr(torch.backends.cudnn, "conv"):  # the fp32_precision API; mixing it with allow_tf32 is an error
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cudnn.rnn.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


PRECISIONS = ("fp32", "bf16")  # float32 throughout (bit-reproducible); bfloat16 autocast of the forward passes


@functools.cache
def _onednn_bf16_lstm_runs() -> bool:
    """Whether oneDNN runs a bfloat16 LSTM here: it refuses on a CPU (or under an ONEDNN_MAX_CPU_ISA cap)
    without AVX-512 ("could not create a primitive descriptor for the LSTM forward propagation primitive")."""
    lstm = torch.nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 4))
    except RuntimeError:
        return False
    return True


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether the device computes bfloat16 natively, so that "bf16" is faster than "fp32" there.

    CPU: AVX-512 BF16 or AMX tiles (PyTorch's own tests, ``torch.cpu``), which oneDNN uses for bf16 matrix
    products, and oneDNN's bf16 LSTM must run. CUDA: compute capability 8.0 or newer (not a T4). MPS: yes."""
    device = torch.device(device)
    if device.type == "cpu":
        has_isa = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return has_isa and _onednn_bf16_lstm_runs()
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "mps"


def check_precision(device: str | torch.device, precision: str) -> None:
    """Refuse an unknown precision, and "bf16" on a device without native bfloat16.

    bf16 is there for speed. Without native support it is emulated and slower than fp32, and on an AVX2
    CPU oneDNN cannot run the LSTM autoencoder in bf16 at all, so it is an error there, before any training."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "bf16" and not native_bf16(device):
        where = {"cpu": "this CPU has neither AVX-512 BF16 nor AMX (or oneDNN is capped below them)",
                 "cuda": "this GPU's compute capability is below 8.0 (a T4 or older)"}.get(device.type, "")
        raise ValueError(f"precision 'bf16' needs native bfloat16 on the {device.type}: {where}. Emulated bf16 "
                         f"would be slower than fp32 (and oneDNN's bf16 LSTM does not run on AVX2); use "
                         f"precision 'fp32'")


def autocast(device: str | torch.device, precision: str = "fp32"):
    """The context of forward passes at ``precision``: ``torch.autocast`` to bfloat16 for "bf16" (matrix
    products and convolutions in bf16, losses and reductions in float32, as PyTorch's autocast lists say),
    switched off for "fp32". "bf16" is checked by ``check_precision``."""
    device = torch.device(device)
    check_precision(device, precision)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def rng_state(device: str | torch.device) -> dict:
    """The state of every generator a step on ``device`` draws from: the CPU's (batch order, CPU noise) and,
    on CUDA or MPS, the device's own (``randn_like`` and dropout of tensors on the device)."""
    device = torch.device(device)
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict, device: str | torch.device) -> None:
    """Restore what ``rng_state(device)`` returned. A state saved on another kind of device is refused: the
    run would go on with other noise than it started with."""
    device = torch.device(device)
    if device.type != "cpu" and device.type not in state:
        raise ValueError(f"the checkpoint holds the random state of {', '.join(state)}, not of {device.type}: "
                         f"it was written by a run on another device; resume it there, or delete it to start over")
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state["mps"])


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_KEEP_BYTES = 1 << 30
_kept_freed_memory: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS (CPU speed-up).

    Every training step frees and allocates the same large buffers; with glibc's defaults each step gets
    them as fresh, page-faulting memory. Raising the mmap and trim thresholds to 1 GiB lets the heap reuse
    them (bench/README.md has the measurements). Results are unchanged. The cost: the process keeps its peak
    memory until it exits. Process-wide and idempotent; returns whether it applied (False where the C
    library is not glibc: macOS, Windows, musl). ``fit`` calls it when training on the CPU.
    """
    global _kept_freed_memory
    if _kept_freed_memory is None:
        _kept_freed_memory = False
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            libc = ctypes.CDLL(None)
            _kept_freed_memory = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
                                      and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    return _kept_freed_memory


def cpu_name() -> str:
    """The CPU's model name: /proc/cpuinfo on Linux, sysctl on macOS, else what ``platform`` knows."""
    import subprocess

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or platform.machine()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_summary(device: str = "auto") -> dict:
    """What a timing depends on: the CPU, its logical cores, torch's threads, the device a notebook would pick
    (with the GPU's name), and the 1-minute load average now (None where the OS has none, e.g. Windows)."""
    try:
        dev = pick_device(device)
        name = dev.type if dev.type != "cuda" else f"cuda ({torch.cuda.get_device_name(dev)})"
    except (ValueError, RuntimeError):  # a device the notebooks will refuse, with their own message
        name = str(device)
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        load = None
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": name, "load_average": load}


def busy_cpu_seconds() -> float | None:
    """CPU time (s) all processes of the machine have spent so far, all cores together, from /proc/stat (user,
    nice, system, irq, softirq, steal); None where there is no /proc/stat (macOS, Windows). The difference
    over an interval, less what one's own processes used, is what other processes took of the machine."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
