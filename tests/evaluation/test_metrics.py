"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from hybrid_rec.evaluation.metrics import (
    COLD_BUCKET,
    EvaluationError,
    bucket_counts,
    bucket_names,
    catalogue_coverage,
    hits_at_k,
    long_tail_share,
    ndcg_at_k,
    popularity_buckets,
    recall_at_k,
    top_k_indices,
)

INF = np.inf


def test_top_k_orders_by_score_and_breaks_ties_by_lower_index() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [0.0, 0.0, 0.0, 0.0]])
    assert top_k_indices(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]


def test_top_k_tie_at_the_cut_takes_the_lowest_indices() -> None:
    scores = np.array([[3.0, 1.0, 2.0, 1.0, 1.0, 0.0]])
    assert top_k_indices(scores, 3).tolist() == [[0, 2, 1]]


def test_top_k_clips_k_and_puts_excluded_last() -> None:
    scores = np.array([[-INF, 1.0, -INF]])
    assert top_k_indices(scores, 10).tolist() == [[1, 0, 2]]


@pytest.mark.parametrize("k", [1, 7, 40])
def test_top_k_matches_a_lexsort_reference(k: int) -> None:
    rng = np.random.default_rng(k)
    tied = rng.integers(0, 5, size=(30, 40)).astype(np.float32)  # ties in every row
    distinct = rng.random((30, 40)).astype(np.float32)  # (almost surely) no ties
    scores = np.concatenate([tied, distinct])
    scores[rng.random(scores.shape) < 0.1] = -INF
    got = top_k_indices(scores, k)
    cols = np.arange(scores.shape[1])
    for row, picked in zip(scores, got, strict=True):
        expected = np.lexsort((cols, -row))[:k]
        assert picked.tolist() == expected.tolist()


def test_top_k_rejects_nan_and_bad_k() -> None:
    with pytest.raises(EvaluationError, match="NaN"):
        top_k_indices(np.array([[0.1, np.nan]]), 1)
    with pytest.raises(EvaluationError, match="k must"):
        top_k_indices(np.zeros((1, 3)), 0)
    with pytest.raises(EvaluationError, match="2-d"):
        top_k_indices(np.zeros(3), 1)


def test_recall_divides_by_all_relevant_items_not_by_k() -> None:
    scores = np.array([[4.0, 3.0, 2.0, 1.0]])
    relevance = np.array([[True, False, True, True]])
    assert recall_at_k(scores, relevance, 2) == pytest.approx([1 / 3])
    # ideal DCG over min(k=2, 3 relevant) = 2 slots
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(scores, relevance, 2) == pytest.approx([1 / idcg])


def test_user_with_fewer_relevant_items_than_k() -> None:
    relevance = np.array([[False, False, False, True]])
    assert recall_at_k(np.array([[4.0, 3.0, 2.0, 1.0]]), relevance, 3) == pytest.approx([0.0])
    # the relevant item ranks 3rd: DCG = 1/log2(4); ideal DCG over 1 slot = 1
    scores = np.array([[1.0, 4.0, 3.0, 2.0]])
    assert recall_at_k(scores, relevance, 3) == pytest.approx([1.0])
    assert ndcg_at_k(scores, relevance, 3) == pytest.approx([0.5])


def test_perfect_and_worst_rankings() -> None:
    relevance = np.array([[True, True, False, False, False]])
    best = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    worst = -best
    assert ndcg_at_k(best, relevance, 2) == pytest.approx([1.0])
    assert recall_at_k(worst, relevance, 2) == pytest.approx([0.0])
    assert ndcg_at_k(worst, relevance, 2) == pytest.approx([0.0])


def test_ties_are_deterministic_in_the_metrics() -> None:
    scores = np.zeros((1, 4))
    assert recall_at_k(scores, np.array([[True, False, False, False]]), 1) == pytest.approx([1])
    assert recall_at_k(scores, np.array([[False, True, False, False]]), 1) == pytest.approx([0])


def test_sparse_and_dense_relevance_agree_and_empty_users_are_nan() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((6, 9))
    dense = rng.random((6, 9)) < 0.3
    dense[2] = False
    for fn in (recall_at_k, ndcg_at_k):
        a = fn(scores, dense, 4)
        b = fn(scores, sp.csr_matrix(dense), 4)
        np.testing.assert_allclose(a, b)
        assert math.isnan(a[2])


def test_excluded_slot_is_never_a_hit() -> None:
    scores = np.array([[-INF, 1.0]])
    relevance = np.array([[True, False]])
    top = top_k_indices(scores, 2)
    assert hits_at_k(top, relevance, scores).tolist() == [[False, False]]
    assert recall_at_k(scores, relevance, 2) == pytest.approx([0.0])


def test_relevance_shape_must_match() -> None:
    with pytest.raises(EvaluationError, match="shape"):
        recall_at_k(np.zeros((2, 3)), np.zeros((2, 4), dtype=bool), 1)


def test_coverage_and_long_tail_share() -> None:
    top = np.array([[0, 1], [1, 2]])
    assert catalogue_coverage(top, 5) == pytest.approx(3 / 5)
    valid = np.array([[True, True], [True, False]])
    assert catalogue_coverage(top, 5, valid) == pytest.approx(2 / 5)
    tail = np.array([False, True, True, False, False])
    assert long_tail_share(top, tail) == pytest.approx(3 / 4)
    assert long_tail_share(top, tail, valid) == pytest.approx(2 / 3)  # items 0, 1, 1


def test_popularity_buckets_cut_warm_items_into_equal_deciles() -> None:
    counts = np.array([*range(1, 21), 0, 0])  # 20 warm items with counts 1..20, two cold
    is_cold = np.array([False] * 20 + [True, True])
    buckets = popularity_buckets(counts, is_cold)
    assert buckets[-2:].tolist() == [COLD_BUCKET, COLD_BUCKET]
    assert buckets[:20].tolist() == [b for b in range(10) for _ in range(2)]
    assert bucket_names(10)[:3] == ["cold", "d1", "d2"]
    assert len(bucket_names(10)) == 11


def test_popularity_buckets_ties_keep_candidate_order() -> None:
    buckets = popularity_buckets(np.ones(10), np.zeros(10, dtype=bool))
    assert buckets.tolist() == list(range(10))


def test_bucket_counts_are_micro_averaged_inputs() -> None:
    buckets = np.array([COLD_BUCKET, 0, 9])
    relevance = np.array([[True, True, False], [True, False, True]])
    top = np.array([[0], [2]])
    hits = hits_at_k(top, relevance)
    h, r = bucket_counts(top, hits, relevance, buckets, 10)
    assert h[0] == 1 and h[10] == 1 and h.sum() == 2
    assert r[0] == 2 and r[1] == 1 and r[10] == 1 and r.sum() == 4
