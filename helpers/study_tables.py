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


def _standard_first(models: dict) -> dict:
    """The models of the priors section with the N(0, I) VAE ("standard") first."""
    return dict(sorted(models.items(), key=lambda kv: kv[0] != "standard"))


def table_prior_bounds(m: dict) -> str:
    rows = []
    for t in _standard_first(m["priors"]["models"]).values():
        b = t["bounds"]
        mixture = b["iwae_with"].get("mixture")
        rows.append([t["label"], f"{b['neg_elbo']:.2f}", f"{b['kl']:.1f}", f"{b['iwae']:.2f}",
                     "–" if mixture is None else f"{mixture:.2f}", f"{b['active_units']} / {b['latent_dim']}"])
    s = m["priors"]["settings"]
    return md_table(["VAE (test split)", "-ELBO", "KL", f"IWAE, own prior (k = {s['iwae_k']})",
                     "IWAE, ex-post mixture as prior", "active units"], rows)


def _reference_row(m: dict, section: str) -> list:
    """The real drawings' row of a sample table, at ``section``.reference."""
    ref = m[section]["reference"]
    return [ref["sampler"], *sample_cells(m, f"{section}.reference", ref), f"{ref['inception_score']:.2f}", "–",
            sample_note(m, ref)]


SAMPLES_HEADER = ["model · sampler", *SAMPLE_HEADER, "Inception-style score", "requested class", "N × draws"]


def table_prior_samples(m: dict) -> str:
    rows = [_reference_row(m, "priors")]
    rows += [row for key, t in _standard_first(m["priors"]["models"]).items()
             for row in sample_rows(m, t["label"], f"priors.models.{key}.samples", t["samples"])]
    return md_table(SAMPLES_HEADER, rows)


PIXEL_ORDER = ("factorized", "pixel", "local", "chosen", "pixel_conditional", "local_conditional")


def _in_order(records: dict) -> dict:
    """Notebook 10's models in the order of ``PIXEL_ORDER`` (factorized, then the PixelCNN decoders)."""
    return dict(sorted(records.items(), key=lambda kv: PIXEL_ORDER.index(kv[0]) if kv[0] in PIXEL_ORDER else 99))


def table_pixel_bounds(m: dict) -> str:
    x = m["pixel"]
    rows = [[x["labels"][key], f"{b['neg_elbo']:.2f}", f"{b['rec']:.2f}", f"{b['kl']:.2f}", f"{b['iwae']:.2f}",
             f"{bits_per_dim(b['iwae']):.4f}", f"{b['active_units']} / {b['latent_dim']}"]
            for key, b in _in_order(x["bounds"]).items()]
    s = x["settings"]
    return md_table(["VAE (binarized test split)", "-ELBO", "rec.", "KL", f"IWAE (k = {s['iwae_k']}, "
                     f"{s['n_eval']} drawings)", "IWAE, bits/dim", "active units"], rows)


def table_pixel_samples(m: dict) -> str:
    x = m["pixel"]
    rows = [_reference_row(m, "pixel")]
    rows += [row for key, samples in _in_order(x["samples"]).items()
             for row in sample_rows(m, x["labels"][key], f"pixel.samples.{key}", samples)]
    rows += [row for key, c in _in_order(x["conditional"]).items()
             for row in sample_rows(m, c["label"], f"pixel.conditional.{key}",
                                     {"prior": c["prior"], "reconstructions": c["reconstructions"]})]
    return md_table(SAMPLES_HEADER, rows)


def table_pixel_conditional(m: dict) -> str:
    rows = [[c["label"], pct_cell(c["prior"]["class_accuracy"]), pct_cell(c["adherence"]["adherence"]),
             pct_cell(c["adherence"]["kept_original"]), f"{c['adherence']['n']:,}"]
            for c in _in_order(m["pixel"]["conditional"]).values()]
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
    for t in p.get("models", {}).values():
        yield from ((f"{t['label']} · {s['sampler']}", s) for s in t["samples"].values())
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
        gap = (lambda d: f"{d:.1f}") if key == "fid" else (lambda d: f"{100 * d:.1f} points")
        if found is None:
            rows.append([what, fmt(target), "–", "–", "not measured"])
            continue
        met = found[1] <= target if direction == "min" else found[1] >= target
        rows.append([what, ("≤ " if direction == "min" else "≥ ") + fmt(target), fmt(found[1]), found[0],
                     "met" if met else f"missed by {gap(abs(found[1] - target))}"])
    return md_table(["target (test split, N = 1,000 per draw)", "target", "best", "where", "verdict"], rows)


STUDY_TABLES = {"rate-distortion": table_rate_distortion, "prior-candidates": table_prior_candidates,
                "prior-bounds": table_prior_bounds, "prior-samples": table_prior_samples,
                "pixel-bounds": table_pixel_bounds, "pixel-samples": table_pixel_samples,
                "pixel-conditional": table_pixel_conditional, "targets": table_targets}
