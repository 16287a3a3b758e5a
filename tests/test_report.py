"""report.md is rendered from results/metrics.json: links resolve, rendering is idempotent, every number
between markers is the one in the metrics, and the README's commands are the ones CI and the tests use."""

import json
import re

import pytest
from conftest import ROOT

import helpers as H

REPORT = ROOT / "report.md"
METRICS = ROOT / "results" / "metrics.json"


@pytest.fixture(scope="module")
def metrics():
    return json.loads(METRICS.read_text(encoding="utf-8"))


def test_every_image_linked_in_report_exists():
    links = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", REPORT.read_text(encoding="utf-8"))
    assert len(links) >= 10
    for link in links:
        assert not link.startswith("http"), f"{link}: figures are linked with relative paths"
        assert (ROOT / link).is_file(), f"report.md links a missing file: {link}"


def test_every_figure_is_linked_in_report():
    text = REPORT.read_text(encoding="utf-8")
    for png in sorted((ROOT / "figures").glob("*.png")):
        assert f"figures/{png.name}" in text, f"{png.name} is not shown in report.md"


def test_report_is_rendered_and_rendering_twice_changes_nothing(metrics):
    text = REPORT.read_text(encoding="utf-8")
    once = H.render_report(text, metrics)
    assert once == text, "report.md is not up to date with results/metrics.json: run `make report`"
    assert H.render_report(once, metrics) == once


def test_readme_is_rendered(metrics):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(list(H.VALUE_RE.finditer(text))) >= 5
    assert H.render_report(text, metrics) == text, "README.md is not up to date: run `make report`"


def test_each_rendered_value_equals_the_metric(metrics):
    text = REPORT.read_text(encoding="utf-8") + (ROOT / "README.md").read_text(encoding="utf-8")
    values = list(H.VALUE_RE.finditer(text))
    assert len(values) >= 10
    for mt in values:
        expected = H.lookup(metrics, mt["key"])
        shown = mt["body"]
        if isinstance(expected, (int, float)) and not isinstance(expected, bool):
            number = float(shown.replace(",", "").rstrip("%"))
            scale = 100 if shown.endswith("%") else 1
            digits = len(shown.split(".")[1].rstrip("%")) if "." in shown else 0
            assert abs(number - expected * scale) <= 0.5 * 10 ** -digits + 1e-9, (mt["key"], shown, expected)
        else:
            assert shown == str(expected)


def test_each_table_matches_its_renderer(metrics):
    tables = list(H.TABLE_RE.finditer(REPORT.read_text(encoding="utf-8")))
    assert {t["name"] for t in tables} == set(H.TABLES)
    for t in tables:
        assert t["body"] == H.TABLES[t["name"]](metrics)


def test_rendering_fails_clearly_on_missing_metric():
    with pytest.raises(KeyError, match="results have no 'vae.models' .*run the notebook"):
        H.render_report("<!-- value:vae.models -->x<!-- /value -->", {"vae": {}})


def test_readme_commands_are_the_ones_ci_and_tests_use():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    first_commands = re.findall(r"^(?:\S+=\S+ )*make \w+.*$", readme, re.M)
    assert first_commands[:2] == ["make test", "QUICKDRAW_DIR=../shared/data/quickdraw_sample make reproduce"]
    assert "make test" in ci
    assert re.search(r"^test: .*\n(\t.*\n)*\t\$\(PY\) -m pytest", makefile, re.M)
    tests = (ROOT / "tests" / "test_robustness.py").read_text(encoding="utf-8")
    assert '"ruff", "check"' in tests  # `make test` runs ruff once, as one of the tests


def test_a_run_without_the_optional_sections_renders_with_a_pointer_to_their_command():
    metrics = json.loads(METRICS.read_text(encoding="utf-8"))
    for section in ("seeds", "precision", "bench"):
        metrics.pop(section, None)
    text = H.render_report(REPORT.read_text(encoding="utf-8"), metrics)
    assert "(not in these results: run `make seeds`)" in text and "run `make precision-check`" in text
    assert "<!-- value:seeds.stats.cnn_ae.test_mse.n -->n/a<!-- /value -->" in text
    del metrics["vae"]  # a section that `make reproduce` writes is still required
    with pytest.raises(KeyError):
        H.render_report(REPORT.read_text(encoding="utf-8"), metrics)


def _prose(text: str) -> str:
    """The report as a reader sees it: without the HTML comments that mark rendered numbers and tables."""
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def test_the_report_body_before_the_appendices_is_at_most_450_lines():
    lines = REPORT.read_text(encoding="utf-8").splitlines()
    first_appendix = next((i for i, line in enumerate(lines) if line.startswith("## Appendix")), len(lines))
    assert first_appendix <= 450, f"report.md: {first_appendix} lines before the first appendix (at most 450)"


@pytest.mark.parametrize("pattern, what", [
    (r"\bround \d|\bround\b", "a round of work"), (r"\btargets? set\b", "targets set for a round of work"),
    (r"\bissue \d", "an issue number"), (r"\bregistry entr", "a registry entry"),
    (r"\b\w+_minus_val\b", "a registry run name"),
    (r"`[a-z_0-9]+(\.[a-z_0-9 ]+){2,}`", "a metric key path"),
])
def test_the_report_speaks_of_results_not_of_the_project_s_process(pattern, what):
    found = re.findall(rf".{{0,40}}(?:{pattern}).{{0,20}}", _prose(REPORT.read_text(encoding="utf-8")), flags=re.I)
    assert not found, f"report.md names {what}: {found[:3]}"


def test_the_timings_table_names_the_machine_and_what_else_ran_there():
    machine = {"cpu": "Some CPU", "logical_cpus": 2, "torch_threads": 2, "device": "cpu", "load_average": 2.1,
               "other_processes_cores": 0.05}
    m = {"timings": {"01_data": 6.0, "02_lstm_autoencoder": 1200.0}, "training_times": {"02_lstm_autoencoder": 1100.0},
         "timings_machine": {"02_lstm_autoencoder": machine}}
    table = H.TABLES["timings"](m)
    assert "| `02_lstm_autoencoder.ipynb` | 20.0 min | 18.3 min | 1.7 min | Some CPU, 2 logical CPUs, 2 threads, cpu " \
           "| 0.05 | 2.10 |" in table
    assert "| `01_data.ipynb` | 6 s | – | – | not recorded | – | – |" in table
    total = H.TABLES["run-total"](m)
    assert ("| 2 | 20.1 min | 18.3 min (1 of 2 notebooks recorded) | 1.8 min | Some CPU, 2 threads, cpu; not recorded "
            "for 1 notebook(s) |") in total


def test_busy_cpu_seconds_grows_while_this_process_computes():
    from helpers.devices import busy_cpu_seconds

    before = busy_cpu_seconds()
    if before is None:
        pytest.skip("no /proc/stat on this system")
    x = 0
    for i in range(3_000_000):
        x += i * i
    assert busy_cpu_seconds() - before > 0.01
