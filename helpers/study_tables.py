"""The report's tables of "Beyond, round 2" (notebooks 09 and 10): the rate-distortion points, the learned priors
against the ex-post mixture, the PixelCNN decoder against the factorized one, and the issue's targets. Each takes
the metrics (results/metrics.json) and returns a Markdown table; ``STUDY_TABLES`` names them for report.md."""

from __future__ import annotations

from .bounds import bits_per_dim
from .tables import SAMPLE_HEADER, md_table, pct_cell, sample_cells, sample_note, sample_rows, spread_cell

__all__ = ["STUDY_TABLES", "TARGETS", "best_rows"]

# The targets (test split, the fixed judge, N = 1,000): (what, metric, best is "min"/"max", target).
TARGETS = (("best sampler of any model: FID", "fid", "min", 60.0),
           ("class-conditional sampler: samples of the requested class", "class_accuracy", "max", 0.90),
           ("class-conditional VAE: label adherence", "adherence", "max", 0.85))


def table_rate_distortion(m: dict) -> str:
    rows = [[p["label"], f"{p['rate']:.1f}", f"{p['distortion']:.1f}", f"{p['neg_elbo']:.1f}", f"{p['iwae']:.1f}",
             p["active_units"], f"{p['knn_accuracy']:.1%}", p["mixture_components"],
             spread_cell(p["samples"], "fid", ".1f"), spread_cell(p["samples"]["mode"], "fid", ".1f")]
            for p in m["priors"]["rate_distortion"].values()]
    return md_table(["KL weight", "rate (KL)", "distortion (rec.)", "-ELBO (β = 1)", "IWAE", "active units",
                     "5-NN accuracy", "mixture components", "mixture samples: FID vs validation", "mode: FID"], rows)


def table_prior_candidates(m: dict) -> str:
    p = m["priors"]
    rows = [[c["label"] + (" (chosen)" if name == p["chosen"] else ""), f"{c['val_neg_elbo']:.2f}",
             f"{c['val_iwae']:.2f}", f"{c['val_kl']:.1f}", c["active_units"]] for name, c in p["candidates"].items()]
    k = next(iter(p["candidates"].values()))["iwae_k"]
    return md_table(["learned prior", "validation -ELBO", f"validation IWAE (k = {k})", "validation KL",
                     "active units"], rows)


def table_prior_bounds(m: dict) -> str:
    rows = []
    for label, t in m["priors"]["models"].items():
        b = t["bounds"]
        mixture = b["iwae_with"].get("mixture")
        rows.append([label, f"{b['neg_elbo']:.2f}", f"{b['kl']:.1f}", f"{b['iwae']:.2f}",
                     "–" if mixture is None else f"{mixture:.2f}", f"{b['active_units']} / {b['latent_dim']}"])
    s = m["priors"]["settings"]
    return md_table(["VAE (test split)", "-ELBO", "KL", f"IWAE, own prior (k = {s['iwae_k']})",
                     "IWAE, ex-post mixture as prior", "active units"], rows)


def table_prior_samples(m: dict) -> str:
    p = m["priors"]
    ref = p["reference"]
    rows = [[ref["sampler"], *sample_cells(m, "priors.reference", ref), f"{ref['inception_score']:.2f}", "–",
             sample_note(m, ref)]]
    rows += [row for label, t in p["models"].items()
             for row in sample_rows(m, label, f"priors.models.{label}.samples", t["samples"])]
    return md_table(["model · sampler", *SAMPLE_HEADER, "Inception-style score", "requested class", "N × draws"], rows)


def table_pixel_bounds(m: dict) -> str:
    x = m["pixel"]
    rows = [[x["labels"][key], f"{b['neg_elbo']:.2f}", f"{b['rec']:.2f}", f"{b['kl']:.2f}", f"{b['iwae']:.2f}",
             f"{bits_per_dim(b['iwae']):.4f}", f"{b['active_units']} / {b['latent_dim']}"]
            for key, b in x["bounds"].items()]
    s = x["settings"]
    return md_table(["VAE (binarized test split)", "-ELBO", "rec.", "KL", f"IWAE (k = {s['iwae_k']}, "
                     f"{s['n_eval']} drawings)", "IWAE, bits/dim", "active units"], rows)


def table_pixel_samples(m: dict) -> str:
    x = m["pixel"]
    ref = x["reference"]
    rows = [[ref["sampler"], *sample_cells(m, "pixel.reference", ref), f"{ref['inception_score']:.2f}", "–",
             sample_note(m, ref)]]
    rows += [row for key, samples in x["samples"].items()
             for row in sample_rows(m, x["labels"][key], f"pixel.samples.{key}", samples)]
    rows += [row for key, c in x["conditional"].items()
             for row in sample_rows(m, c["label"], f"pixel.conditional.{key}",
                                     {"prior": c["prior"], "reconstructions": c["reconstructions"]})]
    return md_table(["model · sampler", *SAMPLE_HEADER, "Inception-style score", "requested class", "N × draws"], rows)


def table_pixel_conditional(m: dict) -> str:
    rows = [[c["label"], pct_cell(c["prior"]["class_accuracy"]), pct_cell(c["adherence"]["adherence"]),
             pct_cell(c["adherence"]["kept_original"]), f"{c['adherence']['n']:,}"]
            for c in m["pixel"]["conditional"].values()]
    return md_table(["conditional VAE", "class-prior samples of the requested class", "label adherence",
                     "still the original class", "relabelled test drawings"], rows)


def _candidates(m: dict):
    """(where, metric record) of every test-split sample row and conditional model of the results."""
    b, p, x = m.get("beyond", {}), m.get("priors", {}), m.get("pixel", {})
    for label, samples in b.get("samples", {}).items():
        yield from ((f"{label} · {s['sampler']}", s) for s in samples.values())
    for c in b.get("conditional", {}).values():
        yield from ((f"{c['label']} · {s['sampler']}", s) for s in c.get("samples", {}).values())
        yield f"{c['label']}", c
    for label, t in p.get("models", {}).items():
        yield from ((f"{label} · {s['sampler']}", s) for s in t["samples"].values())
    for key, samples in x.get("samples", {}).items():
        yield from ((f"{x['labels'][key]} · {s['sampler']}", s) for s in samples.values())
    for c in x.get("conditional", {}).values():
        yield f"{c['label']} · {c['prior']['sampler']}", c["prior"]
        yield c["label"], c["adherence"]


def best_rows(m: dict) -> dict:
    """For each target of ``TARGETS``: (where, value) of the best sampler or model of the results, mode-decoded rows
    included, reconstructions and real drawings left out (they are bounds and references, not samplers)."""
    best = {}
    for what, key, direction, _ in TARGETS:
        found = []
        for where, rec in _candidates(m):
            if "reconstructions" in where or "real" in where:
                continue
            for name, r in ((where, rec), (where + " (mode)", rec.get("mode") or {})):
                if r.get(key) is not None:
                    found.append((name, float(r[key])))
        best[what] = (min if direction == "min" else max)(found, key=lambda t: t[1]) if found else None
    return best


def table_targets(m: dict) -> str:
    rows = []
    for (what, key, direction, target), found in zip(TARGETS, best_rows(m).values()):
        fmt = (lambda v: f"{v:.1f}") if key == "fid" else (lambda v: f"{v:.1%}")
        if found is None:
            rows.append([what, fmt(target), "–", "–", "not measured"])
            continue
        met = found[1] <= target if direction == "min" else found[1] >= target
        rows.append([what, ("≤ " if direction == "min" else "≥ ") + fmt(target), fmt(found[1]), found[0],
                     "met" if met else f"missed by {fmt(abs(found[1] - target))}"])
    return md_table(["target (test split, N = 1,000 per draw)", "target", "best", "where", "verdict"], rows)


STUDY_TABLES = {"rate-distortion": table_rate_distortion, "prior-candidates": table_prior_candidates,
                "prior-bounds": table_prior_bounds, "prior-samples": table_prior_samples,
                "pixel-bounds": table_pixel_bounds, "pixel-samples": table_pixel_samples,
                "pixel-conditional": table_pixel_conditional, "targets": table_targets}
