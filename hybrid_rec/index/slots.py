"""Reserved places in a top-k list: at least ``m`` items from a set (new arrivals).

A new item ranks by the same score as every other item, and its place in
an all-items list depends on how much demand new items draw, which no
validation split measures well (``benchmarks/RESULTS.md``). A catalogue
owner who wants every list to show a few new arrivals says so directly:
:meth:`~hybrid_rec.HybridRecommender.recommend` with ``new_items=m`` runs a
second search over the items without interactions and lets the best ``m``
of them take the places of the lowest-scored other items. The list stays
ordered by score, so the reserved items usually sit at its end.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reserve_slots"]


def reserve_slots(
    scores: np.ndarray,
    ids: np.ndarray,
    extra_scores: np.ndarray,
    extra_ids: np.ndarray,
    reserved: np.ndarray,
    m: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` lists with at least ``m`` ids from the ``reserved`` set where it has them.

    Parameters
    ----------
    scores, ids
        ``(q, k)`` search results, best first, padded with ``-inf`` / ``-1``.
    extra_scores, extra_ids
        ``(q, >= m)`` the best results among the reserved items alone, same padding.
    reserved
        Bool mask over item ids: the set places are reserved for.
    m
        Places per list (at most ``k``).

    Returns
    -------
    scores, ids
        ``(q, k)``, best first. A list that already holds ``m`` reserved items,
        or has no other reserved item to take, is unchanged; otherwise the
        missing reserved items replace its lowest-scored other items (or fill
        its empty places), and the list is sorted by score again.
    """
    q, k = ids.shape
    m = min(int(m), k)
    out_scores, out_ids = scores.copy(), ids.copy()
    if m <= 0 or q == 0:
        return out_scores, out_ids
    valid = ids >= 0
    is_reserved = valid & reserved[np.maximum(ids, 0)]
    short = m - is_reserved.sum(axis=1)
    for row in np.flatnonzero(short > 0):
        present = ids[row][valid[row]]
        extra = extra_ids[row]
        extra_ok = (extra >= 0) & ~np.isin(extra, present)
        take = np.flatnonzero(extra_ok)[: short[row]]
        if not len(take):
            continue
        free = np.flatnonzero(~valid[row])
        others = np.flatnonzero(valid[row] & ~is_reserved[row])[::-1]  # lowest scores first
        places = np.concatenate([free, others])[: len(take)]
        out_scores[row, places] = extra_scores[row, take]
        out_ids[row, places] = extra[take]
        order = np.argsort(-out_scores[row], kind="stable")
        out_scores[row], out_ids[row] = out_scores[row, order], out_ids[row, order]
    return out_scores, out_ids
