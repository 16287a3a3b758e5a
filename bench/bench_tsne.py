"""t-SNE of latent codes at scale: scikit-learn's Barnes-Hut TSNE
against openTSNE's FFT-accelerated interpolation, on the codes of trained models, for speed and quality.

    python bench/bench_tsne.py                    # N = 4,000 and 25,000; lstm_ae and vae_cnn; both methods
    python bench/bench_tsne.py --n 4000 --models vae_cnn lstm_ae:quick --methods opentsne --threads 1
    python bench/bench_tsne.py --smoke            # tiny synthetic codes, both methods, seconds; numbers mean nothing

Takes long: sklearn alone needs minutes per model at 25,000 points. ``--save DIR`` keeps every run's 2-D points.

Data: the course-format folder of QUICKDRAW_DIR (else data/quickdraw_subset_np), loaded with its MD5 sums, which
the model cache keys include. Codes: ``helpers.encode_all`` of models trained with the registry's config at seed 0
("full" budget unless a model is given as NAME:BUDGET), loaded from ``--runs-dir`` (default: this repository's
runs/). This script never trains: a model missing from the cache stops it with a message.

Points: at N = 4,000 (the real sample's size) every real drawing, training split then test split; at a smaller N
a fixed random subset of them. At a larger N, the real drawings plus copies shifted by one pixel (``torch.roll``
along rows, columns and both diagonals, 8 shifts), the copies shuffled with a fixed seed and cut so that there
are N points, labels carried along.

Methods, on the same codes, each in a fresh Python process (so that no run inherits another's caches or warm
thread pools), both with OMP_NUM_THREADS=--threads:
  sklearn   PCA to 50 dimensions when D > 50, then sklearn.manifold.TSNE(init="pca", perplexity=30,
            random_state=seed): Barnes-Hut, exactly as tsne_embed did before openTSNE;
  opentsne  the same PCA step, then openTSNE.TSNE(perplexity=30, initialization="pca",
            negative_gradient_method="fft", n_jobs=--threads, random_state=seed);
  opentsne-bh  (only when asked for) the same with negative_gradient_method="bh", openTSNE's Barnes-Hut, which
            helpers.tsne_embed uses below 10,000 points.

Columns: wall seconds of PCA + t-SNE inside the fresh process (imports and loading excluded) and its CPU seconds
(all threads; on a busy machine the wall time grows with the load, the CPU time much less); 5-NN accuracy of
the 2-D points (fitted on the training drawings' points, scored on the test drawings'; above 4,000 points, a
fixed 80/20 split of the points, so a test point's shifted twins are often among the training points, alike for
both methods); trustworthiness (sklearn.manifold.trustworthiness, 5 neighbours, codes against 2-D points) on
a fixed random subset of 5,000 points above 5,000 points, the same subset for both methods and all models; the
machine's 1-minute load average when the run started. Times depend on the machine and on its load; which method
runs first alternates from one row pair (model and N) to the next, so that a drift in load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("sklearn", "opentsne", "opentsne-bh")
PERPLEXITY = 30.0
PCA_DIMS = 50
TRUST_SUBSET = 5000  # trustworthiness is O(N^2) in memory: at most this many points
SPLIT_SEED = 0  # the copies' shuffle, the 80/20 split, the subsets


def embed(method: str, z: np.ndarray, seed: int, threads: int, short: bool = False) -> np.ndarray:
    """PCA to PCA_DIMS when D is larger, then t-SNE with `method`: (N, 2) float64. `short` (the smoke run): the
    fewest iterations each library allows or needs to run its whole optimization (sklearn 250, openTSNE 50 + 50)."""
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float64)
    if z.shape[1] > PCA_DIMS:
        z = PCA(n_components=min(PCA_DIMS, len(z)), random_state=seed).fit_transform(z)
    if method == "sklearn":
        from sklearn.manifold import TSNE

        iters = {"max_iter": 250} if short else {}
        return TSNE(n_components=2, init="pca", perplexity=PERPLEXITY, random_state=seed, **iters).fit_transform(z)
    import openTSNE

    iters = {"early_exaggeration_iter": 50, "n_iter": 50} if short else {}
    gradient = "bh" if method == "opentsne-bh" else "fft"
    return np.asarray(openTSNE.TSNE(perplexity=PERPLEXITY, initialization="pca", negative_gradient_method=gradient,
                                    n_jobs=threads, random_state=seed, **iters).fit(z), dtype=np.float64)


def child(method: str, codes: str, out: str, seed: int, threads: int, short: bool) -> None:
    """In the fresh process: embed the codes saved at `codes`, save the points at `out`, print the wall and CPU
    seconds (the CPU seconds of all the process's threads)."""
    z = np.load(codes)
    t0, c0 = time.perf_counter(), time.process_time()
    points = embed(method, z, seed, threads, short)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(out, points)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}))


def run_method(method: str, z: np.ndarray, seed: int, threads: int, tmp: Path,
               short: bool = False) -> tuple[np.ndarray, dict]:
    codes, out = tmp / "codes.npy", tmp / "points.npy"
    np.save(codes, z)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, __file__, "--child", method, str(codes), str(out), str(seed), str(threads),
                           str(int(short))],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"bench_tsne: {method} failed on {len(z)} points:\n{proc.stderr}")
    return np.load(out), json.loads(proc.stdout.strip().splitlines()[-1])


def load_cached_model(name: str, budget: str, data, runs_dir: Path):
    """The model of registry run `name` at `budget`, seed 0, from the cache; exits if it would have to be trained."""
    import helpers as H
    from helpers.training.cache import config_key

    if name not in H.EXPERIMENTS:
        sys.exit(f"bench_tsne: no run named {name!r}; registered: {', '.join(H.EXPERIMENTS)}")
    run = H.EXPERIMENTS[name]
    fit_data = H.split_validation(data)[0] if run.train_on == "train_minus_val" else data
    folder = runs_dir / "models" / f"{name}-{config_key(run.spec, run.config(budget, 0), fit_data)}"
    if not (folder / "model.pt").exists():  # checked first: train_experiment would train it
        sys.exit(f"bench_tsne: {name} ({budget} budget, seed 0) is not in the cache ({folder / 'model.pt'} is "
                 f"missing), and this benchmark never trains. Train it first (make reproduce), or pass "
                 f"--models {name}:BUDGET for a budget that is cached, or another --runs-dir.")
    model, record = H.train_experiment(name, data, budget, 0, device="cpu", runs_dir=runs_dir, progress=False,
                                       verbose=False)
    if record["trained_now"]:
        sys.exit(f"bench_tsne: {name} was trained instead of loaded from {folder}; aborting")
    return model


def point_sets(x: np.ndarray, y: np.ndarray, n_real_train: int, sizes: list[int]):
    """The largest set of drawings the sizes need (real first, then shifted copies), and, per size, the indices
    of its points into that set and the boolean mask of its training points."""
    import torch

    n_real, n_max = len(x), max(sizes)
    if n_max > 9 * n_real:
        sys.exit(f"bench_tsne: at most {9 * n_real} points (the real drawings and 8 shifted copies of each)")
    rng = np.random.default_rng(SPLIT_SEED)
    if n_max > n_real:
        t = torch.from_numpy(x)
        shifts = [(r, c) for r in (-1, 0, 1) for c in (-1, 0, 1) if (r, c) != (0, 0)]
        copies = torch.cat([torch.roll(t, s, dims=(1, 2)) for s in shifts]).numpy()
        order = rng.permutation(len(copies))[: n_max - n_real]
        x, y = np.concatenate([x, copies[order]]), np.concatenate([y, np.tile(y, len(shifts))[order]])
    sets = {}
    for n in sizes:
        if n == n_real:
            idx = np.arange(n)
            train = idx < n_real_train
        elif n > n_real:  # all real drawings first, then copies: a larger N contains a smaller one
            idx, train = np.arange(n), np.zeros(n, bool)
            train[np.random.default_rng(SPLIT_SEED).permutation(n)[: int(0.8 * n)]] = True
        else:
            idx = np.sort(np.random.default_rng(SPLIT_SEED).choice(n_real, n, replace=False))
            train = idx < n_real_train
        sets[n] = (idx, train)
    return x, y, sets


def quality(z: np.ndarray, points: np.ndarray, y: np.ndarray, train: np.ndarray, trust_max: int) -> tuple[float, float]:
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import KNeighborsClassifier

    acc = KNeighborsClassifier(n_neighbors=5).fit(points[train], y[train]).score(points[~train], y[~train])
    sub = np.arange(len(z))
    if len(z) > trust_max:  # depends only on N: the same subset for both methods and all models
        sub = np.sort(np.random.default_rng(SPLIT_SEED).choice(len(z), trust_max, replace=False))
    return float(acc), float(trustworthiness(z[sub], points[sub], n_neighbors=5))


def synthetic_codes(n: int = 300, dim: int = 64, seed: int = 0):
    """Five Gaussian clusters in `dim` dimensions (above PCA_DIMS, so the PCA step runs): codes, labels and the
    number of "training" points (the first 80%)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    z = (rng.normal(size=(5, dim)) * 3)[y] + rng.normal(size=(n, dim))
    return z.astype(np.float32), y, int(0.8 * n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[4000, 25000], help="numbers of points (default 4000 25000)")
    ap.add_argument("--models", nargs="+", default=["lstm_ae", "vae_cnn"],
                    help="registry runs as NAME or NAME:BUDGET (default budget: full)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=["sklearn", "opentsne"],
                    help="default: sklearn opentsne")
    ap.add_argument("--threads", type=int, help="threads per t-SNE (default: all cores; 1 with --smoke)")
    ap.add_argument("--seed", type=int, default=0, help="t-SNE random_state (default 0)")
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "runs", help="model cache (default: the repo's runs/)")
    ap.add_argument("--save", type=Path, help="save each run's 2-D points as SAVE/METHOD-N-MODEL.npy")
    ap.add_argument("--smoke", action="store_true", help="300 synthetic 64-d codes instead of models, few "
                    "iterations, 1 thread unless --threads is given; seconds")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        method, codes, out, seed, threads, short = args.child
        child(method, codes, out, int(seed), int(threads), short == "1")
        return
    if args.threads is None:  # on a busy machine a second, spinning thread only costs a tiny run time
        args.threads = 1 if args.smoke else os.cpu_count() or 1
    if min(args.n) < 50 or args.threads < 1:
        ap.error("--n must be at least 50 and --threads at least 1")

    trust_max = TRUST_SUBSET
    if args.smoke:
        print("smoke run: 300 synthetic 64-d codes in 5 clusters, few iterations; checks that the bench runs end "
              "to end; its numbers mean nothing")
        z, y, n_train = synthetic_codes()
        codes = {"synthetic": z}
        sets = {len(z): (np.arange(len(z)), np.arange(len(z)) < n_train)}
        trust_max = 200  # so that the subset path runs too
    else:
        import helpers as H

        data_dir = H.resolve_data_dir()
        data = H.load_quickdraw(data_dir, with_md5=True)  # the cache keys include the MD5 sums
        x = np.concatenate([data.x_train, data.x_test])
        x, y, sets = point_sets(x, np.concatenate([data.y_train, data.y_test]), len(data.x_train), sorted(args.n))
        print(f"data: {data_dir} ({len(data.x_train)} train + {len(data.x_test)} test drawings"
              f"{', synthetic' if data.synthetic else ''}); {len(x) - len(data.x_train) - len(data.x_test)} "
              f"shifted copies")
        codes = {}
        for spec in args.models:
            name, _, budget = spec.partition(":")
            model = load_cached_model(name, budget or "full", data, args.runs_dir)
            codes[spec] = H.encode_all(model, H.to_tensor(x)).astype(np.float64)
            print(f"{spec}: {codes[spec].shape[1]}-d codes of {len(x)} drawings")

    print(f"{os.cpu_count()} cores, {args.threads} thread(s) per t-SNE, seed {args.seed}, perplexity {PERPLEXITY:g}; "
          f"seconds: wall time of PCA + t-SNE in a fresh process; CPU s: its CPU time, all threads")
    print(f"trustworthiness: 5 neighbours, on a fixed random subset of {trust_max} points when N > {trust_max}; "
          f"5-NN accuracy: train drawings -> test drawings, or a fixed 80/20 split above the real drawings")
    print(f"{'method':11s} {'N':>6s}  {'model':14s} {'seconds':>8s} {'CPU s':>8s} {'5-NN acc':>9s} {'trustw':>7s} "
          f"{'load':>5s}")
    row = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(sets):
            idx, train = sets[n]
            for spec, z_all in codes.items():
                z, labels = z_all[idx], (y[idx])
                methods = args.methods if row % 2 == 0 else args.methods[::-1]  # alternate which goes first
                row += 1
                results = {}
                for method in methods:
                    load = os.getloadavg()[0]
                    points, t = run_method(method, z, args.seed, args.threads, Path(tmp), args.smoke)
                    if args.save:
                        args.save.mkdir(parents=True, exist_ok=True)
                        np.save(args.save / f"{method}-{n}-{spec.replace(':', '-')}.npy", points)
                    results[method] = (t["seconds"], t["cpu_seconds"], *quality(z, points, labels, train, trust_max),
                                       load)
                for method in args.methods:
                    seconds, cpu, acc, trust, load = results[method]
                    print(f"{method:11s} {n:6d}  {spec:14s} {seconds:8.1f} {cpu:8.1f} {acc:9.4f} {trust:7.4f} "
                          f"{load:5.2f}", flush=True)


if __name__ == "__main__":
    main()
