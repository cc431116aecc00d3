"""FAISS retrieval over fused item vectors (inner product on L2-normalised vectors).

The index type is chosen by catalogue size and memory (see
:func:`choose_factory`: exact ``Flat``, then ``HNSW``, then ``IVF-PQ``) or forced
by a FAISS factory string (``"Flat"``, ``"HNSW32,Flat"``, ``"IVF1024,PQ32"``).
Compressed indexes (PQ, SQ) fetch extra candidates and re-rank them exactly
with the full vectors the wrapper keeps; :meth:`VectorIndex.measure_recall`
checks any index against exact search.

Internal item ids are the positions in the index (append-only, like the
:class:`~hybrid_rec.data.IdMap`). Vectors that change after being added
(feedback folded into a lightly-seen item) are written in place in an exact
index. A graph or inverted-list index cannot move an entry, so there they are
kept in an *override* set that is searched exactly and merged, and their stale
entries are ignored. An HNSW index is saved with its stale entries (the loader
finds the overrides again by comparing its stored vectors with the model's), so a
save after a few updates does not rebuild the graph.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from hybrid_rec.config import IndexConfig
from hybrid_rec.data.arrays import append_rows
from hybrid_rec.errors import ModelFileError

__all__ = ["VectorIndex", "choose_factory"]

log = logging.getLogger(__name__)

REBUILD_OVERRIDE_SHARE = 0.2
"""``save`` rebuilds a graph index once this share of its items is overridden (each
query scores every override exactly, so beyond it the graph saves little)."""


def choose_factory(n_items: int, config: IndexConfig, dim: int = 65) -> str:
    """The factory string for a catalogue of ``n_items`` vectors of ``dim`` floats
    (default: the default model's 64-d fused vectors plus the cold-offset column).

    ``config.factory``, when set, wins. Otherwise, with ``d = dim`` and the
    memory budget ``B = config.memory_budget_gb`` (default: a quarter of this
    machine's RAM), counting the float32 copy of the vectors the wrapper always
    keeps:

    1. ``n_items <= config.exact_max_items`` (200,000): ``"Flat"``, exact — a
       scan of that many vectors takes a few milliseconds per query;
    2. else, if HNSW fits, ``n * (8 d + 8.8 M) <= B`` bytes (two copies of the
       vectors plus about ``2 M`` 4-byte links per item, ``M = config.hnsw_m``):
       ``"HNSW{M},Flat"`` — the fastest at recall >= 0.95;
    3. else ``"IVF{nlist},PQ{m}"`` with ``nlist`` the power of two nearest
       ``4 sqrt(n)`` (64 to 65,536) and ``m`` the largest divisor of ``d`` up to
       ``d / 2`` (``"IVF{nlist},SQ8"`` if ``d`` has none from 4 up): about
       ``m + 8`` bytes per item besides the kept vectors; its candidates are
       re-ranked exactly.
    """
    if config.factory:
        return config.factory
    if n_items <= config.exact_max_items:
        return "Flat"
    budget = (config.memory_budget_gb or _ram_bytes() / 4 / 2**30) * 2**30
    if n_items * (8 * dim + 8.8 * config.hnsw_m) <= budget:
        return f"HNSW{config.hnsw_m},Flat"
    nlist = int(2 ** np.clip(np.round(np.log2(4 * np.sqrt(n_items))), 6, 16))
    m = max((m for m in range(1, dim // 2 + 1) if dim % m == 0), default=1)
    return f"IVF{nlist},PQ{m}" if m >= 4 else f"IVF{nlist},SQ8"


def _ram_bytes() -> float:
    """Physical memory of this machine (16 GiB where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16.0 * 2**30


class VectorIndex:
    """Top-k inner-product search with exclusions and an allowed-items mask."""

    def __init__(self, dim: int, config: IndexConfig | None = None, factory: str | None = None):
        self.config = config or IndexConfig()
        self.dim = dim
        self.factory = factory
        self._index: faiss.Index | None = None
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._overrides: np.ndarray = np.zeros(0, dtype=np.int64)
        self._override_vectors: np.ndarray | None = None

    # ---------------------------------------------------------------- building

    @property
    def ntotal(self) -> int:
        return len(self._vectors)

    @property
    def vectors(self) -> np.ndarray:
        """Current vectors (row = internal item id)."""
        return self._vectors

    @property
    def is_exact(self) -> bool:
        """Whether search is exhaustive (``Flat``), so its recall is 1 by construction."""
        return isinstance(self._index, faiss.IndexFlat)

    @property
    def kind(self) -> str:
        """The factory string, or the FAISS class name of a loaded index."""
        if self.factory:
            return self.factory
        return type(self._index).__name__ if self._index is not None else "empty"

    def build(self, vectors: np.ndarray) -> VectorIndex:
        """(Re)build the index from scratch."""
        vectors = _as_matrix(vectors, self.dim)
        self.factory = self.factory or choose_factory(len(vectors), self.config, self.dim)
        index = faiss.index_factory(self.dim, self.factory, faiss.METRIC_INNER_PRODUCT)
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efConstruction = self.config.hnsw_ef_construction
            index.hnsw.efSearch = self.config.hnsw_ef_search
        if hasattr(index, "do_polysemous_training"):  # PQ: minutes of training for a
            index.do_polysemous_training = False  # Hamming filter this wrapper never uses
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        self._index = index
        self._vectors = vectors.copy()
        self._overrides = np.zeros(0, dtype=np.int64)
        self._override_vectors = None
        log.info("built FAISS %s index over %d items", self.factory, len(vectors))
        return self

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors; returns their internal ids."""
        vectors = _as_matrix(vectors, self.dim)
        if self._index is None:
            self.build(vectors)
            return np.arange(len(vectors))
        start = self.ntotal
        self._index.add(vectors)
        self._vectors = append_rows(self._vectors, vectors)
        return np.arange(start, start + len(vectors))

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the vectors of existing ids: in place in an exact index; a graph or
        inverted-list index searches them exactly until the next build."""
        ids = np.asarray(ids, dtype=np.int64)
        self._vectors[ids] = _as_matrix(vectors, self.dim)
        stored = _stored_vectors(self._index) if isinstance(self._index, faiss.IndexFlat) else None
        if stored is not None:
            stored[ids] = self._vectors[ids]
        else:
            self._overrides = np.union1d(self._overrides, ids)
            self._override_vectors = None

    # ---------------------------------------------------------------- search

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        exclude: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` items per query.

        Parameters
        ----------
        queries
            (q, dim) user or item vectors.
        allowed
            Optional bool mask over items: only these may be returned.
        exclude
            Optional per-query arrays of item ids never to return (already seen).

        Returns
        -------
        scores, ids
            (q, k) arrays, best first, padded with ``-inf`` / ``-1`` where fewer
            than ``k`` items qualify.
        """
        if self._index is None:
            raise ModelFileError("the index is empty; build it first.")
        queries = _as_matrix(queries, self.dim)
        n_allowed = int(allowed.sum()) if allowed is not None else self.ntotal
        if allowed is not None and n_allowed <= max(50_000, self.ntotal // 5):
            return self._search_subset(queries, k, np.flatnonzero(allowed), exclude)
        max_excl = max((len(e) for e in exclude), default=0) if exclude else 0
        fetch = min(self.ntotal, k + max_excl + 16)
        if allowed is not None:
            fetch = min(self.ntotal, fetch * max(1, int(np.ceil(self.ntotal / max(1, n_allowed)))))
        scores, ids = self._raw_search(queries, fetch)
        # every item the search did not return scores at most its last one's (exactly so
        # for an exact index), overridden items aside
        bound = np.where(ids[:, -1] >= 0, scores[:, -1], -np.inf)
        if len(self._overrides):
            scores, ids = self._merge_overrides(queries, scores, ids, fetch, allowed)
        scores, ids = _filter_topk(scores, ids, k, allowed, exclude)
        last = scores[:, min(k, self.ntotal) - 1]
        short = np.flatnonzero(((ids >= 0).sum(axis=1) < min(k, fetch)) | (last < bound))
        if fetch >= self.ntotal:  # every item was looked at: what is missing does not exist
            short = short[:0]
        if len(short):
            # the filter, the seen items or stale entries of overridden items took out
            # more of this query's nearest items than the fetch allowed for (a filter
            # leaving out the user's favourite category): rank every allowed item exactly
            subset = np.flatnonzero(allowed) if allowed is not None else np.arange(self.ntotal)
            excluded = [exclude[row] for row in short] if exclude else None
            scores[short], ids[short] = self._search_subset(queries[short], k, subset, excluded)
        return scores, ids

    def _raw_search(self, queries: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._index
        assert index is not None
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = max(self.config.hnsw_ef_search, fetch)
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.nprobe = min(self.config.ivf_nprobe, ivf.nlist)
        if not _is_compressed(index):
            scores, ids = index.search(queries, fetch)
            return scores, ids
        _, ids = index.search(queries, min(self.ntotal, fetch * self.config.refine_factor))
        exact = np.einsum("qd,qkd->qk", queries, self._vectors[np.clip(ids, 0, None)])
        exact = np.where(ids >= 0, exact, -np.inf).astype(np.float32)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :fetch]
        return np.take_along_axis(exact, order, 1), np.take_along_axis(ids, order, 1)

    def measure_recall(self, queries: np.ndarray, k: int) -> dict[str, Any]:
        """Recall@k of :meth:`search` against exact search over the same vectors.

        Returns ``index``, ``items``, ``dim``, ``k``, ``queries``, ``recall_at_k``
        (the mean share of each query's exact top-k that search returns) and the
        search parameters in force.
        """
        queries = _as_matrix(queries, self.dim)
        k = max(1, min(k, self.ntotal))
        _, truth = faiss.knn(queries, self._vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
        _, found = self.search(queries, k)
        hits = [len(np.intersect1d(t, f[f >= 0])) for t, f in zip(truth, found, strict=True)]
        cfg = self.config
        return {
            "index": self.kind,
            "items": self.ntotal,
            "dim": self.dim,
            "k": k,
            "queries": len(queries),
            "recall_at_k": round(float(np.mean(hits)) / k, 4) if len(hits) else 1.0,
            "params": {
                "hnsw_ef_search": cfg.hnsw_ef_search,
                "ivf_nprobe": cfg.ivf_nprobe,
                "refine_factor": cfg.refine_factor,
            },
        }

    def _merge_overrides(
        self,
        queries: np.ndarray,
        scores: np.ndarray,
        ids: np.ndarray,
        keep: int,
        allowed: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The search's results without stale entries, and the best ``keep`` allowed
        overridden items of each query scored exactly (``keep`` covers ``k`` and the
        query's exclusions)."""
        pos = np.searchsorted(self._overrides, ids).clip(max=len(self._overrides) - 1)
        stale = self._overrides[pos] == ids  # sorted: no isin, which sorts them again
        scores = np.where(stale, -np.inf, scores)
        over = self._overrides
        if self._override_vectors is None:  # gathered once per update, not per query
            self._override_vectors = np.ascontiguousarray(self._vectors[over])
        exact = queries @ self._override_vectors.T
        if allowed is not None:
            exact[:, ~allowed[over]] = -np.inf
        exact, top = _topk(exact, over, keep)
        scores = np.concatenate([scores, exact], axis=1)
        ids = np.concatenate([ids, top], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def _search_subset(
        self, queries: np.ndarray, k: int, subset: np.ndarray, exclude: list[np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ self._vectors[subset].T
        if exclude:
            for row, ex in enumerate(exclude):
                if len(ex):
                    scores[row, np.isin(subset, ex)] = -np.inf
        return _topk(scores, subset, k)

    # ---------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> None:
        """Write the FAISS index (``faiss.write_index``); vectors are saved by the caller.

        Overridden items are folded in by a rebuild only where the loader could not find
        them again (an index without the exact vectors) or past
        :data:`REBUILD_OVERRIDE_SHARE` of the items; an HNSW graph is written with its
        stale entries (a rebuild took 93 s at 300,000 items)."""
        if self._index is None:
            raise ModelFileError("nothing to save: the index is empty.")
        if len(self._overrides) and (
            _stored_vectors(self._index) is None
            or len(self._overrides) > REBUILD_OVERRIDE_SHARE * self.ntotal
        ):
            log.info("rebuilding the index: %d overridden items", len(self._overrides))
            self.build(self._vectors)
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(
        cls,
        path: str | Path,
        vectors: np.ndarray,
        config: IndexConfig | None = None,
        factory: str | None = None,
    ) -> VectorIndex:
        """Read an index written by :meth:`save`, with the vectors it was built from.

        ``factory`` is the string the index was built with. It is needed only to rebuild
        (when updated items are folded in before a save); without it a rebuild picks the
        factory by catalogue size, as :meth:`build` does for a new index.
        """
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ModelFileError(f"{path}: cannot read FAISS index ({exc}).") from None
        if index.ntotal != len(vectors) or index.d != vectors.shape[1]:
            raise ModelFileError(
                f"{path}: index holds {index.ntotal}x{index.d} vectors but the model has "
                f"{vectors.shape[0]}x{vectors.shape[1]}."
            )
        out = cls(index.d, config)
        out._index = index
        out._vectors = _as_matrix(vectors, index.d).copy()
        out.factory = factory
        stored = _stored_vectors(index)
        if stored is not None:  # entries saved stale: the items updated since the build
            out._overrides = np.flatnonzero((stored != out._vectors).any(axis=1)).astype(np.int64)
        return out


def _stored_vectors(index: faiss.Index | None) -> np.ndarray | None:
    """A writable (ntotal, d) view of the exact vectors inside a Flat or HNSW-Flat
    index (None for any other kind)."""
    if isinstance(index, faiss.IndexHNSWFlat):
        index = faiss.downcast_index(index.storage)
    if not isinstance(index, faiss.IndexFlat) or index.ntotal == 0:
        return None
    return faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)


def _is_compressed(index: faiss.Index) -> bool:
    """Whether the index stores lossy codes (PQ, SQ ...), so its scores need re-ranking."""
    return not isinstance(index, faiss.IndexFlat | faiss.IndexHNSWFlat | faiss.IndexIVFFlat)


def _as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {arr.shape}")
    return arr


def _topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of ``scores`` (ids given per column), padded with -1 / -inf."""
    n = scores.shape[1]
    kk = min(k, n)
    part = (
        np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        if kk < n
        else np.tile(np.arange(n), (len(scores), 1))
    )
    top = np.take_along_axis(scores, part, 1)
    order = np.argsort(-top, axis=1, kind="stable")
    part = np.take_along_axis(part, order, 1)
    top = np.take_along_axis(top, order, 1)
    out_ids = ids[part]
    out_ids = np.where(np.isfinite(top), out_ids, -1)
    return _pad(top, out_ids, k)


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.shape[1] >= k:
        return scores[:, :k], ids[:, :k]
    extra = k - scores.shape[1]
    return (
        np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf),
        np.pad(ids, ((0, 0), (0, extra)), constant_values=-1),
    )


def _filter_topk(
    scores: np.ndarray,
    ids: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    exclude: list[np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    bad = ids < 0
    if allowed is not None:
        bad |= ~allowed[np.clip(ids, 0, None)]
    if exclude:
        for row, ex in enumerate(exclude):
            if len(ex):
                bad[row] |= np.isin(ids[row], ex)
    scores = np.where(bad, -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top_scores = np.take_along_axis(scores, order, 1)
    top_ids = np.where(np.isfinite(top_scores), np.take_along_axis(ids, order, 1), -1)
    return _pad(top_scores, top_ids, k)
