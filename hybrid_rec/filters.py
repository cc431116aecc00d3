"""Attribute filters for retrieval: ``{"genres": "Drama", "price": ("<", 20)}``."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from hybrid_rec.errors import DataValidationError

__all__ = ["Filters", "filter_mask"]

Filters = Mapping[str, Any]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def filter_mask(items: pd.DataFrame, filters: Filters | None) -> np.ndarray | None:
    """A bool mask over catalogue rows that satisfy every filter (None if no filters).

    Each value may be
    - a string: equality, or membership for multi-valued cells (``"A|B"`` or lists);
    - a number or bool: equality;
    - a list/set/tuple of values (not starting with an operator): any of them;
    - ``(op, value)`` with op in ``< <= > >= == !=``: a comparison;
    - a callable taking the column (a Series) and returning a bool Series.
    """
    if not filters:
        return None
    mask = np.ones(len(items), dtype=bool)
    for column, cond in filters.items():
        if column not in items.columns:
            raise DataValidationError(
                f"cannot filter on unknown column {column!r}.",
                source="filters",
                column=column,
                fix=f"use one of {sorted(map(str, items.columns))}.",
            )
        mask &= _one(items[column], cond, column)
    return mask


def _one(col: pd.Series, cond: Any, column: str) -> np.ndarray:
    if callable(cond):
        return np.asarray(cond(col), dtype=bool)
    if isinstance(cond, tuple) and len(cond) == 2 and isinstance(cond[0], str) and cond[0] in _OPS:
        values = pd.to_numeric(col, errors="coerce") if _is_number(cond[1]) else col
        with np.errstate(invalid="ignore"):
            out = _OPS[cond[0]](values, cond[1])
        return np.asarray(pd.Series(out).fillna(False), dtype=bool)
    if isinstance(cond, list | set | frozenset | tuple):
        return (
            np.logical_or.reduce([_one(col, c, column) for c in cond])
            if cond
            else np.zeros(len(col), dtype=bool)
        )
    if isinstance(cond, str):
        target = cond.strip().lower()
        return np.fromiter((_contains(v, target) for v in col), dtype=bool, count=len(col))
    return np.asarray(col == cond, dtype=bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _contains(value: Any, target: str) -> bool:
    if isinstance(value, list | tuple | set | np.ndarray):
        return any(str(v).strip().lower() == target for v in value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    text = str(value).strip().lower()
    if text == target:
        return True
    return any(part.strip() == target for part in text.replace(",", "|").split("|"))
