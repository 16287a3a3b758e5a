"""Shared code of the quickdraw-ae notebooks, a folder per layer; imports run down the layers only:

    files.py, devices.py, results.py  atomic files and the repository root; devices, precision, RNG; the results file
    data/        the course-format loader (validation, splits, synthetic drawings) and the downloader
    models/      the autoencoders; the VAE and its parts (encoders, decoders, priors, the PixelCNN); the judge
    training/    the training loop (checkpoints, exact resume) and the model cache
    evaluation/  running a model: reconstructions, likelihood bounds, samplers, the judge's numbers, latent spaces
    plotting.py  the figures
    studies/     the registry of runs, the notebook set-up, and one file per question beyond the course
    report/      the report's tables and their rendering into report.md (no torch)
    pipeline/    running the notebooks with papermill, and their reruns over seeds, judges and precisions

Notebooks and tests do ``import helpers as H`` (or ``from helpers import ...``): ``H`` holds the public names of
the modules below (each module's ``__all__``) and nothing else: no ``H.np``, no ``H.torch``. The names are
found on first use, so that importing one module (``python -m helpers.report.render``) imports only what it needs.
"""

from importlib import import_module as _import_module
from pkgutil import iter_modules as _iter_modules

# The layers from the bottom, each a module or a folder of modules; a module imports from its own layer or the ones
# below it (tests/test_package.py holds this).
_LAYERS = ("files", "devices", "results", "data", "models", "training", "evaluation", "plotting", "studies", "report",
           "pipeline")


def _modules() -> list[str]:
    """Every module of the package, layer by layer, a folder's modules in alphabetical order: "models.vae". A new
    module in a folder is found without being listed anywhere."""
    found = []
    for layer in _LAYERS:
        module = _import_module(f"{__name__}.{layer}")
        if hasattr(module, "__path__"):  # a folder
            found += [f"{layer}.{m.name}" for m in sorted(_iter_modules(module.__path__), key=lambda m: m.name)]
        else:
            found.append(layer)
    return found


def _public_names() -> dict:
    """{name: object} of every module's ``__all__``; two modules may not export the same name."""
    names, owner = {}, {}
    for module_name in _modules():
        module = _import_module(f"{__name__}.{module_name}")
        for name in module.__all__:
            if name in owner:
                raise ImportError(f"helpers.{module_name} and helpers.{owner[name]} both export {name!r}")
            names[name], owner[name] = getattr(module, name), module_name
    return names


def __getattr__(name: str):
    if name.startswith("__") and name != "__all__":
        raise AttributeError(name)
    names = _public_names()
    globals().update(names)
    globals()["__all__"] = list(names)
    if name not in globals():
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))
