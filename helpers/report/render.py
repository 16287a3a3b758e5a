"""The report: the tables (helpers.report.tables) and numbers of report.md (and README.md),
rendered from the results file (helpers.results) between ``<!-- table:NAME -->`` and ``<!-- /table -->`` markers."""

from __future__ import annotations

import re
from pathlib import Path

from ..results import lookup, read_metrics
from .tables import TABLES

__all__ = ["TABLE_RE", "VALUE_RE", "render_report"]

# ---------------------------------------------------------------------------------------------------
# Rendering report.md. Tables sit between ``<!-- table:NAME -->`` and ``<!-- /table -->``; single numbers
# in the prose between ``<!-- value:dotted.key:FORMAT -->`` and ``<!-- /value -->``. Rendering replaces only
# what lies between markers, so it is idempotent and the prose around it is never touched.
# ---------------------------------------------------------------------------------------------------

TABLE_RE = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)
VALUE_RE = re.compile(r"(<!-- value:(?P<key>[^:<>\n]+?)(?::(?P<fmt>[^ ]*?))? -->)(?P<body>.*?)(<!-- /value -->)", re.S)


def fmt(value, spec: str | None = None) -> str:
    if value is None:  # a spread of a single draw, say
        return "–"
    if spec:
        return format(value, spec)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# Sections written by separate commands, not by `make reproduce` (each fills the table of its own name): a
# report rendered from a run without them (a quick run, a fresh reproduction) says which command fills them
# in, instead of failing.
OPTIONAL_SECTIONS = {"seeds": "make seeds", "precision": "make precision-check", "bench": "make bench",
                     "judges": "make judges", "priors": "notebook 09 (make reproduce)",
                     "pixel": "notebook 10 (make reproduce)", "vqvae": "notebook 11 (make reproduce)",
                     "free_bits": "notebook 12 (make reproduce)"}
# Tables named otherwise than the optional section they show.
TABLE_SECTION = {"judge-claims": "judges", "rate-distortion": "priors", "prior-candidates": "priors",
                 "prior-bounds": "priors", "pixel-bounds": "pixel",
                 "pixel-samples": "pixel", "pixel-conditional": "pixel", "vqvae-samples": "vqvae",
                 "vqvae-validation": "vqvae", "free-bits-samples": "free_bits", "free-bits-validation": "free_bits"}


def render_report(template: str, metrics: dict) -> str:
    """The report text with every table and value marker filled from ``metrics``."""
    def missing(section: str) -> bool:
        return section in OPTIONAL_SECTIONS and section not in metrics

    def table(mt):
        name = mt["name"]
        if name not in TABLES:
            raise KeyError(f"report.md asks for table {name!r}; known tables: {', '.join(TABLES)}")
        section = TABLE_SECTION.get(name, name)
        if missing(section):
            return mt.group(1) + f"(not in these results: run `{OPTIONAL_SECTIONS[section]}`)\n" + mt.group(4)
        return mt.group(1) + TABLES[name](metrics) + mt.group(4)

    def value(mt):
        section = mt["key"].split(".")[0]
        if missing(section):
            return mt.group(1) + "n/a" + mt.group(5)
        return mt.group(1) + fmt(lookup(metrics, mt["key"]), mt["fmt"]) + mt.group(5)

    return VALUE_RE.sub(value, TABLE_RE.sub(table, template))


def main(argv=None) -> int:
    import argparse
    import sys

    from ..files import atomic_write_text

    ap = argparse.ArgumentParser(description="Render the tables and numbers of report.md from metrics.json")
    ap.add_argument("--metrics", default="results/metrics.json")
    ap.add_argument("--template", default="report.md")
    ap.add_argument("--out", default=None, help="default: rewrite the template in place")
    args = ap.parse_args(argv)
    try:
        text = render_report(Path(args.template).read_text(encoding="utf-8"), read_metrics(args.metrics))
    except (KeyError, ValueError, OSError) as e:
        print(f"error: cannot render {args.template} from {args.metrics}: {e}", file=sys.stderr)
        return 1
    atomic_write_text(args.out or args.template, text)
    print(f"rendered {args.out or args.template} from {args.metrics}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
