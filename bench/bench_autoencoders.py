"""Training throughput (images/s) of the two autoencoders: our training engine (helpers.fit) against a
straightforward reference loop written here, the course report's way (a numpy random batch drawn and
converted to a tensor at every step, default settings), with identical model math, in the same run.

    make bench                          # real data from QUICKDRAW_DIR, else synthetic drawings
    python bench/bench_autoencoders.py --reps 7
    python bench/bench_autoencoders.py --smoke   # checks that it runs end to end; its rates mean nothing

Every measurement runs in a fresh Python process, reference and ours alternating, so that neither inherits
the other's process-wide settings (our engine's allocator setting, helpers.keep_freed_memory) or warm
caches. Each prints images/s, the page faults per training step and whether its malloc kept freed memory
for reuse (measured after the timed steps). Speed targets live here, never in the unit tests. Numbers
depend on the machine and on its load: run it on an otherwise idle machine. Results so far and how to read
them: bench/README.md.

The verdict compares the ratio of the medians with the target. Below it, the script prints an interval for
the median of the back-to-back ratios (each reference measurement against the one of ours next to it), so
that a reader can see whether the run resolves the target at all on a noisy machine.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import mmap
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = {"lstm_ae": 30, "cnn_ae": 150}  # timed steps per measurement
TARGETS = {"lstm_ae": 1.3, "cnn_ae": 1.0}  # ours / reference, from the issue
BATCH = 256
PROBE_BYTES = 64 << 20  # above the largest mmap threshold glibc picks by itself (32 MiB on 64-bit)


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """A distribution-free interval for the median from order statistics: (low, high, coverage).

    With n values sorted, [v_k, v_(n+1-k)] covers the true median with probability 1 - 2 P(B <= k-1),
    B ~ Binomial(n, 1/2). k is the largest index whose coverage is still at least `level`; with fewer than 6
    values no k reaches 95%, and the interval is the full range with its (lower) coverage. The coverage holds
    for independent values; back-to-back ratios are close to that when the machine's speed drifts slowly."""
    v, n = sorted(values), len(values)

    def coverage(k: int) -> float:
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n

    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= level:
        k += 1
    return v[k - 1], v[n - k], coverage(k)


def keeps_freed_memory() -> bool | None:
    """Whether this process's malloc keeps a freed large buffer for reuse (what helpers.keep_freed_memory
    arranges) instead of handing it back to the OS (glibc's default); None where the C library is not glibc.

    Measured, not looked up: a 64 MiB buffer is allocated, filled and freed twice, and filling it the second
    time must page-fault less than half as often as filling as many fresh pages straight from the OS (the
    comparison holds with or without transparent huge pages). Takes under a tenth of a second."""
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        return None
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def faults_to_fill(address: int) -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        ctypes.memset(address, 1, PROBE_BYTES)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    with mmap.mmap(-1, PROBE_BYTES) as fresh:
        view = (ctypes.c_char * PROBE_BYTES).from_buffer(fresh)
        from_os = faults_to_fill(ctypes.addressof(view))
        del view  # the mapping cannot close while a view of it exists
    for _ in range(2):  # the second round reuses the first one's buffer, or maps a new one
        address = libc.malloc(PROBE_BYTES)
        refill = faults_to_fill(address)
        libc.free(address)
    return refill < from_os / 2


def load_images():
    """The training drawings of QUICKDRAW_DIR (the parent sets it to a synthetic folder when unset)."""
    import helpers as H

    return H.load_quickdraw(os.environ["QUICKDRAW_DIR"], with_md5=False).x_train


def reference_loop(kind: str, steps: int, batch: int = BATCH) -> dict:
    """The report's loop: sample indices with numpy, build a float tensor from them, MSE, Adam (defaults)."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    import helpers as H

    images = load_images()
    H.set_seed(0)
    model, _ = H.build_model({"kind": kind})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_all = images.astype(np.float32) / 255.0  # (N, 28, 28)

    def step():
        idx = np.random.randint(0, len(x_all), batch)
        x = torch.tensor(x_all[idx]).unsqueeze(1)  # (B, 1, 28, 28)
        loss = F.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up
        step()
    faults, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    return {"images_per_s": steps * batch / seconds,
            "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps,
            "keeps_freed_memory": keeps_freed_memory()}


def our_engine(kind: str, steps: int, batch: int = BATCH) -> dict:
    """helpers.fit: data held as one tensor, seeded batches, the same model, loss and optimizer."""
    import helpers as H

    images = load_images()
    H.set_seed(0)
    model, loss_fn = H.build_model({"kind": kind})
    X = H.to_tensor(images)
    cfg = H.TrainConfig(steps=2, batch_size=batch, ckpt_every=10**9)
    H.fit(model, loss_fn, (X,), None, cfg, progress=False)  # warm-up
    cfg = H.TrainConfig(steps=steps, batch_size=batch, ckpt_every=10**9, eval_every=10**9)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    record = H.fit(model, loss_fn, (X,), None, cfg, progress=False)
    return {"images_per_s": record["images_per_s"],
            "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps,
            "keeps_freed_memory": keeps_freed_memory()}  # fit's doing: nothing here switches it on


def measure(which: str, kind: str, steps: int, batch: int, data_dir: str) -> dict:
    """One measurement in a fresh process (python this_file --child which kind steps batch)."""
    out = subprocess.run([sys.executable, __file__, "--child", which, kind, str(steps), str(batch)],
                         capture_output=True, text=True, env={**os.environ, "QUICKDRAW_DIR": data_dir})
    if out.returncode != 0:
        sys.exit(f"bench: the {which} measurement of {kind} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="measurements of each loop per model (default 5)")
    ap.add_argument("--steps", type=int, help="timed steps per measurement (default: 30 LSTM, 150 CNN)")
    ap.add_argument("--smoke", action="store_true", help="check that the bench runs end to end: one step of "
                    "the CNN AE at batch 16 in each loop, each in a fresh process")
    ap.add_argument("--child", nargs=4, metavar=("WHICH", "KIND", "STEPS", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        which, kind, steps, batch = args.child
        print(json.dumps({"ref": reference_loop, "ours": our_engine}[which](kind, int(steps), int(batch))))
        return
    if args.reps < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--reps and --steps must be positive")
    reps, steps, batch, kinds = args.reps, args.steps, BATCH, tuple(STEPS)
    if args.smoke:  # two fresh processes, one per loop: the fewest that still run the whole bench
        print("smoke run: checks that the bench runs end to end; its rates mean nothing")
        reps, steps, batch, kinds = 1, 1, 16, ("cnn_ae",)

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.environ.get("QUICKDRAW_DIR")
        if not data_dir:
            import helpers as H

            data_dir = str(H.write_synthetic_quickdraw(Path(tmp) / "synthetic", 100, 1))
        run_all(reps, steps, data_dir, batch, kinds)


def kept(measurements: list[dict]) -> str:
    """yes / no / n/a (not glibc) when every measurement of a loop agrees on keeping freed memory, else mixed."""
    found = {m["keeps_freed_memory"] for m in measurements}
    return {True: "yes", False: "no", None: "n/a"}[found.pop()] if len(found) == 1 else "mixed"


def run_all(reps: int, steps: int | None, data_dir: str, batch: int = BATCH, kinds: tuple = tuple(STEPS)) -> None:
    """Measure each model in `kinds` `reps` times in each loop, `steps` timed steps each (None: STEPS), and print
    the table."""
    import torch

    synthetic = (Path(data_dir) / "SYNTHETIC.txt").exists()
    note = " (synthetic drawings; set QUICKDRAW_DIR for real data)" if synthetic else ""
    print(f"data: {data_dir}{note}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {batch}, medians of {reps} measurements, each in a fresh process")
    print(f"{'model':8s} {'reference img/s':>16s} {'ours img/s':>11s} {'ours/ref':>9s} {'target':>7s}"
          f"  {'page faults/step (ref, ours)':>28s}")
    for kind in kinds:
        runs = {"ref": [], "ours": []}
        for rep in range(reps):  # alternate which goes first, so that load changes hit both alike
            for which in (("ref", "ours") if rep % 2 == 0 else ("ours", "ref")):
                runs[which].append(measure(which, kind, steps or STEPS[kind], batch, data_dir))
        r = statistics.median(m["images_per_s"] for m in runs["ref"])
        o = statistics.median(m["images_per_s"] for m in runs["ours"])
        faults = [statistics.median(m["faults_per_step"] for m in runs[w]) for w in ("ref", "ours")]
        ratios = [o_["images_per_s"] / r_["images_per_s"] for r_, o_ in zip(runs["ref"], runs["ours"])]
        paired = statistics.median(ratios)
        verdict = "met" if o / r >= TARGETS[kind] else "NOT met"
        print(f"{kind:8s} {r:16.0f} {o:11.0f} {o / r:9.2f} {TARGETS[kind]:>6.1f}x  {faults[0]:13.0f}, {faults[1]:.0f}"
              f"  {verdict}")
        for w in ("ref", "ours"):
            print(f"{'':8s} {w:>4s} runs: " + ", ".join(f"{m['images_per_s']:.0f}" for m in runs[w]))
        best = max(m["images_per_s"] for m in runs["ours"]) / max(m["images_per_s"] for m in runs["ref"])
        print(f"{'':8s} ratio of the best runs: {best:.2f}; "
              f"median of the {reps} back-to-back ratios: {paired:.2f}")
        print(f"{'':8s} malloc kept freed memory (reference, ours): {kept(runs['ref'])}, {kept(runs['ours'])}")
        if reps >= 2:
            low, high, cover = median_interval(ratios)
            where = ("all below the target" if high < TARGETS[kind] else "all at or above the target"
                     if low >= TARGETS[kind] else "contains the target: this run cannot tell whether it is met")
            print(f"{'':8s} interval for the median back-to-back ratio: {low:.2f} to {high:.2f} "
                  f"(coverage {cover:.1%}), {where}")


if __name__ == "__main__":
    main()
