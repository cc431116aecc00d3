"""Top-k ranking metrics over a dense (users × items) score matrix, with full ranking.

Conventions (shared by every function here and by :mod:`hybrid_rec.evaluation.protocol`):

* **Full ranking.** Every candidate item is ranked; there are no sampled negatives.
* **Ties** are broken deterministically: a higher score ranks first, and among
  equal scores the item with the lower column index ranks first. (The protocol
  puts its candidates in a seeded random order, so ties there amount to a
  reproducible random draw rather than an alphabetical one.)
* **Excluded items** carry the score ``-inf``; they can fill a top-k list only
  when fewer than ``k`` candidates remain, and such slots never count as a hit
  or as a recommendation.
* **recall@k** = hits in the top k / number of relevant items (as RecBole; *not*
  divided by ``min(k, |relevant|)``).
* **ndcg@k** uses binary gains ``1 / log2(rank + 1)`` (rank starting at 1); the
  ideal DCG places ``min(k, |relevant|)`` hits at the top.
* Users with no relevant item get ``nan`` from the per-user functions; the
  protocol never evaluates such users.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from hybrid_rec.errors import HybridRecError

__all__ = [
    "COLD_BUCKET",
    "EvaluationError",
    "bucket_counts",
    "bucket_names",
    "catalogue_coverage",
    "hits_at_k",
    "long_tail_share",
    "ndcg_at_k",
    "ndcg_from_hits",
    "popularity_buckets",
    "recall_at_k",
    "recall_from_hits",
    "top_k_indices",
]

COLD_BUCKET = -1
"""Bucket number of cold items (no training interaction) in :func:`popularity_buckets`."""


class EvaluationError(HybridRecError, ValueError):
    """Scores or relevance given to the evaluation have the wrong shape or hold NaN."""


def _check_scores(scores: np.ndarray) -> np.ndarray:
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise EvaluationError(
            f"scores must be a 2-d (users × items) matrix, got shape {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if np.isnan(arr).any():
        rows = np.flatnonzero(np.isnan(arr).any(axis=1))[:5].tolist()
        raise EvaluationError(
            f"scores hold NaN (user rows {rows} ...). Fix: the scorer must return finite "
            "scores, or -inf for items it wants ranked last."
        )
    return arr


def _dense_relevance(relevance: Any, shape: tuple[int, int]) -> np.ndarray:
    rel = relevance.toarray() if sp.issparse(relevance) else np.asarray(relevance)
    if rel.shape != shape:
        raise EvaluationError(
            f"relevance has shape {rel.shape} but the scores have shape {shape}; both must "
            "be (users × items) over the same items in the same order."
        )
    return rel.astype(bool, copy=False)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores, best first.

    Parameters
    ----------
    scores
        ``(n_users, n_items)`` float scores, higher is better; ``-inf`` for
        excluded items; no NaN.
    k
        List length; clipped to ``n_items``.

    Returns
    -------
    numpy.ndarray
        ``(n_users, min(k, n_items))`` int64; ties go to the lower column index.

    Notes
    -----
    ``np.argpartition`` picks each row's k best. Rows where the k-th best
    score is tied with an item left outside (where argpartition's choice is
    arbitrary) are redone exactly: everything strictly better is taken, then
    the first tied items by column. A stable sort of the k picks, in column
    order, gives the final order. Cost is linear in the matrix size plus
    ``k log k`` per row, with no Python loop over users.
    """
    arr = _check_scores(scores)
    if k < 1:
        raise EvaluationError(f"k must be at least 1, got {k}.")
    n_users, n_items = arr.shape
    k = min(k, n_items)
    if n_users == 0 or k == 0:
        return np.empty((n_users, k), dtype=np.int64)
    neg = -arr
    cols = np.argpartition(neg, k - 1, axis=1)[:, :k]
    threshold = np.take_along_axis(neg, cols, axis=1).max(axis=1, keepdims=True)
    tied_rows = np.flatnonzero((neg <= threshold).sum(axis=1) > k)
    if tied_rows.size:
        cols[tied_rows] = _first_k_with_ties(neg[tied_rows], threshold[tied_rows], k)
    cols = np.sort(cols, axis=1)
    order = np.argsort(np.take_along_axis(neg, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1).astype(np.int64, copy=False)


def _first_k_with_ties(neg: np.ndarray, threshold: np.ndarray, k: int) -> np.ndarray:
    """Columns of the ``k`` best of each row; at the cut, tied items go by lower column."""
    better = neg < threshold
    tied = neg == threshold
    room = k - better.sum(axis=1, keepdims=True)
    take = better | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= room))
    return np.nonzero(take)[1].reshape(neg.shape[0], k)


def hits_at_k(top: np.ndarray, relevance: Any, scores: np.ndarray | None = None) -> np.ndarray:
    """Boolean ``(n_users, k)``: is the item at each top-k slot relevant.

    Parameters
    ----------
    top
        Output of :func:`top_k_indices`.
    relevance
        Boolean (users × items) matrix, dense or scipy sparse.
    scores
        If given, slots whose score is ``-inf`` (excluded items) are never hits.
    """
    n_users = top.shape[0]
    if sp.issparse(relevance):
        shape = relevance.shape
        rel = _dense_relevance(relevance, shape)
    else:
        rel = np.asarray(relevance).astype(bool, copy=False)
    if rel.shape[0] != n_users:
        raise EvaluationError(f"relevance has {rel.shape[0]} rows but top-k has {n_users}.")
    hits = np.take_along_axis(rel, top, axis=1)
    if scores is not None:
        hits &= np.take_along_axis(np.asarray(scores), top, axis=1) > -np.inf
    return hits


def _n_relevant(relevance: Any) -> np.ndarray:
    if sp.issparse(relevance):
        return np.asarray((relevance != 0).sum(axis=1)).ravel()
    return np.asarray(relevance).astype(bool, copy=False).sum(axis=1)


def recall_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user recall: hits / |relevant| (``nan`` where nothing is relevant)."""
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = hits.sum(axis=1) / n_rel
    return np.where(n_rel > 0, out, np.nan)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user binary NDCG; the ideal DCG covers ``min(k, |relevant|)`` slots."""
    k = hits.shape[1]
    disc = _discounts(k)
    dcg = hits.astype(np.float64) @ disc
    ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])
    n_rel = np.asarray(n_relevant, dtype=np.int64)
    idcg = ideal_cum[np.minimum(n_rel, k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = dcg / idcg
    return np.where(n_rel > 0, out, np.nan)


def recall_at_k(scores: np.ndarray, relevance: Any, k: int) -> np.ndarray:
    """Per-user recall@k with full ranking.

    Parameters
    ----------
    scores
        ``(n_users, n_items)`` scores; ``-inf`` marks excluded items.
    relevance
        Boolean ``(n_users, n_items)``, dense or scipy sparse.
    k
        Cut-off.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_users,)``; ``nan`` for users with no relevant item.

    Examples
    --------
    >>> recall_at_k(np.array([[0.9, 0.1, 0.5]]), np.array([[False, True, True]]), k=2)
    array([0.5])
    """
    arr = _check_scores(scores)
    rel = _dense_relevance(relevance, arr.shape)
    top = top_k_indices(arr, k)
    return recall_from_hits(hits_at_k(top, rel, arr), rel.sum(axis=1))


def ndcg_at_k(scores: np.ndarray, relevance: Any, k: int) -> np.ndarray:
    """Per-user NDCG@k (binary gain) with full ranking; see :func:`recall_at_k`.

    Examples
    --------
    >>> ndcg_at_k(np.array([[0.9, 0.1, 0.5]]), np.array([[True, False, False]]), k=2)
    array([1.])
    """
    arr = _check_scores(scores)
    rel = _dense_relevance(relevance, arr.shape)
    top = top_k_indices(arr, k)
    return ndcg_from_hits(hits_at_k(top, rel, arr), rel.sum(axis=1))


def catalogue_coverage(top: np.ndarray, n_items: int, valid: np.ndarray | None = None) -> float:
    """Share of the ``n_items`` candidates that appear in at least one top-k list.

    ``valid`` (same shape as ``top``) masks out slots that are not real
    recommendations (excluded items that filled a short list).
    """
    if n_items <= 0:
        return 0.0
    picked = top[valid] if valid is not None else top.ravel()
    return float(np.unique(picked).size / n_items)


def long_tail_share(
    top: np.ndarray, is_long_tail: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """Share of recommended slots (over all users) that hold a long-tail item.

    ``is_long_tail[j]`` says whether candidate ``j`` has fewer than the
    long-tail threshold of training interactions (cold items have none, so
    they are long-tail).
    """
    flags = np.asarray(is_long_tail, dtype=bool)[top]
    if valid is not None:
        flags = flags[valid]
    return float(flags.mean()) if flags.size else 0.0


def popularity_buckets(
    train_counts: np.ndarray, is_cold: np.ndarray, n_bins: int = 10
) -> np.ndarray:
    """Popularity decile of each candidate item; cold items get :data:`COLD_BUCKET`.

    Warm items are ranked by training interaction count (ascending; equal
    counts keep their candidate order) and cut into ``n_bins`` groups of equal
    size: bucket 0 holds the least popular tenth, ``n_bins - 1`` the most
    popular.

    Returns
    -------
    numpy.ndarray
        int64, one bucket per candidate.
    """
    counts = np.asarray(train_counts)
    cold = np.asarray(is_cold, dtype=bool)
    out = np.full(counts.shape[0], COLD_BUCKET, dtype=np.int64)
    warm_idx = np.flatnonzero(~cold)
    if warm_idx.size:
        order = np.argsort(counts[warm_idx], kind="stable")
        rank = np.empty(warm_idx.size, dtype=np.int64)
        rank[order] = np.arange(warm_idx.size)
        out[warm_idx] = rank * n_bins // warm_idx.size
    return out


def bucket_names(n_bins: int = 10) -> list[str]:
    """Names of the buckets of :func:`popularity_buckets`: ``cold``, ``d1`` (least popular) ..."""
    return ["cold", *(f"d{i + 1}" for i in range(n_bins))]


def bucket_counts(
    top: np.ndarray, hits: np.ndarray, relevance: Any, buckets: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Hits and relevant items per popularity bucket, for micro-averaged recall by bucket.

    Returns
    -------
    tuple of numpy.ndarray
        ``(hits, relevant)``, each int64 of length ``n_bins + 1`` in the order
        of :func:`bucket_names` (cold first). Recall of bucket ``b`` is
        ``hits[b] / relevant[b]``: the share of relevant (user, item) pairs in
        that bucket that made it into the user's top k. Sum them over user
        batches before dividing.
    """
    shifted = np.asarray(buckets, dtype=np.int64) - COLD_BUCKET  # cold -> 0
    hit_b = np.bincount(shifted[top[hits]], minlength=n_bins + 1)
    cols = relevance.tocoo().col if sp.issparse(relevance) else np.nonzero(relevance)[1]
    rel_b = np.bincount(shifted[cols], minlength=n_bins + 1)
    return hit_b.astype(np.int64), rel_b.astype(np.int64)
