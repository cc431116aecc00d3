"""Evaluation: top-k metrics, the cold / warm / all protocol, baselines and plots."""

from __future__ import annotations

from hybrid_rec.evaluation.baselines import (
    EASE,
    ContentKNN,
    LightFMBaseline,
    MissingDependencyError,
    Popularity,
    Random,
)
from hybrid_rec.evaluation.metrics import (
    EvaluationError,
    catalogue_coverage,
    long_tail_share,
    ndcg_at_k,
    popularity_buckets,
    recall_at_k,
    top_k_indices,
)
from hybrid_rec.evaluation.plots import plot_recall_by_decile
from hybrid_rec.evaluation.protocol import (
    ColdStartEvaluator,
    Method,
    Scorer,
    evaluate_cold_start,
)

__all__ = [
    "EASE",
    "ColdStartEvaluator",
    "ContentKNN",
    "EvaluationError",
    "LightFMBaseline",
    "Method",
    "MissingDependencyError",
    "Popularity",
    "Random",
    "Scorer",
    "catalogue_coverage",
    "evaluate_cold_start",
    "long_tail_share",
    "ndcg_at_k",
    "plot_recall_by_decile",
    "popularity_buckets",
    "recall_at_k",
    "top_k_indices",
]
