"""Readers and atomic writers for CSV, Parquet and JSON Lines.

Every failure a user can cause (missing file, empty file, wrong encoding, a
file whose content is not the format its extension claims) becomes a
:class:`~hybrid_rec.errors.DataValidationError` that names the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybrid_rec.errors import DataValidationError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "fsync_dir",
    "read_table",
    "write_table",
]

SUPPORTED_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def _format_of(path: Path) -> str:
    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataValidationError(
            f"unsupported file type {path.suffix!r}.",
            source=str(path),
            fix="use .csv, .tsv, .parquet or .jsonl (JSON Lines: one JSON object per line).",
        )
    return fmt


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or JSON Lines file into a DataFrame.

    Id-like columns are read as strings (``dtype=str`` for text formats) so
    that ``"007"`` stays ``"007"``; the schema validators convert the rest.

    Raises
    ------
    DataValidationError
        If the file is missing, empty, not UTF-8, or not the format its
        extension claims.
    """
    p = Path(path)
    fmt = _format_of(p)
    if not p.exists():
        raise DataValidationError("file not found.", source=str(p), fix="check the path.")
    if p.is_dir():
        raise DataValidationError("is a directory, not a file.", source=str(p))
    if p.stat().st_size == 0:
        raise DataValidationError(
            "the file is empty.",
            source=str(p),
            fix="export the data again; a header row at least is needed.",
        )
    reader = {"csv": _read_csv, "tsv": _read_tsv, "parquet": _read_parquet, "jsonl": _read_jsonl}
    frame = reader[fmt](p)
    if frame.empty:
        raise DataValidationError(
            "the file has no data rows.",
            source=str(p),
            fix="add at least one row below the header.",
        )
    frame.attrs["source"] = str(p)
    return frame


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


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        raise DataValidationError(
            "this is a Parquet file, not CSV.", source=str(path), fix="rename it to .parquet."
        )
    _check_utf8(path)
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=True, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataValidationError("the file is empty.", source=str(path)) from None
    except pd.errors.ParserError as exc:
        raise DataValidationError(
            f"not a valid {'CSV' if sep == ',' else 'TSV'} file: {exc}",
            source=str(path),
            fix="check quoting and the number of fields per line.",
        ) from None


def _read_csv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, ",")


def _read_tsv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, "\t")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise DataValidationError(
            f"not a valid Parquet file ({exc}).",
            source=str(path),
            fix="write it again with pandas.DataFrame.to_parquet, or give "
            "it the extension of its real format.",
        ) from None


def _read_jsonl(path: Path) -> pd.DataFrame:
    _check_utf8(path)
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
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
            records.append(obj)
    if not records:
        raise DataValidationError("the file has no JSON objects.", source=str(path))
    return pd.DataFrame.from_records(records)


# ---------------------------------------------------------------- atomic writes


def fsync_dir(directory: Path) -> None:
    """fsync a directory so that a rename inside it survives a crash."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a frame as CSV, Parquet or JSON Lines (by extension), atomically."""
    p = Path(path)
    fmt = _format_of(p)
    with atomic_path(p) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        elif fmt == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(tmp, index=False, sep="," if fmt == "csv" else "\t")
