"""Chunked, resumable batch jobs whose results go to Parquet.

A job reads its input in chunks of ``chunk_size`` rows, turns each chunk into
result rows with a function it is given, and writes them as it goes, so memory
holds one chunk (its input rows, its scores, its results) whatever the size of
the input. Writing to ``PATH`` keeps the job's progress beside it::

    PATH.partial/state.json                     job parameters, chunk size, the
                                                input's sha256 and row count
    PATH.partial/chunk-000000-SHA.parquet       one file per finished chunk, written
                                                atomically; SHA is the first 16 hex
                                                digits of the file's sha256

A rerun after a crash finds the finished chunks and computes only the rest (a
chunk whose bytes no longer match the sha256 in its name is computed again); a
rerun with another input or other parameters is refused (``overwrite=True``
discards the partial state instead). When every chunk is done they are combined
in order into ``PATH`` (a temporary file renamed over it) and ``PATH.partial``
is removed, so ``PATH`` only ever exists complete and a resumed run writes the
same file as an uninterrupted one. A job holds ``.PATH.lock`` while it runs, so
two jobs cannot write the same ``PATH`` at once, and it deletes the temporary
``.PATH.*.tmp`` files a killed job left.

This module knows nothing of models: :mod:`hybrid_rec.recommender` gives it the
function applied to each chunk. :class:`TopK` is the scoring kernel those
functions use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from hybrid_rec.content.encoders import progress_enabled, sha256_file
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.io import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    exclusive_lock,
    iter_table,
    read_column,
)
from hybrid_rec.errors import BatchOutputError, DataValidationError

__all__ = [
    "BatchReport",
    "ChunkFn",
    "InputTable",
    "TopK",
    "collect",
    "input_rows",
    "partial_dir",
    "result_schema",
    "topk_table",
    "write_parquet",
]

log = logging.getLogger(__name__)

STATE_FORMAT = 2
"""2: chunk files carry their sha256 in their name."""
PARQUET_SUFFIXES = (".parquet", ".pq")
_DIGEST_CHARS = 16
_CHUNK_NAME = re.compile(rf"^chunk-(\d{{6,}})-([0-9a-f]{{{_DIGEST_CHARS}}})\.parquet$")
ChunkFn = Callable[[pd.DataFrame, int], "pd.DataFrame | pa.Table"]
"""``(chunk, first_row) -> result rows``; ``first_row`` is the chunk's offset in the input."""


@dataclass(frozen=True)
class BatchReport:
    """What a batch job wrote.

    Attributes
    ----------
    output
        The Parquet file.
    rows
        Result rows in it.
    chunks
        Chunks of the input.
    resumed
        Chunks found finished from an interrupted run and not computed again.
    skipped
        Input rows left out on purpose (e.g. ids already in the model).
    seconds
        Wall time of this call.
    """

    output: Path
    rows: int
    chunks: int
    resumed: int
    skipped: int
    seconds: float


# ---------------------------------------------------------------- input


class InputTable:
    """The rows a batch job reads: a DataFrame, or a table file read in chunks.

    Parameters
    ----------
    data
        A frame, or a CSV / TSV / Parquet / JSON Lines path (never read whole).
    """

    def __init__(self, data: pd.DataFrame | str | os.PathLike[str]) -> None:
        if isinstance(data, pd.DataFrame):
            self.frame: pd.DataFrame | None = data.reset_index(drop=True)
            self.frame.attrs = dict(data.attrs)
            self.path: Path | None = None
            self.name = str(data.attrs.get("source", "frame"))
        else:
            self.frame, self.path = None, Path(data)
            self.name = str(self.path)
        self._rows: int | None = None if self.frame is None else len(self.frame)

    def column(self, name: str) -> pd.Series:
        """One whole column (e.g. the ids, to check them before any work)."""
        if self.frame is not None:
            if name not in self.frame.columns:
                raise DataValidationError(
                    f"no column {name!r}.", source=self.name, fix=f"add a {name!r} column."
                )
            return self.frame[name]
        assert self.path is not None
        values = read_column(self.path, name)
        self._rows = len(values)
        return values

    @property
    def n_rows(self) -> int:
        """Number of rows (counted by one streaming pass for a file)."""
        if self._rows is None:
            self._rows = sum(len(chunk) for chunk in self.chunks(65_536))
        return self._rows

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """Consecutive frames of ``rows`` rows (the last may be shorter)."""
        if self.frame is None:
            assert self.path is not None
            yield from iter_table(self.path, rows)
            return
        for start in range(0, len(self.frame), rows):
            chunk = self.frame.iloc[start : start + rows].reset_index(drop=True)
            chunk.attrs = {"source": self.name}
            yield chunk

    def sha256(self) -> str:
        """The file's sha256, or a sha256 of the frame's columns and values."""
        if self.path is not None:
            return sha256_file(self.path)
        assert self.frame is not None
        digest = hashlib.sha256(json.dumps([str(c) for c in self.frame.columns]).encode())
        try:
            rows = pd.util.hash_pandas_object(self.frame, index=False)
        except TypeError:  # unhashable cells (lists, dicts): hash their text
            rows = pd.util.hash_pandas_object(self.frame.astype(str), index=False)
        digest.update(rows.to_numpy().tobytes())
        return digest.hexdigest()


@contextlib.contextmanager
def input_rows(positions: np.ndarray) -> Iterator[None]:
    """Re-raise a :class:`DataValidationError` about a chunk's rows with the input's row
    numbers (``positions[r]`` for chunk row ``r``)."""
    try:
        yield
    except DataValidationError as exc:
        if not exc.rows:
            raise
        raise DataValidationError(
            exc.problem,
            source=exc.source,
            column=exc.column,
            rows=positions[np.asarray(exc.rows)],
            fix=exc.fix,
        ) from None


def topk_table(
    query_ids: np.ndarray,
    scores: np.ndarray,
    cols: np.ndarray,
    result_ids: pa.Array,
    query_col: str,
    result_col: str,
) -> pa.Table:
    """Top-k results as an Arrow table (:func:`result_schema`), built without Python
    objects per row: query ``i``'s ``rank``-th best is ``result_ids[cols[i, rank - 1]]``."""
    n, k = scores.shape
    return pa.table(
        {
            query_col: pa.array(np.asarray(query_ids, dtype=object), pa.string()).take(
                np.repeat(np.arange(n), k)
            ),
            result_col: result_ids.take(pa.array(cols.ravel())),
            Columns.score: pa.array(scores.ravel(), pa.float32()),
            Columns.rank: pa.array(np.tile(np.arange(1, k + 1, dtype=np.int64), n)),
        },
        schema=result_schema(query_col, result_col),
    )


def result_schema(query_col: str, result_col: str) -> pa.Schema:
    """``query_col, result_col`` (strings), ``score`` (float32), ``rank`` (int64)."""
    fields = [(query_col, pa.string()), (result_col, pa.string())]
    return pa.schema([*fields, (Columns.score, pa.float32()), (Columns.rank, pa.int64())])


# ---------------------------------------------------------------- running


def collect(
    table: InputTable,
    process: ChunkFn,
    *,
    chunk_size: int,
    desc: str = "scoring",
    show_progress: bool | None = None,
) -> pd.DataFrame:
    """Apply ``process`` chunk by chunk and return all result rows in one frame."""
    _check_chunk_size(chunk_size)
    chunks = _progress(table.chunks(chunk_size), table, chunk_size, desc, show_progress)
    parts = [process(chunk, n * chunk_size) for n, chunk in enumerate(chunks)]
    if parts and all(isinstance(p, pa.Table) for p in parts):
        return pa.concat_tables(parts).to_pandas()
    frames = [p.to_pandas() if isinstance(p, pa.Table) else p for p in parts]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def partial_dir(output: str | os.PathLike[str]) -> Path:
    """Where a job writing ``output`` keeps its finished chunks: ``output + ".partial"``."""
    out = Path(output)
    return out.with_name(out.name + ".partial")


def write_parquet(
    table: InputTable,
    process: ChunkFn,
    output: str | os.PathLike[str],
    *,
    schema: pa.Schema,
    chunk_size: int,
    params: dict[str, Any],
    overwrite: bool = False,
    resume: bool = True,
    skipped: int = 0,
    desc: str = "scoring",
    show_progress: bool | None = None,
) -> BatchReport:
    """Apply ``process`` chunk by chunk, writing the results to the Parquet file ``output``.

    Parameters
    ----------
    table
        The input.
    process
        ``(chunk, first_row) -> frame`` with the columns of ``schema``.
    output
        A ``.parquet`` path; its progress lives in :func:`partial_dir` until done.
    schema
        The output's Arrow schema (every chunk is cast to it).
    chunk_size
        Input rows per chunk (part of the resume state: a resumed run must use the same).
    params
        Everything else the results depend on (job, k, model fingerprint ...),
        JSON-serialisable: a partial run made with other values is not resumed.
    overwrite
        Replace an existing ``output`` (only once the new one is complete), and
        discard a partial run that does not match.
    resume
        Continue a matching partial run (default); ``False`` starts afresh.
    skipped
        Input rows the caller leaves out, reported back.

    Raises
    ------
    BatchOutputError
        ``output`` exists and ``overwrite`` is false, or a partial run with another
        input or other parameters is in the way.
    """
    _check_chunk_size(chunk_size)
    out = _check_output(Path(output), overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.with_name(f".{out.name}.lock")
    busy = BatchOutputError(
        f"{out}: another job is writing this output (lock {lock}). Fix: wait for it to "
        "finish, or write to another path."
    )
    with exclusive_lock(lock, busy):  # two jobs on one output would break each other
        return _write_parquet(
            table,
            process,
            out,
            schema,
            chunk_size,
            params,
            overwrite,
            resume,
            skipped,
            desc,
            show_progress,
        )


def _write_parquet(
    table: InputTable,
    process: ChunkFn,
    output: Path,
    schema: pa.Schema,
    chunk_size: int,
    params: dict[str, Any],
    overwrite: bool,
    resume: bool,
    skipped: int,
    desc: str,
    show_progress: bool | None,
) -> BatchReport:
    started = time.perf_counter()
    out = _check_output(output, overwrite)  # again, under the lock
    n_rows = table.n_rows
    if n_rows == 0:
        raise DataValidationError("the input has no rows.", source=table.name)
    state = {
        "format": STATE_FORMAT,
        "chunk_size": chunk_size,
        "input": {"rows": n_rows, "sha256": table.sha256()},
        "params": params,
    }
    _remove_temporary(out.parent, f".{out.name}.")  # a killed combine's; we hold the lock
    partial = _open_partial(partial_dir(out), state, overwrite=overwrite, resume=resume)
    _remove_temporary(partial, ".chunk-")
    n_chunks = -(-n_rows // chunk_size)
    finished = _finished_chunks(partial, n_chunks)
    done = set(finished)
    if done:
        log.info("resuming %s: %d of %d chunks already done", out, len(done), n_chunks)
    chunks = _progress(table.chunks(chunk_size), table, chunk_size, desc, show_progress, done)
    # one background writer: chunk n is encoded and fsynced while chunk n + 1 is computed
    # (pyarrow releases the GIL); at most one finished chunk waits in memory
    with ThreadPoolExecutor(1) as writer:
        pending: Future[None] | None = None
        for n, chunk in enumerate(chunks):
            if n in done:
                continue
            result = process(chunk, n * chunk_size)
            if isinstance(result, pd.DataFrame):
                result = pa.Table.from_pandas(result, schema=schema, preserve_index=False)
            if pending is not None:
                pending.result()
            pending = writer.submit(_write_chunk, result.cast(schema), partial, n, finished)
        if pending is not None:
            pending.result()
    rows = _combine(finished, n_chunks, out, schema)
    shutil.rmtree(partial, ignore_errors=True)
    log.info("wrote %d rows to %s (%d chunks, %d resumed)", rows, out, n_chunks, len(done))
    return BatchReport(out, rows, n_chunks, len(done), skipped, time.perf_counter() - started)


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise DataValidationError(
            f"chunk_size must be a positive integer, got {chunk_size!r}.", source="chunk_size"
        )


def _check_output(out: Path, overwrite: bool) -> Path:
    if out.suffix.lower() not in PARQUET_SUFFIXES:
        raise DataValidationError(
            f"batch output is written as Parquet, but the path ends in {out.suffix!r}.",
            source=str(out),
            fix="give a path ending in .parquet.",
        )
    if out.is_dir():
        raise BatchOutputError(f"{out}: is a directory; give a file path for the output.")
    if out.exists() and not overwrite:
        raise BatchOutputError(
            f"{out}: already exists (a finished run). Pass overwrite=True (--overwrite) to "
            "replace it, or choose another path."
        )
    return out


def _open_partial(partial: Path, state: dict[str, Any], *, overwrite: bool, resume: bool) -> Path:
    """The partial directory, resumed if it matches ``state``, else refused or started afresh."""
    if partial.exists() and _read_state(partial) is None and not any(partial.glob("chunk-*")):
        # killed between creating the folder and writing its state: nothing to lose
        log.info("%s: an unfinished run that never wrote a chunk; starting afresh", partial)
        shutil.rmtree(partial)
    if partial.exists():
        old = _read_state(partial)
        if resume and old == state:
            return partial
        if resume and not overwrite:
            raise BatchOutputError(
                f"{partial}: holds an unfinished run with {_differences(old, state)}. Run again "
                "with the same input and parameters to resume it, or pass overwrite=True "
                "(--overwrite) to discard it and start again."
            )
        log.warning("discarding the unfinished run in %s", partial)
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    atomic_write_json(partial / "state.json", state)
    return partial


def _read_state(partial: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((partial / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _differences(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """``another input (sha256 ...)`` / ``other parameters (k: 10 -> 20)``, for messages."""
    if old is None:
        return "an unreadable state.json"
    parts = []
    if old.get("input") != new["input"]:
        was = old.get("input") or {}
        parts.append(
            f"another input (sha256 {str(was.get('sha256'))[:12]}..., {was.get('rows')} rows; "
            f"now {new['input']['sha256'][:12]}..., {new['input']['rows']} rows)"
        )
    flat_old = {"chunk_size": old.get("chunk_size"), **(old.get("params") or {})}
    flat_new = {"chunk_size": new["chunk_size"], **new["params"]}
    changed = [
        f"{key}: {flat_old.get(key)!r} -> {flat_new.get(key)!r}"
        for key in sorted(set(flat_old) | set(flat_new))
        if flat_old.get(key) != flat_new.get(key)
    ]
    if changed:
        parts.append(f"other parameters ({'; '.join(changed)})")
    if old.get("format") != new["format"]:
        parts.append(
            f"state format {old.get('format')!r} (another hybrid_rec version wrote it; "
            "it cannot be resumed)"
        )
    return " and ".join(parts) or "a different state"


def _write_chunk(result: pa.Table, partial: Path, n: int, finished: dict[int, Path]) -> None:
    """Write chunk ``n`` as ``chunk-NNNNNN-SHA.parquet`` (atomically) and note it."""
    sink = pa.BufferOutputStream()
    pq.write_table(result, sink)
    data = sink.getvalue().to_pybytes()
    path = partial / f"chunk-{n:06d}-{_digest(data)}.parquet"
    atomic_write_bytes(path, data)
    finished[n] = path


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:_DIGEST_CHARS]


def _finished_chunks(partial: Path, n_chunks: int) -> dict[int, Path]:
    """The chunk files of this run whose bytes match the sha256 in their name; any other
    chunk file (changed since it was written, or of a chunk this run does not have) is
    deleted, with a warning, and that chunk computed again."""
    finished: dict[int, Path] = {}
    for path in sorted(partial.glob("chunk-*")):
        match = _CHUNK_NAME.match(path.name)
        n = int(match.group(1)) if match else -1
        if match and n < n_chunks and n not in finished and _intact(_bytes(path), path):
            finished[n] = path
            continue
        log.warning(
            "%s: not a finished chunk of this run (changed since it was written, "
            "or misnamed); deleting it and computing the chunk again",
            path,
        )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return finished


def _intact(data: bytes | None, path: Path) -> bool:
    """Whether ``data``, read from the chunk file ``path``, has the sha256 in its name."""
    match = _CHUNK_NAME.match(path.name)
    return data is not None and match is not None and _digest(data) == match.group(2)


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _combine(finished: dict[int, Path], n_chunks: int, out: Path, schema: pa.Schema) -> int:
    """Concatenate the chunk files, in order, into ``out`` (atomically); returns the rows.
    Each chunk's bytes are checked against the sha256 in its name once more."""
    rows = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for n in range(n_chunks):
            path = finished[n]
            try:
                data = path.read_bytes()
                if not _intact(data, path):
                    raise OSError("its bytes changed since it was written (sha256 mismatch)")
                part = pq.read_table(pa.BufferReader(data), schema=schema)
            except (pa.ArrowInvalid, OSError) as exc:
                raise BatchOutputError(
                    f"{path}: unreadable chunk ({exc}). Run again to recompute it."
                ) from None
            writer.write_table(part)
            rows += part.num_rows
    return rows


def _remove_temporary(folder: Path, prefix: str) -> None:
    """Delete ``PREFIX*.tmp`` files in ``folder``: temporary files of a killed job on the
    output whose lock the caller holds."""
    if not folder.is_dir():
        return
    for stale in folder.glob(f"{prefix}*.tmp"):
        if stale.is_file():
            log.info("%s: removing a temporary file a killed run left", stale)
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _progress(
    chunks: Iterator[pd.DataFrame],
    table: InputTable,
    chunk_size: int,
    desc: str,
    show_progress: bool | None,
    done: set[int] | frozenset[int] = frozenset(),
) -> Iterator[pd.DataFrame]:
    """``chunks`` under a tqdm bar counting chunks (finished ones count at once)."""
    total = -(-table.n_rows // chunk_size)
    enabled = progress_enabled(show_progress, log)
    with tqdm(total=total, initial=len(done), desc=desc, unit="chunk", disable=not enabled) as bar:
        for n, chunk in enumerate(chunks):
            yield chunk
            if n not in done:
                bar.update(1)


# ---------------------------------------------------------------- scoring kernel


class TopK:
    """Exact top-``k`` inner products of query rows against fixed ``targets`` rows.

    :func:`faiss.knn` does the work: a blocked float32 multiply (``4096 x 1024``
    scores at a time) whose blocks go straight into per-query heaps while they
    are still in cache, on every OpenMP thread. That is faster than one big
    multiply followed by a separate selection pass over the scores, and memory
    holds one block of scores, not ``len(queries) x len(targets)``.

    Parameters
    ----------
    targets
        ``(n, dim)`` float32, e.g. every user's vector.
    k
        Results per query (at most ``n``).
    """

    def __init__(self, targets: np.ndarray, k: int) -> None:
        self.targets = np.ascontiguousarray(targets, dtype=np.float32)
        self.k = max(1, min(int(k), len(self.targets)))

    def __call__(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(len(queries), k)`` scores, best first, and the target rows they belong to."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) == 0:
            return np.zeros((0, self.k), np.float32), np.zeros((0, self.k), np.int64)
        scores, rows = faiss.knn(queries, self.targets, self.k, metric=faiss.METRIC_INNER_PRODUCT)
        if (rows < 0).any():  # faiss leaves a slot empty (-1) when no score beats -inf: NaN
            bad = np.flatnonzero((rows < 0).any(axis=1))
            raise DataValidationError(
                f"{len(bad)} vector(s) scored NaN (first at row {int(bad[0])} of the chunk); "
                "nothing was written for this chunk.",
                source="scoring",
                rows=bad,
                fix="check the model and the inputs' content vectors for NaN or inf.",
            )
        return scores, rows
