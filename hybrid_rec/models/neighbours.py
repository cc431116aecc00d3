"""Neighbour transfer: items with little evidence borrow the vectors of their content neighbours.

The fusion network maps an item without interactions to a vector through its
linear content path alone. That map is fitted to every warm item at once, so
it places a new item where an *average* item with that text would sit. Items
with behaviour that read alike are a second, local opinion: the
softmax-weighted mean of the fused vectors of an item's ``neighbours``
nearest items by content (cosine in the content-taste coordinates; never the
item itself), rescaled to the item's own vector length, is a point among
real, well-placed items. The recommender blends the two with a weight that
falls with evidence,

    v' = (1 - a_n) v + a_n t,    a_n = weight / (1 + n),

where ``n`` is the item's interaction count: an item with none takes the
full ``weight``, one with a single interaction half of it, a popular item
almost nothing, so every item goes through the same formula and well-known
items keep what their behaviour taught the model. ``weight`` is chosen on
validation (cold items ranked among cold items). On MovieLens-100k
validation (MiniLM, 200 neighbours, temperature 0.2, weight 0.5, offsets
re-searched) cold Recall@20 rises from 0.454 to 0.494 and all-items
Recall@20 from 0.264 to 0.280 (measured before the taper below);
``benchmarks/RESULTS.md`` has the test figures.

The neighbours are the items that had interactions when the vectors were
last computed in full (``fit``); their fused vectors are kept unblended and
saved with the model, so the transfer never compounds. When such an item's
text or vector changes later (``update_items``, ``partial_fit``), its entry
follows (:meth:`NeighbourTransfer.update`).

The weights fade to zero just above the ``(neighbours + 1)``-th similarity
(over :data:`TAPER` of cosine) instead of stopping at a hard cut, so ``t``
is a continuous function of the item's content: a rounding-level change of a
content vector (another batch size, another thread count, another machine)
cannot swap a neighbour in or out at the cut and move the vector by a visible
amount. Without the taper, scoring the same items in chunks of 7 instead of
1,024 moved some scores by 3e-3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid_rec.config import IndexConfig
from hybrid_rec.index import VectorIndex

__all__ = ["NeighbourTransfer", "neighbour_share"]

_CHUNK = 1024  # query rows per step: bounds the (rows, neighbours, dim) gather
_DENSE_MAX = 20_000  # base items searched by one matrix multiply per chunk (80 MB of scores)
TAPER = 0.01  # cosine over which a neighbour's weight fades out above the cut
_BELOW_ANY = -2.0  # a cut below every cosine: no item is cut off


def _taper(sims: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """``clip((sims - floor) / TAPER, 0, 1)``: 0 at or below each row's ``floor`` (the
    first similarity left out), 1 from ``TAPER`` above it; ``-inf`` similarities get 0."""
    out = np.subtract(sims, floor, dtype=np.float32)
    out /= TAPER
    return np.clip(out, 0.0, 1.0, out=out)


def neighbour_share(counts: np.ndarray, weight: float) -> np.ndarray:
    """``weight / (1 + n)`` per item: how much of its vector comes from its neighbours."""
    return (float(weight) / (1.0 + np.asarray(counts, dtype=np.float64))).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class NeighbourTransfer:
    """The items neighbours are drawn from, and how many and how sharply.

    Attributes
    ----------
    ids
        (m,) internal ids of the base items (those with interactions).
    vectors
        (m, dim) their fused vectors, unblended.
    coords
        (m, c) their coordinates in the space neighbours are found in (the
        recommender uses the content-taste coordinates: centred content vectors
        in their top principal components); cosine, normalised on use.
    neighbours
        Neighbours per item.
    temperature
        Softmax temperature on the cosine similarities.
    """

    ids: np.ndarray
    vectors: np.ndarray
    coords: np.ndarray
    neighbours: int = 200
    temperature: float = 0.2
    index_config: IndexConfig | None = None

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")  # sorted ids: positions by binary search
        self.ids = ids[order]
        self.vectors = np.ascontiguousarray(np.asarray(self.vectors)[order], dtype=np.float32)
        self.coords = np.asarray(self.coords)[order]
        self._index: VectorIndex | None = None
        self._unit_coords = _unit(self.coords)

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Base row of each internal id, -1 for ids not in the base."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.size == 0:
            return np.full(len(ids), -1)
        pos = np.minimum(np.searchsorted(self.ids, ids), self.size - 1)
        return np.where(self.ids[pos] == ids, pos, -1)

    def update(self, ids: np.ndarray, vectors: np.ndarray, coords: np.ndarray) -> int:
        """Replace the (unblended) vectors and the coordinates of those ``ids`` that
        are base items; other ids are ignored. Returns how many were base items.

        An item whose text changed (``update_items``) is then found by its new
        text, and lends its new vector, to the items blended from now on; items
        blended before keep their blend until the next full refresh (``fit``).
        """
        pos = self._positions(ids)
        hit = pos >= 0
        if not hit.any():
            return 0
        rows = pos[hit]
        self.vectors[rows] = np.asarray(vectors, np.float32)[hit]
        self.coords[rows] = np.asarray(coords)[hit]
        self._unit_coords[rows] = _unit(np.asarray(coords)[hit])
        if self._index is not None:
            self._index.update(rows, self._unit_coords[rows])
        return int(hit.sum())

    @classmethod
    def empty(cls, dim: int, coord_dim: int) -> NeighbourTransfer:
        """No base: :meth:`blend` returns vectors unchanged."""
        return cls(np.zeros(0, np.int64), np.zeros((0, dim)), np.zeros((0, coord_dim)))

    @property
    def size(self) -> int:
        """Number of base items."""
        return len(self.ids)

    def targets(self, coords: np.ndarray, self_ids: np.ndarray | None = None) -> np.ndarray:
        """The softmax-weighted mean base vector of each row's nearest base items.

        ``self_ids`` (internal ids, one per row) are never their own neighbour.
        Rows ``_CHUNK`` at a time.
        """
        n = len(coords)
        out = np.zeros((n, self.vectors.shape[1]), dtype=np.float32)
        m = min(self.neighbours, self.size - int(self_ids is not None))
        if n == 0 or m < 1:
            return out
        for s in range(0, n, _CHUNK):
            queries = _unit(coords[s : s + _CHUNK])
            own = None
            if self_ids is not None:
                own = self._positions(self_ids[s : s + _CHUNK])
            if self.size <= _DENSE_MAX:
                out[s : s + len(queries)] = self._dense_mean(queries, m, own)
            else:
                out[s : s + len(queries)] = self._indexed_mean(queries, m, own)
        return out

    def _weights(self, sims: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """Softmax of ``sims / temperature`` per row, tapered to 0 at ``floor``
        (``-inf`` entries get 0). ``sims`` is overwritten; no other array of its size
        is made besides the result."""
        weights = _taper(sims, floor)
        sims -= sims.max(axis=1, keepdims=True)
        sims /= self.temperature
        np.exp(sims, out=sims)
        weights *= sims
        total = weights.sum(axis=1, keepdims=True)
        flat = np.flatnonzero(total[:, 0] <= 0)  # every candidate at the cut: all tied
        if len(flat):
            weights[flat] = sims[flat]  # the plain softmax over them
            total[flat] = sims[flat].sum(axis=1, keepdims=True)
        weights /= total
        return weights

    def _dense_mean(self, queries: np.ndarray, m: int, own: np.ndarray | None) -> np.ndarray:
        """Small base: every similarity at once; a partition finds each row's first
        left-out similarity (no sort), then one matrix multiply."""
        sims = queries @ self._unit_coords.T
        if own is not None:
            rows = np.flatnonzero(own >= 0)
            sims[rows, own[rows]] = -np.inf
        floor = np.full((len(sims), 1), _BELOW_ANY, np.float32)
        if m < self.size:  # the (m + 1)-th largest similarity
            floor = np.maximum(
                np.partition(sims, self.size - m - 1, axis=1)[:, [self.size - m - 1]], floor
            )
        return self._weights(sims, floor) @ self.vectors

    def _indexed_mean(self, queries: np.ndarray, m: int, own: np.ndarray | None) -> np.ndarray:
        """Large base: the top ``m + 1`` (plus the row itself) from the FAISS index."""
        if self._index is None:
            self._index = VectorIndex(self._unit_coords.shape[1], self.index_config)
            self._index.build(self._unit_coords)
        extra = int(m < self.size - int(own is not None))  # the first left out, if any
        k = m + extra
        sims, rows = self._index.search(queries, k + int(own is not None))
        if own is not None:
            keep = rows != own[:, None]
            keep[keep.all(axis=1), -1] = False  # not among its neighbours: drop the last
            sims, rows = sims[keep].reshape(len(rows), k), rows[keep].reshape(len(rows), k)
        sims = np.where(rows >= 0, sims, -np.inf).astype(np.float32)
        floor = np.full((len(sims), 1), _BELOW_ANY, np.float32)
        if extra:
            floor = np.maximum(sims[:, -1:], floor)
        weights = self._weights(sims, floor)
        return np.einsum("qm,qmd->qd", weights, self.vectors[np.maximum(rows, 0)])

    def matched_targets(
        self, vectors: np.ndarray, coords: np.ndarray, self_ids: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`targets` rescaled to the length of each row of ``vectors``; a row
        with no neighbour (an item alone in the base) keeps its own vector."""
        vectors = np.asarray(vectors, np.float32)
        t = self.targets(coords, self_ids)
        length = np.linalg.norm(t, axis=1, keepdims=True)
        own = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.where(length > 1e-12, t * (own / np.maximum(length, 1e-12)), vectors)

    def blend(
        self,
        vectors: np.ndarray,
        coords: np.ndarray,
        counts: np.ndarray,
        weight: float,
        self_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(1 - a_n) v + a_n t`` per row (see the module docstring); a copy."""
        vectors = np.asarray(vectors, dtype=np.float32)
        share = neighbour_share(counts, weight)
        if weight <= 0 or self.size == 0 or len(vectors) == 0:
            return vectors.copy()
        mixed = vectors.copy()
        rows = np.flatnonzero(share > 1e-4)  # popular items: nothing to blend
        for s in range(0, len(rows), 8 * _CHUNK):
            part = rows[s : s + 8 * _CHUNK]
            ids = None if self_ids is None else self_ids[part]
            t = self.matched_targets(vectors[part], coords[part], ids)
            a = share[part, None]
            mixed[part] = (1 - a) * vectors[part] + a * t
        return mixed
