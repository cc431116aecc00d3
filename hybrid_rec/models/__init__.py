"""The hybrid model: CF embeddings, attention fusion, user attention, training."""

from __future__ import annotations

from hybrid_rec.models.collaborative import CollaborativeEmbeddings, weighted_softmax_loss
from hybrid_rec.models.fusion import AttentionFusion
from hybrid_rec.models.history import Histories, build_histories
from hybrid_rec.models.hybrid import HybridModel, UserBatch
from hybrid_rec.models.training import TrainData, TrainResult, train_model
from hybrid_rec.models.user import UserAttention

__all__ = [
    "AttentionFusion",
    "CollaborativeEmbeddings",
    "Histories",
    "HybridModel",
    "TrainData",
    "TrainResult",
    "UserAttention",
    "UserBatch",
    "build_histories",
    "train_model",
    "weighted_softmax_loss",
]
