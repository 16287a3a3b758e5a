"""Training throughput (images/s) of the two autoencoders: our training engine (helpers.fit) against a
straightforward reference loop written here, the course report's way (a numpy random batch drawn and
converted to a tensor at every step, default settings), with identical model math, in the same run.

    make bench                      # real data from QUICKDRAW_DIR, else synthetic drawings
    python bench/bench_autoencoders.py --reps 5

Speed targets live here, never in the unit tests. Numbers depend on the machine and on its load: run it
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from torch.nn import functional as F

import helpers as H

STEPS = {"lstm_ae": 12, "cnn_ae": 60}  # timed steps per repetition
TARGETS = {"lstm_ae": 1.3, "cnn_ae": 1.0}  # ours / reference, from the issue


def reference_images_per_s(spec: dict, images: np.ndarray, steps: int, batch_size: int = 256) -> float:
    """The report's loop: sample indices with numpy, build a float tensor from them, MSE, Adam."""
    H.set_seed(0)
    model, _ = H.build_model(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_all = images.astype(np.float32) / 255.0  # (N, 28, 28)

    def step():
        idx = np.random.randint(0, len(x_all), batch_size)
        x = torch.tensor(x_all[idx]).unsqueeze(1)  # (B, 1, 28, 28)
        loss = F.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - t0)


def ours_images_per_s(spec: dict, images: np.ndarray, steps: int, batch_size: int = 256) -> float:
    """helpers.fit: data held as one tensor, seeded batches, the same model, loss and optimizer."""
    H.set_seed(0)
    model, loss_fn = H.build_model(spec)
    X = H.to_tensor(images)
    cfg = H.TrainConfig(steps=2, batch_size=batch_size, ckpt_every=10**9)
    H.fit(model, loss_fn, (X,), None, cfg, progress=False)  # warm-up
    cfg = H.TrainConfig(steps=steps, batch_size=batch_size, ckpt_every=10**9, eval_every=10**9)
    return H.fit(model, loss_fn, (X,), None, cfg, progress=False)["images_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    data_dir = os.environ.get("QUICKDRAW_DIR")
    if data_dir:
        images = H.load_quickdraw(data_dir, with_md5=False).x_train
        source = data_dir
    else:
        images, _ = H.make_synthetic_images(600)
        source = "synthetic drawings (set QUICKDRAW_DIR for real data)"
    print(f"data: {source}; torch {torch.__version__}, {torch.get_num_threads()} threads, batch 256")
    print(f"{'model':8s} {'reference img/s':>16s} {'ours img/s':>11s} {'ours/ref':>9s} {'target':>7s}")
    for kind, steps in STEPS.items():
        spec = {"kind": kind}
        ref, ours = [], []
        for _ in range(args.reps):  # interleaved, so that load changes hit both alike
            ref.append(reference_images_per_s(spec, images, steps))
            ours.append(ours_images_per_s(spec, images, steps))
        r, o = statistics.median(ref), statistics.median(ours)
        verdict = "met" if o / r >= TARGETS[kind] else "NOT met"
        runs = f"ref {', '.join(f'{v:.0f}' for v in ref)}; ours {', '.join(f'{v:.0f}' for v in ours)}"
        print(f"{kind:8s} {r:16.0f} {o:11.0f} {o / r:9.2f} {TARGETS[kind]:>6.1f}x  {verdict}"
              f"  (medians of {args.reps}; {runs})")


if __name__ == "__main__":
    main()
