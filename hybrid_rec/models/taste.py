"""Content taste: a user's profile in the sentence-encoder space, next to the learned one.

The fused item vectors place items where behaviour puts them; a cold item
lands there through a projection learned mostly on warm items. The content
taste is an untrained, complementary signal: the (normalised) sum of the
user's history items' content coordinates, matched against an item's own
coordinates. Coordinates are the catalogue's top principal components of
the centred content vectors, so the term costs ``dim`` extra numbers per
item in the index instead of the encoder's full width.

Its weight is chosen on validation (see ``HybridRecommender``); on
MovieLens-100k it adds about 0.02 to cold-item Recall@20 without costing
warm items anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ContentTaste"]

_MAX_FIT_ROWS = 200_000
_COV_BLOCK = 8192
"""Rows per block of the covariance sum."""


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class ContentTaste:
    """Principal-component coordinates of content vectors, and users' tastes in them.

    Attributes
    ----------
    mean
        (content_dim,) catalogue mean removed before projecting.
    basis
        (content_dim, dim) orthonormal principal directions.
    """

    mean: np.ndarray
    basis: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.basis.shape[1])

    @classmethod
    def fit(cls, content: np.ndarray, dim: int, *, seed: int = 0) -> ContentTaste:
        """Top-``dim`` principal directions of ``content`` (a sample of rows if huge)."""
        rows = np.asarray(content, dtype=np.float32)
        if len(rows) > _MAX_FIT_ROWS:
            pick = np.random.default_rng(seed).choice(len(rows), _MAX_FIT_ROWS, replace=False)
            rows = rows[np.sort(pick)]
        mean = rows.mean(axis=0, dtype=np.float64)
        # right singular vectors of the centred rows = eigenvectors of the covariance,
        # summed in float64 over blocks of rows: memory of one block, not 6x the input
        cov = np.zeros((rows.shape[1], rows.shape[1]), dtype=np.float64)
        for start in range(0, len(rows), _COV_BLOCK):
            block = rows[start : start + _COV_BLOCK].astype(np.float64) - mean
            cov += block.T @ block
        values, vectors = np.linalg.eigh(cov)
        dim = int(min(dim, content.shape[1]))
        basis = vectors[:, np.argsort(values)[::-1][:dim]]
        return cls(mean.astype(np.float32), np.ascontiguousarray(basis, dtype=np.float32))

    def items(self, content: np.ndarray) -> np.ndarray:
        """(n, dim) unit-length coordinates of content vectors."""
        return _normalise((np.asarray(content, np.float32) - self.mean) @ self.basis)

    def users(
        self, coords: np.ndarray, users: np.ndarray, items: np.ndarray, n_users: int
    ) -> np.ndarray:
        """(n_users, dim) unit-length tastes: the sum of each user's items' coordinates.

        ``users`` and ``items`` are parallel internal-id arrays (one row per
        interaction); a user with no rows gets the zero vector.
        """
        taste = np.zeros((n_users, self.dim), dtype=np.float64)
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        # one weighted bincount per coordinate: 11x faster than np.add.at (3.2 s at
        # 580,000 rows), and no (rows, dim) copy
        for d, column in enumerate(np.ascontiguousarray(np.asarray(coords).T)):
            taste[:, d] = np.bincount(users, weights=column[items], minlength=n_users)
        return _normalise(taste)
