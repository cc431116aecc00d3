"""The item-item stage (EASE on warm items): closed form, tuning, serving and persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import Dataset
from hybrid_rec.errors import ModelFileError
from hybrid_rec.models.item_item import ItemItem, ease_weights


def test_fit_is_the_closed_form_over_the_items_with_interactions() -> None:
    users = np.array([0, 0, 1, 1, 1, 2, 2, 0])  # the last pair repeats: counted once
    items = np.array([1, 4, 1, 4, 6, 4, 6, 1])
    stage = ItemItem.fit(users, items, n_items=8, l2=0.5)
    assert stage.cols.tolist() == [1, 4, 6]
    x = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=np.float64)
    np.testing.assert_allclose(stage.weights, ease_weights(x.T @ x, 0.5), rtol=1e-6)
    assert stage.placed(8).tolist() == [False, True, False, False, True, False, True, False]
    # x_u B for a history of items 1 and 6 (and 3, outside the stage): rows 0 and 2 of B
    got = stage.scores([np.array([1, 6, 3]), np.array([], dtype=np.int64)], n_items=9)
    want = np.zeros((2, 9), np.float32)
    want[0, [1, 4, 6]] = stage.weights[0] + stage.weights[2]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="l2 must be positive"):
        ItemItem.fit(users, items, 8, 0.0)


def _pairs(seed: int = 0) -> Dataset:
    """150 pairs of items always taken together, each user taking six pairs: more
    independent pairs than a 16-dimensional CF space holds, and exactly what an
    item-item model learns."""
    rng = np.random.default_rng(seed)
    n_pairs, rows = 150, []
    for u in range(400):
        for p in rng.choice(n_pairs, 6, replace=False):
            rows += [(f"u{u}", f"i{2 * p}"), (f"u{u}", f"i{2 * p + 1}")]
    for u in range(20):  # half of each pair: the other halves are what they lack
        rows += [(f"half{u}", f"i{2 * p}") for p in rng.choice(n_pairs, 6, replace=False)]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id"])
    items = pd.DataFrame(
        {
            "item_id": [f"i{j}" for j in range(2 * n_pairs)],
            "title": [f"Item {j}" for j in range(2 * n_pairs)],
            "description": [f"thing number {j % 7} of shelf {j % 5}" for j in range(2 * n_pairs)],
        }
    )
    return Dataset(name="pairs", interactions=interactions, items=items, info={})


def _config(**model: object) -> RecommenderConfig:
    cfg = RecommenderConfig()
    cfg.model.epochs, cfg.model.dim, cfg.model.batch_size, cfg.model.patience = 6, 16, 256, 2
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return cfg


@pytest.fixture(scope="module")
def paired() -> HybridRecommender:
    data = _pairs()
    rec = HybridRecommender(_config(), encoder=HashingEncoder(64))
    return rec.fit(data.interactions, data.items, show_progress=False)


def test_validation_turns_the_stage_on_where_item_pairs_matter(
    paired: HybridRecommender,
) -> None:
    assert paired.item_item_ is not None and paired.item_item_weight_ > 0
    assert len(paired.item_item_.cols) == 300  # fitted again after the holdout's fold-in
    assert paired.describe()["item_item_weight"] == paired.item_item_weight_
    # users who took half of each pair are offered the other halves, more than without it
    plain = paired.copy()
    plain.item_item_ = None
    found = {True: 0, False: 0}
    for user in [f"half{u}" for u in range(20)]:
        partners = {f"i{int(i[1:]) + 1}" for i in paired.user_history(user)["item_id"]}
        for rec, on in ((paired, True), (plain, False)):
            found[on] += len(partners & set(rec.recommend([user], k=6)["item_id"]))
    assert found[True] > found[False] and found[True] >= 0.5 * 20 * 6


def test_recommend_and_score_agree_and_cold_items_keep_the_hybrids_score(
    paired: HybridRecommender,
) -> None:
    users = ["u1", "u2", "u3"]
    recs = paired.recommend(users, k=15)
    for user, group in recs.groupby("user_id"):
        scored = paired.score([str(user)], group["item_id"].tolist())[0]
        np.testing.assert_allclose(group["score"].to_numpy(), scored, rtol=1e-5, atol=1e-5)
    ids = paired.items_["item_id"].astype(str).tolist()
    plain = paired.copy()
    plain.item_item_ = None
    with_stage, without = paired.score(users, ids), plain.score(users, ids)
    placed = paired.item_item_.placed(len(ids)) if paired.item_item_ is not None else None
    assert placed is not None
    assert not np.allclose(with_stage[:, placed], without[:, placed])
    # an item added later has no column: its score is the hybrid's own
    new = pd.DataFrame({"item_id": ["fresh"], "title": ["Fresh"], "description": ["shelf 3"]})
    added = paired.copy()
    added.add_items(new)
    bare = added.copy()
    bare.item_item_ = None
    np.testing.assert_allclose(
        added.score(users, ["fresh"]), bare.score(users, ["fresh"]), rtol=1e-5, atol=1e-6
    )


def test_save_and_load_serve_the_same_lists(paired: HybridRecommender, tmp_path: Path) -> None:
    path = paired.save(tmp_path / "m")
    assert (path / "item_item_weights.npy").exists()
    loaded = HybridRecommender.load(path, encoder=HashingEncoder(64))
    assert loaded.item_item_weight_ == paired.item_item_weight_
    users = ["u4", "u5"]
    pd.testing.assert_frame_equal(loaded.recommend(users, k=10), paired.recommend(users, k=10))


def test_a_stage_file_that_does_not_fit_the_catalogue_is_refused(
    paired: HybridRecommender, tmp_path: Path
) -> None:
    stage = paired.item_item_
    assert stage is not None
    broken = paired.copy()
    broken.item_item_ = ItemItem(stage.cols[::-1].copy(), stage.weights)  # not ascending
    path = broken.save(tmp_path / "m")
    with pytest.raises(ModelFileError, match=r"item_item_cols\.npy"):
        HybridRecommender.load(path, encoder=HashingEncoder(64))


def test_the_stage_is_off_above_its_item_limit_and_when_asked() -> None:
    data = _pairs(1)
    for limit in (0, 299):
        rec = HybridRecommender(_config(item_item_max_items=limit), encoder=HashingEncoder(64))
        rec.fit(data.interactions, data.items, show_progress=False)
        assert rec.item_item_ is None and rec.item_item_weight_ == 0.0
    # a catalogue past exact search keeps its FAISS retrieval, however few items are warm
    cfg = _config()
    cfg.index.exact_max_items = 299
    rec = HybridRecommender(cfg, encoder=HashingEncoder(64))
    rec.fit(data.interactions, data.items, show_progress=False)
    assert rec.item_item_ is None


def test_a_catalogue_grown_past_exact_search_is_served_by_the_index(
    paired: HybridRecommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    grown = paired.copy()
    grown.config.index.exact_max_items = len(grown.item_ids_)
    assert grown._item_item_on
    grown.add_items(
        pd.DataFrame({"item_id": ["late"], "title": ["Late"], "description": ["shelf 1"]})
    )
    assert not grown._item_item_on

    def no_exact(*args: object, **kwargs: object) -> None:
        raise AssertionError("the item-item stage scored every item")

    monkeypatch.setattr(grown, "_item_item_search", no_exact)
    assert len(grown.recommend(["u1"], k=5)) == 5
    bare = grown.copy()
    bare.item_item_ = None
    ids = ["i0", "i1", "late"]  # and score() is the index's score again
    np.testing.assert_allclose(grown.score(["u1"], ids), bare.score(["u1"], ids), rtol=1e-6)


def test_the_term_is_centred_on_the_hybrids_own_top_warm_items(
    paired: HybridRecommender,
) -> None:
    """On average the items the hybrid ranks first (unseen, with interactions) keep
    their level: what keeps the balance with new items the hybrid tuned."""
    users = paired.user_ids_.to_internal(["u7", "u8", "half3"], kind="user")
    served = paired._served_scores(users)
    term = paired._item_item_term(users, served)
    assert paired.item_item_ is not None
    placed = paired.item_item_.placed(len(paired.item_ids_))
    k = paired.config.eval.k
    for row, user in enumerate(users):
        ranked = np.where(placed, served[row], -np.inf)
        ranked[paired._seen.row(int(user))] = -np.inf
        top = np.argsort(-ranked, kind="stable")[:k]
        assert abs(term[row, top].mean()) < 1e-4
        assert np.abs(term[row]).max() > 1e-2  # and the term is not nothing
