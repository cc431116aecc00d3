"""update_items: changed item records applied without a refit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import Dataset, synthetic_new_items
from hybrid_rec.errors import DataValidationError, UnknownIdError


def _share_in(rec: HybridRecommender, item: str, clustered: Dataset, cluster: int) -> float:
    item_cluster = clustered.info["item_cluster"]
    near = rec.similar_items([item], k=10)["similar_item_id"]
    return float(np.mean([item_cluster.get(i) == cluster for i in near]))


def test_new_text_moves_an_item_to_where_it_now_belongs(
    clustered: Dataset, fresh: Callable[[], HybridRecommender]
) -> None:
    rec = fresh()
    new = synthetic_new_items(1, cluster=1, seed=3, start_id=50_000)
    rec.add_items(new)
    item = str(new["item_id"].iloc[0])
    assert _share_in(rec, item, clustered, 1) > 0.7
    other = synthetic_new_items(1, cluster=3, seed=4, start_id=60_000)
    changed = other.drop(columns="item_id").assign(item_id=item)
    codes = rec.update_items(changed)
    assert rec.item_ids_.to_external(codes).tolist() == [item]
    assert _share_in(rec, item, clustered, 3) > 0.7
    row = rec.items_.iloc[codes[0]]
    assert row["item_id"] == item and row["title"] == other["title"].iloc[0]
    # the users it scores highest for follow the new text
    user_cluster = clustered.info["user_cluster"]
    users = [str(u) for u in rec.user_ids_.external_ids]
    scores = pd.Series(rec.score(users, [item])[:, 0])
    assert scores.groupby([user_cluster[u] for u in users]).mean().idxmax() == 3


def test_only_the_given_columns_change_and_filters_follow(
    fresh: Callable[[], HybridRecommender],
) -> None:
    rec = fresh()
    item = str(rec.item_ids_.external_ids[5])
    before = rec.items_.iloc[5].copy()
    vec_before = rec.item_vectors_[5].copy()
    assert rec.recommend(
        ["nobody"], k=300, unknown_users="popular", filters={"price": ("<", 0)}
    ).empty
    rec.update_items(pd.DataFrame({"item_id": [item], "price": [-1.0]}))
    after = rec.items_.iloc[5]
    assert after["price"] == -1.0
    assert after[["title", "description", "category"]].equals(
        before[["title", "description", "category"]]
    )
    cheap = rec.recommend(["nobody"], k=5, unknown_users="popular", filters={"price": ("<", 0)})
    assert cheap["item_id"].tolist() == [item]
    # the price is part of the embedded text: the vector moved, a little
    assert not np.allclose(rec.item_vectors_[5], vec_before)
    assert np.dot(rec.item_vectors_[5], vec_before) > 0.5


def test_bad_updates_change_nothing(fresh: Callable[[], HybridRecommender]) -> None:
    rec = fresh()
    items_before, vecs_before = rec.items_.copy(), rec.item_vectors_.copy()
    known = str(rec.item_ids_.external_ids[0])
    with pytest.raises(UnknownIdError, match="ghost"):
        rec.update_items(pd.DataFrame({"item_id": [known, "ghost"], "price": [1.0, 2.0]}))
    with pytest.raises(DataValidationError):
        rec.update_items(pd.DataFrame({"item_id": [known, known], "price": [1.0, 2.0]}))
    with pytest.raises(DataValidationError, match="no text"):
        rec.update_items(
            pd.DataFrame(
                {
                    "item_id": [known],
                    "title": [""],
                    "description": [""],
                    "category": [""],
                    "price": [np.nan],
                }
            )
        )
    pd.testing.assert_frame_equal(rec.items_, items_before)
    assert np.array_equal(rec.item_vectors_, vecs_before)


def test_an_update_survives_save_and_load(fresh: Callable[[], HybridRecommender], tmp_path) -> None:
    rec = fresh()
    rec.taste_weight_ = 0.3  # let the users' content tastes count in their scores
    user = str(rec.user_ids_.external_ids[0])
    item = str(rec.user_history(user)["item_id"].iloc[0])  # in the user's own history
    rec.recommend([user], k=10)  # the user's vector and taste are cached now
    rec.update_items(pd.DataFrame({"item_id": [item], "description": ["Now about jazz piano."]}))
    back = HybridRecommender.load(rec.save(tmp_path / "m"), encoder=HashingEncoder(256))
    code = rec.item_ids_.to_internal([item])[0]
    assert back.items_.iloc[code]["description"] == "Now about jazz piano."
    assert np.allclose(back.item_vectors_, rec.item_vectors_)
    # computed afresh by the loaded copy: the cached user state was refreshed too
    everything = [str(i) for i in rec.item_ids_.external_ids]
    np.testing.assert_allclose(
        rec.score([user], everything), back.score([user], everything), atol=1e-5
    )


def test_a_change_read_from_csv_keeps_a_numeric_column_numeric(
    fresh: Callable[[], HybridRecommender], tmp_path
) -> None:
    """The model was fitted from a DataFrame (price is float); the change comes from a CSV
    (price is text). Mixed in one column, it broke saving and garbled the catalogue."""
    from hybrid_rec.data.io import read_table

    rec = fresh()
    item = str(rec.item_ids_.external_ids[4])
    path = tmp_path / "changed.csv"
    pd.DataFrame({"item_id": [item], "price": [3.25]}).to_csv(path, index=False)
    assert read_table(path)["price"].dtype == np.float64  # a CSV's numbers are numbers now
    changed = read_table(path).astype({"price": str})  # text, as a CSV read as text gives it
    rec.update_items(changed)
    assert rec.items_["price"].dtype == np.float64 and rec.items_.iloc[4]["price"] == 3.25
    back = HybridRecommender.load(rec.save(tmp_path / "m"), encoder=HashingEncoder(256))
    assert back.items_["price"].dtype == np.float64
    pd.testing.assert_frame_equal(back.items_, rec.items_.reset_index(drop=True))
    cheap = back.recommend(["x"], k=300, unknown_users="popular", filters={"price": ("<", 3.3)})
    assert item in set(cheap["item_id"])

    pd.DataFrame({"item_id": [item], "price": ["cheap"]}).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="price is numeric in this catalogue"):
        rec.update_items(read_table(path))
    assert rec.items_.iloc[4]["price"] == 3.25


def test_numbers_join_a_text_column_as_text(fresh: Callable[[], HybridRecommender]) -> None:
    rec = fresh()
    item = str(rec.item_ids_.external_ids[2])
    rec.update_items(pd.DataFrame({"item_id": [item], "category": [1995.0]}))
    assert rec.items_.iloc[2]["category"] == "1995"
    assert all(isinstance(v, str) for v in rec.items_["category"])


def test_a_list_column_survives_a_text_change_and_a_save(
    fresh: Callable[[], HybridRecommender], tmp_path
) -> None:
    """A catalogue from a DataFrame may hold list cells; a CSV change brings "a|b" text.
    Saved, every list used to become "['space' 'gift']" and match no filter."""
    rec = fresh()
    rec.items_["tags"] = [[c, "gift"] for c in rec.items_["category"]]
    item = str(rec.item_ids_.external_ids[0])
    rec.update_items(pd.DataFrame({"item_id": [item], "tags": ["gift|sale"]}))
    back = HybridRecommender.load(rec.save(tmp_path / "m"), encoder=HashingEncoder(256))
    assert back.items_["tags"].iloc[1] == f"{rec.items_['category'].iloc[1]}|gift"
    gifts = back.recommend(["x"], k=300, unknown_users="popular", filters={"tags": "gift"})
    assert len(gifts) == len(back.item_ids_)
    sale = back.recommend(["x"], k=5, unknown_users="popular", filters={"tags": "sale"})
    assert sale["item_id"].tolist() == [item]


def test_a_whole_number_column_keeps_its_type(fresh: Callable[[], HybridRecommender]) -> None:
    rec = fresh()
    rec.items_["year"] = pd.array(np.arange(len(rec.items_)) + 1900, dtype="Int64")
    item = str(rec.item_ids_.external_ids[1])
    rec.update_items(pd.DataFrame({"item_id": [item], "year": ["2001"]}))  # as a CSV gives it
    assert rec.items_["year"].dtype == "Int64" and rec.items_.iloc[1]["year"] == 2001


def test_numbers_of_another_dtype_keep_the_columns_type_unless_they_do_not_fit(
    fresh: Callable[[], HybridRecommender],
) -> None:
    """An Int64 year became Float64 for the whole catalogue (so titles read "(1995.0)")
    when an update or an add brought a blank year, or years as floats (JSON lines);
    and 3.7 joining an int64 stock was cut to 3."""
    rec = fresh()
    rec.items_["year"] = pd.array(np.arange(len(rec.items_)) + 1900, dtype="Int64")
    rec.items_["stock"] = np.arange(len(rec.items_), dtype=np.int64)
    first, second = (str(i) for i in rec.item_ids_.external_ids[:2])
    rec.update_items(
        pd.DataFrame({"item_id": [first, second], "year": pd.array([1996, None], dtype="Int64")})
    )
    rec.add_items(
        pd.DataFrame({"item_id": ["n1", "n2"], "title": ["Orbit", "Drift"], "year": [2020.0, None]})
    )
    assert rec.items_["year"].dtype == "Int64"
    assert rec.items_["year"].iloc[[0, 1, -2]].tolist() == [1996, pd.NA, 2020]
    assert rec.items_["year"].iloc[-1] is pd.NA
    rec.update_items(pd.DataFrame({"item_id": [first], "stock": ["3.7"]}))
    assert rec.items_["stock"].iloc[0] == pytest.approx(3.7)
    rec.update_items(pd.DataFrame({"item_id": [second], "stock": [2.5]}))
    assert rec.items_["stock"].iloc[1] == pytest.approx(2.5)


def test_dates_given_as_text_join_a_date_column_as_dates(
    fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    """A date column updated from a CSV became text (object, then str after a save), so
    date filters compared strings or refused the column."""
    rec = fresh()
    rec.items_["released"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
        np.arange(len(rec.items_)), unit="D"
    )
    dtype = rec.items_["released"].dtype
    first, second = (str(i) for i in rec.item_ids_.external_ids[:2])
    rec.update_items(pd.DataFrame({"item_id": [first, second], "released": ["2031-05-01", " "]}))
    rec.add_items(pd.DataFrame({"item_id": ["n1"], "title": ["Orbit"], "released": ["2032-01-02"]}))
    back = HybridRecommender.load(rec.save(tmp_path / "m"), encoder=HashingEncoder(256))
    for model in (rec, back):
        assert model.items_["released"].dtype == dtype
        assert model.items_["released"].iloc[1] is pd.NaT
        late = model.recommend(
            ["x"], k=5, unknown_users="popular", filters={"released": (">", "2030-12-31")}
        )
        assert sorted(late["item_id"]) == sorted([first, "n1"])
    with pytest.raises(DataValidationError, match=r"released holds dates.*'someday'"):
        rec.update_items(pd.DataFrame({"item_id": [first], "released": ["someday"]}))
    assert rec.items_["released"].iloc[0] == pd.Timestamp("2031-05-01")


def test_a_change_to_the_catalogue_alone_changes_the_fingerprint(
    clustered: Dataset, small_config: Callable[..., RecommenderConfig], tmp_path: Path
) -> None:
    """With price outside the item text and features, an update of prices changed nothing
    the fingerprint saw: a resumed recommend-batch --filter 'price<8' kept its first
    chunks, whose items were now priced 108 and more."""
    cfg = small_config(epochs=2)
    rec = HybridRecommender(cfg, encoder=HashingEncoder(256))
    rec.fit(clustered.interactions, clustered.items, show_progress=False)
    before = rec._fingerprint()
    again = HybridRecommender.load(rec.save(tmp_path / "m"), encoder=HashingEncoder(256))
    assert again._fingerprint() == before  # stable through a save and a load
    grown = HybridRecommender.load(rec.save(tmp_path / "g"), encoder=HashingEncoder(256))
    grown.add_items(pd.DataFrame({"item_id": ["n1"], "title": ["Orbit"], "text": ["a new one"]}))
    saved = HybridRecommender.load(grown.save(tmp_path / "g2"), encoder=HashingEncoder(256))
    assert saved._fingerprint() == grown._fingerprint()  # a resumed batch job is not refused
    row = rec.items_.index[3]
    rec.items_.loc[row, "price"] = float(rec.items_.loc[row, "price"]) + 100  # nothing else moves
    assert rec._fingerprint() != before
