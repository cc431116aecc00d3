"""Reserved places in a top-k list (hybrid_rec.index.slots)."""

from __future__ import annotations

import numpy as np

from hybrid_rec.index.slots import reserve_slots

NEG = -np.inf


def _reserved(n: int, ids: list[int]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[ids] = True
    return mask


def test_missing_reserved_items_replace_the_lowest_scored_others() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6]], np.float32)
    ids = np.array([[1, 2, 3, 4]])
    extra_scores = np.array([[0.5, 0.3]], np.float32)
    extra_ids = np.array([[8, 9]])
    out_s, out_i = reserve_slots(scores, ids, extra_scores, extra_ids, _reserved(10, [8, 9]), 2)
    assert out_i.tolist() == [[1, 2, 8, 9]]  # 3 and 4 gave way, order by score
    assert np.allclose(out_s, [[0.9, 0.8, 0.5, 0.3]])
    assert ids.tolist() == [[1, 2, 3, 4]]  # inputs untouched


def test_reserved_items_already_in_the_list_count() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6]], np.float32)
    ids = np.array([[1, 8, 3, 9], [1, 8, 3, 4]])
    extra_scores = np.array([[0.8, 0.6], [0.8, 0.5]], np.float32)
    extra_ids = np.array([[8, 9], [8, 7]])
    mask = _reserved(10, [7, 8, 9])
    out_s, out_i = reserve_slots(scores, ids, extra_scores, extra_ids, mask, 2)
    assert out_i[0].tolist() == [1, 8, 3, 9]  # already two: unchanged
    assert out_i[1].tolist() == [1, 8, 3, 7]  # one more, not 8 twice
    assert np.allclose(out_s[1], [0.9, 0.8, 0.7, 0.5])


def test_fewer_reserved_items_than_places_and_empty_places() -> None:
    scores = np.array([[0.9, 0.8, NEG, NEG], [0.9, 0.8, 0.7, 0.6]], np.float32)
    ids = np.array([[1, 2, -1, -1], [1, 2, 3, 4]])
    extra_scores = np.array([[0.95, NEG, NEG], [0.1, NEG, NEG]], np.float32)
    extra_ids = np.array([[8, -1, -1], [8, -1, -1]])
    out_s, out_i = reserve_slots(scores, ids, extra_scores, extra_ids, _reserved(10, [8]), 3)
    # an empty place is filled first (nothing given up); a score above the list's top goes first
    assert out_i[0].tolist() == [8, 1, 2, -1]
    assert out_i[1].tolist() == [1, 2, 3, 8]  # the only reserved item there is, once
    assert np.isneginf(out_s[0, -1])


def test_no_places_asked_or_no_reserved_item_changes_nothing() -> None:
    scores = np.array([[0.9, 0.8]], np.float32)
    ids = np.array([[1, 2]])
    none_s, none_i = np.full((1, 2), NEG, np.float32), np.full((1, 2), -1)
    for m, (es, ei) in [(0, (scores, np.array([[5, 6]]))), (2, (none_s, none_i))]:
        out_s, out_i = reserve_slots(scores, ids, es, ei, _reserved(10, [5, 6]), m)
        assert out_i.tolist() == ids.tolist() and np.array_equal(out_s, scores)
