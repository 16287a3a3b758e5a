"""The tables of report.md (and README.md): each a function of the results (helpers.results) that returns a
Markdown table, named in ``TABLES`` by the name of its ``<!-- table:NAME -->`` marker (rendered by
helpers.report.render).
A cell shows the run's number and, once `make seeds` has run, the seeds' mean ± sd; sample metrics also show
their sampling spread over repeated draws."""

from __future__ import annotations

from ..results import CLAIMS, JUDGE_CLAIMS, bits_per_dim, flatten_stats, lookup, spread_cell
from ..studies.registry import runs_of

__all__ = ["TABLES", "SAMPLE_HEADER", "md_table", "pct_cell", "sample_cells", "sample_note", "sample_rows",
           "form_label", "describe"]


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _cell(m: dict, path: str, spec: str) -> str:
    """The seed-0 value at ``path`` formatted with ``spec``, followed, when ``make seeds`` has run, by the mean
    and standard deviation over the seeds, and by n where fewer seeds than the section's have the number."""
    return format(lookup(m, path), spec) + _seed_bracket(m, path, spec)


def _seed_bracket(m: dict, path: str, spec: str) -> str:
    """" (mean ± sd over the seeds[, n=...])" of the number at ``path``, or "" before ``make seeds``."""
    try:
        stats = lookup(m, "seeds.stats." + path)
    except KeyError:
        return ""
    if stats["n"] < 2:
        return ""
    fewer = f", n={stats['n']}" if stats["n"] < len(m["seeds"]["seeds"]) else ""
    return f" ({format(stats['mean'], spec)} ± {format(stats['sd'], spec.lstrip('+'))}{fewer})"


def _spread_note(m: dict) -> str:
    """What a table cell's bracket means, for a table's header; empty before ``make seeds``."""
    return f" (mean ± sd over {len(m['seeds']['seeds'])} seeds)" if "seeds" in m else ""


# Words for the results' section and metric keys, in the tables that name a number by where it lives.
SECTION_WORDS = {"lstm_ae": "LSTM AE", "cnn_ae": "CNN AE", "classifier": "judge", "reference_real": "real drawings"}
METRIC_WORDS = {"test_mse": "test MSE", "neg_elbo": "test −ELBO", "iwae": "IWAE bound", "fid": "FID", "kid": "KID",
                "class_accuracy": "samples of the requested class", "adherence": "label adherence",
                "test_accuracy": "test accuracy", "knn5_accuracy": "5-NN accuracy", "silhouette": "silhouette",
                "inception_score": "Inception-style score", "accuracy": "accuracy"}


def describe(m: dict, path: str) -> str:
    """A number of the results named in words: "CNN-CNN VAE · mixture: FID (mode-decoded)" for
    "beyond.samples.vae_cnn.mixture.mode.fid". The names are the labels the results hold along ``path``: a
    model's "label", then a sampler's "sampler"; the metric's words come from ``METRIC_WORDS``."""
    keys, node, names, mode = path.split("."), m, [], False
    labels = _labels_by_key(m)
    for i, key in enumerate(keys[:-1]):
        node = node.get(key) if isinstance(node, dict) else None
        if key == "mode":
            mode = True
        elif not isinstance(node, dict):
            raise KeyError(f"{path}: no results at {'.'.join(keys[:i + 1])}")
        elif "label" in node:  # a model (its sample record may also name its sampler: the model's name wins)
            names = [node["label"]]
        elif "sampler" in node:
            names.append(node["sampler"])
        elif key in labels:  # a model's records kept apart from its label, e.g. beyond.samples.<run name>
            names = [labels[key]]
        elif key in SECTION_WORDS:
            names = [SECTION_WORDS[key]]
    what = METRIC_WORDS.get(keys[-1], keys[-1].replace("_", " "))
    return f"{' · '.join(names) or keys[0]}: {what}{' (mode-decoded)' if mode else ''}"


def _labels_by_key(node, found: dict | None = None) -> dict:
    """{key: label} of every record in the results that has a "label" (the first one seen for each key)."""
    found = {} if found is None else found
    if isinstance(node, dict):
        for key, child in node.items():
            if isinstance(child, dict):
                if isinstance(child.get("label"), str):
                    found.setdefault(key, child["label"])
                _labels_by_key(child, found)
    return found


def _chain(m: dict, chain: list[str]) -> str:
    return " < ".join(describe(m, p) for p in chain)


def table_seeds(m: dict) -> str:
    """The report's comparisons, seed by seed (helpers.results.CLAIMS)."""
    rows = []
    for name, chain in CLAIMS.items():
        c = m["seeds"]["claims"][name]
        rows.append([_chain(m, chain), f"{c['holds']} of {c['n']}",
                     ", ".join(map(str, c["fails_in_seeds"])) or "–"])
    return md_table(["comparison (lower first)", "holds in seeds", "fails in seed"], rows)


def table_judge_claims(m: dict) -> str:
    """The report's comparisons that the judge decides, under each judge (seed 0's models; helpers.pipeline.reruns),
    and whether each judge's validation score picks the same conditional design as judge 0's."""
    rows = []
    for name, c in m["judges"]["claims"].items():
        chain = {**CLAIMS, **JUDGE_CLAIMS}[name]
        if c["n"]:
            rows.append([_chain(m, chain), f"{c['holds']} of {c['n']}",
                         ", ".join(map(str, c["fails_in_seeds"])) or "–"])
    chosen = m["judges"].get("chosen", {})
    if chosen:
        first = chosen.get("0")
        other = [j for j, name in chosen.items() if name != first]
        rows.append(["the conditional design chosen on validation is judge 0's", f"{len(chosen) - len(other)} of "
                     f"{len(chosen)}", ", ".join(other) or "–"])
    kept = m["judges"].get("kept", {})
    if kept:
        other = [j for j, choice in kept.items() if choice != kept.get("0")]
        rows.append(["the free-bits model and sampler kept on validation are judge 0's", f"{len(kept) - len(other)} of "
                     f"{len(kept)}", ", ".join(other) or "–"])
    return md_table(["comparison (lower first)", "holds under judges", "fails under judge"], rows)


def table_judges(m: dict) -> str:
    """Both spreads of the numbers a judge gives: over judges (seed 0's models scored by evaluation classifiers of
    several seeds) and over seeds (each seed's models scored by the one judge)."""
    judged = {p: x for p, x in flatten_stats(m["judges"]["stats"]).items()
              if p.split(".")[-1] in ("fid", "class_accuracy", "accuracy", "adherence") and ".mode." not in p}
    seeds = flatten_stats(m["seeds"]["stats"]) if "seeds" in m else {}

    def spread(stats: dict | None, spec: str) -> str:
        if not stats or stats["sd"] is None:
            return "–"
        return f"{format(stats['mean'], spec)} ± {format(stats['sd'], spec)}"

    rows = []
    for path, x in judged.items():
        spec = ".1f" if path.endswith("fid") else ".1%"
        rows.append([describe(m, path), format(x["seed0"], spec), spread(x, spec), spread(seeds.get(path), spec)])
    n_judges, n_seeds = len(m["judges"]["judges"]), len(m["seeds"]["seeds"]) if "seeds" in m else 0
    return md_table(["number", "the report's (judge 0, seed 0)", f"over {n_judges} judges (seed 0's models)",
                     f"over {n_seeds} seeds (judge 0)"], rows)


LITERATURE = [  # dynamically binarized MNIST, test NLL by IWAE with k = 5,000 (Burda et al., 2016, Table 1)
    ("VAE, 1 stochastic layer (Burda et al., 2016), binarized MNIST", 86.76),
    ("IWAE, k = 50, 1 stochastic layer (Burda et al., 2016), binarized MNIST", 84.78),
]


def table_likelihood(m: dict) -> str:
    """The binarized VAE's test bounds and NLL in nats and bits per dimension, beside the literature's binarized-MNIST
    numbers (context, not a like-for-like comparison: other drawings)."""
    b = m["likelihood"]["binarized"]
    rows = [[f"{b['label']} (this report: binarized QuickDraw sample, {b['nll_n']} test drawings)",
             f"{b['neg_elbo']:.2f}", f"{b['iwae']:.2f}", f"{b['nll']:.2f}", f"{bits_per_dim(b['nll']):.4f}",
             f"{b['active_units']} / {b.get('latent_dim', len(b['kl_per_dim']))}"]]
    rows += [[name, "–", "–", f"{nll:.2f}", f"{bits_per_dim(nll):.4f}", "–"] for name, nll in LITERATURE]
    k = m["likelihood"]["settings"]["iwae_k"]
    return md_table(["model", "test -ELBO", f"IWAE (k={k})", f"test NLL (IWAE, k={b['nll_k']:,})", "bits/dim",
                     "active units"], rows)


def table_iwae_curve(m: dict) -> str:
    """The IWAE bound against k of each VAE (mean ± sd over repeated estimates), and its fall from k = 1."""
    curves, binarized = m["likelihood"]["curves"], m["likelihood"]["binarized"]["label"]
    floor = m["likelihood"]["entropy_floor_curve"]  # of the curve's grey drawings; 0 for their binarized copies
    ks = sorted(next(iter(curves.values()))["by_k"], key=int)
    rows = []
    for x in curves.values():
        c = x["by_k"]
        rows.append([x["label"], *(f"{c[k]['mean']:.2f} ± {c[k]['sd']:.2f}" for k in ks),
                     f"{c[ks[0]]['mean'] - c[ks[-1]]['mean']:.2f}",
                     f"{c[ks[-1]]['mean'] - (0.0 if x['label'] == binarized else floor):.1f}"])
    return md_table(["model", *(f"k = {int(k):,}" for k in ks), f"fall from k = 1 to {int(ks[-1]):,}",
                     f"k = {int(ks[-1]):,} above the floor"], rows)


def table_arithmetic_adherence(m: dict) -> str:
    """Label adherence of both ways of changing a drawing's class (notebook 08)."""
    rows = [[a["label"], pct_cell(a["adherence"]), pct_cell(a["kept_original"]), f"{a['n']:,}"]
            for a in m["latent_arithmetic"]["adherence"].values()]
    return md_table(["model, how the class is changed", "label adherence", "still the original class",
                     "relabelled test drawings"], rows)


def table_precision(m: dict) -> str:
    """The headline numbers of the fp32 run beside those of the rerun at another precision (helpers.pipeline.reruns)."""
    p = m["precision"]
    other = p["precision"]
    rows = []

    def walk(node, path):
        if isinstance(node, dict) and "fp32" in node:
            spec = ".4f" if abs(node["fp32"]) < 1 else ".2f"
            change = "–" if node["change"] is None else f"{node['change']:+.2%}"
            rows.append([describe(m, ".".join(path)), format(node["fp32"], spec), format(node[other], spec), change])
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, path + [key])

    walk({k: v for k, v in p.items() if k not in ("precision", "budget")}, [])
    return md_table(["number", "fp32", other, "change"], rows)


def table_data(m: dict) -> str:
    d = m["data"]
    rows = [[name, d["train_per_class"][i], d["test_per_class"][i], f"{d['ink_fraction_mean_per_class'][i]:.3f}"]
            for i, name in enumerate(d["class_names"])]
    rows.append(["**all**", d["n_train"], d["n_test"], f"{d['ink_fraction_mean']:.3f}"])
    return md_table(["class", "train", "test", "mean fraction of lit pixels (train)"], rows)


def table_md5(m: dict) -> str:
    return md_table(["file", "md5"], [[f"`{k}`", f"`{v}`"] for k, v in sorted(m["data"]["md5"].items())])


def table_autoencoders(m: dict) -> str:
    """Every registered autoencoder that the results hold (a newly registered one appears after its notebook ran)."""
    rows = []
    for run in (run for run in runs_of("autoencoder") if run.name in m):
        a = m[run.name]
        rows.append([run.label, f"{a['params']:,}", a["latent_dim"], f"{a['steps']:,}",
                     _cell(m, f"{run.name}.test_mse", ".4f"),
                     f"{a['train_mse']:.4f}", f"{a['untrained_test_mse']:.4f}", f"{a['mean_image_test_mse']:.4f}",
                     _minutes(a["wall_time_s"]), f"{a['images_per_s']:.0f}"])
    return md_table(["model", "parameters", "latent", "steps", "test MSE" + _spread_note(m), "train MSE",
                     "untrained test MSE", "mean-image test MSE", "training time", "images/s"], rows)


def table_vae_bounds(m: dict) -> str:
    """The VAE bounds, each also as its excess over the data's entropy floor (``helpers.entropy_floor``, the part
    no Bernoulli decoder can remove from a grayscale target) and in bits per dimension (nats / (784 ln 2))."""
    v, floor = m["vae"], m["data"].get("entropy_floor_test")
    k = v["settings"]["iwae_k"]

    def excess_and_bits(x: dict) -> list[str]:
        bits = f"{bits_per_dim(x['neg_elbo']):.3f} / {bits_per_dim(x['iwae']):.3f}"
        return ["–" if floor is None else f"{x['neg_elbo'] - floor:.1f} / {x['iwae'] - floor:.1f}", bits]

    rows = [[x["label"], _cell(m, f"vae.models.{name}.neg_elbo", ".2f"), f"{x['rec']:.2f}", f"{x['kl']:.2f}",
             _cell(m, f"vae.models.{name}.iwae", ".2f"), *excess_and_bits(x),
             f"{x['active_units']} / {v['settings']['latent_dim']}", f"{x['params']:,}", _minutes(x["wall_time_s"])]
            for name, x in v["models"].items()]
    return md_table(["model", "test -ELBO" + _spread_note(m), "reconstruction", "KL", f"IWAE bound (k={k})",
                     "above the floor (-ELBO / IWAE)", "bits/dim (-ELBO / IWAE)", "active units", "parameters",
                     "training time"], rows)


def sample_cells(m: dict, path: str, x: dict) -> list[str]:
    """FID (± its sampling spread, then the seeds' mean ± sd), KID (± its sampling spread), and the same two of the
    mode-decoded drawings: the cells of one row of a sample table, for the metrics ``x`` found at ``path``."""
    cells = [spread_cell(x, "fid", ".1f") + _seed_bracket(m, f"{path}.fid", ".1f"), spread_cell(x, "kid", ".1f")]
    mode = x.get("mode")
    return cells + (["–", "–"] if mode is None else [spread_cell(mode, "fid", ".1f"), spread_cell(mode, "kid", ".1f")])


# Every drawing is scored against the test drawings in its own form (helpers.evaluation.judging.JudgedReference):
# a decoder's grey means against the grey drawings, binary draws (marked so) against the drawings binarized by one
# draw, and the same codes decoded to each pixel's mode against the drawings thresholded at 0.5.
SAMPLE_HEADER = ["FID vs test in the same form (± sd over the draws)", "KID", "mode-decoded: FID vs thresholded test",
                 "mode-decoded: KID"]


def form_label(label: str, x: dict) -> str:
    """A sample row's label, marked when its drawings are binary draws (scored against binarized test drawings)."""
    return f"{label} (binary draws)" if x.get("reference") == "test drawings binarized by one draw" else label


def sample_note(m: dict, x: dict) -> str:
    """N per draw × draws: what the "± sd" of a sample row is taken over."""
    return f"{x['n']} × {x.get('draws', 1)}"


def table_vae_samples(m: dict) -> str:
    v = m["vae"]
    ref = v["reference_real"]
    rows = [["real training drawings (reference)", *sample_cells(m, "vae.reference_real", ref),
             f"{ref['inception_score']:.2f}", sample_note(m, ref)]]
    rows += [[x["label"], *sample_cells(m, f"vae.models.{name}", x), f"{x['inception_score']:.2f}", sample_note(m, x)]
             for name, x in v["models"].items()]
    return md_table(["samples", SAMPLE_HEADER[0] + _spread_note(m), *SAMPLE_HEADER[1:], "Inception-style score (1-5)",
                     "N × draws"], rows)


def table_latent(m: dict) -> str:
    rows = [[x["label"], x["dim"], _cell(m, f"latent.models.{name}.knn5_accuracy", ".3f"),
             _cell(m, f"latent.models.{name}.silhouette", "+.3f")] for name, x in m["latent"]["models"].items()]
    return md_table(["model", "latent dim", "5-NN accuracy (test by train)" + _spread_note(m), "silhouette (classes)"],
                    rows)


def table_timings(m: dict) -> str:
    """Each notebook's wall time and, where the run recorded it, the part spent training (the rest: evaluation,
    figures, kernel start), with the machine it ran on and what else ran there: the cores' worth of CPU other
    processes used while the notebook ran (Linux), and the 1-minute load average just before it started (which
    includes the run's own previous notebook). A time means little without them."""
    t, training, machines = m["timings"], m.get("training_times", {}), m.get("timings_machine", {})

    def split(name: str) -> list[str]:
        return [_minutes(training[name]), _minutes(t[name] - training[name])] if name in training else ["–", "–"]

    def machine(name: str) -> list[str]:
        x = machines.get(name)
        if x is None:
            return ["not recorded", "–", "–"]
        load = "–" if x.get("load_average") is None else f"{x['load_average']:.2f}"
        other = "–" if x.get("other_processes_cores") is None else f"{x['other_processes_cores']:.2f}"
        return [f"{x['cpu']}, {x['logical_cpus']} logical CPUs, {x['torch_threads']} threads, {x['device']}", other,
                load]

    rows = [[f"`{name}.ipynb`", _minutes(s), *split(name), *machine(name)] for name, s in sorted(t.items())]
    totals = [_minutes(sum(training.values())), _minutes(sum(t[n] - training[n] for n in training))] if training \
        else ["–", "–"]
    rows.append(["**total**", _minutes(sum(t.values())), *totals, "", "", ""])
    return md_table(["notebook", "wall time", "training", "the rest", "machine", "other processes (cores)",
                     "load average before"], rows)


def table_run_total(m: dict) -> str:
    """One row: the whole run's wall time, its training (over the notebooks whose training the run recorded) and
    the rest, and the machine(s) its notebooks ran on."""
    t, training, machines = m["timings"], m.get("training_times", {}), m.get("timings_machine", {})
    trained = sum(training.get(n, 0.0) for n in t)
    recorded = sum(n in training for n in t)
    of = "" if recorded == len(t) else f" ({recorded} of {len(t)} notebooks recorded)"
    names = sorted({f"{x['cpu']}, {x['torch_threads']} threads, {x['device']}" for x in machines.values()})
    missing = len(t) - sum(n in machines for n in t)
    where = "; ".join(names) + (f"; not recorded for {missing} notebook(s)" if missing else "") if names \
        else "not recorded"
    return md_table(["notebooks", "wall time", "training", "the rest", "machine"],
                    [[str(len(t)), _minutes(sum(t.values())), _minutes(trained) + of,
                      _minutes(sum(t.values()) - trained), where]])


def pct_cell(x) -> str:
    return "–" if x is None else f"{x:.1%}"


SAMPLER_ORDER = ("prior", "mixture", "class mixture", "reconstructions")  # within a model, in this order


def sample_rows(m: dict, label: str, path: str, samples: dict) -> list[list]:
    """One row per sampler of one model: ``samples`` is {sampler: metrics}, found at ``path`` in the results."""
    rows = []
    for sampler in sorted(samples, key=SAMPLER_ORDER.index):
        x = samples[sampler]
        accuracy = "–" if x.get("class_accuracy") is None else _cell(m, f"{path}.{sampler}.class_accuracy", ".1%")
        rows.append([form_label(f"{label} · {x['sampler']}", x), *sample_cells(m, f"{path}.{sampler}", x),
                     f"{x['inception_score']:.2f}", accuracy, sample_note(m, x)])
    return rows


def table_beyond_samples(m: dict) -> str:
    """Where samples can come from besides N(0, I), for the unconditional VAEs: the ex-post mixtures and the test
    reconstructions (the prior rows are section 5's table), and, when notebook 09 has run, the learned prior's
    model with its own prior and the ex-post mixtures (its N(0, I) twin is the CNN-CNN VAE above)."""
    b = m["beyond"]
    rows = [row for name in sorted(b["samples"])
            for row in sample_rows(m, b["unconditional"][name]["label"], f"beyond.samples.{name}",
                                   {k: v for k, v in b["samples"][name].items() if k != "prior"})]
    if "priors" in m:
        rows += [row for key, t in m["priors"]["models"].items() if key != "standard"
                 for row in sample_rows(m, t["label"], f"priors.models.{key}.samples", t["samples"])]
    return md_table(["model · sampler", SAMPLE_HEADER[0] + _spread_note(m), *SAMPLE_HEADER[1:],
                     "Inception-style score", "requested class" + _spread_note(m), "N × draws"], rows)


def table_conditional_samples(m: dict) -> str:
    """The samples of both conditional designs: the chosen one's prior, class mixture and reconstructions, the
    course recipe's class mixture and reconstructions (its prior samples are section 5's table)."""
    b = m["beyond"]
    rows = [row for key in sorted(b["conditional"])
            for row in sample_rows(m, b["conditional"][key]["label"], f"beyond.conditional.{key}.samples",
                                   {k: v for k, v in b["conditional"][key]["samples"].items()
                                    if not (k == "prior" and key == "course recipe")})]
    return md_table(["conditional VAE · sampler", SAMPLE_HEADER[0] + _spread_note(m), *SAMPLE_HEADER[1:],
                     "Inception-style score", "requested class" + _spread_note(m), "N × draws"], rows)


def table_beyond_mixtures(m: dict) -> str:
    rows = []
    for x in m["beyond"]["unconditional"].values():
        k, kc = x["mixture_components"], x["class_mixture_components"]
        rows.append([x["label"], f"{x['val_neg_elbo']:.1f}", k, f"{x['val_loglik'][str(k)]:.1f}", kc,
                     f"{x['val_loglik_per_class'][str(kc)]:.1f}"])
    return md_table(["VAE", "validation -ELBO", "mixture: components", "validation log-lik (nats/code)",
                     "class mixture: components per class", "validation log-lik (nats/code)"], rows)


def table_beyond_candidates(m: dict) -> str:
    b = m["beyond"]
    rows = [[("**" + x["label"] + "** (chosen)") if name == b["chosen"] else x["label"], f"{x['val_neg_elbo']:.1f}",
             pct_cell(x["val_adherence"]), pct_cell(x["class_accuracy"])] for name, x in b["candidates"].items()]
    return md_table(["design (trained without the validation part)", "validation -ELBO", "label adherence",
                     "prior samples of the requested class"], rows)


def table_beyond_conditional(m: dict) -> str:
    b, floor = m["beyond"], m["data"].get("entropy_floor_test")
    rows = []
    for key, x in b["conditional"].items():
        above = "–" if floor is None else f"{x['neg_elbo'] - floor:.1f} / {x['iwae'] - floor:.1f}"
        rows.append([x["label"], _cell(m, f"beyond.conditional.{key}.neg_elbo", ".1f"),
                     _cell(m, f"beyond.conditional.{key}.iwae", ".1f"), above,
                     _cell(m, f"beyond.conditional.{key}.adherence", ".1%"),
                     _cell(m, f"beyond.conditional.{key}.samples.prior.class_accuracy", ".1%")])
    return md_table(["conditional VAE (whole training split)", "test -ELBO" + _spread_note(m), "IWAE",
                     "above the floor (-ELBO / IWAE)", "label adherence", "prior samples of the requested class"],
                    rows)


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


def _reference_rows(m: dict, section: str) -> list[list]:
    """The real drawings' rows of a sample table, at ``section``.reference: the grey drawings (and, under
    "mode-decoded", the same thresholded), then, where the results hold it, the same drawings binarized by one draw,
    the reference of binary draws."""
    ref = m[section]["reference"]
    rows = [[ref["sampler"], *sample_cells(m, f"{section}.reference", ref), f"{ref['inception_score']:.2f}", "–",
             sample_note(m, ref)]]
    if "drawn" in ref:
        d = ref["drawn"]
        rows.append(["real training drawings, binarized by one draw (reference of binary draws)",
                     *sample_cells(m, f"{section}.reference.drawn", d), f"{d['inception_score']:.2f}", "–",
                     sample_note(m, d)])
    return rows


SAMPLES_HEADER = ["model · sampler", *SAMPLE_HEADER, "Inception-style score", "requested class", "N × draws"]


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
    rows = _reference_rows(m, "pixel")
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


def table_vqvae_samples(m: dict) -> str:
    """The VQ-VAE's samples and reconstructions (notebook 11) beside real drawings and today's best sampler, the
    chosen conditional design's class mixture (section 6.2), every drawing scored against the test split in its own
    form; the requested-class column of real drawings is the judge's accuracy on them."""
    v, chosen = m["vqvae"], m["beyond"]["conditional"]["chosen"]
    ref = v["reference"]
    rows = [[ref["sampler"], *sample_cells(m, "vqvae.reference", ref), f"{ref['inception_score']:.2f}",
             _cell(m, "vqvae.reference.class_accuracy", ".1%"), sample_note(m, ref)]]
    rows += sample_rows(m, chosen["label"], "beyond.conditional.chosen.samples",
                        {"class mixture": chosen["samples"]["class mixture"]})
    rows += sample_rows(m, v["label"], "vqvae.samples", v["samples"])
    return md_table(["model · sampler", SAMPLE_HEADER[0] + _spread_note(m), *SAMPLE_HEADER[1:],
                     "Inception-style score", "requested class", "N × draws"], rows)


def table_vqvae_validation(m: dict) -> str:
    """Notebook 11's choice on the validation split: the VQ-VAE and today's best sampler, both trained without the
    validation part, their samples against the validation drawings (the lower mode-decoded FID is kept)."""
    v = m["vqvae"]
    rows = [[label + (" (kept)" if label == v["kept"] else ""), spread_cell(x, "fid", ".1f"),
             spread_cell(x["mode"], "fid", ".1f"), pct_cell(x.get("class_accuracy")),
             pct_cell(x["mode"].get("class_accuracy")), sample_note(m, x)]
            for label, x in v["validation"].items()]
    return md_table(["model · sampler (trained without the validation part)", "FID vs validation (grey)",
                     "mode-decoded: FID vs thresholded validation", "requested class (grey)",
                     "requested class (mode-decoded)", "N × draws"], rows)


def table_free_bits_samples(m: dict) -> str:
    """The free-bits model's samples and reconstructions (notebook 12) beside real drawings binarized by one draw and
    the best binary sampler before it, notebook 10's local PixelCNN under the class prior (the same model without free
    bits): binary draws, each against the test drawings binarized by one draw; the requested-class column of real
    drawings is the judge's accuracy on them."""
    f = m["free_bits"]
    drawn = f["reference"]["drawn"]
    rows = []
    if "pixel" in m:
        local = m["pixel"]["conditional"]["local_conditional"]
        rows += sample_rows(m, local["label"], "pixel.conditional.local_conditional", {"prior": local["prior"]})
    rows += sample_rows(m, f["label"], "free_bits.samples", f["samples"])
    rows = [["real training drawings, binarized by one draw (reference)",
             *sample_cells(m, "free_bits.reference.drawn", drawn)[:2], f"{drawn['inception_score']:.2f}",
             _cell(m, "free_bits.reference.drawn.class_accuracy", ".1%"), sample_note(m, drawn)]] + [
        [row[0].removesuffix(" (binary draws)"), *row[1:3], *row[5:]] for row in rows]  # no mode-decoded columns
    return md_table(["model · sampler (binary draws)", "FID vs test binarized by one draw (± sd over the draws)", "KID",
                     "Inception-style score", "requested class", "N × draws"], rows)


def table_free_bits_validation(m: dict) -> str:
    """Notebook 12's choice on the validation split: each free-bits candidate (trained without the validation
    part), its bound and KL on the validation drawings, and the FID and requested class of its binary draws from
    the class prior and from a per-class mixture of its codes against the validation drawings binarized by one
    draw (mean ± sd over the draws); the lowest mean FID is kept."""
    f = m["free_bits"]
    rows = []
    for name, c in f["validation"].items():
        cells = [f"{c['free_bits']:g}", f"{c['neg_elbo']:.1f}", f"{c['kl']:.1f}", f"{c['active_units']}"]
        for sampler in ("prior", "class mixture"):
            x = c["samples"][sampler]
            kept = " (kept)" if (name, sampler) == (f["kept"]["run"], f["kept"]["sampler"]) else ""
            cells += [spread_cell(x, "fid", ".1f") + kept, pct_cell(x.get("class_accuracy"))]
        rows.append(cells + [sample_note(m, c["samples"]["prior"])])
    return md_table(["free bits λ (nats per dimension)", "validation −ELBO", "KL", "active units",
                     "class prior: FID vs validation", "class prior: requested class", "class mixture: FID",
                     "class mixture: requested class", "N × draws"], rows)


_STUDY_TABLES = {"rate-distortion": table_rate_distortion, "prior-candidates": table_prior_candidates,
                "prior-bounds": table_prior_bounds,
                "pixel-bounds": table_pixel_bounds, "pixel-samples": table_pixel_samples,
                "pixel-conditional": table_pixel_conditional, "vqvae-samples": table_vqvae_samples,
                "vqvae-validation": table_vqvae_validation, "free-bits-samples": table_free_bits_samples,
                "free-bits-validation": table_free_bits_validation}


TABLES = {"data": table_data, "md5": table_md5, "autoencoders": table_autoencoders,
          "vae-bounds": table_vae_bounds, "vae-samples": table_vae_samples,
          "latent": table_latent, "timings": table_timings, "run-total": table_run_total,
          "beyond-samples": table_beyond_samples,
          "conditional-samples": table_conditional_samples,
          "beyond-mixtures": table_beyond_mixtures, "beyond-candidates": table_beyond_candidates,
          "beyond-conditional": table_beyond_conditional, "seeds": table_seeds,
          "precision": table_precision, "judges": table_judges,
          "judge-claims": table_judge_claims, "likelihood": table_likelihood, "iwae-curve": table_iwae_curve,
          "arithmetic-adherence": table_arithmetic_adherence, **_STUDY_TABLES}
