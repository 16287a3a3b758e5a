"""The `helpers` package: a folder per layer, imports that run down the layers only, and ``import helpers as H``,
which gives the public names of its modules and nothing else."""

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
import types

import pytest
from conftest import ROOT

import helpers as H
from helpers.studies.registry import FAMILIES

# Every module of the package, by dotted name below helpers ("models.vae"); subpackages' __init__ hold no code.
MODULES = sorted(m.name.removeprefix("helpers.") for m in pkgutil.walk_packages(H.__path__, "helpers.") if not m.ispkg)
PACKAGES = sorted(m.name.removeprefix("helpers.") for m in pkgutil.walk_packages(H.__path__, "helpers.") if m.ispkg)

# The layers, from the bottom (helpers/__init__.py): a module imports from its own layer or the ones below it. The
# three base modules are one layer: none needs another's layer above it.
LAYERS = [H._LAYERS[:3], *((layer,) for layer in H._LAYERS[3:])]


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_every_module_lists_its_public_names_and_they_exist():
    assert sorted(H._modules()) == MODULES, "every module lies in a layer of helpers/__init__.py (_LAYERS)"
    for name in MODULES:
        module = importlib.import_module(f"helpers.{name}")
        assert hasattr(module, "__all__"), f"helpers.{name} has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"helpers.{name} lists names it does not define: {missing}"


def test_subpackages_hold_no_code_only_what_their_folder_is_for():
    for name in PACKAGES:
        tree = ast.parse((ROOT / "helpers" / name.replace(".", "/") / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"helpers/{name}/__init__.py: say in a docstring what the folder holds"
        assert len(tree.body) == 1, f"helpers/{name}/__init__.py holds code; H finds the names (helpers/__init__.py)"


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
    names = {part for name in MODULES + PACKAGES for part in name.split(".")}
    assert not names & set(sys.stdlib_module_names), sorted(names & set(sys.stdlib_module_names))


def test_modules_are_named_for_what_they_do_not_for_a_notebook_or_a_round():
    named_after_when = [n for n in MODULES + PACKAGES if re.search(r"round|issue|beyond|\d", n)]
    assert not named_after_when, named_after_when


def test_every_registry_entry_builds_trains_at_every_budget_and_has_a_known_family():
    """Properties of the registry, not its contents: a student's new entry keeps this green."""
    assert len({run.label for run in H.EXPERIMENTS.values()}) == len(H.EXPERIMENTS), "two runs share a label"
    for name, run in H.EXPERIMENTS.items():
        assert run.name == name and run.spec["kind"] in H.MODEL_KINDS and run.family in FAMILIES
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
# Layers you can see: imports run down the layers, no cycles, no private names shared
# ---------------------------------------------------------------------------------------------------


def _imports() -> dict[str, list[tuple[str, list[str]]]]:
    """{module: [(imported module, names)]} of every relative import of the package (also inside functions),
    resolved to dotted names below helpers."""
    out = {}
    for name in MODULES:
        path = ROOT / "helpers" / (name.replace(".", "/") + ".py")
        package = name.split(".")[:-1]
        found = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # "from . import x" and "from .pkg import module" name modules
                    sub = f"{target}.{alias.name}" if target else alias.name
                    found.append((sub, []) if sub in MODULES else (target, [alias.name]))
        out[name] = found
    return out


def test_imports_run_down_the_layers_only():
    upward = [f"helpers.{name} (layer {LAYERS[_layer(name)]}) imports helpers.{target} (layer {LAYERS[_layer(target)]})"
              for name, found in _imports().items() for target, _ in found if _layer(target) > _layer(name)]
    assert not upward, "\n".join(upward)
    evaluation = {t for name, found in _imports().items() if name.startswith("evaluation.") for t, _ in found}
    assert not {t for t in evaluation if t.startswith("training")}, "evaluation needs no training code"
    assert LAYERS[0] == ("files", "devices", "results") and LAYERS[-1] == ("pipeline",)
    assert _layer("models.vae") < _layer("training.loop") < _layer("evaluation.bounds") < _layer("report.render")


def test_rendering_the_report_imports_no_torch():
    """`make report` is text in, text out: it must run (and be quick) where torch is not installed."""
    code = ("import sys, helpers.report.render as r; "
            "assert 'torch' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_helpers_import_graph_has_no_cycle():
    graph = {name: {t for t, _ in found if t in MODULES} for name, found in _imports().items()}
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
    assert len(done) >= 30 and graph["studies.ex_post_samplers"] >= {"studies.notebook", "evaluation.samplers"}


def test_no_private_name_is_imported_across_modules():
    shared = [f"helpers.{name} imports {m}.{n}" for name, found in _imports().items()
              for m, names in found for n in names if n.startswith("_")]
    assert not shared, "\n".join(shared)


def test_every_folder_of_the_package_is_a_package_and_no_file_of_it_is_ignored_by_git():
    """A folder without __init__.py imports as a namespace package that pkgutil does not list; a file that
    .gitignore matches (its "data/" once matched helpers/data/) never reaches a clone."""
    files = [p for p in (ROOT / "helpers").rglob("*.py") if "__pycache__" not in p.parts]
    assert not [f.parent for f in files if not (f.parent / "__init__.py").is_file()]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *map(str, files)], cwd=ROOT, capture_output=True,
                          text=True)
    if proc.returncode == 128:
        pytest.skip("not a git checkout")
    assert not proc.stdout.strip(), f"ignored by git: {proc.stdout}"


def test_no_data_or_model_weights_are_tracked_by_git():
    """Data and trained weights come from the download and the model cache, never from the repository."""
    proc = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = [f for f in proc.stdout.splitlines() if f.endswith((".pt", ".pth", ".ckpt", ".npy", ".npz"))]
    assert not tracked, f"data or weights tracked by git: {tracked}"
