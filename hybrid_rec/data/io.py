"""Readers and atomic writers for CSV, Parquet and JSON Lines.

Every failure a user can cause (missing file, empty file, wrong encoding, a
file whose content is not the format its extension claims) becomes a
:class:`~hybrid_rec.errors.DataValidationError` that names the file.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # POSIX advisory locks; elsewhere a single writer is trusted
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybrid_rec.data.columns import FREE_TEXT_COLUMNS, TITLE_COLUMNS, Columns
from hybrid_rec.errors import BatchOutputError, DataValidationError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "default_mode",
    "exclusive_lock",
    "format_of",
    "fsync_dir",
    "iter_table",
    "read_column",
    "read_table",
    "write_table",
]

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def format_of(path: Path, *, kind: str = "file") -> str:
    """The table format of ``path`` from its extension (``csv``, ``tsv``, ``parquet``,
    ``jsonl``), or a :class:`DataValidationError` naming the ``kind`` of file."""
    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataValidationError(
            f"unsupported {kind} type {path.suffix!r}.",
            source=str(path),
            fix="use .csv, .tsv, .parquet or .jsonl (JSON Lines: one JSON object per line).",
        )
    return fmt


def _check_readable(path: Path) -> str:
    """The format of ``path``, after the checks :func:`read_table` makes on every file."""
    fmt = format_of(path)
    if not path.exists():
        raise DataValidationError("file not found.", source=str(path), fix="check the path.")
    if path.is_dir():
        raise DataValidationError("is a directory, not a file.", source=str(path))
    if path.stat().st_size == 0:
        raise DataValidationError(
            "the file is empty.",
            source=str(path),
            fix="export the data again; a header row at least is needed.",
        )
    return fmt


def read_table(path: str | os.PathLike[str], *, allow_empty: bool = False) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or JSON Lines file into a DataFrame.

    Text formats are read as strings, so that ``"007"`` stays ``"007"``; then a
    column whose every filled cell is a number (``price``, ``year``) becomes
    numeric, as it is in a DataFrame or a Parquet file, unless it is an id, title
    or free-text column or a value has a leading zero (a code such as ``"0123"``).
    The schema validators convert the rest.
    With ``allow_empty``, a header without rows gives an empty frame (a day with
    no new items); an empty file is still an error.

    Raises
    ------
    DataValidationError
        If the file is missing, empty, not UTF-8, or not the format its
        extension claims.
    """
    p = Path(path)
    fmt = _check_readable(p)
    reader = {"csv": _read_csv, "tsv": _read_tsv, "parquet": _read_parquet, "jsonl": _read_jsonl}
    frame = reader[fmt](p)
    if fmt in ("csv", "tsv"):
        frame = _numeric_columns(frame, str(p))
    if frame.empty and not allow_empty:
        raise DataValidationError(
            "the file has no data rows.",
            source=str(p),
            fix="add at least one row below the header.",
        )
    frame.attrs["source"] = str(p)
    return frame


_LEADING_ZERO = r"^[+-]?0\d"
_EXACT = 2.0**53
"""Numbers above this are not held exactly by a float: such digit strings are codes."""


def _numeric_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Columns of numbers read as text become numbers: whole ones ``Int64`` (a blank is
    missing), others float. Ids, titles, free text and codes with a leading zero stay."""
    for name in frame.columns:
        if name in _LITERAL_COLUMNS:
            continue
        text = frame[name].dropna().astype(str).str.strip()
        if not len(text) or text.str.contains(_LEADING_ZERO).any():
            continue
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.isna().any():
            _warn_if_almost_numbers(source, name, text, numbers)
            continue  # words
        if float(numbers.abs().max()) > _EXACT:
            continue  # digits too long for a number: a code
        column = pd.to_numeric(frame[name], errors="coerce")
        whole = bool((numbers == numbers.round()).all()) and not text.str.contains(r"[.eE]").any()
        frame[name] = column.astype("Int64") if whole else column.astype("float64")
    return frame


def _warn_if_almost_numbers(source: str, name: str, text: pd.Series, numbers: pd.Series) -> None:
    """A column of numbers but for a few cells (``12,50``, ``$9.99``) stays text, and
    numeric filters (``price<15``) then leave those items out: say which cells."""
    bad = numbers.isna() & (text != "")
    if (~bad).sum() < 5 or bad.mean() > 0.2:  # mostly words: a text column
        return
    log.warning(
        "%s: column %r holds numbers but for %d cell(s) such as %s, so it is read as text: "
        "in a catalogue, numeric filters on it leave those items out; in an interaction "
        "log, a rating or weight column is refused. Fix: write them as plain numbers "
        "(12.5, not 12,50, $12.50 or 'five').",
        source,
        name,
        int(bad.sum()),
        ", ".join(repr(v) for v in text[bad].head(3)),
    )


def _check_utf8(path: Path) -> None:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataValidationError(
                    f"not valid UTF-8 at line {lineno}, byte {exc.start} ({exc.reason}).",
                    source=str(path),
                    fix="re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).",
                ) from None


MISSING_MARKERS = (
    "",
    "NA",
    "N/A",
    "n/a",
    "#N/A",
    "#NA",
    "<NA>",
    "NaN",
    "nan",
    "-NaN",
    "-nan",
    "null",
    "NULL",
    "None",
)
"""Cells read as missing, except in id, title and free-text columns: there only an empty
cell is missing, so an item called "NA" (Namibia) or "None" keeps its name."""
_LITERAL_COLUMNS = frozenset({Columns.user, Columns.item, *TITLE_COLUMNS, *FREE_TEXT_COLUMNS})


def _first_records(path: Path, sep: str) -> tuple[list[str], list[str] | None]:
    """The header and the first data row, as ``csv`` splits them (quotes respected)."""
    with path.open(encoding="utf-8", newline="") as fh:
        records = (row for row in csv.reader(fh, delimiter=sep) if row)
        header: list[str] = []
        try:
            header = next(records, [])
            first = next(records, None)
        except csv.Error:  # a cell over csv's size limit: pandas reads it and checks the rest
            first = None
        return header, first


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    return next(_iter_delimited(path, sep, None))


def _read_csv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, ",")


def _read_tsv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, "\t")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise _not_parquet(path, exc) from None


def _not_parquet(path: Path, exc: Exception) -> DataValidationError:
    return DataValidationError(
        f"not a valid Parquet file ({exc}).",
        source=str(path),
        fix="write it again with pandas.DataFrame.to_parquet, or give "
        "it the extension of its real format.",
    )


def _read_jsonl(path: Path) -> pd.DataFrame:
    frames = list(_iter_jsonl(path, None))
    if not frames:
        raise DataValidationError("the file has no JSON objects.", source=str(path))
    return frames[0]


# ---------------------------------------------------------------- streaming reads


def iter_table(path: str | os.PathLike[str], rows: int) -> Iterator[pd.DataFrame]:
    """Read a CSV, TSV, Parquet or JSON Lines file in frames of exactly ``rows`` rows
    (the last may be shorter), holding one frame at a time.

    Values are read as :func:`read_table` reads them (text formats as strings);
    each frame's ``attrs["source"]`` is the file and its index starts at 0.

    Raises
    ------
    DataValidationError
        As :func:`read_table`, for a missing, empty or malformed file.
    """
    p = Path(path)
    fmt = _check_readable(p)
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if fmt == "parquet":
        frames = _iter_parquet(p, rows)
    elif fmt == "jsonl":
        frames = _iter_jsonl(p, rows)
    else:
        frames = _iter_delimited(p, "," if fmt == "csv" else "\t", rows)
    for frame in frames:
        frame = frame.reset_index(drop=True)
        frame.attrs["source"] = str(p)
        yield frame


def read_column(path: str | os.PathLike[str], column: str) -> pd.Series:
    """One column of a table file, read in frames so the other columns are never all held.

    Raises
    ------
    DataValidationError
        If the file cannot be read or has no such column.
    """
    parts = []
    for frame in iter_table(path, 65_536):
        if column not in frame.columns:
            raise DataValidationError(
                f"no column {column!r} (found {', '.join(map(str, frame.columns))}).",
                source=str(path),
                fix=f"add a {column!r} column.",
            )
        parts.append(frame[column])
    if not parts:
        return pd.Series([], dtype=object, name=column)
    return pd.concat(parts, ignore_index=True)


def _iter_parquet(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=rows)
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in batches:
            pending.append(batch)
            size += batch.num_rows
            while size >= rows:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, rows).to_pandas()
                rest = table.slice(rows)
                pending, size = rest.to_batches(), rest.num_rows
        if size:
            yield pa.Table.from_batches(pending).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise _not_parquet(path, exc) from None


def _iter_delimited(path: Path, sep: str, rows: int | None) -> Iterator[pd.DataFrame]:
    """Frames of ``rows`` rows (``None``: one frame of the whole file), strings kept as read."""
    with path.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            raise DataValidationError(
                "this is a Parquet file, not CSV.", source=str(path), fix="rename it to .parquet."
            )
    _check_utf8(path)
    header, first = _first_records(path, sep)
    if first is not None and len(first) > len(header):
        # pandas would take the first column for an index and shift every name by one
        raise DataValidationError(
            f"the first data row has {len(first)} fields, the header {len(header)}.",
            source=str(path),
            fix="remove the extra field (or name its column in the header); quote a value "
            f"that contains {'a comma' if sep == ',' else 'a tab'}.",
        )
    missing: dict[str, list[str]] | list[str] = (
        {name: [""] if name in _LITERAL_COLUMNS else list(MISSING_MARKERS) for name in header}
        if header
        else list(MISSING_MARKERS)
    )
    try:
        read = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=missing,
            index_col=False,
            encoding="utf-8",
            chunksize=rows,
        )
        if rows is None:
            yield read
        else:
            yield from read
    except pd.errors.EmptyDataError:
        raise DataValidationError("the file is empty.", source=str(path)) from None
    except pd.errors.ParserError as exc:
        raise DataValidationError(
            f"not a valid {'CSV' if sep == ',' else 'TSV'} file: {exc}",
            source=str(path),
            fix="check quoting and the number of fields per line.",
        ) from None


def _iter_jsonl(path: Path, rows: int | None) -> Iterator[pd.DataFrame]:
    """Frames of ``rows`` JSON objects (``None``: one frame of the whole file)."""
    _check_utf8(path)
    with path.open(encoding="utf-8") as fh:
        numbered = ((n, line) for n, line in enumerate(fh, start=1) if line.strip())
        while group := list(itertools.islice(numbered, rows)):
            yield pd.DataFrame.from_records([_json_object(line, n, path) for n, line in group])


def _json_object(line: str, lineno: int, path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataValidationError(
            f"line {lineno} is not valid JSON ({exc.msg}).",
            source=str(path),
            fix="JSON Lines needs one JSON object per line.",
        ) from None
    if not isinstance(obj, dict):
        raise DataValidationError(
            f"line {lineno} is a JSON {type(obj).__name__}, not an object.",
            source=str(path),
            fix="write one JSON object per line.",
        )
    return obj


# ---------------------------------------------------------------- atomic writes


def fsync_dir(directory: Path) -> None:
    """fsync a directory so that a rename inside it survives a crash."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def default_mode(*, directory: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give under the process umask (``mkstemp``
    and ``mkdtemp`` give 0600/0700, which other readers of a model cannot open)."""
    return (0o777 if directory else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync and rename it over ``path``.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, default_mode())  # mkstemp makes it 0600: give it the mode open() would
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as pretty JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def write_table(
    frame: pd.DataFrame, path: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Write a frame as CSV, Parquet or JSON Lines (by extension), atomically.

    An existing file is replaced only with ``overwrite``, and never one inside a saved
    model's directory (the model would fail its check). In CSV and TSV, a text cell
    that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return first, and not a number) is written with a leading ``'``: catalogue
    text is untrusted (OWASP's CSV-injection advice)."""
    p = Path(path)
    fmt = format_of(p)
    check_output(p, overwrite=overwrite)
    with atomic_path(p) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        elif fmt == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            safe = _formulas_escaped(frame)
            safe.to_csv(tmp, index=False, sep="," if fmt == "csv" else "\t")


def check_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Refuse to write ``path`` where :func:`write_table` would: an existing file
    without ``overwrite``, or any file inside a saved model's directory."""
    p = Path(path)
    if (p.parent / "manifest.json").is_file():
        raise BatchOutputError(
            f"{p}: inside a saved model's directory ({p.parent}), where any other file makes "
            "the model fail to load. Write it elsewhere."
        )
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise BatchOutputError(f"{p}: already exists. Pass --overwrite to replace it.")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _formulas_escaped(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each text cell a spreadsheet would evaluate prefixed by ``'``
    (numbers such as ``-0.5`` stay as they are)."""
    out = frame
    for column in frame.columns:
        col = frame[column]
        if not (col.dtype == object or pd.api.types.is_string_dtype(col)):
            continue
        text = col.astype("string")
        risky = text.str.startswith(_FORMULA_START).fillna(False)
        risky &= pd.to_numeric(text.where(risky), errors="coerce").isna()
        if risky.any():
            out = out.copy() if out is frame else out
            out[column] = text.where(~risky, "'" + text)
    return out


@contextlib.contextmanager
def exclusive_lock(
    path: str | os.PathLike[str], busy: Exception, *, wait: float = 0.0
) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created, and removed on exit);
    raise ``busy`` if another process still holds it after ``wait`` seconds (0: at once).

    ``flock`` is released by the OS even when the holder is killed, so a crash never
    leaves a stale lock. The file is re-checked after locking: a holder that just
    removed it cannot leave two processes each locking a different file.
    """
    path = Path(path)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            left = deadline - time.monotonic()
            if left <= 0:
                raise busy from None
            time.sleep(min(0.2, left))
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed by the holder we waited on: lock the new file instead
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
