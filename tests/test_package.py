"""The `helpers` package: ``import helpers as H`` gives the public names of its modules and nothing else."""

import importlib
import pkgutil
import types

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


def test_the_registry_names_each_run_once_with_a_known_model_kind():
    assert list(H.EXPERIMENTS) == ["lstm_ae", "cnn_ae", "vae_gru", "vae_cnn", "classifier", "cvae_cnn_fit",
                                   "cpvae_dec_fit", "cpvae_fit"]
    for run in H.EXPERIMENTS.values():
        assert run.spec["kind"] in H.MODEL_KINDS
        for budget in H.BUDGETS:
            cfg = run.config(budget, seed=3)
            assert cfg.seed == 3 and (cfg.steps or cfg.epochs)
    assert [r.label for r in H.runs_of("autoencoder")] == ["LSTM AE", "CNN AE"]
    assert H.conditional(H.EXPERIMENTS["vae_cnn"]).spec["n_classes"] == 5
    # The course recipe's candidate, trained on the whole training split, is notebook 04's conditional VAE.
    final = H.on_whole_training_split(H.EXPERIMENTS["cvae_cnn_fit"])
    course = H.conditional(H.EXPERIMENTS["vae_cnn"])
    assert (final.name, final.spec, final.config()) == (course.name, course.spec, course.config())
    assert final.train_on == "train" and H.EXPERIMENTS["cvae_cnn_fit"].train_on == "fit"
