"""Schema and validation of the two input frames.

``validate_interactions`` and ``validate_items`` return cleaned copies with
canonical dtypes (ids as ``str``, timestamps as int64 unix seconds, a float32
``weight``) or raise :class:`~hybrid_rec.errors.DataValidationError` naming the
source, the column, the rows and the fix. The caller's frame is never changed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hybrid_rec.config import DataConfig
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.idmap import id_text, ids_in
from hybrid_rec.errors import DataValidationError

__all__ = [
    "ValidationReport",
    "lookalikes",
    "normalize_ids",
    "source_name",
    "validate_interactions",
    "validate_items",
]

log = logging.getLogger(__name__)

C = Columns
MS_ABOVE = 1e11
"""With ``timestamp_unit = "auto"``, unix times above this are milliseconds (1e11 s is
the year 5138; 1e11 ms is 1973)."""
EARLIEST, LATEST = -2_208_988_800, 7_258_118_400
"""Unix seconds of 1900-01-01 and 2200-01-01: a log's times fall between."""


@dataclass
class ValidationReport:
    """What validation changed: rows dropped and why."""

    dropped_unknown_items: int = 0
    dropped_low_rating: int = 0
    dropped_ignored_events: int = 0
    """Rows of event types whose weight is 0 (``[data.event_weights] view = 0``)."""
    notes: list[str] = field(default_factory=list)


def source_name(frame: object, default: str) -> str:
    """The file a frame was read from (``read_table`` notes it), else ``default``."""
    attrs = getattr(frame, "attrs", None)
    return str(attrs.get("source", default)) if isinstance(attrs, dict) else default


_ALIASES: dict[str, tuple[str, ...]] = {
    C.user: (
        "user",
        "userid",
        "customer",
        "customerid",
        "customer_id",
        "client",
        "client_id",
        "member",
        "member_id",
        "visitor",
        "visitor_id",
        "account",
        "account_id",
        "uid",
    ),
    C.item: (
        "item",
        "itemid",
        "product",
        "productid",
        "product_id",
        "sku",
        "article",
        "article_id",
        "movie",
        "movie_id",
        "movieid",
        "book",
        "book_id",
        "isbn",
        "isbn13",
        "asin",
        "ean",
        "gtin",
        "track_id",
        "song_id",
        "video_id",
        "post_id",
        "news_id",
        "listing_id",
        "iid",
    ),
    C.timestamp: ("ts", "time", "date", "datetime", "event_time", "created_at", "time_stamp"),
    C.event: (
        "event_type",
        "eventtype",
        "action",
        "behavior",
        "behaviour",
        "type",
        "interaction",
        "interaction_type",
    ),
}


def lookalikes(frame: pd.DataFrame, canonical: str) -> list[str]:
    """Columns of ``frame`` that probably mean ``canonical`` (``customer_id`` → ``user_id``)."""
    names = _ALIASES.get(canonical, ())
    return [str(c) for c in frame.columns if _name_key(c) in names]


def _name_key(column: object) -> str:
    """``"Customer ID"``, ``"customer-id"`` → ``"customer_id"``."""
    return re.sub(r"[\s\-.]+", "_", str(column).strip().lower())


def _require_columns(
    frame: pd.DataFrame, required: tuple[str, ...], source: str, kind: str
) -> None:
    names = pd.Index([str(c) for c in frame.columns])
    if names.has_duplicates:
        twice = sorted(set(names[names.duplicated()]))
        raise DataValidationError(
            f"column name(s) {', '.join(map(repr, twice[:5]))} appear more than once.",
            source=source,
            column=twice[0],
            fix="rename or drop the extra copies: each column is read by its name.",
        )
    missing = [c for c in required if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns[:12]))
        renames = [f"{a} → {c}" for c in missing for a in lookalikes(frame, c)[:1]]
        if len(frame.columns) == 1 and any(sep in str(frame.columns[0]) for sep in ";|\t"):
            fix = "the file looks delimited by ';', '|' or tabs (an Excel export?): save it as a "
            fix += "comma-separated CSV."
        elif renames:
            fix = f"rename {', '.join(renames)}."
            unmatched = [c for c in missing if not lookalikes(frame, c)]
            if unmatched:  # say every column the file lacks, not only the ones recognised
                fix += f" {kind.capitalize()} also need {', '.join(map(repr, unmatched))}."
        else:
            fix = f"rename your columns so that {kind} have {', '.join(required)}."
        raise DataValidationError(
            f"missing required column(s) {', '.join(repr(c) for c in missing)} for {kind} "
            f"(columns present: {have}).",
            source=source,
            column=missing[0],
            fix=fix,
        )


def _warn_ignored_lookalikes(frame: pd.DataFrame, source: str) -> None:
    """A ``ts`` or ``event_type`` column is not read: say so, instead of training without it."""
    for canonical in (C.timestamp, C.event):
        if canonical in frame.columns:
            continue
        for alias in lookalikes(frame, canonical):
            log.warning(
                "%s: column %r is not read; rename it to %r if it holds the %s.",
                source,
                alias,
                canonical,
                "interaction times" if canonical == C.timestamp else "event types",
            )


def normalize_ids(values: pd.Series, *, source: str, column: str) -> pd.Series:
    """Turn an id column into stripped strings; NaN or empty ids are an error.

    Integer-valued floats (``42.0``, as pandas reads an int column with NaN)
    become ``"42"``, so numeric ids and their string form agree.
    """
    if values.isna().any():
        rows = np.flatnonzero(values.isna().to_numpy())
        raise DataValidationError(
            "missing id (NaN/None).",
            source=source,
            column=column,
            rows=rows,
            fix="every row needs an id; drop or fill those rows.",
        )
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype=float)
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
            raise DataValidationError(
                "ids must be integers or strings, found non-integer numbers.",
                source=source,
                column=column,
                rows=bad,
            )
        if len(arr) and np.abs(arr).max() >= 2**53:  # past int64/exact floats: one by one
            out = pd.Series([id_text(v) for v in arr], index=values.index)
        else:
            out = pd.Series(arr.astype(np.int64).astype(str), index=values.index)
    elif pd.api.types.is_unsigned_integer_dtype(values.dtype):
        out = values.astype(str)  # uint64 ids past 2**63 wrapped to negatives via int64
    elif pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        out = values.astype(np.int64).astype(str)
    elif pd.api.types.infer_dtype(values, skipna=False) == "string":  # already strings
        out = values
    else:
        out = values.map(id_text)
    out = out.astype(str).str.strip()
    empty = (out == "").to_numpy()
    if empty.any():
        raise DataValidationError(
            "empty id.",
            source=source,
            column=column,
            rows=np.flatnonzero(empty),
            fix="every row needs a non-empty id.",
        )
    return out


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _numeric(
    frame: pd.DataFrame,
    column: str,
    source: str,
    *,
    allow_zero: bool = True,
    allow_nan: bool = False,
) -> np.ndarray:
    """``column`` as float64, refusing text, inf and negatives (and NaN unless
    ``allow_nan``: an empty cell, kept as NaN)."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    if allow_nan:  # an empty cell, or one of spaces, is no value
        blank = raw.astype("string").str.strip().eq("").fillna(False)
        empty = (raw.isna() | blank).to_numpy(dtype=bool)
    else:
        empty = np.zeros(len(raw), dtype=bool)
    # kept as float32: 1e308 is finite here and inf there
    too_big = np.abs(np.nan_to_num(values)) > _FLOAT32_MAX
    bad = (~np.isfinite(values) & ~empty) | (values < 0) | ((values == 0) & (not allow_zero))
    bad |= too_big
    if bad.any():
        rows = np.flatnonzero(bad)
        example = _plain(raw.iloc[int(rows[0])])
        raise DataValidationError(
            f"{column} must be a finite number >= 0 (at most {_FLOAT32_MAX:.3g}); "
            f"found {example!r}.",
            source=source,
            column=column,
            rows=rows,
            fix=f"fix or drop those rows; {column} cannot be "
            + (
                "inf, negative or text (leave it empty for none)."
                if allow_nan
                else "NaN, inf, negative or text."
            ),
        )
    return values


def _timestamps(frame: pd.DataFrame, source: str, unit: str) -> np.ndarray:
    raw = frame[C.timestamp]
    missing = raw.isna().to_numpy()
    if missing.any():
        raise DataValidationError(
            "missing timestamp.",
            source=source,
            column=C.timestamp,
            rows=np.flatnonzero(missing),
            fix="fill those timestamps or drop those rows (a log has times on every row or none).",
        )
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(raw):
        return _epoch_seconds(pd.to_datetime(raw, utc=True))
    numeric = pd.to_numeric(raw, errors="coerce")
    if numeric.notna().all():
        values = numeric.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            rows = np.flatnonzero(~np.isfinite(values))
            raise DataValidationError(
                "timestamp is not finite.", source=source, column=C.timestamp, rows=rows
            )
        big = np.abs(values) > MS_ABOVE
        if unit == "auto":  # out of range in either unit: say so before any talk of mixing
            _check_time_range(np.where(big, values / 1000.0, values), raw, source, "time")
        if unit == "auto" and big.any() and not big.all():
            rows = np.flatnonzero(big if big.sum() <= len(big) / 2 else ~big)
            raise DataValidationError(
                "timestamps mix seconds and milliseconds: "
                f"{int(big.sum())} of {len(big)} are above {MS_ABOVE:.0e}, "
                f"e.g. {_plain(raw.iloc[int(np.flatnonzero(big)[0])])!r} and "
                f"{_plain(raw.iloc[int(np.flatnonzero(~big)[0])])!r}.",
                source=source,
                column=C.timestamp,
                rows=rows,
                fix="convert them to one unit (the rows listed are the fewer kind), or say which "
                "every number is with [data] timestamp_unit = 's' or 'ms'.",
            )
        use_ms = unit == "ms" or (unit == "auto" and bool(big.all()))
        seconds = values / 1000.0 if use_ms else values
        _check_time_range(seconds, raw, source, "millisecond count" if use_ms else "second count")
        return seconds.astype(np.int64)
    parsed = _parse_times(raw.astype("string"), source)
    bad = parsed.isna().to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError(
            f"cannot parse timestamp {_plain(raw.iloc[int(rows[0])])!r}.",
            source=source,
            column=C.timestamp,
            rows=rows,
            fix="use unix seconds/milliseconds or ISO 8601 (2024-05-01T12:00:00Z).",
        )
    return _epoch_seconds(parsed)


_SLASH_DATE = r"^\s*(\d{1,2})[/.](\d{1,2})[/.]\d{2,4}\b"


def _parse_times(text: pd.Series, source: str) -> pd.Series:
    """Times written as text. ``13/06/2024`` is read day-first, and so then is every
    ``DD/MM/YYYY`` date in the column (pandas reads each cell alone, so ``01/06/2024``
    became January 6th beside it); a column with both ``13/06`` and ``06/13`` is an
    error. Other forms (ISO 8601) are read as they are."""
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    parts = text.str.extract(_SLASH_DATE).astype("Float64")
    slashed = parts[0].notna().to_numpy()
    day_first, month_first = (parts[0] > 12).fillna(False), (parts[1] > 12).fillna(False)
    if day_first.any() and month_first.any():
        rows = np.flatnonzero(month_first.to_numpy())
        raise DataValidationError(
            f"timestamps mix day-first dates ({text[day_first].iloc[0]!r}) and month-first "
            f"ones ({text[month_first].iloc[0]!r}).",
            source=source,
            column=C.timestamp,
            rows=rows,
            fix="write every date one way, best as ISO 8601 (2024-06-13T10:00:00Z).",
        )
    if day_first.any():
        parsed[slashed] = pd.to_datetime(
            text[slashed], errors="coerce", utc=True, format="mixed", dayfirst=True
        )
    return parsed


def _check_time_range(seconds: np.ndarray, raw: pd.Series, source: str, unit: str) -> None:
    """Unix times outside years 1900-2200 are typos or another unit, and a huge one
    would wrap around when stored as a 64-bit integer."""
    bad = (seconds < EARLIEST) | (seconds > LATEST)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError(
            f"timestamp {_plain(raw.iloc[int(rows[0])])!r} read as a unix {unit} is not "
            "between the years 1900 and 2200.",
            source=source,
            column=C.timestamp,
            rows=rows,
            fix="check those rows (a typo, or another unit); [data] timestamp_unit says "
            "whether numbers are seconds or milliseconds.",
        )


def _epoch_seconds(times: pd.Series) -> np.ndarray:
    """Whole seconds since 1970 of tz-aware times, whatever their resolution (s … ns)."""
    epoch = pd.Timestamp(0, tz="UTC")
    return ((times - epoch) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, for readable messages."""
    item = getattr(value, "item", None)
    return item() if callable(item) and isinstance(value, np.generic) else value


def _event_weights(frame: pd.DataFrame, source: str, config: DataConfig) -> np.ndarray:
    events = frame[C.event].astype("string").str.strip().str.lower()
    if events.isna().any():
        raise DataValidationError(
            "missing event type.",
            source=source,
            column=C.event,
            rows=np.flatnonzero(events.isna().to_numpy()),
            fix="fill the event column (view, click, purchase ...).",
        )
    mapped = events.map(config.event_weights)
    unknown = mapped.isna().to_numpy()
    if unknown.any():
        if config.unknown_event == "error":
            names = sorted(set(events[unknown].tolist()))[:5]
            raise DataValidationError(
                f"unknown event type(s) {names}.",
                source=source,
                column=C.event,
                rows=np.flatnonzero(unknown),
                fix=f"use one of {sorted(config.event_weights)}, or give it a weight: "
                "[data.event_weights] in the TOML config (DataConfig.event_weights in Python).",
            )
        mapped = mapped.fillna(config.default_event_weight)
    return mapped.to_numpy(dtype=np.float64)


def validate_items(items: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Validate a catalogue frame: ``item_id`` present, non-empty and unique.

    Returns a copy with string ids and the original other columns.
    """
    src = source or source_name(items, "items")
    if not isinstance(items, pd.DataFrame):
        raise DataValidationError(
            f"expected a pandas DataFrame, got {type(items).__name__}.", source=src
        )
    if items.empty:
        raise DataValidationError(
            "the item catalogue is empty.", source=src, fix="pass at least one item row."
        )
    _require_columns(items, C.item_required, src, "items")
    out = items.copy()
    out.columns = [str(c) for c in out.columns]
    out[C.item] = normalize_ids(out[C.item], source=src, column=C.item)
    dup = out[C.item].duplicated(keep=False).to_numpy()
    if dup.any():
        first = out[C.item][dup].iloc[0]
        raise DataValidationError(
            f"duplicate item id(s), e.g. {first!r} ({int(dup.sum())} rows).",
            source=src,
            column=C.item,
            rows=np.flatnonzero(dup),
            fix="each item must appear once in the catalogue; merge or drop the duplicates.",
        )
    return out.reset_index(drop=True)


def validate_interactions(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    config: DataConfig | None = None,
    source: str | None = None,
    report: ValidationReport | None = None,
    event_weights: bool = True,
) -> pd.DataFrame:
    """Validate and clean an interaction frame.

    Parameters
    ----------
    interactions
        Needs ``user_id`` and ``item_id``; optional ``timestamp``, ``event``,
        ``weight`` and ``rating``.
    items
        A validated catalogue; interactions with an item absent from it raise,
        or are dropped with a warning if ``config.unknown_items == "drop"``.
    config
        Event weights and policies.
    event_weights
        Multiply ``weight`` by the event's weight (default). ``False`` checks the
        events (and drops those weighted 0) but leaves ``weight`` as given: for a
        frame that is validated again later, by ``fit``, which then applies the
        event weights once (validating twice would square them).

    Returns
    -------
    pandas.DataFrame
        ``user_id``, ``item_id`` (str), ``weight`` (float32, event weight times
        the given weight) and, where present, ``timestamp`` (int64 seconds),
        ``event`` (str) and ``rating`` (float32).
    """
    cfg = config or DataConfig()
    rep = report if report is not None else ValidationReport()
    src = source or source_name(interactions, "interactions")
    if not isinstance(interactions, pd.DataFrame):
        raise DataValidationError(
            f"expected a pandas DataFrame, got {type(interactions).__name__}.", source=src
        )
    if interactions.empty:
        raise DataValidationError(
            "there are no interactions.",
            source=src,
            fix="pass at least one (user_id, item_id) row.",
        )
    _require_columns(interactions, C.interaction_required, src, "interactions")
    _warn_ignored_lookalikes(interactions, src)
    frame = interactions.reset_index(drop=True)
    out = pd.DataFrame(
        {
            C.user: normalize_ids(frame[C.user], source=src, column=C.user),
            C.item: normalize_ids(frame[C.item], source=src, column=C.item),
        }
    )
    weight = np.ones(len(frame), dtype=np.float64)
    if C.timestamp in frame.columns:
        out[C.timestamp] = _timestamps(frame, src, cfg.timestamp_unit)
    ignored = np.zeros(len(frame), dtype=bool)
    if C.event in frame.columns:
        event_weight = _event_weights(frame, src, cfg)
        ignored = event_weight == 0
        if event_weights:
            weight *= event_weight
        out[C.event] = frame[C.event].astype(str).str.strip().str.lower()
    if C.weight in frame.columns:
        weight *= _numeric(frame, C.weight, src)
    if C.rating in frame.columns:  # NaN: no rating (e.g. a view, or a purchase never reviewed)
        out[C.rating] = _numeric(frame, C.rating, src, allow_nan=True).astype(np.float32)
    if (weight > _FLOAT32_MAX).any():  # weight x event weight past float32
        rows = np.flatnonzero(weight > _FLOAT32_MAX)
        raise DataValidationError(
            f"weight times the event's weight is {weight[rows[0]]:.3g}, past what a float32 holds.",
            source=src,
            column=C.weight,
            rows=rows,
            fix="scale the weights down (their ratios are what training uses).",
        )
    out[C.weight] = weight.astype(np.float32)

    if ignored.any():
        rep.dropped_ignored_events = int(ignored.sum())
        out = out[~ignored]
    if cfg.min_rating is not None and C.rating in out.columns:
        ratings = out[C.rating].to_numpy()
        keep = np.isnan(ratings) | (ratings >= cfg.min_rating)
        rep.dropped_low_rating = int((~keep).sum())
        out = out[keep]
    if items is not None:
        out = _check_known_items(out, items, cfg, src, rep)
    if out.empty:
        raise DataValidationError(
            "no interactions left after cleaning.",
            source=src,
            fix="check min_rating, event weights of 0, and that item ids match the catalogue.",
        )
    return out.reset_index(drop=True)


def _check_known_items(
    out: pd.DataFrame, items: pd.DataFrame, cfg: DataConfig, src: str, rep: ValidationReport
) -> pd.DataFrame:
    known = ids_in(out[C.item], items[C.item].astype(str))
    unknown = ~known
    if not unknown.any():
        return out
    if cfg.unknown_items == "error":
        example = out[C.item][unknown].iloc[0]
        raise DataValidationError(
            f"{int(unknown.sum())} interaction(s) refer to items absent from the catalogue, "
            f"e.g. {example!r}.",
            source=src,
            column=C.item,
            rows=out.index[unknown],
            fix="add those items to the catalogue first (add_items, `hybrid-rec add-items`), "
            'or leave their rows out: data.unknown_items = "drop" (`add-feedback '
            "--unknown-items drop`).",
        )
    rep.dropped_unknown_items = int(unknown.sum())
    log.warning(
        "%s: dropped %d interaction(s) whose item is not in the catalogue.",
        src,
        rep.dropped_unknown_items,
    )
    return out[known]
