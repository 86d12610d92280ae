"""Offline evaluation of sequential recommenders; the implementation is :mod:`models.offline`.

Kept as a stable import path: ``from models.evaluation import evaluate, leave_one_out``.
"""

from __future__ import annotations

from models.offline import *  # noqa: F403  # re-export exactly models.offline.__all__
from models.offline import __all__ as __all__
