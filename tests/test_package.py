"""The `helpers` package: ``import helpers as H`` gives the public names of its modules and nothing else."""

import ast
import importlib
import pkgutil
import subprocess
import types

import pytest
from conftest import ROOT

import helpers as H

MODULES = [m.name for m in pkgutil.iter_modules(H.__path__)]


def test_every_module_lists_its_public_names_and_they_exist():
    for name in MODULES:
        module = importlib.import_module(f"helpers.{name}")
        assert hasattr(module, "__all__"), f"helpers/{name}.py has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"helpers/{name}.py lists names it does not define: {missing}"


def test_H_holds_the_modules_public_names_and_no_other_module():
    foreign = sorted(n for n in dir(H) if isinstance(getattr(H, n), types.ModuleType)
                     and not getattr(H, n).__name__.startswith("helpers."))
    assert not foreign, f"H exposes modules that are not its own: {foreign}"  # e.g. H.np, H.torch, H.ctypes
    exported = {n for n in dir(H) if not n.startswith("_") and not isinstance(getattr(H, n), types.ModuleType)}
    assert exported == set(H.__all__), sorted(exported ^ set(H.__all__))
    assert len(H.__all__) == len(set(H.__all__)), "two modules export the same name"
    for name in ("load_quickdraw", "train_or_load", "EXPERIMENTS", "render_report", "savefig", "vae_elbo"):
        assert name in H.__all__


def test_no_module_shadows_the_standard_library():
    import sys

    assert not set(MODULES) & set(sys.stdlib_module_names), sorted(set(MODULES) & set(sys.stdlib_module_names))


def test_every_registry_entry_builds_trains_at_every_budget_and_has_a_known_family():
    """Properties of the registry, not its contents: a student's new entry keeps this green."""
    assert len({run.label for run in H.EXPERIMENTS.values()}) == len(H.EXPERIMENTS), "two runs share a label"
    for name, run in H.EXPERIMENTS.items():
        assert run.name == name and run.spec["kind"] in H.MODEL_KINDS and run.family in H.experiments.FAMILIES
        H.build_model(run.spec)  # the spec's arguments are the class's
        for budget in H.BUDGETS:
            cfg = run.config(budget, seed=3)
            assert cfg.seed == 3 and (cfg.steps or cfg.epochs)
        if run.train_on == "train_minus_val":  # the final run, on the whole split, has the name without it
            final = H.on_whole_training_split(run)
            assert final.train_on == "train" and run.name == final.name + "_minus_val"


def test_the_course_recipes_candidate_on_the_whole_split_is_notebook_04s_conditional_vae():
    final = H.on_whole_training_split(H.EXPERIMENTS["cvae_cnn_minus_val"])
    course = H.conditional(H.EXPERIMENTS["vae_cnn"])
    assert (final.name, final.spec, final.config()) == (course.name, course.spec, course.config())
    assert H.conditional(H.EXPERIMENTS["vae_cnn"]).spec["n_classes"] == 5


# ---------------------------------------------------------------------------------------------------
# A house a student can read: one job per module, short functions, no cycles, no private names shared
# ---------------------------------------------------------------------------------------------------

def _trees():
    return {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "helpers").glob("*.py"))}


def _local_imports(tree) -> list[tuple[str, list[str]]]:
    """(module, names) of every ``from .module import names`` (also inside functions)."""
    return [(node.module, [a.name for a in node.names]) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module]


def test_the_helpers_import_graph_has_no_cycle():
    graph = {name: {m for m, _ in _local_imports(tree)} for name, tree in _trees().items() if name != "__init__"}
    done, on_path = set(), []

    def visit(name):
        assert name not in on_path, f"import cycle: {' -> '.join(on_path[on_path.index(name):] + [name])}"
        if name in done:
            return
        on_path.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert len(done) >= 15 and graph["beyond"] >= {"notebook", "samplers"}  # the scan saw the package


def test_no_private_name_is_imported_across_modules():
    shared = [f"helpers/{name}.py imports {m}.{n}" for name, tree in _trees().items()
              for m, names in _local_imports(tree) for n in names if n.startswith("_")]
    assert not shared, "\n".join(shared)


def test_every_module_is_at_most_350_lines_and_every_function_at_most_40():
    long_modules = [f"helpers/{p.name}: {n} lines" for p in sorted((ROOT / "helpers").glob("*.py"))
                    if (n := len(p.read_text(encoding="utf-8").splitlines())) > 350]
    long_functions = [f"helpers/{name}.py: {node.name}, {node.end_lineno - node.lineno + 1} lines"
                      for name, tree in _trees().items() for node in ast.walk(tree)
                      if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.end_lineno - node.lineno + 1 > 40]
    assert not long_modules + long_functions, "\n".join(long_modules + long_functions)


def test_no_data_or_model_weights_are_tracked_by_git():
    """Data and trained weights come from the download and the model cache, never from the repository."""
    proc = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = [f for f in proc.stdout.splitlines() if f.endswith((".pt", ".pth", ".ckpt", ".npy", ".npz"))]
    assert not tracked, f"data or weights tracked by git: {tracked}"
