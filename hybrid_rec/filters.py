"""Attribute filters for retrieval: ``{"genres": "Drama", "price": ("<", 20)}``."""

from __future__ import annotations

import operator
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hybrid_rec.errors import DataValidationError

__all__ = ["Filters", "filter_mask", "parse_filters"]

Filters = Mapping[str, Any]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


_FILTER_TEXT = re.compile(r"^\s*([^<>=!]+?)\s*(<=|>=|==|!=|<|>|=)\s*(.*?)\s*$")


def parse_filters(texts: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Filters written as text, one per column: ``["category=Tea", "price<20"]`` ->
    ``{"category": ("==", "Tea"), "price": ("<", "20")}`` (also ``<=``, ``>``, ``>=``,
    ``!=``; what the command line's ``--filter`` and the app's filter box take).

    Raises
    ------
    DataValidationError
        A text that is not COLUMN, operator, value; or a column given twice.
    """
    filters: dict[str, tuple[str, str]] = {}
    for text in texts:
        found = _FILTER_TEXT.match(text)
        if not found or not found.group(3):
            raise DataValidationError(
                f"{text!r}: expected COLUMN=VALUE or COLUMN<NUMBER (also <=, >, >=, !=).",
                source="filter",
            )
        column, op, value = found.groups()
        if column in filters:
            raise DataValidationError(
                f"{column!r} is filtered twice; one filter per column.", source="filter"
            )
        filters[column] = ("==" if op == "=" else op, value)
    return filters


def filter_mask(items: pd.DataFrame, filters: Filters | None) -> np.ndarray | None:
    """A bool mask over catalogue rows that satisfy every filter (None if no filters).

    Each value may be
    - a string: equality, or membership for multi-valued cells (``"A|B"`` or lists);
      a string of an operator and a number or an ISO date (``"<20"``, ``">= 4.5"``,
      ``">=2026-03-14"``) is that comparison;
    - a number or bool: equality (numerically, also against a column read as text);
    - a list/set/tuple of values (not starting with an operator): any of them;
    - ``(op, value)`` with op in ``< <= > >= == !=``: a comparison; a threshold that
      reads as a number (``20`` or ``"20"``) compares numerically, so a column read
      from CSV as text still compares as numbers; on a datetime column, or a text
      column of ISO 8601 times (a CSV's), the threshold is a date and the two compare
      as times in UTC (a time without an offset is UTC); ``("==", "Tea")`` /
      ``("!=", "Tea")`` are the value match above and its negation;
    - a callable taking the column (a Series) and returning a bool Series.

    Raises
    ------
    DataValidationError
        An unknown column, a number compared with a text column (or text with a
        numeric one), or a date that does not parse.
    """
    if filters is not None and not isinstance(filters, Mapping):
        raise DataValidationError(
            f"must be a mapping of column to condition, got {type(filters).__name__} "
            f"{filters!r:.60}.",
            source="filters",
            fix='e.g. {"category": "Tea", "price": ("<", 20)}.',
        )
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
_OP_LIKE = re.compile(r"^\s*([<>=!~]+)\s*(.*?)\s*$")
"""Text that starts like a comparison: ``=<20`` or ``=>4`` is a typo, not a value to match."""
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+)?(?:Z|[+-]\d{2}:?\d{2})?$")
"""A date (and time) after an operator: ``">=2026-03-14"`` is a comparison too."""


def _bad_operator(op: str, column: str, given: Any) -> DataValidationError:
    return DataValidationError(
        f"unknown comparison {op!r} in the filter on {column!r}: {given!r}.",
        source="filters",
        column=column,
        fix=f"use one of {' '.join(_OPS)}, as (op, value) or text such as '<=20'.",
    )


def _comparison_text(text: str, column: str) -> tuple[str, str] | None:
    """``"<20"`` as ``("<", "20")``; None for a value. Text shaped like a comparison with
    an operator that is not one (``"=<20"``, ``"=>4"``, ``"~3"``) is an error."""
    parsed = _OP_TEXT.match(text)
    if parsed and (_as_number(parsed.group(2)) is not None or _ISO_DAY.match(parsed.group(2))):
        return parsed.group(1), parsed.group(2)
    typo = _OP_LIKE.match(text)
    if typo and _as_number(typo.group(2)) is not None:
        raise _bad_operator(typo.group(1), column, text)
    return None


def _one(col: pd.Series, cond: Any, column: str) -> np.ndarray:
    if cond is None:  # a form's empty field: matching nothing would empty every list
        raise DataValidationError(
            f"the filter on {column!r} is None.",
            source="filters",
            column=column,
            fix="leave the column out of the filters for no condition on it.",
        )
    if callable(cond):
        return _bools(cond(col))  # a nullable column's missing cells: False, not an error
    if isinstance(cond, str):  # "<20" is a comparison; "<3 Love" stays a value
        cond = _comparison_text(cond, column) or cond
    op_first = isinstance(cond, tuple) and cond and isinstance(cond[0], str)
    if op_first and _OP_LIKE.fullmatch(cond[0]):
        if cond[0] not in _OPS:  # ("=>", 10), ("~", 3)
            raise _bad_operator(cond[0], column, cond)
        if len(cond) != 2:  # ("<", 3, 4)
            raise DataValidationError(
                f"a comparison is (op, value); the filter on {column!r} is {cond!r}.",
                source="filters",
                column=column,
                fix="give one value, or two filters as a callable for a range.",
            )
        return _compare(col, cond[0], cond[1], column)
    if isinstance(cond, Mapping):
        raise DataValidationError(
            f"the filter on {column!r} is a mapping ({cond!r:.60}); give a value, a list "
            "of values, (op, value) or a callable.",
            source="filters",
            column=column,
        )
    if isinstance(cond, list | set | frozenset | tuple):
        # the plain text values in one pass over the column (a web form's 1,000 ids once,
        # not 1,000 times); comparisons, numbers and the rest one at a time
        plain: list[str] = []
        other: list[Any] = []
        for c in cond:
            (plain if _is_plain_text(col, c, column) else other).append(c)
        masks = [_value_match(col, frozenset(c.strip().lower() for c in plain))] if plain else []
        masks += [_one(col, c, column) for c in other]
        return np.logical_or.reduce(masks) if masks else np.zeros(len(col), dtype=bool)
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if isinstance(cond, str) and numeric and _as_number(cond) is not None:
        return _compare(col, "==", cond, column)  # {"price": "9.99"}: the number 9.99
    if isinstance(cond, str):
        return _value_match(col, frozenset([cond.strip().lower()]))
    if isinstance(cond, bool | np.bool_) and not pd.api.types.is_bool_dtype(col):
        # a CSV's flags are text: {"in_stock": True} matches "true" / "True" / "TRUE"
        flags = col.astype("string").str.strip().str.casefold()
        return _bools(flags == str(bool(cond)).casefold())
    if _is_number(cond) and not pd.api.types.is_numeric_dtype(col):
        return _bools(pd.to_numeric(col, errors="coerce") == cond)
    return _bools(col == cond)


def _is_plain_text(col: pd.Series, cond: Any, column: str) -> bool:
    """Whether ``cond`` is text :func:`_one` matches as a value: not a comparison
    (``"<20"``), nor a number against a numeric column."""
    if not isinstance(cond, str) or _comparison_text(cond, column) is not None:
        return False
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    return not (numeric and _as_number(cond) is not None)


def _compare(col: pd.Series, op: str, value: Any, column: str) -> np.ndarray:
    """``col op value``: as times on a datetime column, as numbers when ``value`` reads
    as one, else ``==`` / ``!=`` as the (case-insensitive, list-aware) value match and
    the ordering operators on text (ISO dates in a text column compare correctly)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return _bools(_OPS[op](col, _timestamp(value, col, column)))
    number = _as_number(value)
    numbers = pd.to_numeric(col, errors="coerce") if number is not None else None
    if numbers is not None and (numbers.notna().any() or col.isna().all()):
        with np.errstate(invalid="ignore"):
            return _bools(_OPS[op](numbers, number))
    if op in ("==", "!="):
        match = _one(col, str(value), column)
        return match if op == "==" else ~match
    if number is not None or pd.api.types.is_numeric_dtype(col):
        what = "holds no numbers" if number is not None else "holds numbers"
        raise DataValidationError(
            f"cannot compare column {column!r} with {op} {value!r}: it {what}.",
            source="filters",
            column=column,
            fix="compare a numeric column with a number, or filter a text column by value.",
        )
    dates = _iso_dates(col, value)
    if dates is not None:
        return _bools(_OPS[op](dates[0], dates[1]))
    return _bools(_OPS[op](col.astype("string"), str(value)))


def _iso_dates(col: pd.Series, value: Any) -> tuple[pd.Series, pd.Timestamp] | None:
    """A text column of ISO 8601 times and a threshold that is one, both in UTC (a
    time without an offset is UTC, as in interaction logs); None unless every filled
    cell parses. As text, ``2026-03-14T00:30+02:00`` sorts after ``2026-03-13T23:30Z``
    although it is an hour earlier: a CSV's publication dates must compare as times."""
    if not isinstance(value, str) or col.isna().all():
        return None
    try:
        threshold = pd.Timestamp(value.strip())
    except (TypeError, ValueError):
        return None
    if pd.isna(threshold):
        return None
    filled = col.notna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = pd.to_datetime(col, errors="coerce", utc=True, format="ISO8601")
    if times[filled].isna().any():
        return None
    zone = threshold.tzinfo
    return times, threshold.tz_localize("UTC") if zone is None else threshold.tz_convert("UTC")


def _timestamp(value: Any, col: pd.Series, column: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise DataValidationError(
            f"cannot compare date column {column!r} with {value!r}: not a date.",
            source="filters",
            column=column,
            fix="give a date such as 2024-05-01 or 2024-05-01T12:00.",
        )
    zone = getattr(col.dtype, "tz", None)
    if zone is not None and stamp.tzinfo is None:
        return stamp.tz_localize(zone)
    if zone is None and stamp.tzinfo is not None:
        return stamp.tz_convert(None)
    return stamp


def _bools(values: Any) -> np.ndarray:
    """A comparison's result as a plain bool array, missing values as False."""
    return np.asarray(pd.Series(values).fillna(False).astype(bool), dtype=bool)


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


def _value_match(col: pd.Series, targets: frozenset[str]) -> np.ndarray:
    """Rows whose cell is one of ``targets`` or lists one (:func:`_contains`). Each
    distinct cell is read once: a catalogue column holds few distinct values
    (categories, brands), so an 80,000-item filter costs one pass of pandas, not
    80,000 of Python."""
    kind = pd.api.types.infer_dtype(col, skipna=True) if col.dtype == object else ""
    if kind == "mixed":  # lists of values (tags), maybe beside plain cells
        listed = np.fromiter((isinstance(v, _LISTS) for v in col), dtype=bool, count=len(col))
        if listed.any():
            out = np.zeros(len(col), dtype=bool)
            values = col[listed].reset_index(drop=True).explode()
            hit = values.astype("string").str.strip().str.lower().isin(list(targets)).fillna(False)
            out[listed] = hit.groupby(level=0).any().reindex(range(listed.sum()), fill_value=False)
            out[~listed] = _value_match(col[~listed], targets)
            return out
    if kind not in ("", "string", "empty"):
        # cells that hash alike but read differently (1, 1.0 and True): one at a time
        return np.fromiter((_contains(v, targets) for v in col), dtype=bool, count=len(col))
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    text = pd.Series(uniques, dtype="string").str.strip().str.lower()
    wanted = list(targets)
    hits = text.isin(wanted).to_numpy(dtype=bool, na_value=False).copy()
    listing = text.str.contains(r"[|,]", regex=True).to_numpy(dtype=bool, na_value=False)
    if listing.any():  # "A|B" / "A, B" lists one of its parts
        parts = text[listing].str.replace(",", "|", regex=False).str.split("|").explode()
        found = parts.str.strip().isin(wanted).groupby(level=0).any()
        hits[found.index[found.to_numpy(dtype=bool)]] = True
    return np.append(hits, False)[codes]  # a missing cell (code -1) matches nothing


_LISTS = (list, tuple, set, np.ndarray)


def _contains(value: Any, targets: frozenset[str]) -> bool:
    """Whether the cell ``value`` is one of ``targets`` (lower-cased, stripped) or
    lists one: a list's elements, or the parts of ``"A|B"`` / ``"A, B"``."""
    if isinstance(value, _LISTS):
        return any(str(v).strip().lower() in targets for v in value)
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return False
    text = str(value).strip().lower()
    if text in targets:
        return True
    return any(part.strip() in targets for part in text.replace(",", "|").split("|"))
