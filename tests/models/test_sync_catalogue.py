"""sync_catalogue: today's whole catalogue applied to a fitted model, with no refit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec import HybridRecommender
from hybrid_rec.data.datasets import synthetic_new_items
from hybrid_rec.data.io import read_table
from hybrid_rec.errors import DataValidationError


def _catalogue(rec: HybridRecommender) -> pd.DataFrame:
    return rec.items_.copy()


def test_new_changed_missing_and_returning_items(fresh: Callable[[], HybridRecommender]) -> None:
    rec = fresh()
    today = _catalogue(rec)
    gone, repriced = str(today["item_id"].iloc[0]), str(today["item_id"].iloc[1])
    today = today[today["item_id"] != gone]
    today.loc[today["item_id"] == repriced, "price"] = -3.0
    new = synthetic_new_items(2, cluster=2, seed=5, start_id=70_000)
    today = pd.concat([today, new], ignore_index=True)
    summary = rec.sync_catalogue(today)
    assert (summary.added, summary.updated, summary.removed, summary.restored) == (2, 1, 1, 0)
    assert summary.unchanged == len(rec.item_ids_) - 2 - 1 - 1
    assert rec.removed_items == [gone]
    assert set(new["item_id"]) <= set(map(str, rec.item_ids_.external_ids))
    cheap = rec.recommend(["x"], k=3, unknown_users="popular", filters={"price": ("<", 0)})
    assert cheap["item_id"].tolist() == [repriced]
    # the next day the item is back, and nothing else changed
    back = pd.concat([_catalogue(fresh()).iloc[:1], today], ignore_index=True)
    vectors = rec.item_vectors_.copy()
    again = rec.sync_catalogue(back)
    assert (again.added, again.updated, again.removed, again.restored) == (0, 0, 0, 1)
    assert rec.removed_items == []
    assert np.array_equal(rec.item_vectors_, vectors)


def test_a_catalogue_read_back_from_csv_is_unchanged(
    fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    """Numbers come back from a CSV as text ("7.2", "1995"): not a change."""
    rec = fresh()
    path = tmp_path / "items.csv"
    _catalogue(rec).to_csv(path, index=False)
    summary = rec.sync_catalogue(read_table(path))
    assert summary.updated == 0 and summary.unchanged == len(rec.item_ids_)


def test_a_partial_file_does_not_empty_the_model(fresh: Callable[[], HybridRecommender]) -> None:
    rec = fresh()
    part = _catalogue(rec).head(30)
    with pytest.raises(DataValidationError, match="stop serving 270 of the 300"):
        rec.sync_catalogue(part)
    assert rec.removed_items == []
    kept = rec.sync_catalogue(part, remove_missing=False)
    assert kept.removed == 0 and rec.removed_items == []
    meant = rec.sync_catalogue(part, max_removed_share=1.0)
    assert meant.removed == 270 and len(rec.removed_items) == 270


def test_bad_rows_change_nothing(fresh: Callable[[], HybridRecommender]) -> None:
    rec = fresh()
    today = _catalogue(rec)
    today.loc[0, "price"] = -1.0  # a change that must not be applied alone
    empty = pd.DataFrame({"item_id": ["blank"], "title": [""], "description": [""]})
    items_before = rec.items_.copy()
    with pytest.raises(DataValidationError, match="no text"):
        rec.sync_catalogue(pd.concat([today, empty], ignore_index=True))
    pd.testing.assert_frame_equal(rec.items_, items_before)
    duplicated = pd.concat([today, today.head(1)], ignore_index=True)
    with pytest.raises(DataValidationError):
        rec.sync_catalogue(duplicated)
    pd.testing.assert_frame_equal(rec.items_, items_before)


def test_a_refused_cell_is_named_by_its_row_in_the_file_and_its_item(
    fresh: Callable[[], HybridRecommender],
) -> None:
    """Bad prices in data rows 10 and 200 were reported as "row(s) 0, 1", counted
    within the changed items, with no item id to find them by."""
    rec = fresh()
    today = _catalogue(rec).astype({"price": object})
    today.loc[10, "price"], today.loc[200, "price"] = "n/a", "twelve"
    with pytest.raises(DataValidationError) as err:
        rec.sync_catalogue(today)
    text = str(err.value)
    assert "row(s) 10, 200" in text
    assert f"'n/a' (item {str(today.loc[10, 'item_id'])!r})" in text


def test_a_sync_never_serves_again_what_remove_items_took_out(
    fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    """A shop's export still lists its sold-out products: the nightly sync must not
    undo `remove-items`, only its own removals of items the file had left out."""
    rec = fresh()
    full = _catalogue(rec)
    sold_out, dropped = str(full["item_id"].iloc[0]), str(full["item_id"].iloc[1])
    rec.remove_items([sold_out])
    rec.sync_catalogue(full[full["item_id"] != dropped])
    assert sorted(rec.removed_items) == sorted([sold_out, dropped])
    rec = HybridRecommender.load(rec.save(tmp_path / "m"), encoder=rec.encoder)
    summary = rec.sync_catalogue(full)  # both listed again
    assert summary.restored == 1 and rec.removed_items == [sold_out]
    rec.restore_items([sold_out])
    assert rec.removed_items == []


def test_a_sync_that_fails_midway_changes_nothing(fresh: Callable[[], HybridRecommender]) -> None:
    """Every text is embedded before the first change: an encoder failing on the new
    items leaves the already-embedded price change unapplied too."""
    rec = fresh()
    today = _catalogue(rec)
    today.loc[0, "description"] = "Entirely new words about jazz."
    new = synthetic_new_items(1, cluster=2, seed=5, start_id=90_000)
    items_before, vectors_before = rec.items_.copy(), rec.item_vectors_.copy()
    inner, calls = rec.encoder, []

    class Flaky:
        name, dim = inner.name, inner.dim

        def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
            calls.append(len(texts))
            if len(calls) == 2:
                raise RuntimeError("the encoder fell over")
            return inner.encode(texts, **kwargs)

    rec._encoder = Flaky()
    with pytest.raises(RuntimeError, match="fell over"):
        rec.sync_catalogue(pd.concat([today, new], ignore_index=True))
    pd.testing.assert_frame_equal(rec.items_, items_before)
    assert np.array_equal(rec.item_vectors_, vectors_before)


def test_to_parquet_writes_mixed_columns_as_text_without_garbling(tmp_path: Path) -> None:
    from hybrid_rec.recommender import _to_parquet

    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "tags": [["space", "gift"], "kettle|tea", None],
            "price": [1.5, "2", np.nan],
        }
    )
    _to_parquet(frame, tmp_path / "x.parquet")
    back = pd.read_parquet(tmp_path / "x.parquet")
    assert back["tags"].tolist()[:2] == ["space|gift", "kettle|tea"] and pd.isna(back["tags"][2])
    assert back["price"].tolist()[:2] == ["1.5", "2"] and pd.isna(back["price"][2])


def test_a_file_that_blanks_a_column_does_not_erase_it(
    fresh: Callable[[], HybridRecommender], caplog: pytest.LogCaptureFixture
) -> None:
    """An export with every title empty read as 300 updates and wiped the titles; a
    column renamed in case only was added beside the old one without a word."""
    rec = fresh()
    titles = rec.items_["title"].copy()
    blank = _catalogue(rec).assign(title="")
    with pytest.raises(DataValidationError, match="column 'title' is empty for 300 of the 300"):
        rec.sync_catalogue(blank)
    pd.testing.assert_series_equal(rec.items_["title"], titles)
    few = _catalogue(rec)
    few.loc[few.index[:5], "title"] = None  # a few items really lost their titles
    assert rec.sync_catalogue(few).updated == 5
    renamed = _catalogue(rec).rename(columns={"category": "Category"})
    with caplog.at_level("WARNING", logger="hybrid_rec.recommender"):
        rec.sync_catalogue(renamed)
    assert "differ in case" in caplog.text
    assert rec.sync_catalogue(blank, max_removed_share=1.0).updated == 295
