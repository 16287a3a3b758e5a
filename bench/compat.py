"""`make compat`: the project installed with `pip install -e .` beside a torch that was there first.

Run by the Makefile inside the compat venv, after `pip install <torch>` and `pip install -e .`. Checks that
the torch installed first is still the one imported (the declared ranges did not replace it), prints what
`pip install -e .` added, then runs notebooks 02 and 03 with the tiny budget on synthetic drawings, through
the runner as `make reproduce` does, and checks their metrics. Exits non-zero on any failure.
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

ROOT = Path(__file__).resolve().parents[1]


def installed() -> dict[str, str]:
    """{name: version} of every package in this venv (``pip list``)."""
    out = subprocess.run([sys.executable, "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                         check=True).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="`pip list --format=json` before `pip install -e .`")
    ap.add_argument("--torch", required=True, help="the torch requirement installed first, e.g. torch==2.13.0")
    args = ap.parse_args()
    import torch

    before = {p["name"].lower(): p["version"] for p in json.loads(args.before.read_text(encoding="utf-8"))}
    after = installed()
    wanted = args.torch.partition("==")[2]
    print(f"torch: installed first {before.get('torch')}, imported now {torch.__version__} "
          f"(CUDA: {torch.version.cuda})")
    if before.get("torch") != after.get("torch") or (wanted and not torch.__version__.startswith(wanted)):
        print("compat: FAILED: `pip install -e .` replaced the torch that was installed first", file=sys.stderr)
        return 1
    added = sorted(set(after) - set(before))
    print(f"`pip install -e .` added {len(added)} packages and changed none: "
          + ", ".join(f"{n}=={after[n]}" for n in added))
    changed = sorted(n for n in before if n in after and before[n] != after[n])
    if changed:
        print(f"compat: FAILED: `pip install -e .` changed {changed}", file=sys.stderr)
        return 1

    import helpers as H

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = H.write_synthetic_quickdraw(tmp / "synthetic", 40, 10, seed=0)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "helpers.pipeline.runner", "--only", "02", "03", "--budget",
                               "tiny", "--out", str(tmp / "out"), "--runs-dir", str(tmp / "runs")], cwd=ROOT,
                              env={**os.environ, "QUICKDRAW_DIR": str(data)})
        if proc.returncode != 0:
            print("compat: FAILED: notebooks 02 and 03 did not run", file=sys.stderr)
            return 1
        metrics = json.loads((tmp / "out" / "metrics.json").read_text(encoding="utf-8"))
        for name in ("lstm_ae", "cnn_ae"):
            if not 0 < metrics[name]["test_mse"] < metrics[name]["untrained_test_mse"] + 1:
                print(f"compat: FAILED: {name} metrics look wrong: {metrics[name]}", file=sys.stderr)
                return 1
        print(f"compat: notebooks 02 and 03 ran with torch {torch.__version__} in {time.perf_counter() - t0:.0f} s "
              f"(test MSE: LSTM AE {metrics['lstm_ae']['test_mse']:.4f}, CNN AE {metrics['cnn_ae']['test_mse']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
