"""Attribute features: which columns, what each row gets, and the round trip with a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.config import ContentConfig
from hybrid_rec.content import HashingEncoder
from hybrid_rec.content.attributes import AttributeFeatures, attribute_candidates
from hybrid_rec.data.datasets import synthetic, synthetic_new_items
from hybrid_rec.errors import ConfigError, ModelFileError

CATALOGUE = pd.DataFrame(
    {
        "item_id": [f"i{n}" for n in range(8)],
        "title": [f"Item {n}" for n in range(8)],
        "description": ["a long free text about the item that runs on and on " * 2] * 8,
        "genres": ["Drama|War", "Drama", "Comedy", "Comedy|Drama", None, "War", "Solo", "Drama"],
        "brand": ["Acme", "Acme", "Bolt", "Bolt", "Acme", "Bolt", "Acme", "Bolt"],
        "year": ["1990", "1991", "1995", "1996", "2001", "2005", "", "1999"],  # read as text
        "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, np.nan],
        "url": [f"https://x/{n}" for n in range(8)],
    }
)


def test_candidates_are_short_text_and_numbers_not_ids_titles_or_free_text() -> None:
    assert attribute_candidates(CATALOGUE) == ["genres", "brand", "year", "price", "url"]


def test_dates_and_an_article_body_are_no_attributes() -> None:
    # each day a word of its own that no new day's item shares; a body is free text
    items = CATALOGUE[["item_id", "brand"]].assign(
        published=[f"2026-03-{d:02d}T0{d % 3}:30:00+01:00" for d in (1, 1, 2, 2, 3, 3, 4, 4)],
        day=pd.to_datetime(["2026-03-01"] * 4 + ["2026-03-02"] * 4),
        issue=["2026-03-01"] * 4 + [None] * 4,
        body=["Short."] * 8,
    )
    assert attribute_candidates(items) == ["brand"]


def test_fit_keeps_repeated_values_and_buckets_numbers() -> None:
    features = AttributeFeatures.fit(CATALOGUE, ContentConfig(attribute_bins=4))
    by_name = {c.name: c for c in features.columns}
    # url: every value occurs once, so it teaches nothing and is dropped
    assert list(by_name) == ["genres", "brand", "year", "price"]
    assert by_name["genres"].values == ("Drama", "Comedy", "War")  # "Solo" occurs once
    assert by_name["year"].kind == "numeric" and len(by_name["year"].edges) == 3
    assert features.dim == 3 + 2 + 4 + 4


def test_rows_have_unit_blocks_and_the_configured_length() -> None:
    cfg = ContentConfig(attribute_columns=["genres", "brand"], attribute_weight=0.5)
    features = AttributeFeatures.fit(CATALOGUE, cfg)
    x = features.transform(CATALOGUE)
    assert x.shape == (8, 5) and x.dtype == np.float32
    # Drama|War + Acme: the genre block is (1, 0, 1)/sqrt 2, the brand block (1, 0)
    expected = np.array([1 / np.sqrt(2), 0, 1 / np.sqrt(2), 1, 0]) / np.sqrt(2) * 0.5
    np.testing.assert_allclose(x[0], expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 0.5, rtol=1e-6)
    # no genre and an unseen brand: zeros where nothing is known, never NaN
    new = pd.DataFrame({"item_id": ["n"], "genres": [None], "brand": ["Nobody"]})
    assert not features.transform(new).any()
    assert not features.transform(pd.DataFrame({"item_id": ["n"]})).any()  # columns missing


def test_values_match_whatever_their_case() -> None:
    """A new item's TEA / LEAFWELL, or a CSV's true beside a frame's True, got no
    attribute features (and a lower score) because values matched case and all."""
    items = pd.DataFrame(
        {
            "item_id": list("abcdef"),
            "category": ["Tea", "tea", "Coffee", "Coffee", "TEA", "Coffee"],
            "in_stock": [True, False, True, False, True, False],
        }
    )
    features = AttributeFeatures.fit(
        items, ContentConfig(attribute_columns=["category", "in_stock"])
    )
    by_name = {c.name: c for c in features.columns}
    assert by_name["category"].values == ("Coffee", "Tea")  # one value each, as first written
    x = features.transform(items)
    new = pd.DataFrame(
        {"item_id": ["n", "m"], "category": ["TEA ", "coffee"], "in_stock": ["true", "FALSE"]}
    )
    np.testing.assert_array_equal(features.transform(new), x[[0, 3]])
    saved = AttributeFeatures.from_dict(features.to_dict(), source="test")  # as loaded
    np.testing.assert_array_equal(saved.transform(new), x[[0, 3]])


def test_numbers_fall_in_their_bucket_whatever_their_type() -> None:
    cfg = ContentConfig(attribute_columns=["year"], attribute_bins=4)
    features = AttributeFeatures.fit(CATALOGUE, cfg)
    as_text = features.transform(pd.DataFrame({"year": ["1990", "2005", "abc"]}))
    as_number = features.transform(pd.DataFrame({"year": [1990, 2005, np.nan]}))
    np.testing.assert_array_equal(as_text, as_number)
    assert as_text[0].argmax() == 0 and as_text[1].argmax() == 3 and not as_text[2].any()


def test_off_unknown_columns_and_round_trip() -> None:
    assert AttributeFeatures.fit(CATALOGUE, ContentConfig(attribute_weight=0)).dim == 0
    with pytest.raises(ConfigError, match=r"\['colour'\]"):
        AttributeFeatures.fit(CATALOGUE, ContentConfig(attribute_columns=["colour"]))
    features = AttributeFeatures.fit(CATALOGUE, ContentConfig())
    again = AttributeFeatures.from_dict(json.loads(json.dumps(features.to_dict())))
    np.testing.assert_array_equal(again.transform(CATALOGUE), features.transform(CATALOGUE))
    with pytest.raises(ModelFileError, match="not a valid attribute"):
        AttributeFeatures.from_dict({"weight": 1, "columns": [{"name": "x", "kind": "odd"}]})


def test_a_model_places_new_items_with_their_attributes(tmp_path: Path) -> None:
    """New items go through the same attribute features as the catalogue, after a load too."""
    data = synthetic(n_users=120, n_items=160, n_clusters=4, interactions_per_user=15, seed=3)
    cfg = RecommenderConfig()
    cfg.model.epochs, cfg.model.dim = 2, 16
    rec = HybridRecommender(cfg, encoder=HashingEncoder(64)).fit(
        data.interactions, data.items, show_progress=False
    )
    assert [c.name for c in rec.attributes_.columns] == ["category", "price"]
    assert rec.content_.shape[1] == 64 + rec.attributes_.dim
    new = synthetic_new_items(3, cluster=1, seed=8, start_id=90_000)
    reach = rec.score_cold_items(new, k=5)
    rec.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["encoder_dim"] == 64 and "attributes.json" in manifest["files"]
    loaded = HybridRecommender.load(tmp_path / "m", encoder=HashingEncoder(64))
    pd.testing.assert_frame_equal(loaded.score_cold_items(new, k=5), reach)
    loaded.add_items(new)
    code = loaded.item_ids_.to_internal([str(new["item_id"].iloc[0])])[0]
    expected = rec.attributes_.transform(new.iloc[:1])[0]
    np.testing.assert_allclose(loaded.content_[code, 64:], expected)
    taste = loaded.recommend_for_new_user(text="a quiet story", k=3)  # a padded text query
    assert len(taste) == 3


def test_wide_columns_share_the_width_budget_by_frequency() -> None:
    """Thousands of brands or tags would make the dense part gigabytes at 1M items:
    the whole part stays within attribute_max_dim, narrow columns keep every value
    and wide ones their most frequent."""
    rng = np.random.default_rng(0)
    n = 3000
    brands = [f"b{int(v)}" for v in rng.zipf(1.3, n) % 700]
    items = pd.DataFrame(
        {
            "item_id": [f"i{r}" for r in range(n)],
            "genre": [f"g{r % 6}" for r in range(n)],
            "brand": brands,
            "seller": [f"s{r % 500}" for r in range(n)],
            "price": rng.uniform(1, 100, n),
        }
    )
    cfg = ContentConfig(attribute_max_dim=64, attribute_bins=8)
    features = AttributeFeatures.fit(items, cfg)
    by_name = {c.name: c for c in features.columns}
    assert features.dim <= 64
    assert by_name["genre"].width == 6 and by_name["price"].width == 8
    assert by_name["brand"].width == by_name["seller"].width == (64 - 6 - 8) // 2
    counts = pd.Series(brands).value_counts()
    top = set(counts.index[counts.to_numpy() > counts.iloc[by_name["brand"].width]])
    assert top <= set(by_name["brand"].values)  # the most frequent are the ones kept
    rows = features.transform(items)
    start = sum(c.width for c in features.columns[: list(by_name).index("brand")])
    block = rows[:, start : start + by_name["brand"].width]
    kept = pd.Series(brands).isin(by_name["brand"].values).to_numpy()
    assert (block[kept] > 0).sum(axis=1).tolist() == [1] * int(kept.sum())
    assert not block[~kept].any()  # a dropped brand adds nothing; its text still does
    wide = AttributeFeatures.fit(items, ContentConfig(attribute_max_dim=4096))
    assert {c.name: c.width for c in wide.columns}["seller"] == 500


def test_lists_written_with_another_separator_are_pointed_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bookshop's "fantasy;thriller;romance" cells became 414 combinations of 20
    subjects, silently; author names written "Last, First" are no list."""
    rng = np.random.default_rng(0)
    subjects = [f"subject{n}" for n in range(20)]
    books = pd.DataFrame(
        {
            "item_id": [f"b{n}" for n in range(300)],
            "subjects": [";".join(rng.choice(subjects, 3, replace=False)) for _ in range(300)],
            "author": [f"Writer{n % 90}, Name{n % 7}" for n in range(300)],
        }
    )
    with caplog.at_level("WARNING", logger="hybrid_rec.content.attributes"):
        features = AttributeFeatures.fit(books, ContentConfig())
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "'subjects' looks like lists separated by ';'" in warned[0]
    assert "list_separator = ';'" in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="hybrid_rec.content.attributes"):
        split = AttributeFeatures.fit(books, ContentConfig(list_separator=";"))
    assert not caplog.records
    width = {c.name: c.width for c in split.columns}
    assert width["subjects"] == 20  # the values themselves, not their combinations
    # unsplit, only the few combinations that repeat were features
    assert {c.name: c.width for c in features.columns}.get("subjects", 0) < 20
