"""Neighbour transfer: items with little evidence borrow their content neighbours' vectors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec import HybridRecommender
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import Dataset, synthetic_new_items
from hybrid_rec.models.neighbours import NeighbourTransfer, neighbour_share


def _base(n: int = 50, dim: int = 8, cdim: int = 16, seed: int = 0) -> NeighbourTransfer:
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n, cdim)).astype(np.float32)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    ids = rng.permutation(np.arange(100, 100 + n))  # any order, need not start at 0
    return NeighbourTransfer(ids, vectors, content, neighbours=5, temperature=0.2)


def test_an_item_is_never_its_own_neighbour() -> None:
    base = _base()
    sharp = NeighbourTransfer(base.ids, base.vectors, base.coords, neighbours=5, temperature=1e-4)
    own = sharp.targets(base.coords, self_ids=base.ids)
    unit = base.coords / np.linalg.norm(base.coords, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    nearest_other = sims.argmax(axis=1)
    top2 = np.sort(sims, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2e-3  # no near-tie for the nearest other item
    assert clear.sum() > 40
    # at a tiny temperature the target is the nearest *other* item's vector
    np.testing.assert_allclose(own[clear], base.vectors[nearest_other][clear], atol=1e-4)
    # without self ids the item's own vector dominates instead
    np.testing.assert_allclose(sharp.targets(base.coords), base.vectors, atol=1e-4)


def test_share_falls_with_evidence_and_blend_keeps_length() -> None:
    share = neighbour_share(np.array([0, 1, 3, 1000]), 0.5)
    np.testing.assert_allclose(share, [0.5, 0.25, 0.125, 0.5 / 1001], rtol=1e-6)
    base = _base()
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(4, 8)).astype(np.float32)
    content = rng.normal(size=(4, 16)).astype(np.float32)
    counts = np.array([0, 1, 5, 100_000])
    mixed = base.blend(vecs, content, counts, 0.5)
    t = base.matched_targets(vecs, content)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), np.linalg.norm(vecs, axis=1), rtol=1e-5)
    a = neighbour_share(counts, 0.5)[:, None]
    want = (1 - a) * vecs + a * t
    want[3] = vecs[3]  # a popular item is left as it is
    np.testing.assert_allclose(mixed, want, rtol=1e-5, atol=1e-6)
    # weight 0 or an empty base change nothing
    np.testing.assert_array_equal(base.blend(vecs, content, counts, 0.0), vecs)
    empty = NeighbourTransfer.empty(8, 16)
    np.testing.assert_array_equal(empty.blend(vecs, content, counts, 0.5), vecs)
    # an item alone in the base has no neighbour but itself: it keeps its vector
    alone = NeighbourTransfer(np.array([7]), vecs[:1], content[:1])
    np.testing.assert_array_equal(
        alone.blend(vecs[:1], content[:1], [0], 0.5, np.array([7])), vecs[:1]
    )


def _cluster_mean(rec: HybridRecommender, ds: Dataset, cluster: int) -> np.ndarray:
    ids = [i for i, c in ds.info["item_cluster"].items() if c == cluster]
    codes = rec.item_ids_.to_internal(ids, kind="item")
    codes = codes[rec.counts_[codes] > 0]
    mean = rec.item_vectors_[codes].mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_new_items_move_toward_their_cluster_and_paths_agree(
    fresh: Callable[[], HybridRecommender], clustered: Dataset, tmp_path: Path
) -> None:
    new = synthetic_new_items(12, cluster=2, seed=5, start_id=40_000)
    plain = fresh()
    plain.neighbour_weight_ = 0.0
    plain._refresh_vectors()
    rec = fresh()
    before = rec._fingerprint()
    rec.neighbour_weight_ = 0.75
    rec._refresh_vectors()
    assert rec._fingerprint() != before  # a resumed batch job sees the change
    target = _cluster_mean(rec, clustered, 2)

    def closeness(r: HybridRecommender) -> float:
        ids = r.add_items(new)
        v = r.item_vectors_[ids]
        return float(np.mean(v @ target / np.linalg.norm(v, axis=1)))

    assert closeness(rec) > closeness(plain)
    # warm items with many interactions hardly move
    busy = np.flatnonzero(rec.counts_ >= 10)
    assert len(busy)
    moved = np.linalg.norm(rec.item_vectors_[busy] - plain.item_vectors_[busy], axis=1)
    assert moved.max() < 0.1 * np.linalg.norm(plain.item_vectors_[busy], axis=1).min()
    # the batch path (score_cold_items) builds the same index rows as add_items
    ids = rec.item_ids_.to_internal([str(i) for i in new["item_id"]], kind="item")
    np.testing.assert_allclose(
        rec.item_index_vectors(rec.content_[ids]), rec.index_.vectors[ids], atol=1e-5
    )
    # save -> load keeps the base and the weight: identical vectors and new-item rows
    back = HybridRecommender.load(rec.save(tmp_path / "m"), encoder=HashingEncoder(256))
    assert back.neighbour_weight_ == 0.75
    np.testing.assert_array_equal(back.item_vectors_, rec.item_vectors_)
    more = synthetic_new_items(3, cluster=1, seed=6, start_id=50_000)
    content = back._embed_new_items(more)[1]
    np.testing.assert_allclose(
        back.item_index_vectors(content), rec.item_index_vectors(content), atol=1e-6
    )
    users = rec.user_ids_.external_ids[:5].tolist()
    pd.testing.assert_frame_equal(back.recommend(users, k=10), rec.recommend(users, k=10))


def test_weight_is_chosen_on_validation_cold_items(
    clustered: Dataset, small_config: Callable[..., object]
) -> None:
    inter = clustered.interactions
    cold_ids = clustered.items["item_id"].iloc[::10]
    is_cold = inter["item_id"].isin(cold_ids)
    train, val = inter[~is_cold], inter[is_cold]
    rec = HybridRecommender(small_config(), encoder=HashingEncoder(256))  # type: ignore[arg-type]
    rec.fit(train, clustered.items, validation=val, show_progress=False)
    assert rec.neighbour_weight_ in (0.0, 0.25, 0.5, 0.75)
    assert rec.neighbours_.size == int((rec.counts_ > 0).sum())
    # no content, no transfer
    cfg = small_config()
    cfg.model.use_content = False  # type: ignore[attr-defined]
    cf = HybridRecommender(cfg, encoder=HashingEncoder(256)).fit(  # type: ignore[arg-type]
        train, clustered.items, validation=val, show_progress=False
    )
    assert cf.neighbour_weight_ == 0.0 and cf.neighbours_.size == 0


def test_the_matrix_and_index_searches_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from hybrid_rec.models import neighbours

    base = _base(n=300)
    rng = np.random.default_rng(3)
    queries = np.concatenate([base.coords[:20], rng.normal(size=(20, 16)).astype(np.float32)])
    self_ids = np.concatenate([base.ids[:20], np.full(20, -1)])
    dense = base.targets(queries, self_ids)
    monkeypatch.setattr(neighbours, "_DENSE_MAX", 0)  # force the FAISS path
    indexed = NeighbourTransfer(base.ids, base.vectors, base.coords, 5, 0.2).targets(
        queries, self_ids
    )
    np.testing.assert_allclose(indexed, dense, rtol=1e-4, atol=1e-5)


def test_feedback_shrinks_the_borrowed_share(
    fresh: Callable[[], HybridRecommender], clustered: Dataset
) -> None:
    rec = fresh()
    rec.neighbour_weight_ = 0.5
    rec._refresh_vectors()
    new = synthetic_new_items(1, cluster=0, seed=9, start_id=60_000)
    rec.add_items(new)
    item = str(new["item_id"].iloc[0])
    assert rec.item_info(item)["neighbour_share"] == pytest.approx(0.5)
    before = rec.item_vectors_[rec.item_ids_.to_internal([item], kind="item")[0]].copy()
    users = rec.user_ids_.external_ids[:3].tolist()
    stamp = int(clustered.interactions["timestamp"].max()) + 10
    rec.partial_fit(
        pd.DataFrame({"user_id": users, "item_id": [item] * 3, "timestamp": [stamp] * 3})
    )
    code = rec.item_ids_.to_internal([item], kind="item")[0]
    assert rec.item_info(item)["neighbour_share"] == pytest.approx(0.5 / 4)
    assert not np.allclose(rec.item_vectors_[code], before)


@pytest.mark.parametrize("dense_max", [20_000, 0])  # the matrix path, then the FAISS path
def test_a_neighbour_crossing_the_cut_moves_the_target_continuously(
    monkeypatch: pytest.MonkeyPatch, dense_max: int
) -> None:
    """Items a and b tie for the last neighbour slot; nudging the query by 1e-6 rad
    swaps them. With a hard cut the target would jump by about 5 (their vectors are
    20 apart); the taper keeps the move at rounding scale."""
    from hybrid_rec.models import neighbours

    monkeypatch.setattr(neighbours, "_DENSE_MAX", dense_max)
    angles = np.array([0.1, 0.2, 0.4, -0.4, 2.0, 2.5, 3.0])  # a = 0.4, b = -0.4
    coords = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    vectors = np.zeros((len(angles), 2), np.float32)
    vectors[:, 1] = 1.0
    vectors[2, 0], vectors[3, 0] = 10.0, -10.0
    base = NeighbourTransfer(np.arange(len(angles)), vectors, coords, neighbours=3)
    eps = 1e-6
    queries = np.array([[np.cos(eps), np.sin(eps)], [np.cos(eps), -np.sin(eps)]], np.float32)
    toward_a, toward_b = base.targets(queries)
    assert np.abs(toward_a - toward_b).max() < 0.02
    # away from the tie each of a and b counts fully once inside the cut
    far = np.array([[np.cos(0.05), np.sin(0.05)], [np.cos(0.05), -np.sin(0.05)]], np.float32)
    with_a, with_b = base.targets(far)
    assert with_a[0] > 2.0 and with_b[0] < -2.0


@pytest.mark.parametrize("indexed", [False, True])
def test_updating_a_base_item_moves_what_it_lends(
    indexed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybrid_rec.models import neighbours

    if indexed:
        monkeypatch.setattr(neighbours, "_DENSE_MAX", 0)  # the FAISS path, index built
    base = _base()
    sharp = NeighbourTransfer(base.ids, base.vectors, base.coords, neighbours=1, temperature=1e-4)
    query = np.random.default_rng(5).normal(size=(1, 16)).astype(np.float32)
    sharp.targets(query)  # builds the index on the FAISS path
    moved, elsewhere = int(base.ids[7]), np.full((1, 8), 3.0, np.float32)
    # the item now reads exactly like the query, and lends a new vector
    assert (
        sharp.update(np.array([moved, 99_999]), np.r_[elsewhere, elsewhere], np.r_[query, query])
        == 1
    )
    np.testing.assert_allclose(sharp.targets(query), elsewhere, atol=1e-5)
    assert sharp.update(np.array([99_999]), elsewhere, query) == 0  # not a base item


def test_an_updated_warm_item_is_found_by_its_new_text(
    fresh: Callable[[], HybridRecommender], clustered: Dataset
) -> None:
    rec = fresh()
    rec.neighbour_weight_ = 0.5
    rec._refresh_vectors()
    code = int(rec.neighbours_.ids[0])
    item = str(rec.item_ids_.external_ids[code])
    cluster = clustered.info["item_cluster"][item]
    other = synthetic_new_items(1, cluster=(cluster + 2) % 4, seed=8, start_id=70_000)
    rec.update_items(other.drop(columns="item_id").assign(item_id=item))
    row = int(np.flatnonzero(rec.neighbours_.ids == code)[0])
    np.testing.assert_allclose(rec.neighbours_.coords[row], rec.item_taste_[code], atol=1e-6)
    vecs, _ = rec.model_.encode_items(
        rec.content_[[code]], rec.counts_[[code]], ids=np.array([code])
    )
    np.testing.assert_allclose(rec.neighbours_.vectors[row], vecs[0], atol=1e-5)
