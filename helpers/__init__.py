"""Shared code of the quickdraw-ae notebooks: data, models, training, evaluation, plotting, report.

Notebooks and tests do ``import helpers as H`` (or ``from helpers import ...``); every public name of the
submodules is re-exported here.
"""

from .data import *  # noqa: F401,F403
from .download import DownloadError, download_quickdraw  # noqa: F401
from .evaluation import *  # noqa: F401,F403
from .experiments import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .plotting import *  # noqa: F401,F403
from .report import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
