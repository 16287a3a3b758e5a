"""The notebooks' markdown renders as meant: every heading is one short line of text (a literal ``\\n`` in a
cell's source shows as a backslash and pulls the next paragraph into the heading), and every notebook opens
with a markdown cell whose first line is its level-1 title.

Markdown is parsed by nbconvert's mistune parser, the one that renders notebooks to HTML: like JupyterLab
it takes ``$...$`` as math, so ``$\\beta$`` in a heading is fine.
"""

from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from nbconvert.filters.markdown_mistune import MarkdownWithMath

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# A heading longer than this has most likely swallowed the paragraph below it.
MAX_HEADING_CHARS = 80

_parse = MarkdownWithMath(renderer=None)  # no renderer: mistune returns the token tree


def _blocks(source: str) -> list[dict]:
    return [t for t in _parse(source) if t["type"] != "blank_line"]


def _headings(tokens: list[dict]):
    """Every heading token, also those nested in lists and quotes."""
    for t in tokens:
        if t["type"] == "heading":
            yield t
        elif "children" in t:
            yield from _headings(t["children"])


def _text(token: dict) -> tuple[str, str]:
    """(shown, prose) of a token: its text as displayed, and only the plain-text parts of it (without code
    and math, where a backslash is legitimate). Line breaks become real newlines."""
    kind = token["type"]
    if kind in ("softbreak", "linebreak"):
        return "\n", "\n"
    if kind == "text":
        return token["raw"], token["raw"]
    if "children" in token:  # the heading itself, emphasis, links, ...
        parts = [_text(c) for c in token["children"]]
        return "".join(s for s, _ in parts), "".join(p for _, p in parts)
    return token.get("raw", ""), ""  # codespan, inline_math, ...


def _heading_problem(heading: dict) -> str | None:
    shown, prose = _text(heading)
    if "\\" in prose:
        return "contains a backslash (a literal \\n in the source? use a real newline and a blank line)"
    if "\n" in shown:
        return "runs over several lines (a paragraph right above a --- or === line becomes a heading)"
    if len(shown) > MAX_HEADING_CHARS:
        return f"is {len(shown)} characters long (> {MAX_HEADING_CHARS}): has it swallowed a paragraph?"
    return None


def _quote(text: str, limit: int = 100) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def markdown_problems(path: Path) -> list[str]:
    """One line per problem of the notebook at ``path``: bad headings in any markdown cell, and a first
    cell that is not markdown opening with a level-1 heading. Each line names the notebook and the cell."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for heading in _headings(_parse(cell.source)):
            reason = _heading_problem(heading)
            if reason:
                shown, _ = _text(heading)
                problems.append(f"{path.name}, cell {i}: heading {_quote(shown)} {reason}")
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown":
        problems.append(f"{path.name}, cell 0: the first cell must be markdown with the notebook's '# Title'")
    else:
        blocks = _blocks(first.source)
        if not blocks or blocks[0]["type"] != "heading" or blocks[0]["attrs"]["level"] != 1:
            problems.append(f"{path.name}, cell 0: must start with a level-1 heading ('# Title'), "
                            f"starts with {_quote(first.source.splitlines()[0] if first.source else '')}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_headings_are_single_short_lines_under_a_title(path):
    problems = markdown_problems(path)
    assert not problems, "\n".join(problems)


# The check itself, on notebooks written for the purpose: it must keep catching the bug once the real
# notebooks are fixed.

TITLE = "# 09 · A notebook\n\nWhat it does."
BOUNDS = "## Test-set bounds\\nNegative ELBO and the tighter IWAE bound on the first `n_eval` test drawings."


def write_notebook(folder: Path, *cells) -> Path:
    """A notebook of markdown cells (strings) and code cells (("code", source)) at folder/09_check.ipynb."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c[1]) if isinstance(c, tuple) else nbformat.v4.new_markdown_cell(c)
                for c in cells]
    path = folder / "09_check.ipynb"
    nbformat.write(nb, path)
    return path


def test_check_passes_a_well_formed_notebook(tmp_path):
    fixed = BOUNDS.replace("\\n", "\n\n")  # what the fix of the real notebook does
    math = "## The $\\beta$-VAE objective, `\\n` in code\n\n$$\\mathcal{L} = \\beta\\, KL$$"
    path = write_notebook(tmp_path, TITLE, ("code", "x = 1"), fixed, math, "- ## A heading in a list")
    assert markdown_problems(path) == []


def test_check_names_the_cell_and_heading_with_a_literal_backslash_n(tmp_path):
    path = write_notebook(tmp_path, TITLE, ("code", "x = 1"), BOUNDS)
    (problem,) = markdown_problems(path)
    assert problem.startswith("09_check.ipynb, cell 2: heading 'Test-set bounds\\\\nNegative ELBO")
    assert "backslash" in problem


@pytest.mark.parametrize("cell, reason", [
    ("A paragraph of text that\nends on a line of dashes\n---", "several lines"),
    ("## " + "A heading that goes on " * 4 + "and on", "characters long"),
    ("### A \\\\ backslash in the text", "backslash"),
], ids=["setext-paragraph", "long", "backslash"])
def test_check_rejects_headings_that_swallow_text(tmp_path, cell, reason):
    (problem,) = markdown_problems(write_notebook(tmp_path, TITLE, cell))
    assert problem.startswith("09_check.ipynb, cell 1: heading") and reason in problem


@pytest.mark.parametrize("first", ["## 09 · Only a level-2 heading", "Some text first.\n\n# 09 · Title",
                                   ("code", "import helpers as H")], ids=["level-2", "text-first", "code"])
def test_check_wants_a_title_in_the_first_cell(tmp_path, first):
    (problem,) = markdown_problems(write_notebook(tmp_path, first, "Some text."))
    assert problem.startswith("09_check.ipynb, cell 0: ")
