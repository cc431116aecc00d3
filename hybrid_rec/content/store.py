"""Embedding store: item vectors on disk, keyed by item id and text hash.

Layout of a store directory::

    store.json          identity: format version, encoder name, dim, dtype, library version
    manifest.parquet    one row per item: item_id, text_sha256, shard, row; its
                        schema metadata lists every shard with its row count and
                        sha256. Rewriting this file (atomically) is the commit.
    shards/000001.npy   float32 (rows, dim) vectors, one file per embedded batch,
                        written once and never modified (np.save, allow_pickle=False)
    .lock               flock'ed while a process writes

``text_sha256`` is :func:`~hybrid_rec.content.text.text_hash` of the item's
text *and* the encoder name, so :meth:`EmbeddingStore.sync` re-embeds exactly
the new and changed items. Each shard is written to a temporary file, fsynced
and renamed, and only then is the manifest rewritten the same way: a process
killed at any point leaves the last committed manifest, every shard it names
intact, and at most one shard's worth of work to redo. Files no manifest names
(left by a killed run) are removed by the next writer.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import importlib
import importlib.metadata
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from hybrid_rec.content.encoders import Encoder, progress_enabled
from hybrid_rec.content.text import text_hash
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.idmap import ids_in
from hybrid_rec.data.io import atomic_path, atomic_write_bytes, atomic_write_json, exclusive_lock
from hybrid_rec.errors import DataValidationError, EmbeddingStoreError, EncoderError, UnknownIdError

__all__ = ["FORMAT_VERSION", "EmbeddingStore", "StoreInfo", "SyncSummary", "library_version"]

log = logging.getLogger(__name__)

FORMAT = "hybrid_rec.embedding_store"
FORMAT_VERSION = 1
META_FILE = "store.json"
MANIFEST_FILE = "manifest.parquet"
SHARD_DIR = "shards"
LOCK_FILE = ".lock"
MASS_REMOVAL_MIN = 10
"""A sync may delete up to this many vectors, or half the store, without ``prune``."""
COMMIT_ROWS = 50_000
"""A sync commits after every shard while the store holds fewer vectors than this, and
after every ``rows // COMMIT_ROWS`` shards beyond (writing the manifest of a large store
after every shard cost more than a fast encoder: 27 s of a 37 s sync at 200,000 items)."""
COMMIT_SECONDS = 30.0
"""... and at least this often, so a crash loses at most about this much encoding."""
_META_KEY = b"hybrid_rec"
_SHARD_NAME = re.compile(r"^(\d{6,})\.npy$")
_ID, _HASH, _SHARD, _ROW = Columns.item, "text_sha256", "shard", "row"
_DTYPE = np.dtype(np.float32)
_READ_RETRIES = 5
_T = TypeVar("_T")


def library_version() -> str:
    """The running hybrid_rec version (``hybrid_rec._version``, else the installed one)."""
    try:
        return str(importlib.import_module("hybrid_rec._version").__version__)
    except (ImportError, AttributeError):
        try:
            return importlib.metadata.version("hybrid_rec")
        except importlib.metadata.PackageNotFoundError:
            return "0+unknown"


@dataclass(frozen=True)
class StoreInfo:
    """Identity of a store: vectors of two different identities never mix."""

    encoder: str
    dim: int
    library_version: str
    format_version: int = FORMAT_VERSION
    dtype: str = "float32"
    created: str = ""

    def describe(self) -> str:
        return (
            f"encoder {self.encoder!r}, dim {self.dim}, hybrid_rec {self.library_version}, "
            f"format {self.format_version}"
        )


@dataclass(frozen=True)
class SyncSummary:
    """What one :meth:`EmbeddingStore.sync` did.

    Attributes
    ----------
    new, changed, unchanged
        Catalogue items embedded for the first time, re-embedded because their
        text changed, and left as they were.
    removed
        Vectors deleted because their item left the catalogue.
    seconds
        Wall time of the whole sync.
    items_per_second
        ``(new + changed) / seconds`` (0 when nothing was embedded).
    kept
        Vectors of items absent from the catalogue kept by ``keep_removed``.
    """

    new: int
    changed: int
    unchanged: int
    removed: int
    seconds: float
    items_per_second: float
    kept: int = 0

    @property
    def embedded(self) -> int:
        """Items encoded in this sync (``new + changed``)."""
        return self.new + self.changed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        text = (
            f"new {self.new} · changed {self.changed} · unchanged {self.unchanged} · "
            f"removed {self.removed}"
        )
        if self.kept:
            text += f" · kept {self.kept} absent"
        return f"{text} · {self.items_per_second:.0f} items/s"


@dataclass
class _Shards:
    """Committed shards: id → (rows, sha256)."""

    rows: dict[int, int] = field(default_factory=dict)
    sha256: dict[int, str] = field(default_factory=dict)

    def add(self, shard: int, rows: int, digest: str) -> None:
        self.rows[shard] = rows
        self.sha256[shard] = digest

    def keep_only(self, used: Iterable[int]) -> _Shards:
        live = set(used)
        return _Shards(
            {s: r for s, r in self.rows.items() if s in live},
            {s: h for s, h in self.sha256.items() if s in live},
        )

    def to_json(self) -> dict[str, list[Any]]:
        return {str(s): [self.rows[s], self.sha256[s]] for s in sorted(self.rows)}

    @classmethod
    def from_json(cls, data: dict[str, list[Any]]) -> _Shards:
        out = cls()
        for key, (rows, digest) in data.items():
            out.add(int(key), int(rows), str(digest))
        return out


class EmbeddingStore:
    """Vectors of one encoder, keyed by item id, on disk.

    Build one with :meth:`create` (open or create) or :meth:`open` (must
    exist); fill it with :meth:`sync`; read with :meth:`get`.

    Examples
    --------
    >>> enc = HashingEncoder(64)                                   # doctest: +SKIP
    >>> store = EmbeddingStore.create("vectors", enc.name, enc.dim)  # doctest: +SKIP
    >>> print(store.sync(item_texts(items), enc))                  # doctest: +SKIP
    new 1682 · changed 0 · unchanged 0 · removed 0 · 41250 items/s
    """

    def __init__(self, directory: Path, info: StoreInfo, *, lock_wait: float = 0.0) -> None:
        self.directory = directory
        self.info = info
        self.lock_wait = lock_wait
        """Seconds a write waits for another writer's lock before it is refused."""
        self._manifest = _empty_manifest()
        self._shards = _Shards()
        self._stamp: tuple[int, int, int] | None = None
        self._load_manifest()

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        encoder_name: str,
        dim: int,
        *,
        library_version: str | None = None,
        rebuild: bool = False,
        lock_wait: float = 0.0,
    ) -> EmbeddingStore:
        """Open the store in ``directory``, creating it if needed.

        Parameters
        ----------
        directory
            The store directory (created with its parents).
        encoder_name, dim
            Identity of the vectors (:attr:`Encoder.name`, :attr:`Encoder.dim`).
        library_version
            Defaults to the installed hybrid_rec version.
        rebuild
            If the directory holds a store of another identity (or one whose
            manifest or description is unreadable), delete its vectors and
            start afresh instead of raising.
        lock_wait
            Seconds a write waits for another process writing to the store
            (:attr:`lock_wait`); 0 refuses at once.

        Raises
        ------
        EmbeddingStoreError
            The directory holds a store of another encoder, dim, format or
            library version (and ``rebuild`` is False), or is not writable.
        """
        root = Path(directory)
        wanted = _new_info(encoder_name, dim, library_version)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _write_error(root, exc, "create the store directory") from exc
        existing = _existing_info(root, rebuild)
        if existing is not None and _same_identity(existing, wanted):
            try:
                return cls(root, existing, lock_wait=lock_wait)
            except EmbeddingStoreError:  # e.g. an unreadable manifest
                if not rebuild:
                    raise
        if (
            existing is None
            and not (root / MANIFEST_FILE).exists()
            and not (root / META_FILE).exists()
        ):
            with _exclusive(root, lock_wait):
                _write_info(root, wanted)
            log.info("created embedding store %s (%s)", root, wanted.describe())
            return cls(root, wanted, lock_wait=lock_wait)
        if not rebuild:
            raise EmbeddingStoreError(_mismatch_message(root, existing, wanted))
        with _exclusive(root, lock_wait):
            _wipe(root)
            _write_info(root, wanted)
        log.warning(
            "rebuilt embedding store %s for %s (old vectors deleted: %s)",
            root,
            wanted.describe(),
            existing.describe() if existing else "no store.json",
        )
        return cls(root, wanted, lock_wait=lock_wait)

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        encoder_name: str | None = None,
        dim: int | None = None,
        library_version: str | None = None,
    ) -> EmbeddingStore:
        """Open an existing store, checking its identity.

        Raises
        ------
        EmbeddingStoreError
            No store there, or its encoder/dim/format/library version differ
            from those given (the library version defaults to the installed one).
        """
        root = Path(directory)
        if not (root / META_FILE).is_file():
            raise EmbeddingStoreError(
                f"{root}: no embedding store here ({META_FILE} missing). Fix: build one with "
                "reembed_catalog / `hybrid-rec embed`, or check the path."
            )
        info = _read_info(root)
        wanted = _new_info(
            encoder_name or info.encoder, dim if dim is not None else info.dim, library_version
        )
        if not _same_identity(info, wanted):
            raise EmbeddingStoreError(_mismatch_message(root, info, wanted))
        return cls(root, info)

    @classmethod
    def for_encoder(
        cls,
        directory: str | os.PathLike[str],
        encoder: Encoder,
        *,
        rebuild: bool = False,
        lock_wait: float = 0.0,
    ) -> EmbeddingStore:
        """:meth:`create` with ``encoder``'s name and dim."""
        return cls.create(
            directory, encoder.name, encoder.dim, rebuild=rebuild, lock_wait=lock_wait
        )

    # ------------------------------------------------------------------ reading

    @property
    def encoder_name(self) -> str:
        return self.info.encoder

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def ids(self) -> pd.Index:
        """Item ids with a vector, catalogue order of the last sync."""
        return self._manifest.index.copy()

    @property
    def hashes(self) -> pd.Series:
        """``text_sha256`` per item id."""
        return self._manifest[_HASH].copy()

    @property
    def shard_files(self) -> list[Path]:
        """The committed shard files."""
        return [self._shard_path(s) for s in sorted(self._shards.rows)]

    def __len__(self) -> int:
        return len(self._manifest)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._manifest.index

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.directory)!r}, {len(self)} vectors, {self.info.encoder})"

    def get(self, item_ids: Sequence[str] | pd.Index | str) -> np.ndarray:
        """Vectors of ``item_ids``, in that order: float32 ``(len(item_ids), dim)``.

        Raises
        ------
        UnknownIdError
            An id has no vector.
        EmbeddingStoreError
            A shard file is missing, truncated or corrupt (named in the message).
        """
        ids = _id_index([item_ids] if isinstance(item_ids, str) else list(item_ids))
        return self._reading(lambda: self._get(ids))

    def _get(self, ids: pd.Index) -> np.ndarray:
        position = self._manifest.index.get_indexer(ids)
        if (position < 0).any():
            unknown = ids[position < 0]
            raise UnknownIdError(
                f"{len(unknown)} item id(s) have no vector in {self.directory}, e.g. "
                f"{list(unknown[:5])}. Fix: run sync / reembed_catalog with those items first."
            )
        shards = self._manifest[_SHARD].to_numpy()[position]
        rows = self._manifest[_ROW].to_numpy()[position]
        out = np.empty((len(ids), self.dim), dtype=_DTYPE)
        for shard in np.unique(shards):
            mask = shards == shard
            out[mask] = self._read_shard(int(shard))[rows[mask]]
        return out

    def find(
        self, item_ids: Sequence[str] | pd.Index, texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors of the items whose text is the one their vector was made from.

        An item that is absent, or whose text changed since it was embedded
        (another sha256), is not found: its caller embeds it afresh.

        Returns
        -------
        found, vectors
            A bool mask over ``item_ids`` and the found rows' vectors, in order.
        """
        ids = _id_index(list(item_ids))
        if len(ids) != len(texts):
            raise DataValidationError(
                f"find() got {len(ids)} ids but {len(texts)} texts.", source=str(self.directory)
            )
        hashes = np.asarray([text_hash(t, self.encoder_name) for t in texts], dtype=object)

        def find() -> tuple[np.ndarray, np.ndarray]:
            position = self._manifest.index.get_indexer(ids)
            found = position >= 0
            found[found] = self._manifest[_HASH].to_numpy()[position[found]] == hashes[found]
            return found, self._get(ids[found])

        return self._reading(find)

    def vectors_for(
        self,
        item_ids: Sequence[str],
        texts: Sequence[str],
        encode: Callable[[list[str]], Any],
    ) -> np.ndarray:
        """Vectors of ``texts`` (one per id): read from the store where it holds the
        item's text (:meth:`find`), the others from ``encode``. Nothing is written."""
        found, stored = self.find(item_ids, texts)
        vectors = np.empty((len(found), stored.shape[1]), dtype=_DTYPE)
        vectors[found] = stored
        if not found.all():
            missing = [t for t, hit in zip(texts, found, strict=True) if not hit]
            vectors[~found] = np.asarray(encode(missing), dtype=_DTYPE)
        log.info(
            "content: %d of %d item(s) read from %s", int(found.sum()), len(found), self.directory
        )
        return vectors

    def check_encoder(self, name: str, who: str = "this model") -> None:
        """Raise unless the store's vectors come from the encoder called ``name``."""
        if self.encoder_name != name:
            raise EmbeddingStoreError(
                f"{self.directory}: its vectors come from encoder {self.encoder_name!r}, "
                f"but {who} embeds with {name!r}; vectors from different encoders cannot "
                "be mixed. Fix: re-embed with that encoder (`hybrid-rec embed`), or leave "
                "the store out."
            )

    def get_all(self) -> tuple[pd.Index, np.ndarray]:
        """Every id and its vector, in :attr:`ids` order."""
        ids = self.ids
        return ids, self.get(ids)

    def verify(self, *, repair: bool = False) -> list[Path]:
        """Check every committed shard's size, sha256, dtype and shape.

        Parameters
        ----------
        repair
            Instead of raising, forget the items whose shard is bad (commit a
            manifest without them) so that the next sync re-embeds them.

        Returns
        -------
        list of Path
            The bad shard files (empty when all is well).

        Raises
        ------
        EmbeddingStoreError
            A shard is bad and ``repair`` is False.
        """
        if not repair:

            def check() -> list[Path]:
                for shard in sorted(self._shards.rows):
                    self._read_shard(shard)
                return []

            return self._reading(check)
        # Under the write lock, on the manifest as committed now: a repair that read an
        # older one would drop the shards another writer committed since (and call the
        # shards that writer compacted away "missing").
        with _exclusive(self.directory, self.lock_wait):
            self._load_manifest()
            bad: list[int] = []
            for shard in sorted(self._shards.rows):
                try:
                    self._read_shard(shard)
                except EmbeddingStoreError as exc:
                    log.warning("%s", exc)
                    bad.append(shard)
            if bad:
                keep = ~self._manifest[_SHARD].isin(bad).to_numpy()
                manifest = self._manifest[keep]
                self._commit(manifest, self._shards.keep_only(manifest[_SHARD]))
                self._remove_unreferenced()
                log.warning(
                    "repair: forgot %d item(s) stored in %d bad shard(s); the next sync "
                    "re-embeds them.",
                    int((~keep).sum()),
                    len(bad),
                )
        return [self._shard_path(s) for s in bad]

    # ------------------------------------------------------------------ writing

    def sync(
        self,
        texts: pd.Series,
        encoder: Encoder,
        *,
        keep_removed: bool = False,
        prune: bool = False,
        batch_size: int | None = None,
        shard_size: int = 2048,
        show_progress: bool | None = None,
    ) -> SyncSummary:
        """Make the store hold one vector per text, embedding only what changed.

        Parameters
        ----------
        texts
            Item texts indexed by unique string ``item_id`` (see
            :func:`~hybrid_rec.content.text.item_texts`).
        encoder
            Must have the store's encoder name and dim.
        keep_removed
            Keep vectors of items absent from ``texts`` (default: delete them).
        prune
            Allow a run to delete most of the store: without it, deleting more than
            half of the stored vectors (and more than :data:`MASS_REMOVAL_MIN`) is refused,
            since that is what a file of *new* items only, passed without
            ``keep_removed``, would do.
        batch_size
            Passed to ``encoder.encode``.
        shard_size
            Items per shard: embedded and written together. Shards are committed one
            by one while the store is small, and at least every
            :data:`COMMIT_SECONDS` on a large one, so a crash loses at most the
            shards since the last commit; a rerun embeds only those.
        show_progress
            Progress bar; None shows it when logging shows INFO.

        Raises
        ------
        EmbeddingStoreError
            Encoder of another identity, or a write failed (disk full,
            permission denied); the store then still holds its last commit.
        DataValidationError
            Duplicate or missing ids, or non-string texts.
        """
        start = time.perf_counter()
        self._check_encoder(encoder)
        catalogue = _check_texts(texts)
        hashes = np.array(
            [text_hash(t, self.encoder_name) for t in catalogue.tolist()], dtype=object
        )
        with _exclusive(self.directory, self.lock_wait):
            self._load_manifest()
            self._remove_unreferenced()
            plan = _Plan.make(catalogue.index, hashes, self._manifest[_HASH], keep_removed)
            stored = len(self._manifest[_HASH])
            if not prune and plan.drop.size > max(MASS_REMOVAL_MIN, stored // 2):
                raise EmbeddingStoreError(
                    f"{self.directory}: this run would delete {plan.drop.size:,} of the "
                    f"{stored:,} stored vectors (items missing from the catalogue given). "
                    "Fix: if the file holds only new or changed items, pass keep_removed=True "
                    "(--keep-removed); if the catalogue really shrank, pass prune=True (--prune)."
                )
            if plan.todo.size or plan.drop.size:
                self._apply(plan, catalogue, hashes, encoder, batch_size, shard_size, show_progress)
                self._remove_unreferenced()
            self._maybe_compact(shard_size)
        seconds = time.perf_counter() - start
        embedded = int(plan.todo.size)
        summary = SyncSummary(
            new=plan.new,
            changed=plan.changed,
            unchanged=plan.unchanged,
            removed=int(plan.drop.size),
            seconds=seconds,
            items_per_second=embedded / seconds if embedded and seconds > 0 else 0.0,
            kept=plan.kept,
        )
        log.info("%s: %s", self.directory, summary)
        return summary

    def compact(self, shard_size: int = 2048) -> None:
        """Rewrite the live vectors into full shards and delete the old ones."""
        with _exclusive(self.directory, self.lock_wait):
            self._compact(shard_size)

    # ------------------------------------------------------------------ internals

    def _apply(
        self,
        plan: _Plan,
        catalogue: pd.Series,
        hashes: np.ndarray,
        encoder: Encoder,
        batch_size: int | None,
        shard_size: int,
        show_progress: bool | None,
    ) -> None:
        manifest = self._manifest.drop(index=pd.Index(plan.drop))
        # an object index: pandas 3's Arrow strings walk the ids in Python on reindex
        order = pd.Series(np.arange(len(catalogue)), index=_id_index(catalogue.index))
        if not plan.todo.size:
            self._commit(_ordered(manifest, order), self._shards.keep_only(manifest[_SHARD]))
            return
        texts = catalogue.to_numpy()
        ids = catalogue.index.to_numpy()
        shard = self._next_shard_id()
        bar = tqdm(
            total=int(plan.todo.size),
            desc="embedding",
            unit="item",
            disable=not progress_enabled(show_progress, log),
        )
        pending: list[tuple[np.ndarray, int, str]] = []  # written, not yet committed

        def commit() -> None:
            nonlocal manifest
            done = np.concatenate([chunk for chunk, _, _ in pending])
            rows = pd.DataFrame(
                {
                    _HASH: pd.array(hashes[done], dtype=object),
                    _SHARD: np.concatenate(
                        [np.full(len(c), s, dtype=np.int32) for c, s, _ in pending]
                    ),
                    _ROW: np.concatenate(
                        [np.arange(len(c), dtype=np.int32) for c, _, _ in pending]
                    ),
                },
                index=pd.Index(ids[done], dtype=object, name=_ID),
            )
            manifest = pd.concat([manifest[~ids_in(manifest.index, rows.index)], rows])
            # concat gives pandas 3's Arrow strings, whose isin and reindex walk the ids
            # in Python (1.2 s of a 200,000-item sync): back to an object index
            manifest.index = pd.Index(manifest.index.to_numpy(dtype=object), dtype=object, name=_ID)
            shards = self._shards.keep_only(manifest[_SHARD])
            for chunk, number, digest in pending:
                shards.add(number, len(chunk), digest)
            self._commit(_ordered(manifest, order), shards)
            pending.clear()

        last_commit = time.perf_counter()
        with bar:
            for chunk in _chunks(plan.todo, shard_size):
                vectors = encoder.encode(
                    list(texts[chunk]), batch_size=batch_size, show_progress=False
                )
                vectors = _checked_vectors(vectors, len(chunk), self.dim, encoder.name)
                pending.append((chunk, shard, self._write_shard(shard, vectors)))
                every = len(manifest) // COMMIT_ROWS
                if len(pending) > every or time.perf_counter() - last_commit >= COMMIT_SECONDS:
                    commit()
                    last_commit = time.perf_counter()
                shard += 1
                bar.update(len(chunk))
            if pending:
                commit()

    def _check_encoder(self, encoder: Encoder) -> None:
        if encoder.name != self.encoder_name or int(encoder.dim) != self.dim:
            raise EmbeddingStoreError(
                f"{self.directory}: the store holds vectors of {self.encoder_name!r} (dim "
                f"{self.dim}), not of {encoder.name!r} (dim {encoder.dim}); mixing them would "
                "make distances meaningless. Fix: open the store with rebuild=True "
                "(`--rebuild`) or use another store directory."
            )

    def _shard_path(self, shard: int) -> Path:
        return self.directory / SHARD_DIR / f"{shard:06d}.npy"

    def _next_shard_id(self) -> int:
        on_disk = [int(m.group(1)) for m in map(_SHARD_NAME.match, self._shard_names()) if m]
        return max([0, *self._shards.rows, *on_disk]) + 1

    def _shard_names(self) -> list[str]:
        folder = self.directory / SHARD_DIR
        return [p.name for p in folder.iterdir()] if folder.is_dir() else []

    def _write_shard(self, shard: int, vectors: np.ndarray) -> str:
        path = self._shard_path(shard)
        try:
            buffer = io.BytesIO()
            np.save(buffer, vectors, allow_pickle=False)
            data = buffer.getvalue()
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise _write_error(path, exc, "write a shard", len(self)) from exc
        return hashlib.sha256(data).hexdigest()

    def _read_shard(self, shard: int) -> np.ndarray:
        path = self._shard_path(shard)
        expected_rows, expected_sha = self._shards.rows[shard], self._shards.sha256[shard]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _corrupt(path, "the shard file is missing") from None
        except OSError as exc:
            raise EmbeddingStoreError(f"{path}: cannot read the shard ({exc}).") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha:
            raise _corrupt(
                path,
                f"truncated or corrupt: {len(data)} bytes, sha256 "
                f"{digest[:16]}… but the manifest recorded {expected_sha[:16]}…",
            )
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _corrupt(path, f"not a valid .npy file ({exc})") from None
        if array.dtype != _DTYPE or array.shape != (expected_rows, self.dim):
            raise _corrupt(
                path,
                f"holds {array.dtype} {array.shape}, expected float32 {(expected_rows, self.dim)}",
            )
        return array

    def _reading(self, read: Callable[[], _T]) -> _T:
        """``read()``, again on the manifest committed since if it met a missing or
        changed shard: a writer (a sync's compaction, a repair) may have replaced the
        shards this reader's manifest names. A bad shard the current manifest still
        names is an error."""
        for _ in range(_READ_RETRIES):
            try:
                return read()
            except EmbeddingStoreError:
                if self._manifest_stamp() == self._stamp:
                    raise
                log.info("%s: the manifest changed while reading; reading again", self.directory)
                self._load_manifest()
        return read()

    def _manifest_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.directory / MANIFEST_FILE)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load_manifest(self) -> None:
        path = self.directory / MANIFEST_FILE
        # Taken before reading: a commit landing in between makes the stamp differ
        # from the file read, which only costs one extra reload later.
        self._stamp = self._manifest_stamp()
        if self._stamp is None:
            self._manifest, self._shards = _empty_manifest(), _Shards()
            return
        try:
            table = pq.read_table(path)
            meta = json.loads((table.schema.metadata or {})[_META_KEY])
            frame = table.to_pandas()
        except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
            raise EmbeddingStoreError(
                f"{path}: the manifest is unreadable ({exc}). Fix: rebuild the store "
                "(rebuild=True / --rebuild) or restore it from a backup."
            ) from None
        if meta.get("encoder") != self.info.encoder or int(meta.get("dim", -1)) != self.dim:
            raise EmbeddingStoreError(
                f"{path}: manifest written for encoder {meta.get('encoder')!r} dim "
                f"{meta.get('dim')}, but {META_FILE} says {self.info.describe()}. Fix: rebuild "
                "the store (rebuild=True / --rebuild)."
            )
        manifest = frame.set_index(_ID)[[_HASH, _SHARD, _ROW]].astype({_HASH: object})
        manifest.index = _id_index(manifest.index, name=_ID)
        self._manifest, self._shards = manifest, _Shards.from_json(meta["shards"])

    def _commit(self, manifest: pd.DataFrame, shards: _Shards) -> None:
        path = self.directory / MANIFEST_FILE
        meta = {
            "format_version": FORMAT_VERSION,
            "encoder": self.info.encoder,
            "dim": self.dim,
            "shards": shards.to_json(),
        }
        table = pa.table(
            {
                _ID: pa.array(manifest.index.to_numpy(dtype=object), type=pa.string()),
                _HASH: pa.array(manifest[_HASH].to_numpy(dtype=object), type=pa.string()),
                _SHARD: pa.array(manifest[_SHARD].to_numpy(dtype=np.int32)),
                _ROW: pa.array(manifest[_ROW].to_numpy(dtype=np.int32)),
            }
        ).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
        try:
            with atomic_path(path) as tmp:
                pq.write_table(table, tmp)
        except OSError as exc:
            raise _write_error(path, exc, "commit the manifest", len(self)) from exc
        self._manifest, self._shards = manifest, shards
        self._stamp = self._manifest_stamp()

    def _remove_unreferenced(self) -> None:
        """Delete shard and temporary files no committed manifest names."""
        folder = self.directory / SHARD_DIR
        live = {self._shard_path(s).name for s in self._shards.rows}
        for name in self._shard_names():
            if name not in live and (_SHARD_NAME.match(name) or name.endswith(".tmp")):
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
        for stale in self.directory.glob(f".{MANIFEST_FILE}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def _maybe_compact(self, shard_size: int) -> None:
        live = len(self._manifest)
        stored = sum(self._shards.rows.values())
        wanted_shards = -(-live // shard_size)
        if stored - live > max(live, shard_size) or len(self._shards.rows) > 2 * wanted_shards + 32:
            self._compact(shard_size)

    def _compact(self, shard_size: int) -> None:
        self._load_manifest()
        manifest = self._manifest.copy()
        shards = _Shards()
        shard = self._next_shard_id()
        ids = manifest.index
        for chunk in _chunks(np.arange(len(ids)), shard_size):
            vectors = self.get(ids[chunk])
            shards.add(shard, len(chunk), self._write_shard(shard, vectors))
            manifest.iloc[chunk, manifest.columns.get_loc(_SHARD)] = np.int32(shard)
            manifest.iloc[chunk, manifest.columns.get_loc(_ROW)] = np.arange(
                len(chunk), dtype=np.int32
            )
            shard += 1
        self._commit(manifest.astype({_SHARD: np.int32, _ROW: np.int32}), shards)
        self._remove_unreferenced()
        log.info(
            "compacted %s: %d vectors in %d shard(s)",
            self.directory,
            len(manifest),
            len(shards.rows),
        )


# ----------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class _Plan:
    """Positions (in the catalogue) to embed and stored ids to drop."""

    todo: np.ndarray
    drop: np.ndarray
    new: int
    changed: int
    unchanged: int
    kept: int

    @classmethod
    def make(
        cls, ids: pd.Index, hashes: np.ndarray, stored: pd.Series, keep_removed: bool
    ) -> _Plan:
        old = stored.reindex(ids).to_numpy(dtype=object)
        known = ids.isin(stored.index)
        same = known & (old == hashes)
        absent = stored.index[~stored.index.isin(ids)].to_numpy(dtype=object)
        return cls(
            todo=np.flatnonzero(~same),
            drop=np.array([], dtype=object) if keep_removed else absent,
            new=int((~known).sum()),
            changed=int((known & ~same).sum()),
            unchanged=int(same.sum()),
            kept=len(absent) if keep_removed else 0,
        )


# ----------------------------------------------------------------------------- helpers


def _id_index(values: Any, name: str | None = None) -> pd.Index:
    """Ids as an object-dtype Index of str: hash-based isin/get_indexer, no Arrow round trips."""
    return pd.Index(np.asarray([str(v) for v in values], dtype=object), dtype=object, name=name)


def _empty_manifest() -> pd.DataFrame:
    return pd.DataFrame(
        {
            _HASH: pd.Series(dtype=object),
            _SHARD: pd.Series(dtype=np.int32),
            _ROW: pd.Series(dtype=np.int32),
        },
        index=pd.Index([], dtype=object, name=_ID),
    )


def _ordered(manifest: pd.DataFrame, order: pd.Series) -> pd.DataFrame:
    """Catalogue order first, then (kept) absent items in their stored order."""
    # a copy: under copy-on-write the array may be a read-only view
    rank = order.reindex(manifest.index).to_numpy(dtype=np.float64, copy=True)
    rank[np.isnan(rank)] = len(order) + np.flatnonzero(np.isnan(rank))
    return manifest.iloc[np.argsort(rank, kind="stable")]


def _chunks(positions: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(positions), size):
        yield positions[start : start + size]


def _check_texts(texts: pd.Series) -> pd.Series:
    if not isinstance(texts, pd.Series):
        raise DataValidationError(
            f"expected a pandas Series of texts indexed by item_id, got {type(texts).__name__}.",
            source="texts",
            fix="build it with hybrid_rec.content.item_texts(items, config).",
        )
    ids = pd.Index(texts.index)
    if ids.hasnans:
        raise DataValidationError(
            "missing item id in the index of texts.",
            source="texts",
            column=_ID,
            rows=np.flatnonzero(ids.isna()),
        )
    ids = _id_index(ids)
    if ids.has_duplicates:
        dup = ids.duplicated(keep=False)
        raise DataValidationError(
            f"duplicate item id(s), e.g. {ids[dup][0]!r} ({int(dup.sum())} rows).",
            source="texts",
            column=_ID,
            rows=np.flatnonzero(dup),
            fix="each item must appear once; merge or drop the duplicates.",
        )
    values = texts.tolist()
    bad = [i for i, t in enumerate(values) if not isinstance(t, str)]
    if bad:
        raise DataValidationError(
            f"texts must be strings; found {type(values[bad[0]]).__name__}.",
            source="texts",
            rows=bad,
            fix="build texts with hybrid_rec.content.item_texts.",
        )
    return pd.Series(values, index=ids, dtype=object)


def _checked_vectors(vectors: Any, n: int, dim: int, name: str) -> np.ndarray:
    out = np.ascontiguousarray(np.asarray(vectors, dtype=_DTYPE))
    if out.shape != (n, dim):
        raise EncoderError(
            f"encoder {name} returned shape {out.shape} for {n} texts; expected {(n, dim)}."
        )
    if not np.isfinite(out).all():
        raise EncoderError(f"encoder {name} returned NaN/inf vectors; nothing was stored.")
    return out


def _new_info(encoder_name: str, dim: int, version: str | None) -> StoreInfo:
    if not encoder_name:
        raise EmbeddingStoreError("an embedding store needs an encoder name.")
    if int(dim) < 1:
        raise EmbeddingStoreError(f"an embedding store needs dim >= 1, got {dim}.")
    return StoreInfo(
        encoder=encoder_name,
        dim=int(dim),
        library_version=version or library_version(),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )


def _same_identity(a: StoreInfo, b: StoreInfo) -> bool:
    """Same encoder, dim, format and dtype, and a library of the same major.minor (a patch
    release reads the store, as it reads a saved model; a text it renders differently
    has another sha256 and is embedded again anyway)."""
    keys = ("encoder", "dim", "format_version", "dtype")
    same_release = a.library_version.split(".")[:2] == b.library_version.split(".")[:2]
    return same_release and all(getattr(a, k) == getattr(b, k) for k in keys)


def _mismatch_message(root: Path, existing: StoreInfo | None, wanted: StoreInfo) -> str:
    found = existing.describe() if existing else f"a manifest but no {META_FILE}"
    return (
        f"{root}: the store was written with {found}; this run uses {wanted.describe()}. "
        "Vectors of different encoders or versions must not be mixed. Fix: pass "
        "rebuild=True (`--rebuild`) to delete the old vectors and embed everything again, "
        "or use another store directory."
    )


def _existing_info(root: Path, rebuild: bool) -> StoreInfo | None:
    """The store's identity; None when there is none (or it is unreadable and we rebuild)."""
    if not (root / META_FILE).exists():
        return None
    try:
        return _read_info(root)
    except EmbeddingStoreError:
        if rebuild:
            return None
        raise


def _read_info(root: Path) -> StoreInfo:
    path = root / META_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.pop("format") != FORMAT:
            raise ValueError("not an embedding store")
        return StoreInfo(**raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EmbeddingStoreError(
            f"{path}: unreadable store description ({exc}). Fix: rebuild the store "
            "(rebuild=True / --rebuild) or point at the right directory."
        ) from None


def _write_info(root: Path, info: StoreInfo) -> None:
    path = root / META_FILE
    try:
        atomic_write_json(path, {"format": FORMAT, **asdict(info)})
    except OSError as exc:
        raise _write_error(path, exc, "write the store description") from exc


def _wipe(root: Path) -> None:
    """Delete a store's vectors: manifest first, so no state ever mixes identities."""
    for path in (root / MANIFEST_FILE, root / META_FILE):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    folder = root / SHARD_DIR
    if folder.is_dir():
        for child in folder.iterdir():
            if _SHARD_NAME.match(child.name) or child.name.endswith(".tmp"):
                child.unlink()


@contextlib.contextmanager
def _exclusive(root: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the store's write lock (:func:`~hybrid_rec.data.io.exclusive_lock`: flock,
    released by the OS even on SIGKILL), waiting up to ``wait`` seconds for it."""
    path = root / LOCK_FILE
    busy = EmbeddingStoreError(
        f"{root}: another process is writing to this store (lock {path})"
        + (f" and still was after {wait:g} s" if wait > 0 else "")
        + ". Fix: wait for it to finish (the lock is released as soon as it exits), or "
        + ("pass a longer --wait." if wait > 0 else "pass --wait SECONDS to wait for it.")
    )
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(path, busy, wait=wait))
        except OSError as exc:
            raise _write_error(path, exc, "open the lock file") from exc
        yield


def _write_error(path: Path, exc: OSError, action: str, committed: int | None = None) -> Exception:
    if isinstance(exc, EmbeddingStoreError):
        return exc
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
    }.get(exc.errno or 0, str(exc))
    state = (
        f" The store is unchanged since its last commit ({committed} vectors); a rerun "
        "resumes from there."
        if committed is not None
        else ""
    )
    return EmbeddingStoreError(
        f"{path}: could not {action}: {reason}.{state} Fix: free space "
        "or fix the directory's permissions, then run again."
    )


def _corrupt(path: Path, problem: str) -> EmbeddingStoreError:
    return EmbeddingStoreError(
        f"{path}: {problem}. Fix: run the re-embed with --repair (or EmbeddingStore.verify("
        "repair=True)) to re-embed the affected items, or rebuild the store."
    )
