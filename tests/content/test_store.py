"""Embedding store: incremental sync, identity checks, corruption and write failures."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.content import store as store_mod
from hybrid_rec.content.encoders import HashingEncoder
from hybrid_rec.content.store import EmbeddingStore, SyncSummary
from hybrid_rec.content.text import text_hash
from hybrid_rec.errors import (
    DataValidationError,
    EmbeddingStoreError,
    EncoderError,
    UnknownIdError,
)


def texts_of(n: int, prefix: str = "text") -> pd.Series:
    ids = [f"i{i:03d}" for i in range(n)]
    return pd.Series([f"{prefix} number {i} about topic {i % 5}" for i in range(n)], index=ids)


def new_store(path: Path, enc: Any) -> EmbeddingStore:
    return EmbeddingStore.create(path, enc.name, enc.dim)


def assert_store_matches(store: EmbeddingStore, texts: pd.Series, enc: Any) -> None:
    """Every vector is the encoder's vector of the item's text; ids follow the catalogue."""
    assert store.ids.tolist() == texts.index.tolist()
    expected_hashes = [text_hash(t, enc.name) for t in texts]
    assert store.hashes.tolist() == expected_hashes
    np.testing.assert_array_equal(store.get(texts.index), enc.encode(texts.tolist()))


# ----------------------------------------------------------------------------- sync


def test_first_sync_embeds_everything(tmp_path: Path, hashing: HashingEncoder) -> None:
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(25)
    summary = store.sync(texts, hashing, shard_size=10)
    assert (summary.new, summary.changed, summary.unchanged, summary.removed) == (25, 0, 0, 0)
    assert summary.items_per_second > 0
    assert len(store.shard_files) == 3
    assert_store_matches(store, texts, hashing)
    assert_store_matches(EmbeddingStore.open(tmp_path / "s"), texts, hashing)


def test_only_new_and_changed_items_are_encoded(
    tmp_path: Path, hashing: HashingEncoder, counting: Callable[[Any], Any]
) -> None:
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(30)
    store.sync(texts, hashing, shard_size=8)

    later = texts.drop("i007").copy()
    later["i003"] = "a rewritten text"
    later["i020"] = "another rewrite"
    later["new01"] = "a brand new item"
    spy = counting(hashing)
    summary = store.sync(later, spy, shard_size=8)

    assert sorted(spy.texts) == sorted(["a rewritten text", "another rewrite", "a brand new item"])
    assert (summary.new, summary.changed, summary.unchanged, summary.removed) == (1, 2, 27, 1)
    assert "i007" not in store
    assert_store_matches(store, later, hashing)


def test_an_unchanged_catalogue_encodes_nothing(
    tmp_path: Path, hashing: HashingEncoder, counting: Callable[[Any], Any]
) -> None:
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(12)
    store.sync(texts, hashing)
    spy = counting(hashing)
    summary = store.sync(texts, spy)
    assert spy.calls == 0
    assert (summary.new, summary.changed, summary.unchanged, summary.removed) == (0, 0, 12, 0)
    assert summary.items_per_second == 0.0


def test_keep_removed_keeps_vectors_of_absent_items(
    tmp_path: Path, hashing: HashingEncoder
) -> None:
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(10)
    store.sync(texts, hashing)
    summary = store.sync(texts.iloc[:7], hashing, keep_removed=True)
    assert (summary.removed, summary.kept) == (0, 3)
    assert len(store) == 10
    assert store.ids.tolist()[7:] == ["i007", "i008", "i009"]  # absent ones last
    np.testing.assert_array_equal(store.get(["i009"]), hashing.encode([texts["i009"]]))
    assert store.sync(texts.iloc[:7], hashing).removed == 3
    assert len(store) == 7


def test_the_nightly_new_items_with_keep_removed(tmp_path: Path, hashing: HashingEncoder) -> None:
    """The README's nightly `embed new_items.csv --keep-removed` raised 'assignment
    destination is read-only' (pandas copy-on-write) when it placed the absent items."""
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(45)
    store.sync(texts.iloc[:40], hashing)
    summary = store.sync(texts.iloc[40:], hashing, keep_removed=True)
    assert (summary.new, summary.kept) == (5, 40)
    assert store.ids.tolist() == texts.index[40:].tolist() + texts.index[:40].tolist()
    np.testing.assert_array_equal(store.get(texts.index), hashing.encode(texts.tolist()))


def test_a_file_of_new_items_only_does_not_wipe_the_store(
    tmp_path: Path, hashing: HashingEncoder
) -> None:
    """`embed new.csv --store S` without --keep-removed deleted 1,572 of 1,672 vectors."""
    store = new_store(tmp_path / "s", hashing)
    store.sync(texts_of(40), hashing)
    new_only = texts_of(45).iloc[40:]
    with pytest.raises(EmbeddingStoreError, match=r"delete 40 of the 40 stored.*--keep-removed"):
        store.sync(new_only, hashing)
    assert len(store) == 40  # nothing happened
    assert store.sync(new_only, hashing, keep_removed=True).new == 5 and len(store) == 45
    assert store.sync(texts_of(25), hashing).removed == 20  # under half: a shrinking catalogue
    assert store.sync(new_only, hashing, prune=True).removed == 25 and len(store) == 5


def test_summary_reads_as_one_line() -> None:
    summary = SyncSummary(
        new=12, changed=3, unchanged=3871, removed=1, seconds=1.0, items_per_second=450.2
    )
    assert str(summary) == "new 12 · changed 3 · unchanged 3871 · removed 1 · 450 items/s"
    kept = SyncSummary(0, 0, 5, 0, 1.0, 0.0, kept=2)
    assert str(kept) == "new 0 · changed 0 · unchanged 5 · removed 0 · kept 2 absent · 0 items/s"
    assert summary.to_dict()["new"] == 12


def test_get_keeps_the_requested_order_and_rejects_unknown_ids(
    tmp_path: Path, hashing: HashingEncoder
) -> None:
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(20)
    store.sync(texts, hashing, shard_size=6)
    ids = ["i019", "i000", "i007", "i000"]
    np.testing.assert_array_equal(store.get(ids), hashing.encode(texts[ids].tolist()))
    assert store.get([]).shape == (0, hashing.dim)
    assert store.get("i001").shape == (1, hashing.dim)
    with pytest.raises(UnknownIdError, match="nope"):
        store.get(["i001", "nope"])
    ids_all, vectors = store.get_all()
    assert ids_all.tolist() == texts.index.tolist()
    assert vectors.shape == (20, hashing.dim)


def test_duplicate_ids_and_non_string_texts_are_rejected(
    tmp_path: Path, hashing: HashingEncoder
) -> None:
    store = new_store(tmp_path / "s", hashing)
    with pytest.raises(DataValidationError, match="duplicate item id"):
        store.sync(pd.Series(["a", "b"], index=["x", "x"]), hashing)
    with pytest.raises(DataValidationError, match="must be strings"):
        store.sync(pd.Series(["a", 3.0], index=["x", "y"]), hashing)
    with pytest.raises(DataValidationError, match="Series"):
        store.sync(["a"], hashing)  # type: ignore[arg-type]
    assert len(store) == 0


def test_an_encoder_returning_nan_stores_nothing(tmp_path: Path, hashing: HashingEncoder) -> None:
    class Broken(HashingEncoder):
        def encode(self, texts: Any, **kwargs: Any) -> np.ndarray:
            return np.full((len(texts), self.dim), np.nan, dtype=np.float32)

    broken = Broken(32)
    store = new_store(tmp_path / "s", broken)
    with pytest.raises(EncoderError, match="NaN"):
        store.sync(texts_of(5), broken)
    assert len(EmbeddingStore.open(tmp_path / "s")) == 0


def test_many_rewrites_are_compacted(tmp_path: Path, hashing: HashingEncoder) -> None:
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(40)
    for round_ in range(6):
        texts = texts.map(lambda t, r=round_: f"{t} v{r}")
        store.sync(texts, hashing, shard_size=16)
    on_disk = sorted((tmp_path / "s" / "shards").iterdir())
    assert on_disk == store.shard_files
    assert sum(np.load(p).shape[0] for p in on_disk) <= 2 * len(texts)
    assert_store_matches(store, texts, hashing)


def test_a_shrunk_catalogue_is_compacted(tmp_path: Path, hashing: HashingEncoder) -> None:
    """Three items left of forty, one in each shard: the sync rewrites them into one."""
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(40)
    store.sync(texts, hashing, shard_size=16)
    left = texts[["i000", "i016", "i032"]]
    assert store.sync(left, hashing, shard_size=16, prune=True).removed == 37
    assert len(store.shard_files) == 1
    assert sorted((tmp_path / "s" / "shards").iterdir()) == store.shard_files
    assert np.load(store.shard_files[0]).shape == (3, hashing.dim)
    assert_store_matches(store, left, hashing)
    assert_store_matches(EmbeddingStore.open(tmp_path / "s"), left, hashing)


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path: Path, hashing: HashingEncoder) -> None:
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(10)
    store.sync(texts, hashing)
    stray = tmp_path / "s" / "shards" / "000099.npy"
    np.save(stray, np.zeros((2, hashing.dim), dtype=np.float32))
    temp = tmp_path / "s" / "shards" / ".000100.npy.abcd.tmp"
    temp.write_bytes(b"partial")
    store.sync(texts, hashing)
    assert not stray.exists() and not temp.exists()
    assert_store_matches(store, texts, hashing)


# ----------------------------------------------------------------------------- identity


def test_another_encoder_is_refused(tmp_path: Path, hashing: HashingEncoder) -> None:
    store = new_store(tmp_path / "s", hashing)
    store.sync(texts_of(5), hashing)
    other = HashingEncoder(16)
    with pytest.raises(EmbeddingStoreError, match=r"hashing-v1-d32.*hashing-v1-d16.*rebuild"):
        store.sync(texts_of(5), other)
    with pytest.raises(EmbeddingStoreError, match="rebuild"):
        EmbeddingStore.create(tmp_path / "s", other.name, other.dim)
    with pytest.raises(EmbeddingStoreError, match="dim 16"):
        EmbeddingStore.open(tmp_path / "s", encoder_name=hashing.name, dim=16)
    assert len(EmbeddingStore.open(tmp_path / "s")) == 5  # untouched


def test_rebuild_replaces_the_vectors_of_another_encoder(
    tmp_path: Path, hashing: HashingEncoder
) -> None:
    new_store(tmp_path / "s", hashing).sync(texts_of(5), hashing)
    other = HashingEncoder(16)
    store = EmbeddingStore.create(tmp_path / "s", other.name, other.dim, rebuild=True)
    assert len(store) == 0
    assert store.sync(texts_of(5), other).new == 5
    assert_store_matches(EmbeddingStore.open(tmp_path / "s"), texts_of(5), other)


def test_another_library_version_is_refused_unless_rebuilding(
    tmp_path: Path, hashing: HashingEncoder
) -> None:
    EmbeddingStore.create(tmp_path / "s", hashing.name, hashing.dim, library_version="0.0.1")
    with pytest.raises(EmbeddingStoreError, match=r"hybrid_rec 0\.0\.1"):
        EmbeddingStore.open(tmp_path / "s")
    with pytest.raises(EmbeddingStoreError, match="rebuild"):
        new_store(tmp_path / "s", hashing)
    store = EmbeddingStore.create(tmp_path / "s", hashing.name, hashing.dim, rebuild=True)
    assert store.info.library_version == store_mod.library_version()


def test_a_patch_release_reads_the_store(tmp_path: Path, hashing: HashingEncoder) -> None:
    """Every patch upgrade used to invalidate every store (models accept major.minor)."""
    major, minor, *_ = store_mod.library_version().split(".")
    written = EmbeddingStore.create(
        tmp_path / "s", hashing.name, hashing.dim, library_version=f"{major}.{minor}.999"
    )
    written.sync(texts_of(3), hashing)
    assert len(EmbeddingStore.open(tmp_path / "s")) == 3
    assert len(new_store(tmp_path / "s", hashing)) == 3


def test_opening_a_missing_store_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingStoreError, match=r"no embedding store here"):
        EmbeddingStore.open(tmp_path / "nothing")


def test_a_garbled_store_description_is_reported(tmp_path: Path, hashing: HashingEncoder) -> None:
    new_store(tmp_path / "s", hashing).sync(texts_of(3), hashing)
    (tmp_path / "s" / "store.json").write_text("{not json")
    with pytest.raises(EmbeddingStoreError, match=r"store\.json"):
        EmbeddingStore.open(tmp_path / "s")
    store = EmbeddingStore.create(tmp_path / "s", hashing.name, hashing.dim, rebuild=True)
    assert len(store) == 0


def test_a_manifest_of_another_encoder_is_caught(tmp_path: Path, hashing: HashingEncoder) -> None:
    new_store(tmp_path / "s", hashing).sync(texts_of(3), hashing)
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    meta["encoder"] = "someone-else"
    (tmp_path / "s" / "store.json").write_text(json.dumps(meta))
    with pytest.raises(EmbeddingStoreError, match="manifest written for encoder"):
        EmbeddingStore.open(tmp_path / "s")


# ----------------------------------------------------------------------------- corruption


@pytest.fixture
def filled(tmp_path: Path, hashing: HashingEncoder) -> tuple[EmbeddingStore, pd.Series]:
    store = new_store(tmp_path / "s", hashing)
    texts = texts_of(30)
    store.sync(texts, hashing, shard_size=10)
    return store, texts


def test_a_truncated_shard_is_named(filled: tuple[EmbeddingStore, pd.Series]) -> None:
    store, _ = filled
    shard = store.shard_files[1]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(EmbeddingStoreError, match=f"{shard}.*truncated or corrupt"):
        store.get(["i015"])
    with pytest.raises(EmbeddingStoreError, match=str(shard)):
        EmbeddingStore.open(store.directory).verify()
    np.testing.assert_array_equal(store.get(["i001"]).shape, (1, store.dim))  # others still read


def test_flipped_bytes_in_a_shard_are_caught(filled: tuple[EmbeddingStore, pd.Series]) -> None:
    store, _ = filled
    shard = store.shard_files[0]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(EmbeddingStoreError, match=str(shard)):
        store.get(["i000"])


def test_a_missing_shard_is_named(filled: tuple[EmbeddingStore, pd.Series]) -> None:
    store, _ = filled
    shard = store.shard_files[2]
    shard.unlink()
    with pytest.raises(EmbeddingStoreError, match=f"{shard}.*missing"):
        store.get(["i029"])


def test_repair_forgets_a_corrupt_shard_and_sync_re_embeds_it(
    filled: tuple[EmbeddingStore, pd.Series],
    hashing: HashingEncoder,
    counting: Callable[[Any], Any],
) -> None:
    store, texts = filled
    bad = store.shard_files[1]
    bad.write_bytes(b"\x93NUMPY garbage")
    assert store.verify(repair=True) == [bad]
    assert len(store) == 20
    spy = counting(hashing)
    assert store.sync(texts, spy, shard_size=10).new == 10
    assert spy.calls == 1
    store.verify()
    assert_store_matches(store, texts, hashing)


def test_a_reader_follows_a_writer_that_compacted_its_shards_away(
    filled: tuple[EmbeddingStore, pd.Series], hashing: HashingEncoder
) -> None:
    """A reader opened before another process compacted the store (which deletes the
    shards the reader's manifest names) reads the new shards, not a false "missing"."""
    store, texts = filled
    reader = EmbeddingStore.open(store.directory)
    old = set(reader.shard_files)
    store.compact(shard_size=7)
    assert not old & set(store.shard_files)
    assert not any(path.exists() for path in old)
    np.testing.assert_array_equal(reader.get(texts.index), hashing.encode(texts.tolist()))
    found, vectors = EmbeddingStore.open(store.directory).find(["i003"], [texts["i003"]])
    assert found.tolist() == [True]
    store.compact(shard_size=11)
    assert reader.verify() == []
    store.compact(shard_size=13)
    found, again = reader.find(["i003", "i004"], [texts["i003"], "changed"])
    assert found.tolist() == [True, False]
    np.testing.assert_array_equal(again, vectors)


def test_repair_works_on_the_manifest_committed_now(
    filled: tuple[EmbeddingStore, pd.Series], hashing: HashingEncoder
) -> None:
    """A repair from a handle opened before another writer's sync keeps that sync's
    items: it must not commit its own stale manifest minus the bad shard."""
    store, texts = filled
    stale = EmbeddingStore.open(store.directory)
    later = pd.concat([texts, pd.Series({"new01": "a brand new item"})])
    store.sync(later, hashing, shard_size=10)
    bad = store.shard_files[0]
    bad.write_bytes(b"\x93NUMPY garbage")
    assert stale.verify(repair=True) == [bad]
    reopened = EmbeddingStore.open(store.directory)
    assert "new01" in reopened and "new01" in stale
    assert len(reopened) == len(later) - 10
    reopened.verify()


def test_a_bad_shard_is_still_an_error_for_a_reader_whose_manifest_is_current(
    filled: tuple[EmbeddingStore, pd.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = filled
    loads = 0
    real = EmbeddingStore._load_manifest

    def counted(self: EmbeddingStore) -> None:
        nonlocal loads
        loads += 1
        real(self)

    monkeypatch.setattr(EmbeddingStore, "_load_manifest", counted)
    store.shard_files[0].unlink()
    with pytest.raises(EmbeddingStoreError, match="missing"):
        store.get(["i000"])
    assert loads == 0  # no pointless re-reading of an unchanged manifest


def test_an_unreadable_manifest_is_named(filled: tuple[EmbeddingStore, pd.Series]) -> None:
    store, _ = filled
    manifest = store.directory / "manifest.parquet"
    manifest.write_bytes(b"PAR1 not really")
    with pytest.raises(EmbeddingStoreError, match=r"manifest\.parquet.*unreadable"):
        EmbeddingStore.open(store.directory)
    rebuilt = EmbeddingStore.create(store.directory, store.encoder_name, store.dim, rebuild=True)
    assert len(rebuilt) == 0
    assert not list((store.directory / "shards").iterdir())


# ----------------------------------------------------------------------------- write failures


def enospc(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_a_shard_leaves_the_store_valid(
    filled: tuple[EmbeddingStore, pd.Series],
    hashing: HashingEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, texts = filled
    later = pd.concat([texts, texts_of(45, prefix="more").iloc[30:]])
    with monkeypatch.context() as patch:
        patch.setattr(np, "save", enospc)
        with pytest.raises(EmbeddingStoreError, match=r"disk is full.*unchanged since its last"):
            store.sync(later, hashing, shard_size=10)
    reopened = EmbeddingStore.open(store.directory)
    reopened.verify()
    assert_store_matches(reopened, texts, hashing)
    assert not list(store.directory.rglob("*.tmp"))
    assert reopened.sync(later, hashing, shard_size=10).new == 15  # the rerun finishes the job
    assert_store_matches(reopened, later, hashing)


def test_disk_full_at_a_later_commit_keeps_what_was_committed(
    filled: tuple[EmbeddingStore, pd.Series],
    hashing: HashingEncoder,
    monkeypatch: pytest.MonkeyPatch,
    counting: Callable[[Any], Any],
) -> None:
    store, texts = filled
    later = pd.concat([texts, texts_of(70, prefix="more").iloc[30:]])  # 40 new: 4 shards
    real_replace = os.replace
    calls = {"n": 0}

    def replace_then_fail(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 4:  # two shards and their manifests go through, then the disk is full
            enospc()
        real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace_then_fail)
        with pytest.raises(EmbeddingStoreError, match="disk is full"):
            store.sync(later, hashing, shard_size=10)
    reopened = EmbeddingStore.open(store.directory)
    reopened.verify()
    assert len(reopened) == 50
    kept = later[reopened.ids]
    assert_store_matches(reopened, kept, hashing)
    spy = counting(hashing)
    assert reopened.sync(later, spy, shard_size=10).new == 20
    assert len(spy.texts) == 20
    assert_store_matches(reopened, later, hashing)


def test_permission_denied_is_a_store_error(
    tmp_path: Path, hashing: HashingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def eacces(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(Path, "mkdir", eacces)
    with pytest.raises(EmbeddingStoreError, match="permission denied"):
        new_store(tmp_path / "locked", hashing)


def test_a_second_writer_is_turned_away(tmp_path: Path, hashing: HashingEncoder) -> None:
    store = new_store(tmp_path / "s", hashing)
    with (tmp_path / "s" / ".lock").open("a") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(EmbeddingStoreError, match="another process is writing"):
            store.sync(texts_of(3), hashing)
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
    assert store.sync(texts_of(3), hashing).new == 3


def test_a_second_writer_given_lock_wait_waits_for_the_first(
    tmp_path: Path, hashing: HashingEncoder
) -> None:
    import threading

    store = new_store(tmp_path / "s", hashing)
    with (tmp_path / "s" / ".lock").open("a") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        store.lock_wait = 0.2
        with pytest.raises(EmbeddingStoreError, match=r"still was after 0\.2 s.*longer --wait"):
            store.sync(texts_of(3), hashing)
        store.lock_wait = 30
        release = threading.Timer(0.5, fcntl.flock, (other.fileno(), fcntl.LOCK_UN))
        release.start()
        summary = store.sync(texts_of(3), hashing)  # waited for the release
        release.join()
    assert summary.new == 3


def test_shards_are_plain_npy_without_pickle(filled: tuple[EmbeddingStore, pd.Series]) -> None:
    store, _ = filled
    for shard in store.shard_files:
        array = np.load(shard, allow_pickle=False)
        assert array.dtype == np.float32
        assert array.shape[1] == store.dim


def test_a_large_store_commits_every_few_shards_and_a_rerun_finishes_the_rest(
    filled: tuple[EmbeddingStore, pd.Series],
    hashing: HashingEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rewriting the whole manifest after every shard made a full sync quadratic (27 s of
    bookkeeping at 200,000 items); a large store commits every rows // COMMIT_ROWS
    shards instead, and what a crash leaves uncommitted is embedded again by a rerun."""
    store, texts = filled  # 30 vectors
    monkeypatch.setattr(store_mod, "COMMIT_ROWS", 15, raising=False)
    commits: list[int] = []
    real = EmbeddingStore._commit

    def counted(self: EmbeddingStore, manifest: pd.DataFrame, shards: Any) -> None:
        commits.append(len(manifest))
        real(self, manifest, shards)

    monkeypatch.setattr(EmbeddingStore, "_commit", counted)
    later = pd.concat([texts, texts_of(90, prefix="more").iloc[30:]])  # 60 new: 6 shards
    assert store.sync(later, hashing, shard_size=10).new == 60
    # 30 stored: a commit after 3 shards (60); then after 5 more would be due: the end (90)
    assert commits == [60, 90]
    assert_store_matches(EmbeddingStore.open(store.directory), later, hashing)

    commits.clear()
    even_more = pd.concat([later, texts_of(130, prefix="again").iloc[90:]])
    calls = {"n": 0}
    real_encode = hashing.encode

    def crash_on_the_third(texts: Any, **kwargs: Any) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed between commits
        return real_encode(texts, **kwargs)

    monkeypatch.setattr(hashing, "encode", crash_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        store.sync(even_more, hashing, shard_size=10)
    assert commits == []  # 90 stored: six shards between commits, two were done
    reopened = EmbeddingStore.open(store.directory)
    reopened.verify()
    assert_store_matches(reopened, later, hashing)  # the last commit, intact
    monkeypatch.setattr(hashing, "encode", real_encode)
    assert reopened.sync(even_more, hashing, shard_size=10).new == 40
    assert_store_matches(reopened, even_more, hashing)
    assert {p.name for p in (store.directory / "shards").iterdir()} == {
        p.name for p in reopened.shard_files
    }
