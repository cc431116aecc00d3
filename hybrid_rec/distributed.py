"""The Ray backend (extra ``dist``): embed a catalogue and score cold items on Ray Data.

Install it with ``pip install 'hybrid_rec[dist]'`` (Ray Data 2.60). Each job
splits its input into blocks (``ray.data.from_pandas`` of a list of frames)
and runs ``map_batches`` over a fixed pool of actors
(``compute=ray.data.ActorPoolStrategy(size=num_workers)``); every actor loads
the encoder, or the saved model, once and then serves many batches. The
results are the local backend's: the same vectors and the same
``score_cold_items`` rows, in the input order.

>>> vectors = ray_embed(texts, "minilm")                              # doctest: +SKIP
>>> scores = ray_score_cold_items("models/ml100k", new_items, k=100)  # doctest: +SKIP

Where Ray runs
--------------
Every function connects like ``ray.init(address=os.environ.get("RAY_ADDRESS"))``:

* already connected (``ray.is_initialized()``): that session is used and left
  running — wrap several calls in :func:`ray_session` to start Ray once;
* ``address=`` or ``RAY_ADDRESS`` set: connect to that cluster (every node needs
  hybrid_rec, its encoder packages and — for scoring — the model directory at
  the same path, e.g. on a shared file system), disconnect afterwards;
* otherwise: start a single-node cluster with ``num_cpus`` CPUs on 127.0.0.1,
  no dashboard, usage statistics off (``RAY_USAGE_STATS_ENABLED=0`` unless
  set), and shut it down afterwards.

Ray 2.60 still opens listening sockets for its own processes and probes a
cloud metadata address; on a machine whose traffic must stay on loopback, run
the whole command in a loopback-only network namespace, e.g.
``unshare -n bash -c 'ip link set lo up; python scripts/reembed_catalog.py ... --backend ray'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybrid_rec._version import __version__
from hybrid_rec.config import ContentConfig, RecommenderConfig
from hybrid_rec.content.encoders import Encoder, _as_texts, make_encoder
from hybrid_rec.content.store import EmbeddingStore, SyncSummary, _check_texts
from hybrid_rec.content.text import item_texts, new_item_texts, text_hash
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.idmap import IdMap
from hybrid_rec.data.io import read_table
from hybrid_rec.errors import (
    ConfigError,
    DataValidationError,
    EncoderError,
    HybridRecError,
    MissingDependencyError,
)
from hybrid_rec.persistence import read_manifest

__all__ = [
    "DIST_INSTALL",
    "BackendOptions",
    "EncoderSpec",
    "ray_embed",
    "ray_reembed_catalog",
    "ray_score_cold_items",
    "ray_session",
    "require_ray",
]

log = logging.getLogger(__name__)
C = Columns

DIST_INSTALL = "pip install 'hybrid_rec[dist]'"
"""The install line of the Ray backend (``ray[data]==2.60.0``)."""

EncoderSpec = str | ContentConfig | Callable[[], Encoder]
"""How a worker builds its encoder: an encoder name or model directory (as
``ContentConfig.encoder``), a whole :class:`~hybrid_rec.config.ContentConfig`,
or a picklable zero-argument callable returning an encoder (e.g.
``functools.partial(HashingEncoder, 64)``). Never the model itself: each
worker loads its own copy."""

_ROW = "__hybrid_rec_row__"
_BLOCKS_PER_WORKER = 4
"""Blocks per actor: enough for the pool to stay busy while blocks differ in cost."""


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    """Where and how wide a Ray job runs (every field optional).

    Attributes
    ----------
    address
        A Ray cluster address; None means ``$RAY_ADDRESS``, and without it a
        local single-node cluster.
    num_cpus
        CPUs of a local cluster started here (default: ``os.cpu_count()``).
    num_workers
        Actors in the pool (default: the cluster's CPUs / ``cpus_per_worker``,
        i.e. one actor per node).
    cpus_per_worker
        CPUs reserved per actor; torch in the actor uses that many threads.
        Default: all the CPUs of a node (of the smallest one). One actor per
        node loads the model once per node; measured on 2 CPUs, one actor
        with 2 threads embedded 1.5x faster than two actors with one each.
    rows_per_batch
        Rows per block and per ``map_batches`` call (default: the input split
        into 4 blocks per actor, at most 2048 rows each).
    temp_dir
        Ray's session directory of a local cluster (default: Ray's ``/tmp/ray``).
    show_progress
        Ray Data's progress bars; None shows them when logging shows INFO.
    """

    address: str | None = None
    num_cpus: int | None = None
    num_workers: int | None = None
    cpus_per_worker: float | None = None
    rows_per_batch: int | None = None
    temp_dir: str | None = None
    show_progress: bool | None = None

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_workers", "rows_per_batch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        if self.cpus_per_worker is not None and not self.cpus_per_worker > 0:
            raise ConfigError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker!r}.")


# ----------------------------------------------------------------------------- connecting


def require_ray() -> Any:
    """Import and return the ``ray`` module (with Ray Data), or explain how to install it.

    Raises
    ------
    MissingDependencyError
        Ray or Ray Data is not installed.
    """
    try:
        import ray
        import ray.data  # Ray Data is a separate part of the extra
    except ImportError as exc:
        raise MissingDependencyError(
            f"the Ray backend needs Ray Data, which is not installed ({exc}). "
            f"Fix: {DIST_INSTALL} (ray[data]==2.60.0), or use the local backend."
        ) from None
    return ray


@contextlib.contextmanager
def ray_session(options: BackendOptions | None = None) -> Iterator[Any]:
    """Connect to Ray for the ``with`` block and yield the ``ray`` module.

    Reuses a session that is already connected (and leaves it running);
    otherwise connects to ``options.address`` / ``$RAY_ADDRESS``, or starts a
    local cluster on 127.0.0.1 with ``options.num_cpus`` CPUs and no
    dashboard, and disconnects (shutting a local cluster down) at the end.
    """
    opts = options or BackendOptions()
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = opts.address or os.environ.get("RAY_ADDRESS") or None
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=False)
    else:
        num_cpus = opts.num_cpus or os.cpu_count() or 1
        log.info("starting a local Ray cluster (%d CPUs, 127.0.0.1)", num_cpus)
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=opts.temp_dir,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _data_context(ray: Any, show_progress: bool | None) -> Iterator[None]:
    """Ray Data settings for one job, restored afterwards: progress output as asked,
    and a UDF's own exception raised as itself (not as ``UserCodeException``,
    whose cause does not survive the trip back to the driver)."""
    ctx = ray.data.DataContext.get_current()
    show = log.isEnabledFor(logging.INFO) if show_progress is None else show_progress
    wanted = {
        "enable_progress_bars": show,
        "print_on_execution_start": show,
        "raise_original_map_exception": True,
    }
    saved = {key: getattr(ctx, key) for key in wanted}
    for key, value in wanted.items():
        setattr(ctx, key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(ctx, key, value)


def _node_cpus(ray: Any) -> float:
    """CPUs of the smallest live node that has any (a head node with none is skipped)."""
    sizes = [float(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    sizes = [size for size in sizes if size > 0]
    return min(sizes) if sizes else float(ray.cluster_resources().get("CPU", 1.0))


def _pool(ray: Any, opts: BackendOptions, n_rows: int) -> tuple[int, float]:
    """Actors to start and CPUs per actor: as asked, else one actor per node with all
    its CPUs; never more actors than rows. Asking a local cluster for more CPUs than
    it has is an error (the pool would wait for ever)."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    per = opts.cpus_per_worker or _node_cpus(ray)
    fit = max(1, int(cpus // per))
    wanted = opts.num_workers or fit
    if wanted * per > cpus:
        message = (
            f"{wanted} Ray workers x {per:g} CPUs need more than the {cpus:g} CPUs of the cluster"
        )
        if not (opts.address or os.environ.get("RAY_ADDRESS")):
            raise ConfigError(f"{message}. Fix: ask for at most {fit} workers.")
        log.warning("%s; the job waits until the cluster scales up.", message)
    return max(1, min(wanted, n_rows)), per


def _by_length(texts: Sequence[str]) -> np.ndarray:
    """Positions of ``texts``, longest first (stable), as sentence-transformers orders a
    batch: blocks of similar lengths pad little, which made a Ray job ~1.5x faster."""
    return np.argsort([-len(t) for t in texts], kind="stable")


def _split(
    frame: pd.DataFrame, workers: int, rows_per_batch: int | None, cap: int, multiple: int = 1
) -> list[pd.DataFrame]:
    """``frame`` as consecutive blocks (one ``map_batches`` call each): about 4 per
    actor, at most ``cap`` rows, sizes rounded up to a multiple of ``multiple``."""
    n = len(frame)
    size = math.ceil(n / (workers * _BLOCKS_PER_WORKER))
    size = rows_per_batch or min(cap, max(1, math.ceil(size / multiple) * multiple))
    return [frame.iloc[start : start + size] for start in range(0, n, size)]


def _unwrap(exc: BaseException) -> BaseException | None:
    """The hybrid_rec error behind a Ray task/actor failure, if there is one."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, HybridRecError) and type(err).__module__.startswith("hybrid_rec"):
            return err
        stack.extend([getattr(err, "cause", None), err.__cause__, err.__context__])
    return None


_RAY_NOTE = "\nFailed to apply UDF transform"
"""Start of the retry note Ray Data appends to the message of a UDF's exception."""


def _without_ray_notes(err: BaseException) -> BaseException:
    """``err`` with the retry notes Ray Data appended to its message removed."""
    args = [a for a in err.args if not (isinstance(a, str) and a.startswith(_RAY_NOTE[1:]))]
    if args and isinstance(args[0], str):
        args[0] = args[0].split(_RAY_NOTE, 1)[0]
    err.args = tuple(args)
    return err


@contextlib.contextmanager
def _clear_errors() -> Iterator[None]:
    """Re-raise a worker's hybrid_rec error as itself (not a Ray traceback dump)."""
    try:
        yield
    except Exception as exc:
        inner = _unwrap(exc)
        if inner is None:
            raise
        raise _without_ray_notes(inner) from None


def _build_encoder(spec: EncoderSpec) -> Encoder:
    if isinstance(spec, str):
        return make_encoder(ContentConfig(encoder=spec))
    if isinstance(spec, ContentConfig):
        return make_encoder(spec)
    if callable(spec):
        return spec()
    raise ConfigError(
        f"encoder must be a name, a ContentConfig or a callable returning an encoder, "
        f"got {type(spec).__name__}."
    )


def _set_threads(cpus: float) -> None:
    """One torch and one FAISS (OpenMP) thread per CPU the actor reserved (Ray's default is one)."""
    import faiss
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    faiss.omp_set_num_threads(max(1, int(cpus)))


# ----------------------------------------------------------------------------- embedding


class _EmbedWorker:
    """A Ray Data actor: builds the encoder once, embeds a block of texts per call.

    A hybrid_rec error while building is kept and raised by the first call:
    Ray reports a failed constructor only as text (``ActorDiedError``), but a
    failed call carries the exception itself, which the driver re-raises.
    """

    def __init__(self, spec: EncoderSpec, expected_name: str | None, cpus: float) -> None:
        _set_threads(cpus)
        self.error: HybridRecError | None = None
        try:
            self.encoder = _build_encoder(spec)
        except HybridRecError as exc:
            self.error = exc  # raised by the first call, which passes it back intact
            return
        if expected_name is not None and self.encoder.name != expected_name:
            self.error = EncoderError(
                f"a Ray worker on {os.uname().nodename} built encoder {self.encoder.name!r}, "
                f"expected {expected_name!r}: the nodes have different model files. Fix: "
                "install the same encoder packages on every node."
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.error is not None:
            raise self.error
        texts = [str(t) for t in batch["text"]]
        vectors = np.asarray(self.encoder.encode(texts, show_progress=False), dtype=np.float32)
        return {_ROW: np.asarray(batch[_ROW], dtype=np.int64), "vector": vectors}


def ray_embed(
    texts: Sequence[str] | pd.Series,
    encoder: EncoderSpec,
    options: BackendOptions | None = None,
    *,
    expected_name: str | None = None,
) -> np.ndarray:
    """Embed ``texts`` on Ray: the same float32 ``(len(texts), dim)`` rows, in the same
    order, as ``encoder.encode(texts)`` locally.

    Parameters
    ----------
    texts
        Item texts (e.g. :func:`~hybrid_rec.content.item_texts`).
    encoder
        How each worker builds the encoder (see :data:`EncoderSpec`).
    options
        Cluster, pool size and block size (:class:`BackendOptions`).
    expected_name
        If given, every worker's encoder must have this ``name`` (guards a
        cluster whose nodes hold other model files).

    Raises
    ------
    MissingDependencyError
        Ray is not installed.
    DataValidationError
        A text is not a string.
    EncoderError
        The encoder cannot be built on a worker.
    """
    opts = options or BackendOptions()
    items = _as_texts(list(texts) if isinstance(texts, pd.Series) else texts)
    if not items:
        return np.asarray(_build_encoder(encoder).encode([]), dtype=np.float32)
    with ray_session(opts) as ray, _data_context(ray, opts.show_progress), _clear_errors():
        workers, per = _pool(ray, opts, len(items))
        order = _by_length(items)
        frame = pd.DataFrame({_ROW: order.astype(np.int64), "text": [items[i] for i in order]})
        blocks = _split(frame, workers, opts.rows_per_batch, cap=2048, multiple=64)
        ds = ray.data.from_pandas(blocks).map_batches(
            _EmbedWorker,
            fn_constructor_args=(encoder, expected_name, per),
            batch_size=None,  # one block per call: the blocks are cut to size above
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=per,
        )
        rows, parts = [], []
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            rows.append(np.asarray(batch[_ROW], dtype=np.int64))
            parts.append(np.asarray(batch["vector"], dtype=np.float32))
    order = np.concatenate(rows)
    vectors = np.concatenate(parts)
    if len(order) != len(items) or not np.array_equal(np.sort(order), np.arange(len(items))):
        raise EncoderError(f"the Ray job returned {len(order)} vectors for {len(items)} texts.")
    out = np.empty_like(vectors)
    out[order] = vectors  # Ray Data does not keep block order: put each row back in place
    return out


class _PrecomputedEncoder:
    """Serves vectors embedded on Ray to :meth:`EmbeddingStore.sync` by text; a text
    it lacks (none, unless the catalogue changed mid-run) is embedded locally."""

    def __init__(self, local: Encoder) -> None:
        self.local = local
        self.vectors: dict[str, np.ndarray] = {}
        self.fallbacks = 0

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def dim(self) -> int:
        return self.local.dim

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.vectors.update(zip(texts, vectors, strict=True))

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing = [i for i, t in enumerate(texts) if t not in self.vectors]
        for i, text in enumerate(texts):
            if text in self.vectors:
                out[i] = self.vectors[text]
        if missing:
            self.fallbacks += len(missing)
            out[missing] = self.local.encode(
                [texts[i] for i in missing], batch_size=batch_size, show_progress=False
            )
        return out


def ray_reembed_catalog(
    items: str | os.PathLike[str] | pd.DataFrame,
    store_dir: str | os.PathLike[str],
    *,
    config: ContentConfig | None = None,
    keep_removed: bool = False,
    prune: bool = False,
    rebuild: bool = False,
    repair: bool = False,
    options: BackendOptions | None = None,
    round_size: int = 50_000,
    lock_wait: float = 0.0,
) -> SyncSummary:
    """:func:`~hybrid_rec.content.reembed_catalog` with the embedding done on Ray.

    The driver reads the catalogue, renders the texts, builds the encoder once
    (for its name, the store's identity) and works out which items are new or
    changed; those are embedded on Ray ``round_size`` at a time, and each
    round is committed to the store before the next starts (a crash loses at
    most one round). The store ends up exactly as the local backend leaves it.

    Returns
    -------
    SyncSummary
        new / changed / unchanged / removed for the whole run; ``seconds``
        and ``items_per_second`` include the Ray jobs.
    """
    start = time.perf_counter()
    require_ray()  # before the store is touched
    if round_size < 1:
        raise ConfigError(f"round_size must be >= 1, got {round_size}.")
    opts = options or BackendOptions()
    cfg = config or ContentConfig()
    frame = read_table(items) if isinstance(items, str | os.PathLike) else items
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(
            f"expected a catalogue file path or a DataFrame, got {type(items).__name__}."
        )
    texts = _check_texts(item_texts(frame, cfg))
    local = make_encoder(cfg)
    store = EmbeddingStore.for_encoder(Path(store_dir), local, rebuild=rebuild, lock_wait=lock_wait)
    store.verify(repair=repair)
    hashes = np.array([text_hash(t, local.name) for t in texts.tolist()], dtype=object)
    stored = store.hashes.reindex(texts.index).to_numpy(dtype=object)
    todo = texts[stored != hashes]
    ids_done = texts.index[stored == hashes]
    pre = _PrecomputedEncoder(local)

    def sync(catalogue: pd.Series, keep: bool) -> SyncSummary:
        return store.sync(
            catalogue,
            pre,
            keep_removed=keep,
            prune=prune,
            batch_size=cfg.batch_size,
            shard_size=cfg.shard_size,
            show_progress=False,
        )

    new = changed = 0
    with ray_session(opts) if len(todo) else contextlib.nullcontext():
        for begin in range(0, len(todo), round_size):
            part = todo.iloc[begin : begin + round_size]
            unique = list(dict.fromkeys(part.tolist()))
            pre.add(unique, ray_embed(unique, cfg, opts, expected_name=local.name))
            if begin + round_size >= len(todo):
                break  # the last round is committed by the final sync below
            ids_done = ids_done.append(part.index)
            done = sync(texts[texts.index.isin(ids_done)], True)
            new, changed = new + done.new, changed + done.changed
            pre.vectors.clear()
    final = sync(texts, keep_removed)
    if pre.fallbacks:
        log.warning("%d text(s) changed during the run and were embedded locally", pre.fallbacks)
    seconds = time.perf_counter() - start
    new, changed = new + final.new, changed + final.changed
    summary = dataclasses.replace(
        final,
        new=new,
        changed=changed,
        unchanged=final.unchanged - (new + changed - final.new - final.changed),
        seconds=seconds,
        items_per_second=(new + changed) / seconds if new + changed and seconds > 0 else 0.0,
    )
    log.info(
        "re-embedded %s into %s on Ray: %s", frame.attrs.get("source", "items"), store_dir, summary
    )
    return summary


# ----------------------------------------------------------------------------- cold items


class _ScoreWorker:
    """A Ray Data actor: loads the saved model once, scores a block of new items per call."""

    def __init__(
        self,
        model_dir: str,
        spec: EncoderSpec | None,
        k: int,
        chunk_size: int,
        cpus: float,
    ) -> None:
        from hybrid_rec.recommender import HybridRecommender

        _set_threads(cpus)
        self.k, self.chunk_size = k, chunk_size
        self.error: HybridRecError | None = None
        try:
            encoder = _build_encoder(spec) if spec is not None else None
            self.rec = HybridRecommender.load(model_dir, encoder=encoder)
        except HybridRecError as exc:
            self.error = exc  # raised by the first call, which passes it back intact

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.error is not None:
            raise self.error
        rows = dict(zip(batch[C.item].astype(str), batch[_ROW].to_numpy(np.int64), strict=True))
        out = self.rec.score_cold_items(
            batch.drop(columns=[_ROW]), k=self.k, chunk_size=self.chunk_size
        )
        out.insert(0, _ROW, out[C.item].map(rows).to_numpy(np.int64))
        return out


def _check_new_items(frame: pd.DataFrame, config: RecommenderConfig) -> pd.DataFrame:
    """What ``score_cold_items`` checks, done once on the driver so that errors name
    rows of the whole input rather than of one worker's block. Returns the validated
    items with their input position in a column, longest text first."""
    items, texts = new_item_texts(frame, config.content)
    items.insert(0, _ROW, np.arange(len(items), dtype=np.int64))
    return items.iloc[_by_length(texts.tolist())]


def ray_score_cold_items(
    model_dir: str | os.PathLike[str],
    items: pd.DataFrame | str | os.PathLike[str],
    k: int = 100,
    *,
    encoder: EncoderSpec | None = None,
    chunk_size: int = 1024,
    options: BackendOptions | None = None,
) -> pd.DataFrame:
    """``HybridRecommender.load(model_dir).score_cold_items(items, k)`` on Ray.

    Each actor loads the saved model once (``model_dir`` must be readable at
    the same path on every node) and scores blocks of new items.

    Parameters
    ----------
    model_dir
        A directory written by :meth:`HybridRecommender.save`.
    items
        New items (a frame, or a CSV / Parquet / JSON Lines file).
    k
        Users per item.
    encoder
        How each worker builds the content encoder (see :data:`EncoderSpec`);
        None builds the one the model's config names, as ``load`` does.
    chunk_size
        Items scored per matrix product inside a worker.
    options
        Cluster, pool size and block size (:class:`BackendOptions`).

    Returns
    -------
    pandas.DataFrame
        ``item_id, user_id, score, rank``: the rows ``score_cold_items``
        returns, items in input order, users by rank.

    Raises
    ------
    MissingDependencyError
        Ray is not installed.
    ModelFileError
        ``model_dir`` is not a saved model, or a file was changed.
    DataValidationError
        Bad ``k``, missing/duplicate ids, or an item with no text.
    """
    opts = options or BackendOptions()
    require_ray()
    directory = Path(model_dir).expanduser().resolve()
    read_manifest(directory, library_version=__version__)
    config = RecommenderConfig.model_validate_json((directory / "config.json").read_text())
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k <= 0:
        raise DataValidationError(f"k must be a positive integer, got {k!r}.", source="k")
    n_users = len(IdMap.load(directory / "user_ids.json"))
    if k > n_users:
        log.warning("k=%d is larger than the %d known users; returning %d.", k, n_users, n_users)
    frame = read_table(items) if isinstance(items, str | os.PathLike) else items
    new_items = _check_new_items(frame, config)
    with ray_session(opts) as ray, _data_context(ray, opts.show_progress), _clear_errors():
        workers, per = _pool(ray, opts, len(new_items))
        blocks = _split(new_items, workers, opts.rows_per_batch, cap=chunk_size, multiple=64)
        ds = ray.data.from_pandas(blocks).map_batches(
            _ScoreWorker,
            fn_constructor_args=(str(directory), encoder, int(k), chunk_size, per),
            batch_size=None,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=per,
        )
        parts = list(ds.iter_batches(batch_size=None, batch_format="pandas"))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out = out.sort_values([_ROW, C.rank], kind="stable").drop(columns=[_ROW])
    return pd.DataFrame(
        {
            C.item: out[C.item].astype(str).to_numpy(),
            C.user: out[C.user].astype(str).to_numpy(),
            C.score: out[C.score].to_numpy(np.float32),
            C.rank: out[C.rank].to_numpy(np.int64),
        }
    )
