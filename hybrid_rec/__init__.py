"""hybrid_rec: recommendations for the cold start and the long tail.

The public API::

    from hybrid_rec import HybridRecommender, RecommenderConfig, datasets

Everything else is reachable from its subpackage (``hybrid_rec.data``,
``hybrid_rec.content``, ``hybrid_rec.models``, ``hybrid_rec.index``,
``hybrid_rec.evaluation``).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# Before torch / llama.cpp load OpenMP: spinning worker threads make every op
# several times slower on a busy machine (measured 5x on 2 shared cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hybrid_rec._version import __version__
from hybrid_rec.config import RecommenderConfig, load_config
from hybrid_rec.errors import HybridRecError

if TYPE_CHECKING:
    from hybrid_rec.data import datasets
    from hybrid_rec.explain.facts import title_column
    from hybrid_rec.filters import parse_filters
    from hybrid_rec.recommender import HybridRecommender

# Imported on first use: the recommender brings torch (3-4 s), which `hybrid-rec --help`,
# `data check` and a config's validation do without.
_LAZY = {
    "HybridRecommender": ("hybrid_rec.recommender", "HybridRecommender"),
    "datasets": ("hybrid_rec.data.datasets", None),
    "parse_filters": ("hybrid_rec.filters", "parse_filters"),
    "title_column": ("hybrid_rec.explain.facts", "title_column"),
}

__all__ = [
    "HybridRecError",
    "HybridRecommender",
    "RecommenderConfig",
    "__version__",
    "datasets",
    "load_config",
    "parse_filters",
    "title_column",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'hybrid_rec' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
