"""FAISS retrieval over fused item vectors."""

from __future__ import annotations

from hybrid_rec.index.faiss_index import VectorIndex, choose_factory

__all__ = ["VectorIndex", "choose_factory"]
