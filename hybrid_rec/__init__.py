"""hybrid_rec: recommendations for the cold start and the long tail.

The public API::

    from hybrid_rec import HybridRecommender, RecommenderConfig, datasets

Everything else is reachable from its subpackage (``hybrid_rec.data``,
``hybrid_rec.content``, ``hybrid_rec.models``, ``hybrid_rec.index``,
``hybrid_rec.evaluation``).
"""

from __future__ import annotations

import os

# Before torch / llama.cpp load OpenMP: spinning worker threads make every op
# several times slower on a busy machine (measured 5x on 2 shared cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hybrid_rec._version import __version__
from hybrid_rec.config import RecommenderConfig, load_config
from hybrid_rec.data import datasets
from hybrid_rec.errors import HybridRecError
from hybrid_rec.recommender import HybridRecommender

__all__ = [
    "HybridRecError",
    "HybridRecommender",
    "RecommenderConfig",
    "__version__",
    "datasets",
    "load_config",
]
