"""Training throughput (images/s) of every model the report trains, in our loop (helpers.fit) and in a plain
loop, in fp32 and in bf16 (torch.autocast), and the projected wall time of `make reproduce`.

    make bench                                     # real data from QUICKDRAW_DIR, else synthetic drawings
    python bench/bench_training.py --reps 5 --models lstm_ae vae_cnn
    python bench/bench_training.py --smoke         # checks that it runs end to end; its rates mean nothing

The plain loop is the course report's way: a numpy random batch drawn and made into a tensor at every step, the
same model, loss and Adam; bf16 wraps its forward pass and loss in the same torch.autocast as ours. Every
measurement runs in a fresh Python process (so that no process-wide setting or warm cache carries over), the
four variants of a model one after the other, in an order that alternates between repetitions. Each table row
gives the median images/s and the min-max range over the repetitions, and the ratios of the medians. Numbers
depend on the machine and on its load: run it on an otherwise idle machine.

The projection: each model's training images at its registry budget (steps x batch, or epochs x the batches
of an epoch) divided by our loop's median rate, summed over the runs of `make reproduce`, for the sample
(3,000 training drawings) and the course's folder (20,000); plus the evaluation time measured by
`make rehearse` at that size (bench/rehearse.py: notebooks with full evaluation sizes, minus the training in
them) when its summary exists. The evaluation is measured in fp32 and counted as such for bf16 too.
Results and how to read them: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Timed steps per measurement: about 2-4 s each on a 2-core CPU in fp32.
STEPS = {"lstm_ae": 40, "cnn_ae": 80, "vae_gru": 25, "vae_cnn": 25, "cvae_cnn": 25, "classifier": 40}
VARIANTS = [("plain", "fp32"), ("ours", "fp32"), ("plain", "bf16"), ("ours", "bf16")]
TARGETS = {"lstm_ae": 1.6}  # bf16 / fp32 of our loop, the target where the CPU has native bf16
REHEARSALS = ROOT / "runs" / "rehearse"
SIZES = {"sample": 3000, "course": 20000}  # training drawings
# Models the throughput table does not measure, projected at a rate relative to one it does: the PixelCNN-decoder
# VAE trained at 0.41 x the CNN-CNN VAE's images/s (224 against 545, one thread each, side by side, on a 2-core AMD
# EPYC, Zen 4), the local PixelCNN's at 0.67 x (658 against 978, two threads, side by side, the same kind of machine;
# bench/README.md).
RELATIVE_RATES = {"vae_pixelcnn": ("vae_cnn", 224 / 545), "vae_pixelcnn_local": ("vae_cnn", 658 / 978)}


def experiment(name: str):
    """The registry's run of that name; "cvae_cnn" is notebook 04's conditional VAE."""
    import helpers as H

    if name == "cvae_cnn":
        return H.conditional(H.EXPERIMENTS["vae_cnn"])
    return H.EXPERIMENTS[name]


def measure_here(which: str, name: str, precision: str, steps: int, batch: int | None) -> dict:
    """One measurement in this process: 2 warm-up steps, then ``steps`` timed ones."""
    import numpy as np
    import torch

    import helpers as H

    data = H.load_quickdraw(os.environ["QUICKDRAW_DIR"], with_md5=False)
    run = experiment(name)
    batch = batch or run.full["batch_size"]
    H.set_seed(0)
    model, loss_fn = H.build_model(run.spec)
    if which == "ours":
        X, y = H.to_tensor(data.x_train), torch.from_numpy(data.y_train)
        H.fit(model, loss_fn, (X, y), None, H.TrainConfig(steps=2, batch_size=batch, precision=precision),
              progress=False)
        cfg = H.TrainConfig(steps=steps, batch_size=batch, precision=precision, ckpt_every=10**9, eval_every=10**9)
        return {"images_per_s": H.fit(model, loss_fn, (X, y), None, cfg, progress=False)["images_per_s"]}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_all, y_all = data.x_train.astype(np.float32) / 255.0, data.y_train

    def step():
        idx = np.random.randint(0, len(x_all), batch)
        x, y = torch.tensor(x_all[idx]).unsqueeze(1), torch.tensor(y_all[idx])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_fn(model, x, y)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.train()
    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return {"images_per_s": steps * batch / (time.perf_counter() - t0)}


def measure(which: str, name: str, precision: str, steps: int, batch: int | None, data_dir: str) -> dict:
    """One measurement in a fresh process (python this_file --child ...)."""
    cmd = [sys.executable, __file__, "--child", which, name, precision, str(steps), str(batch or 0)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "QUICKDRAW_DIR": data_dir})
    if out.returncode != 0:
        sys.exit(f"bench: the {which} {precision} measurement of {name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def reproduce_runs(n_train: int) -> list[tuple[str, str, int]]:
    """The training runs of `make reproduce` at ``n_train`` training drawings: (run name, model measured for
    its rate, training images). Notebook 06's three candidates train on 90% of the split, the chosen one again
    on all of it; they have the conditional VAE's size and cost. The studies have their base model's."""
    import helpers as H

    n_fit = n_train - round(n_train * H.VALIDATION["fraction"])
    runs = [(name, name, n_train) for name in ("lstm_ae", "cnn_ae", "vae_gru", "vae_cnn", "cvae_cnn", "classifier")]
    runs += [(run.name, "cvae_cnn", n_fit) for run in H.runs_of("conditional")]
    runs.append(("chosen conditional VAE (06)", "cvae_cnn", n_train))
    # The studies the notebooks train: notebook 02's i.i.d. batches, notebook 07's binarized VAE, notebook 09's
    # beta sweep and learned priors (the candidates without the validation part, the chosen one again on all of
    # it), notebook 10's PixelCNN-decoder VAEs.
    runs += [("lstm_ae_iid_batches", "lstm_ae", n_train), ("vae_cnn_binarized", "vae_cnn", n_train)]
    runs += [(run.name, "vae_cnn", n_fit) for run in H.runs_of("study") if run.name.startswith("vae_cnn_beta")]
    runs += [(run.name, "vae_cnn", n_fit) for run in H.runs_of("prior")]
    runs.append(("chosen learned prior (09)", "vae_cnn", n_train))
    runs += [(name, "vae_pixelcnn", n_train) for name in ("vae_pixelcnn", "cvae_pixelcnn_class_prior")]
    runs += [(name, "vae_pixelcnn_local", n_train)
             for name in ("vae_pixelcnn_local", "cvae_pixelcnn_local_class_prior")]
    out = []
    for name, rate_of, n in runs:
        cfg = experiment(name if name in STEPS or name in H.EXPERIMENTS else rate_of).config("full")
        out.append((name, rate_of, cfg.total_steps(n) * min(cfg.batch_size, n)))
    return out


def rate(medians: dict, model: str, variant: str) -> float | None:
    """Our median images/s of ``model`` in ``variant`` ("ours fp32"), measured or relative to a measured one."""
    base, ratio = RELATIVE_RATES.get(model, (model, 1.0))
    measured = medians[base].get(variant)
    return None if measured is None else measured * ratio


def rehearsal(size: str) -> dict | None:
    path = REHEARSALS / size / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_all(reps: int, names: list[str], data_dir: str, steps: dict, batch: int | None = None) -> dict:
    """Measure, print the throughput table and the projection; return the medians {name: {variant: rate}}."""
    import torch

    import helpers as H

    synthetic = (Path(data_dir) / "SYNTHETIC.txt").exists()
    note = " (synthetic drawings; set QUICKDRAW_DIR for real data)" if synthetic else ""
    native = H.native_bf16("cpu")
    print(f"data: {data_dir}{note}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU {'with' if native else 'WITHOUT'} native bf16; medians of {reps} measurements (min-max), "
          f"each in a fresh process")
    head = ["model", "plain fp32", "ours fp32", "plain bf16", "ours bf16", "ours/plain fp32", "bf16/fp32 ours"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    medians = {}
    # Without native bf16, helpers refuses bf16 (helpers.check_precision): only fp32 is measured there.
    variants = VARIANTS if native else [v for v in VARIANTS if v[1] == "fp32"]
    for name in names:
        runs = {v: [] for v in variants}
        for rep in range(reps):
            for v in (variants if rep % 2 == 0 else variants[::-1]):
                runs[v].append(measure(v[0], name, v[1], steps[name], batch, data_dir)["images_per_s"])
        med = {v: statistics.median(r) for v, r in runs.items()}
        medians[name] = {f"{w} {p}": m for (w, p), m in med.items()}
        cells = [f"{med[v]:.0f} ({min(runs[v]):.0f}-{max(runs[v]):.0f})" if v in med else "n/a" for v in VARIANTS]
        ratio = f"{med['ours', 'bf16'] / med['ours', 'fp32']:.2f}" if native else "n/a"
        target = f" (target {TARGETS[name]}x: {'met' if float(ratio) >= TARGETS[name] else 'NOT met'})" \
            if name in TARGETS and native else ""
        print(f"| {name} | " + " | ".join(cells) +
              f" | {med['ours', 'fp32'] / med['plain', 'fp32']:.2f} | {ratio}{target} |")
    if set(names) >= {"lstm_ae", "cnn_ae", "vae_gru", "vae_cnn", "cvae_cnn", "classifier"}:
        medians["projection"] = project(medians)
    return medians


def project(medians: dict, saved: dict | None = None) -> dict:
    """Print the projected `make reproduce` time at the sample's and the course's size, from our loop's rates;
    return it in minutes, {size: {"training_fp32_min", "training_bf16_min", "evaluation_min", "fp32_min",
    "bf16_min"}} (the last three None where no rehearsal measured the evaluation). ``saved``: an earlier
    projection, whose evaluation minutes stand in for a rehearsal summary that is not on this machine."""
    projection = {}
    print("\nprojected `make reproduce` (training: registry budget / our median rate; evaluation: make rehearse)")
    print("| data | training fp32 | training bf16 | evaluation (fp32) | total fp32 | total bf16 |")
    print("|---|---|---|---|---|---|")
    for size, n_train in SIZES.items():
        runs = reproduce_runs(n_train)
        train = {p: sum(images / rate(medians, rate_of, f"ours {p}") for _, rate_of, images in runs)
                 if f"ours {p}" in medians[runs[0][1]] else None for p in ("fp32", "bf16")}
        r = rehearsal(size)
        evaluation = r["evaluation_s"] if r and r["n_train"] == n_train else None
        if evaluation is None and (saved or {}).get(size, {}).get("evaluation_min") is not None:
            evaluation = saved[size]["evaluation_min"] * 60
        ev = "not measured (make rehearse)" if evaluation is None else f"{evaluation / 60:.0f} min"
        totals = ["n/a" if train[p] is None else f"> {train[p] / 60:.0f} min" if evaluation is None
                  else f"{(train[p] + evaluation) / 60:.0f} min" for p in ("fp32", "bf16")]
        minutes = {p: None if train[p] is None else train[p] / 60 for p in ("fp32", "bf16")}
        projection[size] = {"n_train": n_train, "training_fp32_min": minutes["fp32"],
                            "training_bf16_min": minutes["bf16"],
                            **{k: None if evaluation is None or v is None else v / 60 for k, v in (
                                ("evaluation_min", evaluation), ("fp32_min", (evaluation or 0) + train["fp32"]),
                                ("bf16_min", None if train["bf16"] is None else (evaluation or 0) + train["bf16"]))}}
        bf16 = "n/a" if minutes["bf16"] is None else f"{minutes['bf16']:.0f} min"
        print(f"| {size} ({n_train:,} training drawings) | {minutes['fp32']:.0f} min | {bf16} "
              f"| {ev} | {totals[0]} | {totals[1]} |")
    return projection


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="measurements of each variant per model (default 3)")
    ap.add_argument("--models", nargs="*", default=list(STEPS), choices=list(STEPS), metavar="MODEL",
                    help=f"default: all ({', '.join(STEPS)})")
    ap.add_argument("--smoke", action="store_true", help="check that the bench runs end to end: one step of "
                    "the CNN AE at batch 16 in each variant, each in a fresh process")
    ap.add_argument("--save", metavar="METRICS", help="merge the rates and the projection into this results file's "
                    "bench section (the report quotes the projection), e.g. results/metrics.json")
    ap.add_argument("--project-only", action="store_true", help="measure nothing: project `make reproduce` from the "
                    "rates in the --save file's bench section (where and when they were measured: bench/README.md), "
                    "with the registry's runs as they are now")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        which, name, precision, steps, batch = args.child
        print(json.dumps(measure_here(which, name, precision, int(steps), int(batch) or None)))
        return
    if args.reps < 1:
        ap.error("--reps must be positive")
    if args.project_only:
        import helpers as H

        if not args.save:
            ap.error("--project-only needs --save METRICS (the results file whose bench section holds the rates)")
        bench = H.read_metrics(args.save).get("bench")
        if not bench:
            sys.exit(f"bench: {args.save} has no bench section; run `make bench` first")
        H.merge_metrics(args.save, "bench", {**bench, "projection": project(bench["rates"], bench.get("projection"))})
        print(f"saved the projection to the bench section of {args.save}")
        return
    reps, names, steps, batch = args.reps, args.models, STEPS, None
    if args.smoke:
        print("smoke run: checks that the bench runs end to end; its rates mean nothing")
        reps, names, steps, batch = 1, ["cnn_ae"], {"cnn_ae": 1}, 16
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.environ.get("QUICKDRAW_DIR")
        if not data_dir:
            import helpers as H

            data_dir = str(H.write_synthetic_quickdraw(Path(tmp) / "synthetic", 100, 1))
        medians = run_all(reps, names, data_dir, steps, batch)
    if args.save:
        import torch

        import helpers as H

        projection = medians.pop("projection", None)
        H.merge_metrics(args.save, "bench", {"rates": medians, "projection": projection, "reps": reps,
                                             "threads": torch.get_num_threads(), "native_bf16": H.native_bf16("cpu")})
        print(f"saved to the bench section of {args.save}")


if __name__ == "__main__":
    main()
