"""One command that checks this project on a GPU (`make gpu-check`), for whoever has one: a Colab T4, a lab
workstation, a borrowed machine. It uses the interpreter it is run with and installs nothing. It writes one JSON
summary (default runs/gpu_check/summary.json) and exits 1 when a check fails:

1. the device: what ``helpers.pick_device`` chose, its name, compute capability, torch and CUDA versions, bf16;
2. exact resume: a VAE trained with a real SIGINT in mid-training, then resumed from its checkpoint, ends with
   the weights of an uninterrupted run, bit for bit;
3. determinism: two uninterrupted runs give identical weights and identical fp32 metrics;
4. training throughput (images/s) of the CNN-CNN VAE in fp32 and, where the device has native bf16, in bf16,
   beside the CPU's, measured in this run;
5. the notebooks (02-04 by default) at the quick budget on the device and on the CPU, their headline numbers side
   by side (reported, not compared exactly: float sums run in another order on another device).

``--tiny`` is the form the tests run on the CPU (synthetic drawings, the tiny budget, notebook 03): every step,
in seconds, so that this script cannot rot. On a GPU: ``make gpu-check`` (about 5 minutes on the sample).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import helpers as H  # noqa: E402
from helpers.pipeline.reruns import headline  # noqa: E402
from helpers.pipeline.runner import reproduce  # noqa: E402

SPEC = {"kind": "vae", "encoder": "cnn", "latent_dim": 32}  # the CNN-CNN VAE of the report


def device_summary(device: torch.device) -> dict:
    out = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda, "python":
           platform.python_version(), "native_bf16": H.native_bf16(device), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        out.update(name=torch.cuda.get_device_name(device), capability=list(torch.cuda.get_device_capability(device)),
                   memory_gib=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1))
    return out


def train(device, X, cfg, ckpt=None, sigint_at=None, seed=0):
    """The CNN-CNN VAE trained on X (on ``device``) from ``seed``; a real SIGINT is raised in step ``sigint_at``."""
    H.set_seed(seed)
    model, loss_fn = H.build_model(SPEC)
    model.to(device)
    steps = [0]

    def loss_then_signal(m, *batch, **kw):
        parts = loss_fn(m, *batch, **kw)
        if m.training:
            steps[0] += 1
            if steps[0] == sigint_at:
                signal.raise_signal(signal.SIGINT)  # lands in the middle of the step, as Ctrl-C would
        return parts

    record = H.fit(model, loss_then_signal, (X,), None, cfg, ckpt_path=ckpt, progress=False)
    return model, record


def same_weights(a, b) -> bool:
    return all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def check_resume_and_determinism(device, X, steps: int, work: Path) -> dict:
    cfg = H.TrainConfig(steps=steps, batch_size=64, ckpt_every=max(1, steps // 4))
    reference, _ = train(device, X, cfg)
    again, _ = train(device, X, cfg)
    ckpt = work / "resume.pt"
    ckpt.unlink(missing_ok=True)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        train(device, X, cfg, ckpt, sigint_at=steps // 2 + 1)
        interrupted_at = None
    except KeyboardInterrupt:
        interrupted_at = torch.load(ckpt, map_location="cpu", weights_only=True)["step"]
    finally:
        signal.signal(signal.SIGINT, previous)
    resumed, _ = train(device, X, cfg, ckpt)
    metrics = [H.vae_elbo(m.eval(), X[:200], seed=0) for m in (reference, again)]
    return {"steps": steps, "sigint_in_step": steps // 2 + 1, "checkpoint_step": interrupted_at,
            "resume_gives_the_uninterrupted_weights": interrupted_at is not None and same_weights(reference, resumed),
            "two_runs_give_the_same_weights": same_weights(reference, again),
            "two_runs_give_the_same_fp32_metrics": metrics[0] == metrics[1],
            "neg_elbo": metrics[0]["neg_elbo"]}


def throughput(device, X, steps: int) -> dict:
    """images/s of the CNN-CNN VAE at batch 128 (the report's), after one step of warm-up."""
    out = {}
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and not H.native_bf16(device):
            out[precision] = None
            continue
        train(device, X, H.TrainConfig(steps=1, batch_size=128, precision=precision))  # warm-up: kernels, caches
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        train(device, X, H.TrainConfig(steps=steps, batch_size=128, precision=precision))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out[precision] = round(steps * 128 / (time.perf_counter() - start), 1)
    return out


def notebooks_side_by_side(device, only: list[str], budget: str, work: Path) -> dict:
    """The headline numbers of the notebooks run on ``device`` and on the CPU, with their relative difference."""
    numbers = {}
    for where in dict.fromkeys([str(device), "cpu"]):
        out = work / f"notebooks-{where.replace(':', '-')}"
        times = reproduce(only=only, budget=budget, extra={"device": where}, fig_dir=out / "figures",
                          results_path=out / "metrics.json", runs_dir=out / "runs", out_dir=out / "executed",
                          log_output=False)
        numbers[where] = {"seconds": round(sum(times.values()), 1),
                          "headline": headline(H.read_metrics(out / "metrics.json"))}
    dev, cpu = numbers[str(device)]["headline"], numbers["cpu"]["headline"]
    differences = {path: round(abs(dev[path] - cpu[path]) / max(abs(cpu[path]), 1e-12), 6)
                   for path in cpu if path in dev}
    return {"notebooks": only, "budget": budget, "seconds": {k: v["seconds"] for k, v in numbers.items()},
            "headline": numbers, "largest_relative_difference": max(differences.values(), default=None),
            "relative_differences": differences}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help='"auto" (cuda, then mps, then cpu), "cuda", "mps" or "cpu"')
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check" / "summary.json")
    ap.add_argument("--notebooks", nargs="*", default=["02", "03", "04"])
    ap.add_argument("--tiny", action="store_true", help="synthetic drawings, tiny budget, notebook 03: for the tests")
    args = ap.parse_args(argv)
    device = H.pick_device(args.device)
    work = args.out.parent
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = {"device": device_summary(device)}
    print(json.dumps(summary["device"]), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            os.environ["QUICKDRAW_DIR"] = str(H.write_synthetic_quickdraw(Path(tmp) / "synthetic", 40, 10, seed=0))
        data = H.load_quickdraw(H.resolve_data_dir())
        X = H.to_tensor(data.x_train, device)
        steps = 6 if args.tiny else 60
        summary["resume"] = check_resume_and_determinism(device, X, steps, work)
        summary["throughput_images_per_s"] = {str(device): throughput(device, X, 3 if args.tiny else 50)}
        if device.type != "cpu":
            summary["throughput_images_per_s"]["cpu"] = throughput(torch.device("cpu"), H.to_tensor(data.x_train),
                                                                   50)
        only, budget = (["03"], "tiny") if args.tiny else (args.notebooks, "quick")
        summary["notebooks"] = notebooks_side_by_side(device, only, budget, work)
    r = summary["resume"]
    checks = {"resume": r["resume_gives_the_uninterrupted_weights"],
              "same_weights": r["two_runs_give_the_same_weights"],
              "same_metrics": r["two_runs_give_the_same_fp32_metrics"]}
    summary.update(checks=checks, passed=all(checks.values()), seconds=round(time.perf_counter() - started, 1))
    H.atomic_write_json(args.out, summary)
    print(json.dumps({"checks": checks, "seconds": summary["seconds"], "summary": str(args.out)}))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
