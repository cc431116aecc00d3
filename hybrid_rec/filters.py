"""Attribute filters for retrieval: ``{"genres": "Drama", "price": ("<", 20)}``."""

from __future__ import annotations

import operator
import re
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
      a string that starts with an operator (``"<20"``, ``">= 4.5"``) is that comparison;
    - a number or bool: equality (numerically, also against a column read as text);
    - a list/set/tuple of values (not starting with an operator): any of them;
    - ``(op, value)`` with op in ``< <= > >= == !=``: a comparison; a threshold that
      reads as a number (``20`` or ``"20"``) compares numerically, so a column read
      from CSV as text still compares as numbers;
    - a callable taking the column (a Series) and returning a bool Series.

    Raises
    ------
    DataValidationError
        An unknown column, or a numeric comparison on a column with no numbers.
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


_OP_TEXT = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")


def _one(col: pd.Series, cond: Any, column: str) -> np.ndarray:
    if callable(cond):
        return np.asarray(cond(col), dtype=bool)
    if isinstance(cond, str) and (parsed := _OP_TEXT.match(cond)):
        cond = (parsed.group(1), parsed.group(2))
    if isinstance(cond, tuple) and len(cond) == 2 and isinstance(cond[0], str) and cond[0] in _OPS:
        return _compare(col, cond[0], cond[1], column)
    if isinstance(cond, list | set | frozenset | tuple):
        return (
            np.logical_or.reduce([_one(col, c, column) for c in cond])
            if cond
            else np.zeros(len(col), dtype=bool)
        )
    if isinstance(cond, str):
        target = cond.strip().lower()
        return np.fromiter((_contains(v, target) for v in col), dtype=bool, count=len(col))
    if _is_number(cond) and not pd.api.types.is_numeric_dtype(col):
        return np.asarray(pd.to_numeric(col, errors="coerce") == cond, dtype=bool)
    return np.asarray(col == cond, dtype=bool)


def _compare(col: pd.Series, op: str, value: Any, column: str) -> np.ndarray:
    number = _as_number(value)
    if number is None:  # text against text (ISO dates compare correctly this way)
        values: Any = col.astype("string") if not pd.api.types.is_string_dtype(col) else col
        target: Any = str(value)
    else:
        values = pd.to_numeric(col, errors="coerce")
        target = number
        if len(col) and values.isna().all() and col.notna().any():
            raise DataValidationError(
                f"cannot compare column {column!r} with {op} {value!r}: it holds no numbers.",
                source="filters",
                column=column,
                fix="filter it by value instead, or compare a numeric column.",
            )
    with np.errstate(invalid="ignore"):
        out = _OPS[op](values, target)
    return np.asarray(pd.Series(out).fillna(False), dtype=bool)


def _as_number(value: Any) -> float | None:
    """``value`` as a float if it is a number or reads as one (``"20"``), else None."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if np.isfinite(number) else None
    return None


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
