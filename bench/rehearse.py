"""Rehearsal of `make reproduce` at a data size: every notebook with the full evaluation sizes, on one-epoch
("tiny" budget) models, to show that nothing runs out of memory or time, and to measure the evaluation time
that bench/bench_training.py adds to its projection of a full run.

    make rehearse                                   # the course's size (20,000 + 5,000), synthetic drawings
    python bench/rehearse.py --size course
    python bench/rehearse.py --size sample          # the folder of QUICKDRAW_DIR (e.g. the 3,000 + 1,000 sample)
    python bench/rehearse.py --size smoke           # 40 + 10 synthetic drawings per class: a few minutes

The course-size folder is SYNTHETIC (helpers.write_synthetic_quickdraw; built once into runs/rehearse/, about a
minute): the point is the sizes of the arrays, of the codes t-SNE embeds and of the epochs, not the drawings.
Each rehearsal starts with an empty model cache of its own, so every model in it is trained there: the tiny
budget trains each VAE and the classifier for one epoch (batch 64; the autoencoders for 12 steps). Written to
runs/rehearse/<size>/: the executed notebooks, figures, metrics.json and summary.json with the wall time of
each notebook, the training time of the models (from their records), the evaluation time (the rest), and the
peak memory of the notebook kernels.
"""

from __future__ import annotations

import argparse
import ast
import os
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import helpers as H  # noqa: E402
from helpers.files import atomic_write_json  # noqa: E402
from helpers.pipeline.runner import SMALL_PARAMS, declared_parameters, notebooks, reproduce  # noqa: E402

SIZES = {"course": (4000, 1000), "smoke": (40, 10)}  # synthetic drawings per class: train, test
OUT = ROOT / "runs" / "rehearse"


def full_evaluation_sizes() -> dict:
    """The notebooks' own defaults of the parameters that the small budgets shrink (runner.SMALL_PARAMS)."""
    names = {name for params in SMALL_PARAMS.values() for name in params}
    sizes = {}
    for path in notebooks():
        declared = declared_parameters(path)
        for name in names & set(declared):
            sizes[name] = ast.literal_eval(declared[name]["default"])
    return sizes


def data_folder(size: str) -> Path:
    if size == "sample":
        return H.resolve_data_dir().resolve()
    folder = OUT / f"{size}-data"
    if not (folder / "test_labels.npy").exists():  # the last file written
        n_train, n_test = SIZES[size]
        print(f"building a synthetic folder of {5 * n_train} + {5 * n_test} drawings in {folder} ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        H.write_synthetic_quickdraw(folder, n_train, n_test, seed=0)
    return folder


def rehearse(size: str, log_output: bool = True) -> dict:
    folder = data_folder(size)
    data = H.load_quickdraw(folder, with_md5=False)
    out = OUT / size
    shutil.rmtree(out, ignore_errors=True)  # an empty model cache: every model is trained here
    os.environ["QUICKDRAW_DIR"] = str(folder)
    t0 = time.perf_counter()
    times = reproduce(budget="tiny", extra=full_evaluation_sizes(), fig_dir=out / "figures",
                      results_path=out / "metrics.json", runs_dir=out / "runs", out_dir=out / "notebooks",
                      log_output=log_output)
    wall = time.perf_counter() - t0
    import torch

    training = {p.parent.name: torch.load(p, map_location="cpu", weights_only=True)["record"]["wall_time_s"]
                for p in sorted((out / "runs" / "models").glob("*/model.pt"))}
    summary = {"size": size, "data_dir": str(folder), "n_train": len(data.y_train), "n_test": len(data.y_test),
               "threads": torch.get_num_threads(), "notebooks_s": times, "wall_s": wall,
               "training_s": training, "evaluation_s": sum(times.values()) - sum(training.values()),
               "peak_kernel_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    atomic_write_json(out / "summary.json", summary)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["course", "sample", "smoke"], default="course")
    args = ap.parse_args()
    s = rehearse(args.size)
    print(f"rehearsal ({args.size}: {s['n_train']:,} + {s['n_test']:,} drawings, {s['threads']} threads): "
          f"{s['wall_s'] / 60:.1f} min in all; training {sum(s['training_s'].values()):.0f} s "
          f"({len(s['training_s'])} models), evaluation {s['evaluation_s']:.0f} s; "
          f"peak kernel memory {s['peak_kernel_rss_mib']:.0f} MiB")
    for name, seconds in s["notebooks_s"].items():
        print(f"  {name:22s} {seconds:7.0f} s")
    print(f"summary: {OUT / args.size / 'summary.json'}")


if __name__ == "__main__":
    main()
