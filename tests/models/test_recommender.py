"""The HybridRecommender contract on a synthetic catalogue whose right answers are known."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.content import HashingEncoder
from hybrid_rec.content.encoders import encode_queries
from hybrid_rec.data.datasets import Dataset, synthetic, synthetic_new_items
from hybrid_rec.errors import (
    DataValidationError,
    ModelFileError,
    NotFittedError,
    TrainingError,
    UnknownIdError,
)
from hybrid_rec.models.taste import ContentTaste


def _cluster_users(ds: Dataset, cluster: int) -> list[str]:
    return [u for u, c in ds.info["user_cluster"].items() if c == cluster]


def test_recommend_shape_and_users_get_their_cluster(
    fitted: HybridRecommender, clustered: Dataset
) -> None:
    users = list(clustered.info["user_cluster"])[:40]
    out = fitted.recommend(users, k=10)
    assert list(out.columns) == ["user_id", "item_id", "score", "rank"]
    assert out.groupby("user_id").size().eq(10).all()
    assert out["user_id"].drop_duplicates().tolist() == users  # caller's order kept
    assert (out.groupby("user_id")["score"].diff().dropna() <= 1e-6).all()  # best first
    item_cluster = clustered.info["item_cluster"]
    user_cluster = clustered.info["user_cluster"]
    same = np.mean(
        [item_cluster[i] == user_cluster[u] for u, i in zip(out.user_id, out.item_id, strict=True)]
    )
    assert same > 0.8


def test_retrieval_scores_equal_dense_scores(fitted: HybridRecommender) -> None:
    """The index (fused vector + content taste + cold offset) and score() agree."""
    users = list(fitted.user_ids_.external_ids[:5])
    out = fitted.recommend(users, k=15)
    dense = fitted.score(users, list(out["item_id"].unique()))
    cols = {item: n for n, item in enumerate(out["item_id"].unique())}
    rows = {user: n for n, user in enumerate(users)}
    want = [dense[rows[u], cols[i]] for u, i in zip(out.user_id, out.item_id, strict=True)]
    np.testing.assert_allclose(out["score"], want, atol=1e-4)
    assert 0.0 <= fitted.taste_weight_ <= 0.5


def test_seen_items_are_excluded(fitted: HybridRecommender, clustered: Dataset) -> None:
    user = clustered.interactions["user_id"].iloc[0]
    seen = set(clustered.interactions.loc[clustered.interactions.user_id == user, "item_id"])
    out = fitted.recommend([user], k=30)
    assert not seen & set(out["item_id"])
    with_seen = fitted.recommend([user], k=30, exclude_seen=False)
    assert seen & set(with_seen["item_id"])


def test_new_item_reaches_its_clusters_users(fitted: HybridRecommender, clustered: Dataset) -> None:
    new = synthetic_new_items(4, cluster=2, seed=11, start_id=10_000)
    scores = fitted.score_cold_items(new, k=20)
    assert list(scores.columns) == ["item_id", "user_id", "score", "rank"]
    assert scores.groupby("item_id").size().eq(20).all()
    user_cluster = clustered.info["user_cluster"]
    assert np.mean([user_cluster[u] == 2 for u in scores["user_id"]]) > 0.9
    # chunking does not change the answer
    chunked = fitted.score_cold_items(new, k=20, chunk_size=1)
    pd.testing.assert_frame_equal(scores, chunked)


def test_add_items_makes_new_items_retrievable_without_refit(
    clustered: Dataset, fresh: Callable[[], HybridRecommender]
) -> None:
    rec = fresh()
    before = copy.deepcopy(rec.model_.state_dict())
    new = synthetic_new_items(3, cluster=1, seed=3, start_id=20_000)
    rec.add_items(new)
    assert set(new["item_id"]) <= set(rec.items_["item_id"])
    for key, value in rec.model_.state_dict().items():  # no refit: trained weights untouched
        if key != "cf.weight":
            assert np.array_equal(value.numpy(), before[key].numpy()), key
    assert np.array_equal(
        rec.model_.cf.weight[: len(before["cf.weight"])].detach().numpy(),
        before["cf.weight"].numpy(),
    )
    users = _cluster_users(clustered, 1)
    out = rec.recommend(users, k=20)
    reached = out[out["item_id"].isin(new["item_id"])]["user_id"].nunique()
    assert reached >= 0.5 * len(users)
    others = _cluster_users(clustered, 0)
    other = rec.recommend(others, k=20)
    hits_other = other[other["item_id"].isin(new["item_id"])]
    hits_own = out[out["item_id"].isin(new["item_id"])]
    # the new items reach their own cluster's users more often and higher up the list
    assert hits_other["user_id"].nunique() / len(others) < reached / len(users)
    assert hits_own["rank"].mean() < hits_other["rank"].mean() if len(hits_other) else True
    sims = rec.similar_items([new["item_id"].iloc[0]], k=10)
    item_cluster = clustered.info["item_cluster"]
    sim_clusters = [item_cluster.get(i, 1) for i in sims["similar_item_id"]]  # new ones are 1
    assert np.mean(np.equal(sim_clusters, 1)) > 0.8
    info = rec.item_info(new["item_id"].iloc[0])
    assert info["interactions"] == 0 and info["content_share"] > 0.5


def test_a_new_item_repeating_a_catalogue_items_text_is_named_in_a_warning(
    clustered: Dataset, fresh: Callable[[], HybridRecommender], caplog: pytest.LogCaptureFixture
) -> None:
    """A re-published article under a new id: 181 of 2,970 news lists held both copies."""
    rec = fresh()
    original = rec.items_.iloc[[4]]
    copy_of = original.assign(item_id="republished", price=1.0)  # the text is what counts
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.recommender"):
        rec.add_items(copy_of)
    assert f"'republished' = {original['item_id'].iloc[0]!r}" in caplog.text
    caplog.clear()
    new = synthetic_new_items(2, cluster=1, seed=3, start_id=20_000)
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.recommender"):
        rec.add_items(new)  # texts of their own
        rec.add_items(new.iloc[[0]].assign(item_id="again"))  # a copy of one just added
    assert "same title and text" in caplog.text
    assert f"'again' = {new['item_id'].iloc[0]!r}" in caplog.text
    caplog.clear()
    rec.remove_items(["republished", original["item_id"].iloc[0]])
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.recommender"):
        rec.add_items(copy_of.assign(item_id="third"))  # only removed items share it
    assert "same title and text" not in caplog.text


def test_adding_items_one_at_a_time_does_not_copy_the_catalogue(
    fresh: Callable[[], HybridRecommender],
) -> None:
    """One item at 200,000 items copied every per-item array (218 MB of content vectors)."""
    rec = fresh()
    new = synthetic_new_items(3, cluster=2, seed=5, start_id=30_000)
    rec.add_items(new.iloc[:1])
    arrays = ("content_", "item_vectors_", "item_taste_", "counts_", "removed_")
    buffers = {name: getattr(rec, name).base for name in arrays}
    index_buffer = rec.index_.vectors.base
    for i in (1, 2):
        rec.add_items(new.iloc[i : i + 1])
    for name in arrays:
        assert buffers[name] is not None and getattr(rec, name).base is buffers[name], name
        assert len(getattr(rec, name)) == len(rec.item_ids_), name
    assert index_buffer is not None and rec.index_.vectors.base is index_buffer
    user = str(rec.user_ids_.external_ids[0])
    served = rec.recommend([user], k=len(rec.item_ids_), exclude_seen=False)["item_id"]
    assert set(new["item_id"]) <= set(served)  # and they are all served


def test_new_items_reserves_places_for_items_without_interactions(
    clustered: Dataset, fresh: Callable[[], HybridRecommender]
) -> None:
    rec = fresh()
    # new items scored below the warm ones (the offset a fit may tune higher), so that
    # the plain lists hold few of them and places must be reserved
    rec.cold_bias_ = -0.5
    rec._refresh_vectors()
    new = pd.concat(
        [synthetic_new_items(3, cluster=c, seed=c, start_id=30_000 + 10 * c) for c in range(4)]
    )
    rec.add_items(new)
    fresh_ids = set(new["item_id"]) | set(rec.items_["item_id"][rec.counts_ == 0])
    users = _cluster_users(clustered, 2)[:12]
    k, m = 10, 3
    plain = rec.recommend(users, k=k)
    slots = rec.recommend(users, k=k, new_items=m)
    assert len(slots) == len(plain) == k * len(users)
    # the plain lists hold fewer new items than asked for, so places were reserved
    assert (plain["item_id"].isin(fresh_ids).groupby(plain["user_id"]).sum() < m).all()
    for user in users:
        got = slots[slots["user_id"] == user]
        was = plain[plain["user_id"] == user]
        assert got["rank"].tolist() == list(range(1, k + 1))
        assert got["score"].is_monotonic_decreasing
        is_new = got["item_id"].isin(fresh_ids)
        assert is_new.sum() >= m
        # the reserved ones are the best-scored items without interactions ...
        ranked = rec.score([user], sorted(fresh_ids))[0]
        best = np.asarray(sorted(fresh_ids))[np.argsort(-ranked, kind="stable")[: is_new.sum()]]
        assert set(got["item_id"][is_new]) == set(best)
        # ... and the other items are the plain list's best others, with the same scores
        others = was[~was["item_id"].isin(fresh_ids)]["item_id"].tolist()
        assert got["item_id"][~is_new].tolist() == others[: k - is_new.sum()]
        dense = rec.score([user], got["item_id"].tolist())[0]
        assert np.allclose(got["score"].to_numpy(), dense, atol=1e-5)
    batch = rec.recommend_batch(users, k=k, new_items=m, chunk_size=5)
    pd.testing.assert_frame_equal(batch, slots)
    liked = [i for i, c in clustered.info["item_cluster"].items() if c == 1][:2]
    newcomer = rec.recommend_for_new_user(liked_items=liked, k=k, new_items=m)
    assert newcomer["item_id"].isin(fresh_ids).sum() >= m
    assert newcomer["score"].is_monotonic_decreasing
    filtered = rec.recommend(users[:1], k=k, new_items=m, filters={"category": "no such"})
    assert filtered.empty  # nothing passes: nothing reserved either
    for bad in (-1, k + 1, 1.5, True, "2"):
        with pytest.raises(DataValidationError, match="new_items"):
            rec.recommend(users[:1], k=k, new_items=bad)  # type: ignore[arg-type]
        with pytest.raises(DataValidationError, match="new_items"):
            rec.recommend_for_new_user(liked_items=liked, k=k, new_items=bad)  # type: ignore[arg-type]


def test_fusion_weights_are_a_distribution_conditioned_on_evidence(
    fitted: HybridRecommender,
) -> None:
    w = fitted.fusion_weights_
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-5)
    by_bucket = pd.Series(w[:, 0]).groupby(np.minimum(fitted.counts_, 64)).mean()
    assert by_bucket.nunique() > 1  # the weights move with the amount of evidence


def test_new_user_from_liked_items_and_text(fitted: HybridRecommender, clustered: Dataset) -> None:
    item_cluster = clustered.info["item_cluster"]
    liked = [i for i, c in item_cluster.items() if c == 3][:2]
    out = fitted.recommend_for_new_user(liked_items=liked, k=10)
    assert list(out.columns) == ["item_id", "score", "rank"]
    assert not set(liked) & set(out["item_id"])
    assert np.mean([item_cluster[i] == 3 for i in out["item_id"]]) > 0.7
    text = synthetic_new_items(1, cluster=0, seed=1)["description"].iloc[0]
    by_text = fitted.recommend_for_new_user(text=text, k=10)
    assert np.mean([item_cluster[i] == 0 for i in by_text["item_id"]]) > 0.7
    with pytest.raises(DataValidationError, match="at least one"):
        fitted.recommend_for_new_user()


def test_a_new_users_words_count_for_every_item_alike(
    fresh: Callable[[], HybridRecommender], clustered: Dataset
) -> None:
    """A text-only new user was served by the user tower alone (the index weighs content
    by weights tuned for users with a history, and may give known items none): a genre
    named in words put it in 35% of ml-100k's top 10. Its words now add text_weight
    times the content match to every item's exact score."""
    item_cluster = clustered.info["item_cluster"]
    text = synthetic_new_items(1, cluster=2, seed=4)["description"].iloc[0]

    def share(weight: float, **kw: Any) -> tuple[float, pd.DataFrame]:
        rec.config.model.text_weight = weight
        out = rec.recommend_for_new_user(text=text, k=20, **kw)
        return float(np.mean([item_cluster.get(i) == 2 for i in out["item_id"]])), out

    rec = fresh()
    rec.taste_weight_ = rec.cold_taste_weight_ = 0.0  # as fits on small logs may tune them
    rec._refresh_vectors()
    # a tower that reads the words poorly (a small log): here, not at all
    rec._new_item_vectors = lambda content: np.zeros(  # type: ignore[method-assign]
        (len(content), rec.item_vectors_.shape[1]), np.float32
    )
    other = synthetic_new_items(1, cluster=0, seed=4)["description"].iloc[0]
    rec.config.model.text_weight = 0.0
    unread = rec.recommend_for_new_user(text=other, k=20)["item_id"].tolist()
    without, plain_words = share(0.0)
    assert plain_words["item_id"].tolist() == unread  # two texts, one list: words unread
    with_words, out = share(1.0)
    assert with_words >= 0.9 and with_words > without
    # the exact scores are the model's score plus the bonus: the index agrees at weight 0
    query = rec.attributes_.pad(encode_queries(rec.encoder, [text]))
    taste = rec.taste_.items(query)[0]
    codes = rec.item_ids_.to_internal(out["item_id"].tolist(), kind="item")
    rec.config.model.text_weight = 0.0
    plain = rec.recommend_for_new_user(text=text, k=len(rec.item_ids_)).set_index("item_id")
    expected = plain.loc[out["item_id"], "score"].to_numpy() + rec.item_taste_[codes] @ taste
    np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
    # filters, liked items and reserved places hold on the exact path too
    liked = [i for i, c in item_cluster.items() if c == 2][:2]
    cat = str(clustered.items["category"].iloc[0])
    picked = share(1.0, liked_items=liked, filters={"category": cat}, new_items=3)[1]
    cats = clustered.items.set_index("item_id").loc[picked["item_id"], "category"]
    assert set(cats) == {cat} and not set(liked) & set(picked["item_id"])
    assert picked["score"].is_monotonic_decreasing and picked["rank"].tolist() == list(
        range(1, len(picked) + 1)
    )


def test_filters_and_candidates(fitted: HybridRecommender, clustered: Dataset) -> None:
    user = clustered.interactions["user_id"].iloc[0]
    cheap = fitted.recommend([user], k=10, filters={"price": ("<", 10.0)})
    prices = clustered.items.set_index("item_id")["price"]
    assert (prices[cheap["item_id"]] < 10.0).all()
    cat = clustered.items["category"].iloc[0]
    only = fitted.recommend([user], k=5, filters={"category": cat})
    assert set(clustered.items.set_index("item_id").loc[only["item_id"], "category"]) == {cat}
    cands = clustered.items["item_id"].iloc[:7].tolist()
    restricted = fitted.recommend([user], k=50, candidates=cands, exclude_seen=False)
    assert set(restricted["item_id"]) <= set(cands) and len(restricted) == 7
    with pytest.raises(DataValidationError, match="unknown column"):
        fitted.recommend([user], filters={"colour": "red"})


def test_one_id_of_any_type_is_one_id(fitted: HybridRecommender, clustered: Dataset) -> None:
    user = clustered.interactions["user_id"].iloc[0]
    item = clustered.items["item_id"].iloc[0]
    pd.testing.assert_frame_equal(fitted.recommend(user, k=3), fitted.recommend([user], k=3))
    liked = fitted.recommend_for_new_user(liked_items=item, k=3)  # not one id per character
    pd.testing.assert_frame_equal(liked, fitted.recommend_for_new_user(liked_items=[item], k=3))
    with pytest.raises(UnknownIdError, match="'12345'"):
        fitted.recommend(12345, k=3)  # an int is an id, not an iterable
    with pytest.raises(UnknownIdError, match="'7'"):
        fitted.recommend([np.float64(7.0)], k=3)  # read as the integer id, as the log stores it


def test_nothing_passes_the_filters_gives_an_empty_frame(
    fitted: HybridRecommender, clustered: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    user = clustered.interactions["user_id"].iloc[0]
    none = {"category": "no such category"}
    fitted._noted.clear()  # a shared model: another test may have been warned first
    with caplog.at_level("WARNING", logger="hybrid_rec"):
        out = fitted.recommend([user], k=5, filters=none)
    assert out.empty and "no item passes" in caplog.text and "1 candidate" not in caplog.text
    item = clustered.items["item_id"].iloc[0]
    pairs = [  # (empty, normal): same columns, same dtypes
        (out, fitted.recommend([user], k=5)),
        (
            fitted.recommend_for_new_user(text="anything", k=5, filters=none),
            fitted.recommend_for_new_user(text="anything", k=5),
        ),
        (fitted.similar_items(item, k=5, filters=none), fitted.similar_items(item, k=5)),
    ]
    for empty, normal in pairs:
        assert empty.empty and len(normal)
        pd.testing.assert_series_equal(empty.dtypes, normal.dtypes)
    popular = fitted.recommend(["nobody"], k=5, filters=none, unknown_users="popular")
    assert popular.empty


def test_a_fixed_cold_offset_is_used_instead_of_the_tuned_one(
    small_config: Callable[..., RecommenderConfig], clustered: Dataset
) -> None:
    new = set(clustered.items["item_id"].iloc[::10])  # 30 items with no interactions
    log = clustered.interactions[~clustered.interactions["item_id"].isin(new)]
    users = log["user_id"].unique()[:40].tolist()
    shares = {}
    for offset, stage in ((-1.0, 0), (1.0, 0), (-1.0, 8000), (1.0, 8000)):
        cfg = small_config(epochs=2)
        cfg.model.cold_offset = offset
        cfg.model.item_item_max_items = stage
        rec = HybridRecommender(cfg, encoder=HashingEncoder(256))
        rec.fit(log, clustered.items, show_progress=False)
        assert rec.cold_bias_ == offset and rec.prior_weight_ == 0.0
        shares[offset, stage] = rec.recommend(users, k=10)["item_id"].isin(new).mean()
    assert shares[-1.0, 0] < 0.05 < 0.5 < shares[1.0, 0]
    # the item-item stage lifts strong warm matches over the offset's new items, but the
    # offset still moves them as much (the stage was weighed on validation with it)
    assert shares[-1.0, 8000] < 0.05 and shares[1.0, 8000] > shares[-1.0, 8000] + 0.25
    # a log too small to hold anything out for validation still honours it
    cfg = small_config(epochs=1)
    cfg.model.cold_offset = -0.5
    tiny = HybridRecommender(cfg, encoder=HashingEncoder(64))
    tiny.fit(log.head(30), clustered.items, show_progress=False)
    assert tiny.cold_bias_ == -0.5


def test_fold_in_runs_the_item_tower_on_the_learning_rows_only(
    clustered: Dataset, fresh: Callable[[], HybridRecommender], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every other item keeps the vector it is served with during a fold-in: one event
    ran the tower over 8,192 sampled items 50 times (3.0 -> 0.8 s at 80,000 items)."""
    rec = fresh()
    light = int(np.flatnonzero((rec.counts_ > 0) & (rec.counts_ < 10))[0])
    item = rec.item_ids_.external_ids[light]
    user = str(rec.user_ids_.external_ids[0])
    t0 = int(clustered.interactions["timestamp"].max()) + 10
    before = rec.model_.cf.weight[light].detach().clone()
    rows: list[int] = []
    real = rec.model_.items_forward

    def spy(content: torch.Tensor, *args: Any) -> Any:
        rows.append(len(content))
        return real(content, *args)

    monkeypatch.setattr(rec.model_, "items_forward", spy)
    one = pd.DataFrame({"user_id": [user], "item_id": [item], "timestamp": [t0]})
    rec.partial_fit(one)
    assert len(rows) > 5 and max(rows) == 1  # 50 steps, each on the one learning row
    assert not torch.equal(rec.model_.cf.weight[light], before)  # and it learned
    uvec = rec.user_vectors()[rec.user_ids_.lookup([user])[0]]
    assert np.isfinite(rec.item_vectors_[light]).all() and np.isfinite(uvec).all()


def test_after_feedback_only_its_users_tastes_are_computed_again(
    clustered: Dataset, fresh: Callable[[], HybridRecommender], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taste is a sum over the user's log: recomputing every user's after each
    partial_fit made the first request after it cost 0.3 s at 580,000 rows."""
    rec = fresh()
    rec.recommend([str(rec.user_ids_.external_ids[0])], k=5)  # tastes cached, as a server
    users = [str(u) for u in rec.user_ids_.external_ids[:3]]
    t0 = int(clustered.interactions["timestamp"].max()) + 10
    feedback = pd.DataFrame(
        {
            "user_id": [*users, "brand-new"],
            "item_id": [str(i) for i in rec.item_ids_.external_ids[10:14]],
            "timestamp": t0 + np.arange(4),
        }
    )
    rows: list[int] = []
    real = ContentTaste.users

    def spy(self: ContentTaste, coords: np.ndarray, u: np.ndarray, *args: Any) -> np.ndarray:
        rows.append(len(u))
        return real(self, coords, u, *args)

    monkeypatch.setattr(ContentTaste, "users", spy)
    rec.partial_fit(feedback)
    got = rec._user_taste().copy()
    assert rows and max(rows) < 0.1 * len(rec._log)  # the four users' rows, not the log
    rec._user_tastes = None
    np.testing.assert_allclose(got, rec._user_taste(), atol=1e-6)  # as from scratch
    assert len(got) == len(rec.user_ids_)  # the new user included


def test_partial_fit_derives_histories_and_seen_sets_as_a_full_pass(
    clustered: Dataset, fresh: Callable[[], HybridRecommender]
) -> None:
    """Only the users of the new rows are derived again (a quarter of a second at
    580,000 rows for the whole log): the outcome must equal deriving everything."""
    rec = fresh()
    users = [str(u) for u in rec.user_ids_.external_ids[:5]]
    items = [str(i) for i in rec.item_ids_.external_ids[:12]]
    t0 = int(clustered.interactions["timestamp"].max())
    feedback = pd.DataFrame(
        {
            "user_id": [*users, users[0], users[0], "new-a", "new-b", "new-a"],
            "item_id": [*items[:5], items[0], items[6], items[7], items[8], items[7]],
            # a tie in time with the user's latest row, and one older than it
            "timestamp": [t0, t0 + 1, t0 + 2, t0 + 3, t0 + 4, t0, t0 - 10**6, t0, t0, t0 + 5],
        }
    )
    rec.partial_fit(feedback, fold_in=False)
    rec.partial_fit(feedback.assign(timestamp=feedback["timestamp"] + 7), fold_in=False)
    got = rec.histories_, rec._seen, rec.counts_.copy()
    rec._derive()
    for name in ("items", "events", "times", "ref_time"):
        np.testing.assert_array_equal(getattr(got[0], name), getattr(rec.histories_, name))
    for name in ("indptr", "indices", "log_rows"):
        np.testing.assert_array_equal(getattr(got[1], name), getattr(rec._seen, name))
    np.testing.assert_array_equal(got[2], rec.counts_)
    assert len(rec.histories_.items) == len(rec.user_ids_)


def test_partial_fit_moves_user_toward_new_feedback(
    clustered: Dataset, fresh: Callable[[], HybridRecommender]
) -> None:
    rec = fresh()
    item_cluster = clustered.info["item_cluster"]
    user = _cluster_users(clustered, 0)[0]
    target = [i for i, c in item_cluster.items() if c == 2]

    def share(frame: pd.DataFrame) -> float:
        return float(np.mean([item_cluster[i] == 2 for i in frame["item_id"]]))

    before = share(rec.recommend([user], k=20))
    t0 = int(clustered.interactions["timestamp"].max()) + 10
    feedback = pd.DataFrame(
        {
            "user_id": user,
            "item_id": target[:15],
            "event": "purchase",
            "timestamp": np.arange(t0, t0 + 15),
        }
    )
    rec.partial_fit(feedback)
    after = share(rec.recommend([user], k=20))
    assert after > before + 0.3
    # a brand-new user arrives through feedback alone
    rec.partial_fit(
        pd.DataFrame(
            {
                "user_id": "brand-new",
                "item_id": target[:3],
                "event": "click",
                "timestamp": [t0 + 20, t0 + 21, t0 + 22],
            }
        )
    )
    assert share(rec.recommend(["brand-new"], k=10)) > 0.6


def test_partial_fit_of_a_re_sent_file_counts_its_events_once(
    clustered: Dataset, fresh: Callable[[], HybridRecommender], caplog: pytest.LogCaptureFixture
) -> None:
    """A nightly job retried after a crash sends the same feedback again: events with the
    same user, item, event type and timestamp are skipped, so nothing weighs double."""
    rec = fresh()
    user = _cluster_users(clustered, 0)[0]
    t0 = int(clustered.interactions["timestamp"].max()) + 10
    items = clustered.items["item_id"].iloc[:5].tolist()
    feedback = pd.DataFrame(
        {"user_id": user, "item_id": items, "event": "purchase", "timestamp": np.arange(t0, t0 + 5)}
    )
    rec.partial_fit(feedback)
    once = rec.recommend([user], k=10)
    caplog.clear()
    rec.partial_fit(pd.concat([feedback, feedback.assign(timestamp=t0 + 9).head(1)]))
    assert "5 interaction(s) already in the model were skipped" in caplog.text
    later = rec.recommend([user], k=10)
    assert later["item_id"].tolist() != once["item_id"].tolist() or not np.allclose(
        later["score"], once["score"]
    )  # the one new event counts ...
    fresh_rec = fresh()
    fresh_rec.partial_fit(feedback)
    fresh_rec.partial_fit(feedback.assign(timestamp=t0 + 9).head(1))
    pd.testing.assert_frame_equal(later, fresh_rec.recommend([user], k=10))  # ... once


def test_fit_counts_a_repeated_event_once(
    clustered: Dataset, small_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An export repeating rows (same user, item, event and timestamp) gave those events
    double weight, bar the few the internal holdout happened to catch."""
    log = clustered.interactions
    repeated = pd.concat([log, log.iloc[::40]], ignore_index=True)
    rec = HybridRecommender(small_config(epochs=1), encoder=HashingEncoder(256))
    rec.fit(repeated, clustered.items, show_progress=False)
    assert f"{len(log.iloc[::40])} interaction(s) repeat an earlier row" in caplog.text
    assert "already in the model were skipped" not in caplog.text
    assert not rec._log.duplicated(["u", "i", "e", "t"]).any()
    assert len(rec._log) == len(log)


def test_partial_fit_warns_of_ids_equal_but_for_leading_zeros(
    fresh: Callable[[], HybridRecommender], caplog: pytest.LogCaptureFixture
) -> None:
    """Today's export wrote user 42 as 00042: a second user, as ids are text, and the
    only hint was a count of new users."""
    rec = fresh()
    item = str(rec.item_ids_.external_ids[0])
    t0 = int(rec._log["t"].max()) + 10
    feedback = pd.DataFrame(
        {"user_id": ["00042", "777"], "item_id": item, "event": "purchase", "timestamp": t0}
    )
    rec.partial_fit(feedback.assign(user_id="42", timestamp=t0 - 5).head(1))
    assert "leading zeros" not in caplog.text
    rec.partial_fit(feedback)
    assert "1 new user id(s) equal known ones but for leading zeros, e.g. '00042'" in caplog.text
    assert rec.user_ids_.lookup(["00042"])[0] >= 0  # still its own user
    caplog.clear()
    rec.partial_fit(feedback.assign(user_id="888", timestamp=t0 + 1))
    assert "leading zeros" not in caplog.text


def test_partial_fit_folds_feedback_into_a_cold_item(clustered: Dataset, small_config: Any) -> None:
    rec = HybridRecommender(small_config(), encoder=HashingEncoder(256)).fit(
        clustered.interactions, clustered.items, show_progress=False
    )
    new = synthetic_new_items(1, cluster=1, seed=5, start_id=30_000)
    code = int(rec.add_items(new)[0])
    share_before = rec.fusion_weights_[code, 1]
    users = _cluster_users(clustered, 1)[:25]
    t0 = int(clustered.interactions["timestamp"].max()) + 100
    rec.partial_fit(
        pd.DataFrame(
            {
                "user_id": users,
                "item_id": new["item_id"].iloc[0],
                "event": "purchase",
                "timestamp": t0 + np.arange(len(users)),
            }
        )
    )
    assert rec.counts_[code] == len(users)
    assert rec.fusion_weights_[code, 1] > share_before  # more evidence -> more behaviour
    assert np.isfinite(rec.item_vectors_[code]).all()


def test_a_fold_in_changes_only_the_cf_rows_of_the_items_it_folds_in(
    fresh: Callable[[], HybridRecommender], clustered: Dataset
) -> None:
    rec = fresh()
    rec.config.model.weight_decay = 0.1  # Adam's decay reached every row of the table
    rec.config.model.seed = 3
    before = rec.model_.cf.weight.detach().clone()
    new = synthetic_new_items(1, cluster=2, seed=6, start_id=31_000)
    code = int(rec.add_items(new)[0])
    users = _cluster_users(clustered, 2)[:10]
    t0 = int(clustered.interactions["timestamp"].max()) + 100
    rec.partial_fit(
        pd.DataFrame(
            {"user_id": users, "item_id": new["item_id"].iloc[0], "timestamp": t0 + np.arange(10)}
        )
    )
    after = rec.model_.cf.weight.detach()
    assert torch.equal(after[: len(before)], before)  # every other item as it was
    assert after[code].abs().sum() > 0  # the new item's row learned from its feedback
    assert not any("learning" in name for name in rec.model_.state_dict())


def test_save_load_gives_identical_recommendations(
    fitted: HybridRecommender, clustered: Dataset, tmp_path: Path
) -> None:
    users = list(clustered.info["user_cluster"])[:25]
    fitted.save(tmp_path / "m")
    assert not list(tmp_path.glob(".m.*"))  # no temp dir left behind
    loaded = HybridRecommender.load(tmp_path / "m", encoder=HashingEncoder(256))
    pd.testing.assert_frame_equal(fitted.recommend(users, k=10), loaded.recommend(users, k=10))
    new = synthetic_new_items(2, cluster=0, seed=2, start_id=40_000)
    pd.testing.assert_frame_equal(
        fitted.score_cold_items(new, k=5), loaded.score_cold_items(new, k=5)
    )
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["encoder"] == "hashing-256" or manifest["encoder"].startswith("hashing")
    assert all(len(h) == 64 for h in manifest["files"].values())
    assert not list((tmp_path / "m").glob("*.pkl"))


def test_load_partial_fit_save_load(
    fitted: HybridRecommender, clustered: Dataset, tmp_path: Path
) -> None:
    """The nightly cycle: load yesterday's model, fold in today's feedback, save it again."""
    fitted.save(tmp_path / "m")
    rec = HybridRecommender.load(tmp_path / "m", encoder=HashingEncoder(256))
    users = _cluster_users(clustered, 1)[:10]
    item = clustered.interactions["item_id"].iloc[0]
    t0 = int(clustered.interactions["timestamp"].max()) + 100
    rec.partial_fit(
        pd.DataFrame({"user_id": users, "item_id": item, "event": "purchase", "timestamp": t0})
    )
    rec.save(tmp_path / "m")
    again = HybridRecommender.load(tmp_path / "m", encoder=HashingEncoder(256))
    pd.testing.assert_frame_equal(rec.recommend(users, k=10), again.recommend(users, k=10))
    assert again.index_.kind == fitted.index_.kind


def test_a_load_overlapping_a_save_starts_again(
    fitted: HybridRecommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybrid_rec import recommender as module

    d = tmp_path / "m"
    fitted.save(d)
    grown = HybridRecommender.load(d, encoder=HashingEncoder(256))
    grown.add_items(synthetic_new_items(2, cluster=0, seed=3, start_id=30_000))
    real, calls = module.read_manifest, []

    def swapped_after_the_check(directory: Path, **kwargs: Any) -> dict[str, Any]:
        manifest = real(directory, **kwargs)
        calls.append(directory)
        if len(calls) == 1:  # `hybrid-rec add-items` saving in place, mid-load
            grown.save(d)
        return manifest

    monkeypatch.setattr(module, "read_manifest", swapped_after_the_check)
    loaded = HybridRecommender.load(d, encoder=HashingEncoder(256))
    assert len(calls) == 2 and len(loaded.item_ids_) == len(fitted.item_ids_) + 2


def test_load_rejects_tampered_or_foreign_directories(
    fitted: HybridRecommender, tmp_path: Path
) -> None:
    d = fitted.save(tmp_path / "m")
    vec = d / "item_vectors.npy"
    data = bytearray(vec.read_bytes())
    data[-1] ^= 0xFF
    vec.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256 mismatch"):
        HybridRecommender.load(d)
    d2 = fitted.save(tmp_path / "m2")
    manifest = json.loads((d2 / "manifest.json").read_text())
    manifest["library_version"] = "9.9.0"
    (d2 / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"9\.9\.0"):
        HybridRecommender.load(d2)
    with pytest.raises(ModelFileError, match="not a hybrid_rec model"):
        HybridRecommender.load(tmp_path)
    d3 = fitted.save(tmp_path / "m3")
    with pytest.raises(ModelFileError, match="encoder"):
        HybridRecommender.load(d3, encoder=HashingEncoder(64))
    # loaded without an encoder: serving works, but embedding new text with the encoder the
    # config names (MiniLM here, not the hashing encoder the vectors came from) is refused
    plain = HybridRecommender.load(d3)
    assert len(plain.recommend([str(plain.user_ids_.external_ids[0])], k=3)) == 3
    with pytest.raises(ModelFileError, match=r"hashing.*all-MiniLM|different encoders"):
        plain.add_items(synthetic_new_items(1, cluster=0, seed=5, start_id=50_000))
    assert len(plain.items_) == len(fitted.items_)  # nothing was added


def _rehashed(d: Path) -> Path:
    """Sign the directory's files again, as a hand edit or a buggy writer would leave it."""
    from hybrid_rec.persistence import write_manifest

    manifest = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").unlink()
    write_manifest(d, {k: v for k, v in manifest.items() if k not in ("files", "library")})
    return d


def _edit_meta(d: Path) -> None:
    meta = json.loads((d / "meta.json").read_text())
    del meta["event_vocab"]
    (d / "meta.json").write_text(json.dumps(meta))


def _short_items(d: Path) -> None:
    pd.read_parquet(d / "items.parquet").head(10).to_parquet(d / "items.parquet")


def _nan_vector(d: Path) -> None:
    vectors = np.load(d / "item_vectors.npy")
    vectors[3, 0] = np.nan
    np.save(d / "item_vectors.npy", vectors)


def _user_out_of_range(d: Path) -> None:
    log = pd.read_parquet(d / "interactions.parquet")
    log.loc[0, "u"] = 10_000
    log.to_parquet(d / "interactions.parquet")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: (d / "config.json").write_text('{"model": {"dim": "wide"}}'), "ValidationError"),
        (_edit_meta, "KeyError"),
        (lambda d: (d / "meta.json").write_text("[1, 2]"), "TypeError|AttributeError"),
        (lambda d: (d / "interactions.parquet").write_text("not parquet"), "Arrow"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64), "incompatible weights"),
        (lambda d: np.save(d / "content.npy", np.zeros(5, np.float32)), "IndexError|content"),
        (_short_items, "items.parquet rows is 10"),
        (_nan_vector, "NaN"),
        (_user_out_of_range, "interactions.parquet column 'u'"),
    ],
)
def test_files_that_pass_their_sha256_but_do_not_fit_are_model_file_errors(
    fitted: HybridRecommender, tmp_path: Path, edit: Callable[[Path], object], message: str
) -> None:
    """Each used to raise a raw Python error (or load silently with wrong contents)."""
    d = fitted.save(tmp_path / "m")
    assert len(HybridRecommender.load(_rehashed(d), encoder=HashingEncoder(256)).items_)
    edit(d)
    with pytest.raises(ModelFileError, match=message):
        HybridRecommender.load(_rehashed(d), encoder=HashingEncoder(256))


def test_every_saved_file_has_the_umask_mode(fitted: HybridRecommender, tmp_path: Path) -> None:
    """safetensors wrote model.safetensors 0600: another account could not load the model."""
    from hybrid_rec.data.io import default_mode

    d = fitted.save(tmp_path / "m")
    modes = {f.name: f.stat().st_mode & 0o777 for f in d.iterdir()}
    assert set(modes.values()) == {default_mode()}, modes


def test_bad_input(fitted: HybridRecommender, clustered: Dataset) -> None:
    user = clustered.interactions["user_id"].iloc[0]
    with pytest.raises(UnknownIdError, match="'nobody'"):
        fitted.recommend(["nobody"])
    pop = fitted.recommend(["nobody", user], k=3, unknown_users="popular")
    assert set(pop["user_id"]) == {"nobody", user}
    fallback = pop.loc[pop["user_id"] == "nobody", "score"]
    assert fallback.iloc[0] == 1.0 and fallback.between(0, 1).all()  # on the cosine scale
    assert fitted.recommend(["nobody"], unknown_users="skip").empty
    for k in (0, -3):
        with pytest.raises(DataValidationError, match="positive"):
            fitted.recommend([user], k=k)
    everything = fitted.recommend([user], k=10_000, exclude_seen=False)
    assert len(everything) == len(fitted.items_)
    existing = clustered.items.head(1)
    with pytest.raises(DataValidationError, match="already in the catalogue"):
        fitted.add_items(existing)
    blank = pd.DataFrame({"item_id": ["blank-1"], "title": [""], "description": [None]})
    with pytest.raises(DataValidationError, match="no text"):
        fitted.add_items(blank)
    with pytest.raises(UnknownIdError):
        fitted.similar_items(["no-such-item"])
    with pytest.raises(NotFittedError):
        HybridRecommender().recommend(["u"])


def test_bad_arguments_are_named_errors(fitted: HybridRecommender, clustered: Dataset) -> None:
    """Each used to pass silently (an empty or unexplained list) or raise a raw Python error."""
    user = clustered.interactions["user_id"].iloc[0]
    item = clustered.items["item_id"].iloc[0]
    with pytest.raises(DataValidationError, match="unknown_users: must be one of"):
        fitted.recommend(["nobody"], k=3, unknown_users="bogus")  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="unknown_users: must be one of"):
        fitted.recommend_batch([user], unknown_users="Skip")  # type: ignore[arg-type]
    for explain in ("yes", -1, 1.5):
        with pytest.raises(DataValidationError, match="explain: must be"):
            fitted.recommend([user], k=2, explain=explain)  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="must be text"):
        fitted.recommend_for_new_user(text=123)  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="expected a pandas DataFrame, got list"):
        fitted.add_items([{"item_id": "z", "title": "t"}])  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="expected a pandas DataFrame, got NoneType"):
        fitted.sync_catalogue(None)  # type: ignore[arg-type]
    # one id is one id everywhere, not a string of one-character ids
    assert fitted.recommend(user, k=5, candidates=item, exclude_seen=False)["item_id"].tolist() == [
        item
    ]
    assert np.array_equal(fitted.score(user, item), fitted.score([user], [item]))
    # explanations for the known users, none for the popular fallback (it used to drop them all)
    both = fitted.recommend([user, "nobody"], k=2, explain=True, unknown_users="popular")
    known = both["user_id"] == user
    assert both.loc[known, "explanation"].str.len().gt(20).all()
    assert both.loc[~known, "explanation"].isna().all() and (~known).sum() == 2


def test_nan_in_training_stops_with_clear_message(clustered: Dataset, small_config: Any) -> None:
    cfg = small_config(epochs=2)
    cfg.model.lr = 1e30
    rec = HybridRecommender(cfg, encoder=HashingEncoder(64))
    with pytest.raises(TrainingError, match=r"diverged|NaN"):
        rec.fit(clustered.interactions, clustered.items, show_progress=False)
    assert not rec._fitted


def test_divergence_from_huge_weights_names_them(clustered: Dataset, small_config: Any) -> None:
    rec = HybridRecommender(small_config(epochs=1), encoder=HashingEncoder(64))
    log = clustered.interactions.assign(weight=1e36)
    with pytest.raises(TrainingError, match=r"largest is 5e\+36"):
        rec.fit(log, clustered.items, show_progress=False)
    assert not rec._fitted


def test_a_refused_call_leaves_the_model_as_it_was(
    clustered: Dataset, fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    """Bad input found part-way (after ids were registered, after the catalogue was read)
    used to leave a half-changed model that served IndexErrors and saved a directory
    ``load`` refused."""
    rec = fresh()
    user = clustered.interactions["user_id"].iloc[0]
    item = clustered.items["item_id"].iloc[0]
    before = rec.recommend([user], k=5)
    n_users, n_items = len(rec.user_ids_), len(rec.item_ids_)
    no_time = pd.DataFrame({"user_id": ["brand-new"], "item_id": [item], "event": ["view"]})
    with pytest.raises(DataValidationError, match="timestamp"):
        rec.partial_fit(no_time)  # the model was fitted with timestamps
    assert len(rec.user_ids_) == n_users
    with pytest.raises(UnknownIdError):
        rec.recommend(["brand-new"], k=3)
    other = synthetic(n_users=50, n_items=320, n_clusters=4, interactions_per_user=10, seed=3)
    stranger = pd.DataFrame({"user_id": ["zz"] * 3, "item_id": [item] * 3})
    bad_fits = [
        (dict(validation=stranger), "none of the 1 validation user"),
        (dict(content=np.zeros((3, 3), np.float32)), "content"),
    ]
    for kwargs, message in bad_fits:
        with pytest.raises(DataValidationError, match=message):
            rec.fit(other.interactions, other.items, show_progress=False, **kwargs)
        assert (len(rec.user_ids_), len(rec.item_ids_)) == (n_users, n_items)
        pd.testing.assert_frame_equal(rec.recommend([user], k=5), before)
    rec.similar_items([item], k=3)
    again = HybridRecommender.load(rec.save(tmp_path / "m"), encoder=HashingEncoder(256))
    pd.testing.assert_frame_equal(again.recommend([user], k=5), before)


def test_user_vectors_are_computed_once_per_user_and_match_the_tower(
    fresh: Callable[[], HybridRecommender],
) -> None:
    rec = fresh()
    users = list(rec.user_ids_.external_ids[[3, 7, 11]])
    codes = rec.user_ids_.to_internal(users, kind="user")
    first = rec.recommend(users, k=10)
    assert rec._user_done.sum() == 3  # only the users asked for ran through the tower
    np.testing.assert_allclose(rec._user_vectors[codes], rec._user_vectors_for(codes)[0], atol=1e-6)
    pd.testing.assert_frame_equal(first, rec.recommend(users, k=10))
    every = rec.user_vectors()
    assert rec._user_done.all() and every.shape == (len(rec.user_ids_), rec.config.model.dim)
    np.testing.assert_allclose(every, rec._user_vectors_for(np.arange(len(every)))[0], atol=1e-6)


def test_encoding_some_items_matches_encoding_all(fitted: HybridRecommender) -> None:
    """A partial refresh (update_items, partial_fit) encodes only its items, by position."""
    rows = np.array([3, 0, 150, len(fitted.content_) - 1])
    every, w_every = fitted.model_.encode_items(fitted.content_, fitted.counts_)
    some, w_some = fitted.model_.encode_items(fitted.content_[rows], fitted.counts_[rows], ids=rows)
    np.testing.assert_allclose(some, every[rows], atol=1e-6)
    np.testing.assert_allclose(w_some, w_every[rows], atol=1e-6)
    assert fitted.counts_[rows].min() > 0  # warm rows: their CF rows must be the right ones

    none, w_none = fitted.model_.encode_items(
        fitted.content_[:0], fitted.counts_[:0], ids=np.zeros(0, np.int64)
    )  # an update or feedback that touches no item
    assert none.shape == (0, every.shape[1]) and w_none.shape == (0, 2)


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_validation_recall_in_blocks_of_users_equals_one_block(
    fitted: HybridRecommender, monkeypatch: pytest.MonkeyPatch, exclude_seen: bool
) -> None:
    # a validation over 50,000 new items scored 3,000 users at once: 2.3 GB per epoch
    import hybrid_rec.recommender as module

    rng = np.random.default_rng(0)
    users = rng.integers(0, len(fitted.user_ids_), 400)
    targets = rng.integers(0, len(fitted.item_ids_), 400)
    candidates = np.arange(len(fitted.item_ids_))
    args = (fitted.model_, fitted.item_vectors_, users, targets, candidates, 10, exclude_seen)
    whole = fitted._val_recall(*args)
    monkeypatch.setattr(module, "VAL_SCORE_BLOCK", 7 * len(candidates))  # 7 users a block
    assert fitted._val_recall(*args) == whole > 0


def test_the_popular_fallback_can_count_only_the_latest_days(
    fresh: Callable[[], HybridRecommender], clustered: Dataset
) -> None:
    rec = fresh()
    all_time = rec.recommend(["stranger"], k=3, unknown_users="popular")["item_id"].tolist()
    counts = clustered.interactions["item_id"].value_counts()
    assert all_time[0] == counts.index[0]
    # yesterday's story: read by 12 users in the last day, far fewer than the all-time top
    story = counts.index[-1]
    t0 = int(clustered.interactions["timestamp"].max()) + 86_400 * 30
    users = clustered.interactions["user_id"].unique()[:12]
    rec.partial_fit(pd.DataFrame({"user_id": users, "item_id": story, "timestamp": t0}))
    assert rec.recommend(["stranger"], k=3, unknown_users="popular")["item_id"].iloc[0] != story
    rec.config.model.popular_days = 2
    latest = rec.recommend(["stranger"], k=3, unknown_users="popular")
    assert latest["item_id"].iloc[0] == story and latest["score"].iloc[0] == 1.0


def test_save_rebuilds_an_exact_index_the_catalogue_has_outgrown(
    clustered: Dataset, small_config: Callable[..., RecommenderConfig], tmp_path: Path
) -> None:
    """An index is chosen by size at fit; a catalogue grown past exact_max_items by
    add_items kept scanning every item until the next fit."""
    cfg = small_config(epochs=2)
    cfg.index.exact_max_items = 320
    rec = HybridRecommender(cfg, encoder=HashingEncoder(256))
    rec.fit(clustered.interactions, clustered.items, show_progress=False)
    assert rec.index_.factory == "Flat"
    rec.add_items(synthetic_new_items(10, cluster=1, seed=3, start_id=40_000))
    rec.save(tmp_path / "small")  # 310 items: still exact
    assert rec.index_.factory == "Flat"
    rec.add_items(synthetic_new_items(20, cluster=2, seed=4, start_id=41_000))
    user = str(rec.user_ids_.external_ids[0])
    before = rec.recommend([user], k=10)
    loaded = HybridRecommender.load(rec.save(tmp_path / "grown"), encoder=HashingEncoder(256))
    assert loaded.index_.factory.startswith("HNSW") and rec.index_.factory == loaded.index_.factory
    after = loaded.recommend([user], k=10)
    assert len(set(before["item_id"]) & set(after["item_id"])) >= 9  # HNSW, near-exact


def test_the_fit_holdout_keeps_every_row_of_a_pair_together(clustered: Dataset) -> None:
    """A view trained on and its purchase held out: the purchase, a seen item, could
    never be recommended, and a multi-event log's early stopping measured one-off
    views (a bookshop model stopped after its first epoch)."""
    from hybrid_rec.recommender import _internal_holdout

    log_ = clustered.interactions
    events = pd.concat([log_.assign(event="view"), log_.assign(event="purchase")])
    train, held = _internal_holdout(events.sort_values("timestamp").reset_index(drop=True), 3)
    assert held is not None and len(held)

    def pairs(f: pd.DataFrame) -> set[tuple[str, str]]:
        return set(zip(f["user_id"], f["item_id"], strict=True))

    assert not pairs(train) & pairs(held)
    # one row per pair (ratings): the draw is the one rows had, row for row
    once = log_.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)
    _, once_held = _internal_holdout(once, 3)
    assert once_held is not None
    rng = np.random.default_rng(3)
    items = np.unique(once["item_id"].to_numpy())
    cold = rng.choice(items, int(0.05 * len(items)), replace=False)
    size = once.groupby("user_id")["item_id"].transform("size").to_numpy()
    pick = (rng.random(len(once)) < 0.05) & (size >= 5) | once["item_id"].isin(cold).to_numpy()
    pick &= once["user_id"].isin(once["user_id"][~pick]).to_numpy()
    pd.testing.assert_frame_equal(once_held, once[pick].reset_index(drop=True))


def test_early_stopping_ignores_targets_it_could_never_hit(
    clustered: Dataset, fitted: HybridRecommender
) -> None:
    """Validation rows of pairs the user has in training (the purchase of a book whose
    view is trained on) are left out of the ranking as seen: counted as misses, they
    dragged the score toward whatever ranks the unseen rest."""
    rec = fitted
    t_max = int(clustered.interactions["timestamp"].max())
    users = [str(u) for u in rec.user_ids_.external_ids[:60]]
    # targets the users have not seen: each user's best-ranked unseen item, so hits exist
    top = rec.recommend(users, k=1)
    fresh = top[["user_id", "item_id"]].assign(timestamp=t_max)
    score = rec._validation_fn(fresh)(rec.model_)
    assert score > 0
    # the same targets and, for each user, the purchase of an item already trained on
    trained = rec._log.groupby("u")["i"].first()
    seen = pd.DataFrame(
        {
            "user_id": [str(rec.user_ids_.external_ids[u]) for u in trained.index[:60]],
            "item_id": [str(rec.item_ids_.external_ids[i]) for i in trained.to_numpy()[:60]],
            "timestamp": t_max,
        }
    )
    both = pd.concat([fresh, seen, seen], ignore_index=True)  # repeated rows: one target
    assert rec._validation_fn(both)(rec.model_) == pytest.approx(score)


def test_fit_says_which_encoder_reads_a_catalogue_in_other_languages(
    clustered: Dataset, small_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A bookshop with 30% German and French books fitted MiniLM: "spannende Krimis"
    found no crime book, and nothing had said why."""
    from hybrid_rec.recommender import _warn_of_languages

    items = clustered.items.assign(language=["de", "en", "fr", "en", "en"] * 60)
    with caplog.at_level("WARNING", logger="hybrid_rec.recommender"):
        _warn_of_languages(items, "sentence-transformers:all-MiniLM-L6-v2@53aa51172d14")
    assert len(caplog.records) == 1
    assert "40% of the catalogue is not in English" in caplog.text
    assert 'encoder = "e5-multilingual"' in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hybrid_rec.recommender"):
        _warn_of_languages(items, "e5-multilingual")
        _warn_of_languages(items.assign(language="en"), "minilm")
        _warn_of_languages(items.drop(columns="language"), "minilm")
        # a fit names the encoder it has, not the config's default
        HybridRecommender(small_config(epochs=1), encoder=HashingEncoder(64)).fit(
            clustered.interactions, items, show_progress=False
        )
    assert not [r for r in caplog.records if "English" in r.getMessage()]


def test_the_offset_search_skips_users_whose_targets_were_all_seen(
    clustered: Dataset, fresh: Callable[[], HybridRecommender]
) -> None:
    """Seen targets leave the ranking and the targets; a user left with none divided
    zero by zero and made every setting's recall NaN."""
    rec = fresh()
    users = [str(u) for u in rec.user_ids_.external_ids[:40]]
    t_max = int(clustered.interactions["timestamp"].max())
    targets = rec.recommend(users, k=2)[["user_id", "item_id"]].assign(timestamp=t_max)
    chosen = rec._tune_offsets(targets)
    other = 100  # a user among none of the targets, with an item they have
    seen_only = pd.DataFrame(
        {
            "user_id": [str(rec.user_ids_.external_ids[other])],
            "item_id": [str(rec.item_ids_.external_ids[rec._seen.row(other)[0]])],
            "timestamp": t_max,
        }
    )
    both = rec._tune_offsets(pd.concat([targets, seen_only], ignore_index=True))
    assert np.isfinite(both).all() and both == chosen


@pytest.mark.parametrize(("offset", "low", "high"), [(-1.0, 0.0, 0.01), (1.0, 0.5, 1.0)])
def test_fit_reports_the_places_new_items_get(
    clustered: Dataset, small_config: Any, offset: float, low: float, high: float
) -> None:
    """A bookshop's mixed lists held almost no new or long-tail book, and nothing said
    so: fit now measures the share of validation lists' places items without
    interactions take at the tuned (here: fixed) offset."""
    cfg = small_config(epochs=1)
    cfg.model.cold_offset = offset
    items = pd.concat([clustered.items, synthetic_new_items(30, cluster=1, seed=3)])
    rec = HybridRecommender(cfg, encoder=HashingEncoder(64))
    rec.fit(clustered.interactions, items, show_progress=False)
    assert rec.new_item_share_ is not None and low <= rec.new_item_share_ <= high
