"""Reruns of the report's notebooks with one setting changed, and what they change in the headline numbers.

Seed spread: ``python -m helpers.pipeline.reruns --seeds 3`` (what `make seeds` calls).

Seed 0 is the report's own run (results/metrics.json, or runs/quick/metrics.json for ``--quick``). Each further
seed s reruns notebooks 02-06 with ``-p seed s`` through the runner, into runs/seeds/<budget>/seed-<s>/
(metrics.json, figures/, notebooks/), so every number is computed by the same code as the report's. Models come
from the model cache (runs/models/), so a second call trains nothing, and a notebook whose wall time is already
in that seed's metrics file is not rerun: an interrupted call resumes where it stopped. Then the headline
numbers of every seed are gathered (``headline``), summarised (``aggregate``: mean, sample standard deviation,
min, max, n and the seed-0 value) and merged into the ``seeds`` section of the results file.

Judge spread: ``python -m helpers.pipeline.reruns --judges 3`` (`make judges`). Every number of the seed spread is
scored by one judge, the evaluation classifier trained with its own seed (``judge_seed``, 0), whatever the models'
seed. What the judge itself changes is measured apart: notebooks 04, 06, 10 and 12 rerun at seed 0 with
``-p judge_seed j`` for the further judges j into runs/judges/<budget>/judge-<j>/ (same cache and resumption), and the
headline numbers and claims of each judge are gathered as the seeds' are (``collect``) into the ``judges`` section.

Precision check: ``python -m helpers.pipeline.reruns --precision bf16`` (`make precision-check`) reruns notebooks 02-04
with ``-p precision bf16`` into runs/precision/<budget>/bf16/ (same cache and resumption) and merges the headline
numbers of both precisions, side by side, into the ``precision`` section.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from pathlib import Path

from ..data.quickdraw import DataError
from ..devices import PRECISIONS
from ..files import ROOT
from ..results import (
    CLAIMS,
    HEADLINE,
    JUDGE_CLAIMS,
    JUDGE_HEADLINE,
    JUDGED,
    default_outputs,
    flatten_stats,
    merge_metrics,
    read_metrics,
)
from .runner import ParameterError, reproduce

__all__ = ["SEED_NOTEBOOKS", "JUDGE_NOTEBOOKS", "PRECISION_NOTEBOOKS", "seed_dir", "judge_dir", "precision_dir",
           "run_seeds", "run_judges", "write_judges",
           "run_precision", "headline", "aggregate", "collect", "write_seeds", "compare_precision"]

SEED_NOTEBOOKS = ["02", "03", "04", "05", "06"]  # 01 shows the data and trains nothing; 07 studies seed 0's models
# The notebooks whose numbers the evaluation classifier gives: the VAEs' samples (04), the samplers and conditional
# designs (06), the PixelCNN decoders (10) and the free-bits model (12; it also chooses its lambda by the judge's FID).
JUDGE_NOTEBOOKS = ["04", "06", "10", "12"]
JUDGE_SECTIONS = ("vae", "beyond", "pixel", "free_bits")
# Parameters that only one notebook declares, passed only when that notebook is among those run.
_OWN_PARAMETER = {"leave_out": "05", "schedule_study": "02"}
# The likelihood bounds do not depend on the judge: the judge runs compute them on few drawings and samples (they are
# left out of the judges section), which saves most of notebook 04's time.
JUDGE_RUN_BOUNDS = {"n_eval": 50, "iwae_k": 2}
PRECISION_NOTEBOOKS = ["02", "03", "04"]  # every model of the report's sections 2-5, and its test numbers

def seed_dir(seed: int, budget: str = "full", runs_dir=None) -> Path:
    """Where the run of one further seed keeps its metrics, figures and executed notebooks."""
    return Path(runs_dir or ROOT / "runs") / "seeds" / budget / f"seed-{seed}"


def judge_dir(judge: int, budget: str = "full", runs_dir=None) -> Path:
    """Where the rerun of the judged notebooks with another judge keeps its metrics, figures and notebooks."""
    return Path(runs_dir or ROOT / "runs") / "judges" / budget / f"judge-{judge}"


def run_judges(judges, budget: str = "full", runs_dir=None, log_output: bool = True) -> dict:
    """Rerun the notebooks of ``JUDGE_NOTEBOOKS`` (seed 0's models) with each further judge seed of ``judges`` (judge
    0 is the report's own); returns {judge: {notebook: seconds}} of the notebooks run now."""
    return {j: _rerun(judge_dir(j, budget, runs_dir), JUDGE_NOTEBOOKS, {"judge_seed": j, **JUDGE_RUN_BOUNDS}, budget,
                      runs_dir, log_output)
            for j in judges if j != 0}


def write_judges(judges, budget: str = "full", results_path=None, runs_dir=None) -> dict:
    """The ``judges`` section: ``collect`` of the report's run (judge 0) and the further judges' runs, restricted to
    the numbers a judge gives (``JUDGE_NOTEBOOKS``), with ``JUDGE_HEADLINE`` and ``JUDGE_CLAIMS`` added; ``kept`` is
    notebook 12's choice under each judge. A judge whose run is missing is an error naming its folder."""
    results_path = Path(results_path or default_outputs(budget)[1])
    runs = {}
    for j in judges:
        path = results_path if j == 0 else judge_dir(j, budget, runs_dir) / "metrics.json"
        if not path.exists():
            raise RuntimeError(f"judge {j}: no metrics at {path}; run {'make reproduce' if j == 0 else 'make judges'}")
        metrics = read_metrics(path)
        runs[j] = {k: metrics[k] for k in JUDGE_SECTIONS if k in metrics}
    claims = {**CLAIMS, **JUDGE_CLAIMS}
    section = collect(runs, HEADLINE + JUDGE_HEADLINE, claims)
    section["stats"] = _nest({p: x for p, x in flatten_stats(section["stats"]).items() if p.split(".")[-1] in JUDGED})
    section["claims"] = {name: c for name, c in section["claims"].items()
                         if all(p.split(".")[-1] in JUDGED for p in claims[name])}
    section["kept"] = {str(j): m["free_bits"]["kept"] for j, m in sorted(runs.items()) if "free_bits" in m}
    return merge_metrics(results_path, "judges", {"judges": section.pop("seeds"), **section, "budget": budget})


def precision_dir(precision: str, budget: str = "full", runs_dir=None) -> Path:
    """Where the rerun at another precision keeps its metrics, figures and executed notebooks."""
    return Path(runs_dir or ROOT / "runs") / "precision" / budget / precision


def _rerun(out: Path, notebooks: list[str], extra: dict, budget: str, runs_dir, log_output: bool) -> dict:
    """Run those of ``notebooks`` whose wall time is not yet in ``out``/metrics.json, with ``extra``; return
    {notebook: seconds} of those run now."""
    done = read_metrics(out / "metrics.json").get("timings", {})
    todo = [nb for nb in notebooks if not any(stem.startswith(nb + "_") for stem in done)]
    if not todo:
        print(f"== done before: {out} ==", flush=True)
        return {}
    extra = {k: v for k, v in extra.items() if _OWN_PARAMETER.get(k, todo[0]) in todo}
    print(f"== notebooks {', '.join(todo)} with {extra} into {out} ==", flush=True)
    return reproduce(only=todo, budget=budget, extra=extra, fig_dir=out / "figures", results_path=out / "metrics.json",
                     runs_dir=runs_dir, out_dir=out / "notebooks", log_output=log_output)


def run_precision(precision: str, budget: str = "full", runs_dir=None, log_output: bool = True) -> dict:
    """Rerun notebooks 02-04 (seed 0) at ``precision``; returns {notebook: seconds} of those run now."""
    return _rerun(precision_dir(precision, budget, runs_dir), PRECISION_NOTEBOOKS,
                  {"precision": precision, "schedule_study": False}, budget, runs_dir, log_output)


def compare_precision(base: dict, other: dict, precision: str) -> dict:
    """The headline numbers that both runs have, {path-nested: {"fp32": a, <precision>: b, "change": (b - a) /
    |a|}}, for the ``precision`` section."""
    a, b = headline(base), headline(other)
    return _nest({p: {"fp32": a[p], precision: b[p], "change": (b[p] - a[p]) / abs(a[p]) if a[p] else None}
                  for p in sorted(set(a) & set(b))})


def run_seeds(seeds, budget: str = "full", runs_dir=None, log_output: bool = True,
              notebooks: list[str] = SEED_NOTEBOOKS, lstm_seeds: int | None = None) -> dict:
    """Run ``notebooks`` (02-06) once per seed in ``seeds`` (seed 0 is the report's run and is skipped); a
    notebook already done for a seed (its wall time is in that seed's metrics) is skipped. Seeds from
    ``lstm_seeds`` on leave the LSTM autoencoder out (notebook 02 not run, notebook 05 without it): its
    10,000 steps are most of a seed's time. Returns {seed: {notebook: seconds}} of the notebooks run now."""
    ran = {}
    for seed in seeds:
        if seed == 0:
            continue
        without_lstm = lstm_seeds is not None and seed >= lstm_seeds
        # The batch-schedule study of notebook 02 is a finding of seed 0; the further seeds leave it out.
        extra = {"seed": seed, "schedule_study": False, **({"leave_out": "lstm_ae"} if without_lstm else {})}
        todo = [nb for nb in notebooks if not (without_lstm and nb == "02")]
        print(f"== seed {seed} ==", flush=True)
        ran[seed] = _rerun(seed_dir(seed, budget, runs_dir), todo, extra, budget, runs_dir, log_output)
    return ran


def headline(metrics: dict, patterns=HEADLINE) -> dict[str, float]:
    """The headline numbers of one run's metrics, {dotted path: value}, at the dotted ``patterns``; paths the run has
    not written (a notebook not run yet) are left out."""
    found = {}

    def walk(node, parts, path):
        if not parts:
            if isinstance(node, (int, float)) and not isinstance(node, bool):
                found[".".join(path)] = float(node)
            return
        if not isinstance(node, dict):
            return
        keys = list(node) if parts[0] == "*" else [parts[0]] if parts[0] in node else []
        for key in keys:
            walk(node[key], parts[1:], path + [key])

    for pattern in patterns:
        walk(metrics, pattern.split("."), [])
    return found


def aggregate(values: list[float]) -> dict:
    """Mean, sample standard deviation (n - 1 in the denominator; None for a single value), min, max and n."""
    if not values:
        raise ValueError("aggregate needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values), "n": n}


def _nest(flat: dict) -> dict:
    """{"a.b.c": x} -> {"a": {"b": {"c": x}}}, so that the report looks the numbers up by the same dotted
    path as the run's own (``helpers.results.lookup``)."""
    out: dict = {}
    for path, value in flat.items():
        node = out
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def collect(runs: dict[int, dict], patterns=HEADLINE, claims_of: dict = CLAIMS) -> dict:
    """The ``seeds`` section from the metrics of each seed ({seed: metrics}, seed 0 the report's run):
    ``stats`` nests, under each headline path, the aggregate of the seeds that have it, its per-seed
    ``values`` and the ``seed0`` value (at the dotted ``patterns``); ``claims`` says for each chain of ``claims_of``
    in how many seeds it holds;
    ``chosen`` is notebook 06's validation choice in each seed."""
    numbers = {seed: headline(m, patterns) for seed, m in sorted(runs.items())}
    paths = sorted({p for found in numbers.values() for p in found})
    stats = {}
    for path in paths:
        values = {seed: found[path] for seed, found in numbers.items() if path in found}
        stats[path] = {**aggregate(list(values.values())), "values": {str(s): v for s, v in values.items()},
                       "seed0": values.get(0)}
    claims = {}
    for name, chain in claims_of.items():
        seeds = [s for s, found in numbers.items() if all(p in found for p in chain)]
        holds = [s for s in seeds if all(numbers[s][a] < numbers[s][b] for a, b in zip(chain, chain[1:]))]
        claims[name] = {"holds": len(holds), "n": len(seeds), "fails_in_seeds": [s for s in seeds if s not in holds]}
    return {"seeds": sorted(runs), "stats": _nest(stats), "claims": claims,
            "chosen": {str(s): m.get("beyond", {}).get("chosen") for s, m in sorted(runs.items())}}


def write_seeds(seeds, budget: str = "full", results_path=None, runs_dir=None) -> dict:
    """Gather seed 0 (the results file) and the further seeds' runs, and merge the ``seeds`` section into the
    results file. A seed whose run is missing is an error naming its folder: nothing is written then."""
    results_path = Path(results_path or default_outputs(budget)[1])
    runs = {}
    for seed in seeds:
        path = results_path if seed == 0 else seed_dir(seed, budget, runs_dir) / "metrics.json"
        if not path.exists():
            raise RuntimeError(f"seed {seed}: no metrics at {path}; run its notebooks first "
                               f"({'make reproduce' if seed == 0 else 'make seeds'})")
        runs[seed] = read_metrics(path)
    return merge_metrics(results_path, "seeds", {**collect(runs), "budget": budget})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds, seed 0 (the report's run) included")
    ap.add_argument("--lstm-seeds", type=int, default=None,
                    help="seeds of the LSTM autoencoder (default: all); the further seeds leave it out")
    ap.add_argument("--judges", type=int, default=None,
                    help="instead of seeds: score seed 0's models with this many judges (judge 0, the report's, "
                         "included) and merge the judge spread into the judges section")
    ap.add_argument("--precision", help="instead of seeds: rerun notebooks 02-04 at this precision (bf16) and "
                    "compare its headline numbers with the report's fp32 run")
    ap.add_argument("--quick", action="store_true", help="the quick budget (QUICK=1); results in runs/quick/")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 1
    budget = "quick" if args.quick or os.environ.get("QUICK") == "1" else "full"
    if args.precision:
        return precision_main(args.precision, budget)
    if args.judges is not None:
        return judges_main(args.judges, budget)
    return _spread_main(functools.partial(run_seeds, lstm_seeds=args.lstm_seeds), write_seeds, range(args.seeds),
                        budget, "seeds", "headline numbers merged into the seeds section; claims hold in")


def judges_main(n: int, budget: str) -> int:
    if n < 2:
        print("error: --judges must be at least 2 (judge 0 is the report's own)", file=sys.stderr)
        return 1
    return _spread_main(run_judges, write_judges, range(n), budget, "judges",
                        "sample numbers merged into the judges section; claims hold under")


def _spread_main(run, write, ids, budget: str, key: str, what: str) -> int:
    """Run the further seeds (or judges) of ``ids``, write their section, and print in how many each claim holds."""
    try:
        run(ids, budget)
        section = write(ids, budget)
    except (DataError, ParameterError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    claims = ", ".join(f"{name} {c['holds']}/{c['n']}" for name, c in section["claims"].items())
    print(f"{key} {section[key]}: {what}: {claims}")
    return 0


def precision_main(precision: str, budget: str) -> int:
    results = default_outputs(budget)[1]
    try:
        if precision == "fp32":
            raise ParameterError("--precision: the report's run is fp32 already; give another precision (bf16)")
        if precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        run_precision(precision, budget)
        other = read_metrics(precision_dir(precision, budget) / "metrics.json")
        compared = compare_precision(read_metrics(results), other, precision)
        merge_metrics(results, "precision", {**compared, "precision": precision, "budget": budget})
    except (DataError, ParameterError, RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n = len(set(headline(read_metrics(results))) & set(headline(other)))
    print(f"precision {precision}: {n} numbers compared, merged into the precision section")
    return 0


if __name__ == "__main__":
    sys.exit(main())
