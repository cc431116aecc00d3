"""Content side: item → text, text encoders, and the on-disk embedding store."""

from __future__ import annotations

from hybrid_rec.content.encoders import (
    E5MultilingualEncoder,
    Encoder,
    HashingEncoder,
    SentenceTransformerEncoder,
    encode_queries,
    make_encoder,
)
from hybrid_rec.content.reembed import reembed_catalog
from hybrid_rec.content.store import EmbeddingStore, StoreInfo, SyncSummary
from hybrid_rec.content.text import ItemTextTemplate, item_texts, load_template, text_hash

__all__ = [
    "E5MultilingualEncoder",
    "EmbeddingStore",
    "Encoder",
    "HashingEncoder",
    "ItemTextTemplate",
    "SentenceTransformerEncoder",
    "StoreInfo",
    "SyncSummary",
    "encode_queries",
    "item_texts",
    "load_template",
    "make_encoder",
    "reembed_catalog",
    "text_hash",
]
