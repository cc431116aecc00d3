"""remove_items / restore_items: items taken out of service without a refit."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from hybrid_rec import HybridRecommender
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import Dataset, synthetic_new_items
from hybrid_rec.errors import ModelFileError, UnknownIdError
from hybrid_rec.persistence import sha256_file


def _top_items(rec: HybridRecommender, user: str, k: int = 10) -> list[str]:
    return rec.recommend([user], k=k)["item_id"].tolist()


def test_a_removed_item_is_served_nowhere(
    clustered: Dataset, fresh: Callable[[], HybridRecommender]
) -> None:
    rec = fresh()
    user = str(clustered.interactions["user_id"].iloc[0])
    gone = _top_items(rec, user, 3)
    liked = clustered.interactions.loc[clustered.interactions.user_id == user, "item_id"]
    assert rec.remove_items(gone) == 3
    assert sorted(rec.removed_items) == sorted(gone)
    everywhere = [
        rec.recommend([user], k=50)["item_id"],
        rec.recommend([user], k=5, candidates=gone + _top_items(rec, user, 10))["item_id"],
        rec.recommend(["nobody"], k=50, unknown_users="popular")["item_id"],
        rec.recommend_for_new_user(liked_items=list(liked[:3]), k=50)["item_id"],
        rec.similar_items([str(liked.iloc[0])], k=50)["similar_item_id"],
        rec.recommend_batch([user], k=50)["item_id"],
    ]
    for served in everywhere:
        assert len(served) and not set(gone) & set(served)
    # still in the model: scored and described on request
    assert np.isfinite(rec.score([user], gone)).all()
    assert rec.item_info(gone[0])["removed"] is True


def test_restore_serves_it_again_and_counts_only_changes(
    clustered: Dataset, fresh: Callable[[], HybridRecommender]
) -> None:
    rec = fresh()
    user = str(clustered.interactions["user_id"].iloc[0])
    before = rec.recommend([user], k=10)
    top = str(before["item_id"].iloc[0])
    assert rec.remove_items(top) == 1
    assert rec.remove_items([top, top]) == 0  # a retried job changes nothing
    assert top not in _top_items(rec, user)
    assert rec.restore_items([top]) == 1
    assert rec.restore_items([top]) == 0
    assert rec.removed_items == []
    after = rec.recommend([user], k=10)
    assert after["item_id"].tolist() == before["item_id"].tolist()
    np.testing.assert_allclose(after["score"], before["score"])


def test_unknown_ids_remove_nothing(fresh: Callable[[], HybridRecommender]) -> None:
    rec = fresh()
    known = str(rec.item_ids_.external_ids[0])
    with pytest.raises(UnknownIdError, match="no-such-item"):
        rec.remove_items([known, "no-such-item"])
    assert rec.removed_items == []


def test_k_is_capped_at_the_items_left(
    fresh: Callable[[], HybridRecommender], caplog: pytest.LogCaptureFixture
) -> None:
    rec = fresh()
    n = len(rec.item_ids_)
    rec.remove_items([str(i) for i in rec.item_ids_.external_ids[: n - 5]])
    with caplog.at_level("WARNING", logger="hybrid_rec"):
        out = rec.recommend(["nobody"], k=8, unknown_users="popular")
    assert "larger than the 5 candidate items" in caplog.text
    assert sorted(out["item_id"]) == sorted(map(str, rec.item_ids_.external_ids[n - 5 :]))


def test_removal_survives_save_and_load(
    clustered: Dataset, fresh: Callable[[], HybridRecommender], tmp_path
) -> None:
    rec = fresh()
    user = str(clustered.interactions["user_id"].iloc[0])
    gone = _top_items(rec, user, 2)
    rec.remove_items(gone)
    path = rec.save(tmp_path / "m")
    back = HybridRecommender.load(path, encoder=HashingEncoder(256))
    assert sorted(back.removed_items) == sorted(gone)
    assert back.recommend([user], k=20).equals(rec.recommend([user], k=20))
    # a model saved before removal existed loads with nothing removed
    (path / "removed.npy").unlink()
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"].pop("removed.npy")
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert HybridRecommender.load(path, encoder=HashingEncoder(256)).removed_items == []


def test_a_removed_file_of_the_wrong_shape_is_a_clear_error(
    fresh: Callable[[], HybridRecommender], tmp_path
) -> None:
    path = fresh().save(tmp_path / "m")
    np.save(path / "removed.npy", np.zeros(3, dtype=bool))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["removed.npy"] = sha256_file(path / "removed.npy")
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"removed\.npy"):
        HybridRecommender.load(path, encoder=HashingEncoder(256))


def test_add_items_grows_the_removed_mask(fresh: Callable[[], HybridRecommender]) -> None:
    rec = fresh()
    rec.remove_items([str(rec.item_ids_.external_ids[0])])
    new = synthetic_new_items(2, cluster=1, seed=3, start_id=30_000)
    rec.add_items(new)
    assert len(rec.removed_) == len(rec.item_ids_)
    assert rec.removed_items == [str(rec.item_ids_.external_ids[0])]
