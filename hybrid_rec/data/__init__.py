"""Data layer: schema and validation, id maps, readers, bundled datasets, splits."""

from __future__ import annotations

from hybrid_rec.data.columns import Columns
from hybrid_rec.data.idmap import IdMap
from hybrid_rec.data.io import read_table, write_table
from hybrid_rec.data.schema import ValidationReport, validate_interactions, validate_items
from hybrid_rec.data.splits import ColdStartSplit, TemporalSplit, cold_start_split, temporal_split

__all__ = [
    "ColdStartSplit",
    "Columns",
    "IdMap",
    "TemporalSplit",
    "ValidationReport",
    "cold_start_split",
    "read_table",
    "temporal_split",
    "validate_interactions",
    "validate_items",
    "write_table",
]
