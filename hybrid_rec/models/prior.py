"""Content prior: how much attention an item will draw, predicted from its content.

A model trained on behaviour learns a popularity prior for warm items from
their interactions; an item with none has no such evidence, so the
recommender gives every cold item the same offset. Yet content says a good
deal about which new items will be popular: on MovieLens-100k a ridge
regression from the sentence vectors predicts the log interaction count of
held-out warm items with correlation 0.51 (5-fold; release year, genre and
a familiar franchise are all in the text). This
module fits that regression on the warm items and scores any item from its
content vector alone, standardised over the warm items (mean 0, std 1).

The recommender adds ``weight × prior`` to the offset of items without
interactions only, with ``weight`` chosen on validation like the offset
itself; warm items keep the popularity their own interactions taught the
model. On MovieLens-100k validation it lifts cold Recall@20 by about 0.01
and all-items Recall@20 by about 0.04 (see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ContentPrior"]

_MAX_FIT_ROWS = 200_000
_MIN_WARM_ITEMS = 20


@dataclass(frozen=True)
class ContentPrior:
    """A linear map from content vectors to standardised log interaction counts.

    Attributes
    ----------
    mean
        (content_dim,) mean of the warm items' content vectors.
    coef
        (content_dim,) ridge coefficients, already divided by the prediction
        spread so that :meth:`score` is standardised (all zeros: no prior).
    """

    mean: np.ndarray
    coef: np.ndarray

    @classmethod
    def none(cls, content_dim: int) -> ContentPrior:
        """The prior that scores every item 0."""
        zeros = np.zeros(content_dim, dtype=np.float32)
        return cls(zeros, zeros.copy())

    @classmethod
    def fit(
        cls, content: np.ndarray, counts: np.ndarray, *, ridge: float = 1.0, seed: int = 0
    ) -> ContentPrior:
        """Ridge regression of ``log1p(count)`` on the content of items with ``count > 0``.

        ``ridge`` is relative to the mean variance per content dimension, so it
        means the same for any encoder. With fewer than 20 warm items, or no
        variation in their counts, the prior is :meth:`none`.
        """
        content = np.asarray(content, dtype=np.float32)
        counts = np.asarray(counts)
        warm = np.flatnonzero(counts > 0)
        if len(warm) > _MAX_FIT_ROWS:
            warm = np.sort(np.random.default_rng(seed).choice(warm, _MAX_FIT_ROWS, replace=False))
        target = np.log1p(counts[warm].astype(np.float64))
        if len(warm) < _MIN_WARM_ITEMS or target.std() == 0:
            return cls.none(content.shape[1])
        rows = content[warm].astype(np.float64)
        mean = rows.mean(axis=0)
        centred = rows - mean
        gram = centred.T @ centred
        lam = ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
        coef = np.linalg.solve(
            gram + lam * np.eye(gram.shape[0]), centred.T @ (target - target.mean())
        )
        spread = float((centred @ coef).std())
        if not np.isfinite(spread) or spread <= 1e-12:
            return cls.none(content.shape[1])
        return cls(mean.astype(np.float32), (coef / spread).astype(np.float32))

    def score(self, content: np.ndarray) -> np.ndarray:
        """(n,) standardised predicted popularity of items from their content vectors."""
        return ((np.asarray(content, np.float32) - self.mean) @ self.coef).astype(np.float32)
