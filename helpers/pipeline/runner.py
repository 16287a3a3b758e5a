"""Run the notebooks headlessly with papermill: ``python -m helpers.pipeline.runner`` (what `make reproduce` calls).

Checks before anything runs: the data folder loads (helpers.load_quickdraw), and every parameter given is
declared by the notebook with a value of its declared type (papermill only warns about unknown names; here
they are errors). Executed copies go to runs/notebooks/; a failing notebook stops the run with its name,
the failing cell and the error. The wall time of each notebook, and the part of it spent training models, are
merged into the results file (``timings``, ``training_times``).

Ctrl-C interrupts the running kernel as JupyterLab's stop button does (a model in training writes its
checkpoint), and the run ends with one line that says what stopped and how to go on.

``--jobs N`` runs N notebooks side by side, each in a process of its own with the cores shared out among them, in
the order of ``launch_order`` as far as ``AFTER`` allows (a notebook that reads another's results waits for it); the
quick budget does so by default with two (``default_jobs``). Ctrl-C reaches every running notebook as above.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

from ..data.quickdraw import DataError, load_quickdraw, resolve_data_dir
from ..devices import PRECISIONS, busy_cpu_seconds, check_precision, machine_summary, pick_device
from ..files import ROOT
from ..results import default_outputs, merge_metrics, read_metrics
from ..studies.registry import BUDGETS

__all__ = ["SMALL_PARAMS", "CHOICES", "AFTER", "ParameterError", "Interrupted", "notebooks", "declared_parameters",
           "check_parameters", "run_notebook", "reproduce", "run_timed", "default_jobs", "launch_order", "schedule",
           "serve_tasks", "training_seconds"]


NOTEBOOK_DIR = ROOT / "notebooks"
RUN_ID = "QUICKDRAW_RUN_ID"  # names one notebook's run: the model cache records it beside each model it trains

# The small runs: every notebook that declares ``budget`` gets "quick" (QUICK=1, a demo in minutes) or "tiny"
# (the notebook tests, seconds) and reads its models' budgets from the registry (helpers/studies/registry.py).
# These are the evaluation and figure sizes of the small runs, by parameter name: each notebook takes the
# ones it declares.
SMALL_PARAMS = {
    "quick": {"n_eval": 100, "iwae_k": 5, "n_samples": 150, "max_points": 500, "n_draws": 2, "curve_n": 20,
              "curve_k_max": 20, "nll_n": 100, "nll_k": 20, "n_adherence": 50, "n_grid": 16},
    "tiny": {"n_examples": 3, "n_show": 1, "n_eval": 20, "iwae_k": 4, "n_samples": 40,
             "max_points": 150, "n_draws": 1, "curve_n": 6, "curve_k_max": 10, "nll_n": 8, "nll_k": 4, "n_adherence": 8,
             "n_grid": 8},
}

# The notebooks that read what another notebook wrote into the results file, and so run after it when notebooks
# run side by side (``--jobs``): the conditional design that notebook 06 chose on the validation split
# (helpers.chosen_design). Everything else they share comes from the model cache, where one process trains a
# config while the others wait for it.
AFTER = {
    "08_latent_arithmetic": ("06_samplers_and_designs",),
    "10_pixel_decoder": ("06_samplers_and_designs",),
    "11_vq_vae": ("06_samplers_and_designs",),
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
              runs_dir=None, out_dir=None, log_output=True, jobs: int = 1) -> dict:
    """Check the data, then run the notebooks at ``budget`` ("full", "quick", "tiny"), in order, or ``jobs`` at a
    time as far as ``AFTER`` allows; return {notebook: seconds}. Outputs of a quick run default to runs/quick/,
    never over the committed results."""
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
    if jobs < 1:
        raise ParameterError(f"jobs must be at least 1, got {jobs}")
    jobs = min(jobs, len(plans))
    if jobs > 1:
        return _run_side_by_side(plans, jobs, budget, out_dir, runs_dir, results_path)
    return {p.stem: run_timed(p, params, budget, out_dir, runs_dir, results_path, log_output)
            for p, params in plans}


def run_timed(path: Path, params: dict, budget: str, out_dir: Path, runs_dir: Path, results_path: Path,
              log_output: bool = True, jobs: int = 1) -> float:
    """Run one notebook and merge its wall time, its training time and the machine's state into the results file
    (``timings``, ``training_times``, ``timings_machine``); return the wall time (s)."""
    print(f"== {path.name} ({budget} budget) ==", flush=True)
    machine = machine_summary(params.get("device", "auto"))  # the load before the notebook starts
    if jobs > 1:
        machine["notebooks_side_by_side"] = jobs  # the other processes below include the other notebooks
    started, busy, ours = time.time(), busy_cpu_seconds(), _own_cpu_seconds()
    outer = os.environ.get(RUN_ID)
    run_id = os.environ[RUN_ID] = uuid.uuid4().hex  # the kernel inherits it; the model cache records it
    try:
        seconds = run_notebook(path, params, out_dir, log_output=log_output)
    finally:
        if outer is None:
            del os.environ[RUN_ID]
        else:
            os.environ[RUN_ID] = outer
    if busy is not None:  # cores' worth of CPU that other processes used while the notebook ran
        other = (busy_cpu_seconds() - busy) - (_own_cpu_seconds() - ours)
        machine["other_processes_cores"] = round(max(0.0, other) / seconds, 2)
    training = training_seconds(runs_dir, since=started, run_id=run_id)
    print(f"== {path.name} done in {seconds:.0f} s, of which {training:.0f} s training ==", flush=True)
    merge_metrics(results_path, "timings", {path.stem: seconds}, update=True)
    merge_metrics(results_path, "training_times", {path.stem: training}, update=True)
    merge_metrics(results_path, "timings_machine", {path.stem: machine}, update=True)
    return seconds


def default_jobs(budget: str) -> int:
    """Notebooks run side by side by default: two for the quick budget (the demo, where much of each notebook is
    one-threaded Python: kernel start, imports, figures) on a machine with two or more CPUs, one otherwise. The
    report's run keeps one at a time: each notebook then has every core, as when its numbers were made (a thread
    count is part of a stored evaluation's key, and fp32 sums may differ in their last bits between counts)."""
    return min(2, _usable_cpus()) if budget == "quick" else 1


def schedule(stems: list[str], jobs: int, running: set[str], done: set[str], failed: set[str]) -> list[str]:
    """The notebooks of ``stems`` (in that order) to start now: those not started whose notebooks of ``AFTER`` that are
    part of this run have finished without error, at most ``jobs`` running at once. A notebook whose earlier
    notebook failed is never started (the caller reports it)."""
    chosen: list[str] = []
    for stem in stems:
        if len(running) + len(chosen) >= jobs:
            break
        if stem in running or stem in done or stem in failed:
            continue
        before = [b for b in AFTER.get(stem, ()) if b in stems]
        if all(b in done and b not in failed for b in before):
            chosen.append(stem)
    return chosen


def launch_order(stems: list[str], previous: dict) -> list[str]:
    """The order in which a side-by-side run starts the notebooks of ``stems`` (``schedule`` keeps it as far as
    ``AFTER`` allows): first those that others in the run wait for, then the longest first, so that no core sits
    idle at the end while one long notebook runs alone. Lengths are the wall times of the last run into the same
    results file (``previous``, its ``timings``) when it has every notebook; otherwise later notebooks count as
    longer (they study more models)."""
    waited_for = {b for stem in stems for b in AFTER.get(stem, ()) if b in stems}
    known = all(stem in previous for stem in stems)
    return sorted(stems, key=lambda stem: (stem not in waited_for,
                                           -previous[stem] if known else -stems.index(stem)))


def _run_side_by_side(plans, jobs: int, budget: str, out_dir: Path, runs_dir: Path, results_path: Path) -> dict:
    """Run the notebooks ``jobs`` at a time in ``launch_order`` as far as ``AFTER`` allows. ``jobs`` worker
    processes (``serve_tasks``) each run one notebook after another (``run_timed``, with its own Ctrl-C handling);
    each gets cores // jobs threads (OMP_NUM_THREADS, unless set), and their output is printed line by line behind
    the number of the notebook it belongs to. The model cache and the results file are safe for processes running at
    once (one trains a config, the others wait for it).

    Ctrl-C is passed on to the running notebooks (POSIX; on Windows the console sends it to every process), each of
    which stops as in a run of one at a time; a third Ctrl-C, or SIGTERM/SIGHUP to this process, ends the workers at
    once."""
    import queue
    import subprocess

    by_stem = {p.stem: (p, params) for p, params in plans}
    stems = launch_order(list(by_stem), read_metrics(results_path).get("timings", {}))
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.setdefault("OMP_NUM_THREADS", str(max(1, _usable_cpus() // jobs)))
    env.setdefault("MKL_NUM_THREADS", env["OMP_NUM_THREADS"])
    print(f"== {len(stems)} notebooks, {jobs} at a time, {env['OMP_NUM_THREADS']} thread(s) each ==", flush=True)
    finished: queue.Queue = queue.Queue()  # (worker, exit status of its notebook) as the workers report them
    workers = []
    for w in range(jobs):
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from helpers.pipeline.runner import serve_tasks; "
             "sys.exit(serve_tasks())"],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            encoding="utf-8", errors="replace", start_new_session=os.name == "posix")
        workers.append({"proc": proc, "stem": None, "tail": []})
        workers[w]["relay"] = threading.Thread(target=_relay, args=(w, workers[w], finished), daemon=True)
        workers[w]["relay"].start()
    started: dict[str, float] = {}
    times: dict[str, float] = {}
    done: set[str] = set()
    failed: set[str] = set()
    stopped: set[str] = set()
    tails: dict[str, list[str]] = {}
    interrupts = 0

    def kill_workers() -> None:
        for worker in workers:
            if worker["proc"].poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if os.name == "posix":
                        os.killpg(worker["proc"].pid, signal.SIGKILL)  # the worker and its kernel's process group
                    else:
                        worker["proc"].kill()

    def on_sigint(signum, frame) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts >= 3:
            kill_workers()
            raise Interrupted("Ctrl-C three times: the notebooks were ended at once (a model in training goes on from "
                              "its last checkpoint)")
        if os.name == "posix":  # the workers have sessions of their own: pass Ctrl-C on to the running ones
            for worker in workers:
                if worker["stem"] and worker["proc"].poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker["proc"].send_signal(signal.SIGINT)

    def on_termination(signum, frame) -> None:  # kill, a closed terminal, a cancelled CI job
        kill_workers()
        raise SystemExit(128 + signum)

    def end(worker: dict, status: int) -> None:
        stem, worker["stem"] = worker["stem"], None
        if stem is None:
            return
        times[stem] = time.perf_counter() - started[stem]
        tails[stem] = worker["tail"][-6:]
        {0: done, 130: stopped}.get(status, failed).add(stem)

    handlers = {signal.SIGINT: on_sigint, signal.SIGTERM: on_termination}
    if hasattr(signal, "SIGHUP"):
        handlers[signal.SIGHUP] = on_termination
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        while True:
            idle = [w for w in workers if w["stem"] is None and w["proc"].poll() is None]
            running = {w["stem"] for w in workers if w["stem"]}
            for worker, stem in zip(idle, schedule(stems, len(running) + len(idle), running, done, failed | stopped)):
                if interrupts or failed:  # checked again for each: a Ctrl-C may come in between
                    break
                p, params = by_stem[stem]
                task = {"path": str(p), "params": params, "budget": budget, "out_dir": str(out_dir),
                        "runs_dir": str(runs_dir), "results_path": str(results_path), "jobs": jobs}
                worker["stem"], worker["tail"], started[stem] = stem, [], time.perf_counter()
                with contextlib.suppress(OSError):  # a worker that died: the check below reports its notebook
                    worker["proc"].stdin.write(json.dumps(task) + "\n")
                    worker["proc"].stdin.flush()
            busy = [w for w in workers if w["stem"]]
            if not busy and (interrupts or failed or not schedule(stems, jobs, set(), done, failed | stopped)):
                break
            if not busy and not any(w["proc"].poll() is None for w in workers):
                raise RuntimeError("every worker process has ended, with notebooks left to run: "
                                   + ", ".join(s for s in stems if s not in done))
            try:
                w, status = finished.get(timeout=0.1)
                end(workers[w], status)
            except queue.Empty:
                for worker in busy:  # a worker that died without reporting (killed, out of memory)
                    if worker["proc"].poll() is not None and not worker["relay"].is_alive() and finished.empty():
                        end(worker, worker["proc"].returncode or 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for worker in workers:
            with contextlib.suppress(OSError):
                worker["proc"].stdin.close()  # a worker ends when its tasks do
        for worker in workers:
            try:
                worker["proc"].wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_workers()
    not_run = [s for s in stems if s not in done | failed | stopped]
    if failed:
        lines = "\n".join(f"  {stem}: " + "\n    ".join(tails.get(stem, [])) for stem in sorted(failed))
        raise RuntimeError(f"{', '.join(sorted(failed))} failed (the last lines of its output below); stopped by "
                           f"Ctrl-C: {', '.join(sorted(stopped)) or 'none'}; not run: {', '.join(not_run) or 'none'}"
                           f"\n{lines}")
    if interrupts and (stopped or not_run):
        raise Interrupted(f"Ctrl-C; notebooks finished: {', '.join(sorted(done)) or 'none'}; stopped: "
                          f"{', '.join(sorted(stopped)) or 'none'}; not run: {', '.join(not_run) or 'none'}")
    return times


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system says, e.g. under taskset or a container's
    cpuset), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


_DONE = "@@quickdraw-ae task ended with status"  # a worker's line after each notebook
_print_lock = threading.Lock()


def _relay(index: int, worker: dict, finished) -> None:
    """A worker's output, line by line, behind the number of the notebook it is running; its end-of-task lines go to
    ``finished`` as (worker, status). It reads to the end whatever happens to the printing (a closed terminal), so
    that the worker never blocks on a full pipe."""
    printing = True
    for line in worker["proc"].stdout:
        if line.startswith(_DONE):
            status = line[len(_DONE):].strip()
            finished.put((index, int(status) if status.lstrip("-").isdigit() else 1))
        elif line.strip():  # a progress bar's carriage returns leave empty lines
            worker["tail"] = worker["tail"][-19:] + [line.rstrip()]
            if printing:
                try:
                    _print_line(f"[{(worker['stem'] or '--')[:2]}] {line.rstrip()}")
                except (OSError, ValueError):
                    printing = False


def _print_line(text: str) -> None:
    """Print one line, in one write, whatever the terminal's encoding (a cp1252 console cannot show every
    character)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    with _print_lock:
        sys.stdout.write(text.encode(encoding, errors="replace").decode(encoding) + "\n")
        sys.stdout.flush()


def serve_tasks() -> int:
    """A worker of a side-by-side run (``_run_side_by_side``): run the notebook of each task line of stdin (JSON) with
    ``run_timed``, then print how it ended (``_DONE`` and 0 done, 1 failed, 130 stopped by Ctrl-C); stop after a
    Ctrl-C or at the end of stdin. One process for many notebooks: Python and its imports start once. Between
    notebooks it ignores Ctrl-C (the parent passes it on only to a running notebook; a console sends it to all);
    on POSIX, a worker whose parent has gone stops its notebook as after Ctrl-C."""
    if os.name == "posix":
        parent = os.getppid()

        def watch_parent() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=watch_parent, daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        task = json.loads(line)
        status = 0
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            run_timed(Path(task["path"]), task["params"], task["budget"], Path(task["out_dir"]),
                      Path(task["runs_dir"]), Path(task["results_path"]), log_output=True, jobs=task["jobs"])
        except (Interrupted, KeyboardInterrupt) as e:
            print(f"interrupted: {e or 'Ctrl-C'}", flush=True)
            status = 130
        except Exception as e:  # the parent reports the failure with this output's last lines
            print(f"error: {type(e).__name__}: {e}", flush=True)
            status = 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stderr.flush()
        print(f"\n{_DONE} {status}", flush=True)  # on a line of its own, whatever came before
        if status == 130:
            return 130


def _own_cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the notebook kernels it waited for)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def training_seconds(runs_dir: Path, since: float, run_id: str | None = None) -> float:
    """The training time (s) of the models that finished training after ``since`` (a time.time()): what their
    records in the model cache say (``wall_time_s``; over every resumed part of a run); with ``run_id``, only those
    that one notebook's kernel trained (notebooks side by side share the cache). The rest of a notebook's wall time
    is evaluation, figures and kernel start."""
    import torch

    total = 0.0
    for final in (Path(runs_dir) / "models").glob("*/model.pt"):
        if final.stat().st_mtime >= since:
            record = torch.load(final, map_location="cpu", weights_only=True)["record"]
            if run_id is None or record.get("run_id") == run_id:
                total += record["wall_time_s"]
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
    ap.add_argument("--jobs", type=int, help="notebooks run side by side, in that many processes with the cores "
                    "shared out (default: 2 for the quick budget on 2 or more CPUs, else 1)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a notebook parameter (Python literal), e.g. -p seed 1")
    args = ap.parse_args(argv)
    budget = args.budget or ("quick" if args.quick or os.environ.get("QUICK") == "1" else "full")
    out = args.out.resolve() if args.out else None
    try:
        reproduce(only=args.only, budget=budget, extra={k: _literal(v) for k, v in args.p},
                  fig_dir=out and out / "figures", results_path=out and out / "metrics.json",
                  out_dir=out and out / "notebooks", runs_dir=args.runs_dir,
                  jobs=default_jobs(budget) if args.jobs is None else args.jobs)
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
