"""Shared code of the quickdraw-ae notebooks: data, models, training, evaluation, plotting, report.

Notebooks and tests do ``import helpers as H`` (or ``from helpers import ...``). ``H`` holds the public
names of the submodules (each module's ``__all__``) and nothing else: no ``H.np``, no ``H.torch``.
"""

from . import (
    beyond,
    bounds,
    cache,
    classifier,
    data,
    devices,
    download,
    experiments,
    explore,
    files,
    inference,
    judging,
    latent,
    models,
    notebook,
    pixel,
    plotting,
    priors,
    quality,
    reconstruction,
    report,
    results,
    samplers,
    studies,
    study_tables,
    tables,
    training,
)
from .beyond import *  # noqa: F403
from .bounds import *  # noqa: F403
from .cache import *  # noqa: F403
from .classifier import *  # noqa: F403
from .data import *  # noqa: F403
from .devices import *  # noqa: F403
from .download import *  # noqa: F403
from .experiments import *  # noqa: F403
from .explore import *  # noqa: F403
from .files import *  # noqa: F403
from .inference import *  # noqa: F403
from .judging import *  # noqa: F403
from .latent import *  # noqa: F403
from .models import *  # noqa: F403
from .notebook import *  # noqa: F403
from .pixel import *  # noqa: F403
from .plotting import *  # noqa: F403
from .priors import *  # noqa: F403
from .quality import *  # noqa: F403
from .reconstruction import *  # noqa: F403
from .report import *  # noqa: F403
from .results import *  # noqa: F403
from .samplers import *  # noqa: F403
from .studies import *  # noqa: F403
from .study_tables import *  # noqa: F403
from .tables import *  # noqa: F403
from .training import *  # noqa: F403

_MODULES = (
    beyond, bounds, cache, classifier, data, devices, download, experiments, explore, files, inference, judging,
    latent, models, notebook, pixel, plotting, priors, quality, reconstruction, report, results, samplers, studies,
    study_tables, tables, training,
)
__all__ = [name for module in _MODULES for name in module.__all__]
