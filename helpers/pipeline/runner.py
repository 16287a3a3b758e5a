"""Run the notebooks headlessly with papermill: ``python -m helpers.pipeline.runner`` (what `make reproduce` calls).

Checks before anything runs: the data folder loads (helpers.load_quickdraw), and every parameter given is
declared by the notebook with a value of its declared type (papermill only warns about unknown names; here
they are errors). Executed copies go to runs/notebooks/; a failing notebook stops the run with its name,
the failing cell and the error. The wall time of each notebook, and the part of it spent training models, are
merged into the results file (``timings``, ``training_times``).

Ctrl-C interrupts the running kernel as JupyterLab's stop button does (a model in training writes its
checkpoint), and the run ends with one line that says what stopped and how to go on.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from ..data.quickdraw import DataError, load_quickdraw, resolve_data_dir
from ..devices import PRECISIONS, busy_cpu_seconds, check_precision, machine_summary, pick_device
from ..files import ROOT
from ..results import default_outputs, merge_metrics
from ..studies.registry import BUDGETS

__all__ = ["SMALL_PARAMS", "CHOICES", "ParameterError", "Interrupted", "notebooks", "declared_parameters",
           "check_parameters", "run_notebook", "reproduce", "training_seconds"]


NOTEBOOK_DIR = ROOT / "notebooks"

# The small runs: every notebook that declares ``budget`` gets "quick" (QUICK=1, a demo in minutes) or "tiny"
# (the notebook tests, seconds) and reads its models' budgets from the registry (helpers/studies/registry.py).
# These are the evaluation and figure sizes of the small runs, by parameter name: each notebook takes the
# ones it declares.
SMALL_PARAMS = {
    "quick": {"n_eval": 100, "iwae_k": 10, "n_samples": 150, "max_points": 500, "n_draws": 2, "curve_n": 20,
              "curve_k_max": 20, "nll_n": 100, "nll_k": 20, "n_adherence": 50, "n_grid": 16},
    "tiny": {"n_examples": 3, "n_show": 1, "n_eval": 20, "iwae_k": 4, "n_samples": 40,
             "max_points": 150, "n_draws": 1, "curve_n": 6, "curve_k_max": 10, "nll_n": 8, "nll_k": 4, "n_adherence": 8,
             "n_grid": 8},
}

_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
# Parameters with a closed set of values, refused before anything runs when given another.
CHOICES = {"budget": BUDGETS, "precision": PRECISIONS, "progress": ("auto", "text", "off")}


class ParameterError(ValueError):
    """A parameter the notebook does not declare, or a value of the wrong type."""


class Interrupted(Exception):
    """Ctrl-C stopped a notebook; the message says where, what was saved and how to resume."""


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order, or those whose number or name is in ``only``."""
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if p.stem[:2] in only or p.stem in only]
        if not found:
            raise ParameterError(f"no notebook matches {only}; expected numbers such as 01 or names such as 01_data")
    return found


def check_parameters(path: Path, params: dict) -> None:
    """Every name must be declared in the notebook's parameters cell, every value of the declared type (and
    one of ``CHOICES`` where the parameter has a closed set of values)."""
    import papermill

    declared = papermill.inspect_notebook(str(path))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ParameterError(f"{path.name}: unknown parameter(s) {', '.join(unknown)}; "
                             f"it declares {', '.join(declared)}")
    for name, value in params.items():
        expected = declared[name].get("inferred_type_name")
        ok = _TYPES.get(expected)
        if ok and (not isinstance(value, ok) or (expected != "bool" and isinstance(value, bool))):
            raise ParameterError(f"{path.name}: parameter {name}={value!r} should be of type {expected}")
        if name in CHOICES and value not in CHOICES[name]:
            raise ParameterError(f"{path.name}: parameter {name}={value!r} should be one of "
                                 f"{', '.join(map(repr, CHOICES[name]))}")


def _kernel_manager_class(log_path: Path | None = None):
    """The kernel manager of papermill's kernels: nbclient's default (AsyncKernelManager) with IPC transport
    on POSIX. The kernels are local and short-lived: Unix sockets in Jupyter's runtime folder (mode 0700),
    which only this user can open, rather than TCP ports on localhost that any local user can reach,
    unencrypted (what ipykernel rightly warns about: "Kernel is running over TCP without encryption").
    With ``log_path``, the kernel process's own output (its log, not the cells' output, which papermill
    shows) goes to that file rather than to the terminal: jupyter_client interrupts a kernel as it shuts it
    down, and a kernel still finishing its last reply logs that as an error."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from jupyter_core.utils import ensure_dir_exists
    from traitlets import default

    if os.name != "posix":  # zmq's ipc:// transport needs Unix sockets
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _kernels.append(self)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            if log_path is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            with open(log_path, "a", encoding="utf-8") as log:  # the child keeps its own copy of the file
                return await super()._async_launch_kernel(kernel_cmd, stdout=log, stderr=log, **kw)

        @default("transport")
        def _default_transport(self):
            return "ipc"

        # A name of its own for every kernel: the sockets are named after the connection file
        # (kernel-<id>-ipc-1 ... -5); without one, every kernel would bind "kernel-ipc-N" in its working folder.
        @default("connection_file")
        def _default_connection_file(self):
            ensure_dir_exists(jupyter_runtime_dir(), 0o700)
            return os.path.join(jupyter_runtime_dir(), f"kernel-{uuid.uuid4()}.json")

    return IPCKernelManager


_kernels: list = []  # the kernel managers papermill has started, for Ctrl-C to reach their kernels


@contextlib.contextmanager
def _ctrl_c_interrupts_the_kernel():
    """While a notebook runs, Ctrl-C sends SIGINT to its kernel (a session of its own, which the terminal's
    Ctrl-C does not reach) instead of stopping this process mid-message: the cell ends with
    KeyboardInterrupt, as after JupyterLab's stop button, and papermill reports it. A second Ctrl-C stops
    this process at once. POSIX only; elsewhere Ctrl-C keeps Python's default."""
    if os.name != "posix" or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def interrupt(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for km in _kernels:
            pid = getattr(getattr(km, "provisioner", None), "pid", None)
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGINT)

    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _kernels.clear()


def run_notebook(path: Path, params: dict, out_dir: Path, log_output: bool = True) -> float:
    """Execute one notebook with papermill (cwd = notebooks/); return its wall time in seconds. Raises
    ``Interrupted`` after Ctrl-C, RuntimeError when a cell fails."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    check_parameters(path, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / path.name
    t0 = time.perf_counter()
    try:
        with _ctrl_c_interrupts_the_kernel():
            papermill.execute_notebook(str(path), str(out), parameters=params, cwd=str(path.parent),
                                       kernel_name="python3", log_output=log_output, progress_bar=False,
                                       kernel_manager_class=_kernel_manager_class(out.with_suffix(".kernel.log")))
    except PapermillExecutionError as e:
        if e.ename == "KeyboardInterrupt":
            what = e.evalue or "not in a training step, so nothing needed saving"
            raise Interrupted(f"{path.name} stopped in cell {e.cell_index}: {what}") from None
        raise RuntimeError(f"{path.name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
                           f"{e.ename}: {e.evalue}\n  executed copy with the traceback: {out}") from None
    except KeyboardInterrupt:
        raise Interrupted(f"{path.name} stopped (Ctrl-C twice)") from None
    return time.perf_counter() - t0


def _check_precision(params: dict) -> None:
    """bf16 where the device has no native bfloat16 is an error before any notebook runs."""
    if params.get("precision", "fp32") != "fp32":
        try:
            check_precision(pick_device(params.get("device", "auto")), params["precision"])
        except ValueError as e:
            raise ParameterError(str(e)) from None


def reproduce(only=None, budget: str = "full", extra: dict | None = None, fig_dir=None, results_path=None,
              runs_dir=None, out_dir=None, log_output=True) -> dict:
    """Check the data, then run the notebooks in order at ``budget`` ("full", "quick", "tiny"); return
    {notebook: seconds}. Outputs of a quick run default to runs/quick/, never over the committed results."""
    if budget not in BUDGETS:
        raise ParameterError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    data_dir = resolve_data_dir().resolve()
    load_quickdraw(data_dir, with_md5=False)  # fails here, before any training, on a bad folder
    quick = budget == "quick"
    default_figures, default_results = default_outputs(budget)
    fig_dir = Path(fig_dir or default_figures).resolve()
    results_path = Path(results_path or default_results).resolve()
    runs_dir = Path(runs_dir or ROOT / "runs").resolve()
    out_dir = Path(out_dir or runs_dir / ("notebooks-quick" if quick else "notebooks")).resolve()
    paths = notebooks(only)
    common = {"data_dir": str(data_dir), "fig_dir": str(fig_dir), "results_path": str(results_path),
              "runs_dir": str(runs_dir), "progress": "text", "budget": budget, **SMALL_PARAMS.get(budget, {})}
    extra = extra or {}
    if "budget" in extra:  # it also decides where the outputs go, so it is not an ordinary parameter
        raise ParameterError("budget is not set with -p: QUICK=1 runs the quick budget (outputs in runs/quick/), "
                             "the default the report's")
    unknown = sorted(set(extra) - {name for p in paths for name in declared_parameters(p)})
    if unknown:  # a typo must not be silently ignored
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}: no notebook of "
                             f"{', '.join(p.name for p in paths)} declares them")
    _check_precision({**common, **extra})
    plans = []
    for p in paths:  # check every notebook's parameters before running the first one
        params = {k: v for k, v in {**common, **extra}.items() if k in declared_parameters(p)}
        check_parameters(p, params)
        plans.append((p, params))
    times = {}
    for p, params in plans:
        print(f"== {p.name} ({budget} budget) ==", flush=True)
        machine = machine_summary(params.get("device", "auto"))  # the load before the notebook starts
        started, busy, ours = time.time(), busy_cpu_seconds(), _own_cpu_seconds()
        times[p.stem] = run_notebook(p, params, out_dir, log_output=log_output)
        if busy is not None:  # cores' worth of CPU that other processes used while the notebook ran
            other = (busy_cpu_seconds() - busy) - (_own_cpu_seconds() - ours)
            machine["other_processes_cores"] = round(max(0.0, other) / times[p.stem], 2)
        training = training_seconds(runs_dir, since=started)
        print(f"== {p.name} done in {times[p.stem]:.0f} s, of which {training:.0f} s training ==", flush=True)
        merge_metrics(results_path, "timings", {p.stem: times[p.stem]}, update=True)
        merge_metrics(results_path, "training_times", {p.stem: training}, update=True)
        merge_metrics(results_path, "timings_machine", {p.stem: machine}, update=True)
    return times


def _own_cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the notebook kernels it waited for)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def training_seconds(runs_dir: Path, since: float) -> float:
    """The training time (s) of the models that finished training after ``since`` (a time.time()): what their
    records in the model cache say (``wall_time_s``; over every resumed part of a run). The rest of a notebook's
    wall time is evaluation, figures and kernel start."""
    import torch

    total = 0.0
    for final in (Path(runs_dir) / "models").glob("*/model.pt"):
        if final.stat().st_mtime >= since:
            total += torch.load(final, map_location="cpu", weights_only=True)["record"]["wall_time_s"]
    return total


_declared_cache: dict = {}


def declared_parameters(path: Path) -> dict:
    """The parameters a notebook declares (papermill.inspect_notebook), read once per notebook."""
    if path not in _declared_cache:
        import papermill

        _declared_cache[path] = papermill.inspect_notebook(str(path))
    return _declared_cache[path]


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="notebook numbers or names (default: all, in order)")
    ap.add_argument("--quick", action="store_true", help="the quick budget; outputs under runs/quick/")
    ap.add_argument("--budget", choices=BUDGETS, help="the models' budget (default: full; --quick: quick)")
    ap.add_argument("--out", type=Path, help="write figures, metrics.json and executed notebooks here")
    ap.add_argument("--runs-dir", type=Path, help="model cache (default: runs/)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a notebook parameter (Python literal), e.g. -p seed 1")
    args = ap.parse_args(argv)
    budget = args.budget or ("quick" if args.quick or os.environ.get("QUICK") == "1" else "full")
    out = args.out.resolve() if args.out else None
    try:
        reproduce(only=args.only, budget=budget, extra={k: _literal(v) for k, v in args.p},
                  fig_dir=out and out / "figures", results_path=out and out / "metrics.json",
                  out_dir=out and out / "notebooks", runs_dir=args.runs_dir)
    except Interrupted as e:
        print(f"interrupted: {e}. Run the same command again to go on from there "
              f"(trained models load from the cache, a checkpoint resumes).", file=sys.stderr)
        return 130
    except (DataError, ParameterError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
