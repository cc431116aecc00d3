from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybrid_rec.config import IndexConfig
from hybrid_rec.errors import ModelFileError
from hybrid_rec.index import VectorIndex, choose_factory


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact(q: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


def test_factory_by_size() -> None:
    cfg = IndexConfig(exact_max_items=1000)
    assert choose_factory(10, cfg) == "Flat"
    assert choose_factory(10_000, cfg).startswith("HNSW32")
    assert choose_factory(10, IndexConfig(factory="IVF4,Flat")) == "IVF4,Flat"


@pytest.mark.parametrize("factory", ["Flat", "HNSW32,Flat", "IVF16,Flat"])
def test_contract_recall_against_exact(factory: str) -> None:
    x, q = _unit(3000, 32, 0), _unit(50, 32, 1)
    index = VectorIndex(32, IndexConfig(hnsw_ef_search=128), factory=factory).build(x)
    if factory.startswith("IVF"):
        index._index.nprobe = 16  # type: ignore[union-attr]
    scores, ids = index.search(q, 20)
    truth = _exact(q, x, 20)
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(ids, truth, strict=True)])
    assert recall >= (1.0 if factory == "Flat" else 0.95)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_exclusions_allowed_mask_and_padding() -> None:
    x, q = _unit(200, 16, 2), _unit(2, 16, 3)
    index = VectorIndex(16).build(x)
    top = _exact(q, x, 5)
    _, ids = index.search(q, 5, exclude=[top[0, :2], np.array([], dtype=np.int64)])
    assert not set(top[0, :2]) & set(ids[0])
    assert ids[1].tolist() == top[1].tolist()
    allowed = np.zeros(200, dtype=bool)
    allowed[[3, 7, 9]] = True
    scores, ids = index.search(q, 5, allowed=allowed)
    assert set(ids[0, :3]) == {3, 7, 9} and (ids[:, 3:] == -1).all()
    assert np.isneginf(scores[:, 3:]).all()


def test_add_and_update_with_hnsw_overrides() -> None:
    x = _unit(500, 16, 4)
    index = VectorIndex(16, factory="HNSW16,Flat").build(x)
    new_ids = index.add(_unit(3, 16, 5))
    assert new_ids.tolist() == [500, 501, 502] and index.ntotal == 503
    target = _unit(1, 16, 6)
    index.update(np.array([7]), target)  # item 7 now points exactly at the query
    _, ids = index.search(target, 3)
    assert ids[0, 0] == 7
    assert (ids[0] == 7).sum() == 1  # the stale entry is not returned twice


def test_save_load_roundtrip(tmp_path: Path) -> None:
    x, q = _unit(100, 8, 7), _unit(3, 8, 8)
    index = VectorIndex(8).build(x)
    index.save(tmp_path / "i.faiss")
    loaded = VectorIndex.load(tmp_path / "i.faiss", x)
    assert np.array_equal(index.search(q, 5)[1], loaded.search(q, 5)[1])
    with pytest.raises(ModelFileError, match="holds"):
        VectorIndex.load(tmp_path / "i.faiss", x[:50])
    (tmp_path / "bad.faiss").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="cannot read"):
        VectorIndex.load(tmp_path / "bad.faiss", x)


@pytest.mark.parametrize("factory", ["Flat", "HNSW16,Flat", None])
def test_a_loaded_index_with_updates_saves_again(tmp_path: Path, factory: str | None) -> None:
    """Load, update, save: the fold-in rebuild needs a real factory, not a placeholder."""
    x = _unit(300, 8, 12)
    VectorIndex(8, factory=factory or "Flat").build(x).save(tmp_path / "a.faiss")
    loaded = VectorIndex.load(tmp_path / "a.faiss", x, factory=factory)
    target = _unit(1, 8, 13)
    loaded.update(np.array([5]), target)
    loaded.save(tmp_path / "b.faiss")  # raised a raw FAISS RuntimeError before
    again = VectorIndex.load(tmp_path / "b.faiss", loaded.vectors, factory=factory)
    assert again.search(target, 1)[1][0, 0] == 5
    assert again.kind == (factory or "IndexFlatIP")


def test_factory_by_memory_falls_back_to_ivf_pq() -> None:
    roomy = IndexConfig(exact_max_items=1000, memory_budget_gb=1.0)
    tight = IndexConfig(exact_max_items=1000, memory_budget_gb=0.001)  # about 1 MB
    assert choose_factory(10_000, roomy, 65) == "HNSW32,Flat"
    assert choose_factory(10_000, tight, 65) == "IVF512,PQ13"  # 4 sqrt(n) = 400 -> 512
    assert choose_factory(10_000, tight, 64) == "IVF512,PQ32"
    assert choose_factory(10_000, tight, 7) == "IVF512,SQ8"  # no divisor of 7 from 4 to 3.5
    assert choose_factory(10_000_000, IndexConfig(), 65) in ("HNSW32,Flat", "IVF16384,PQ13")


@pytest.mark.parametrize("factory", ["IVF16,PQ16", "IVF16,SQ8"])
def test_compressed_indexes_rerank_exactly(factory: str) -> None:
    x, q = _unit(3000, 32, 10), _unit(50, 32, 11)
    cfg = IndexConfig(ivf_nprobe=16, refine_factor=8)
    index = VectorIndex(32, cfg, factory=factory).build(x)
    scores, ids = index.search(q, 10)
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, ids, 1), rtol=1e-5)
    report = index.measure_recall(q, 10)
    assert report["index"] == factory and report["queries"] == 50 and report["items"] == 3000
    assert report["recall_at_k"] >= 0.9
    assert not index.is_exact and VectorIndex(32).build(x).is_exact


def test_measure_recall_of_exact_index_is_one() -> None:
    x, q = _unit(500, 8, 12), _unit(20, 8, 13)
    report = VectorIndex(8, factory="Flat").build(x).measure_recall(q, 5)
    assert report["recall_at_k"] == 1.0 and report["k"] == 5


@pytest.mark.parametrize("factory", ["Flat", "HNSW16,Flat"])
def test_a_filter_leaving_out_the_nearest_items_still_fills_k(factory: str) -> None:
    # 51,000 of 61,000 items allowed: the search fetched a few dozen nearest items,
    # all in the 10,000 left out (the user's favourite category), and returned none
    rng = np.random.default_rng(0)
    x = rng.normal(size=(61_000, 8)).astype(np.float32) * 0.1
    x[:10_000, 0] += 5.0  # the nearest items to the query, all filtered out
    q = np.zeros((2, 8), np.float32)
    q[:, 0] = 1.0
    allowed = np.ones(len(x), dtype=bool)
    allowed[:10_000] = False
    index = VectorIndex(8, factory=factory).build(x)
    seen = [np.zeros(0, np.int64), np.array([np.flatnonzero(allowed)[0]])]
    _, ids = index.search(q, 20, allowed=allowed, exclude=seen)
    assert (ids >= 0).all() and allowed[ids].all() and ids[1, 0] != seen[1][0]
    want = np.flatnonzero(allowed)[np.argsort(-x[allowed] @ q[0], kind="stable")[:20]]
    np.testing.assert_array_equal(ids[0], want)


def test_stale_entries_crowding_out_the_fetch_fall_back_to_exact() -> None:
    """The items nearest a query all moved away: the search's few candidates are all
    stale, and the answer must still be the exact top k of the current vectors."""
    x, q = _unit(2000, 16, 20), _unit(1, 16, 21)
    index = VectorIndex(16, IndexConfig(ivf_nprobe=16), factory="IVF16,Flat").build(x)
    near = _exact(q, x, 100)[0]
    index.update(near, -np.repeat(q, 100, axis=0))  # they now point away from it
    current = x.copy()
    current[near] = -q
    for k in (5, 40):
        scores, ids = index.search(q, k)
        assert ids[0].tolist() == _exact(q, current, k)[0].tolist()
        np.testing.assert_allclose(scores[0], (q @ current[ids[0]].T)[0], rtol=1e-5)
    allowed = np.ones(2000, dtype=bool)
    allowed[::3] = False
    _, ids = index.search(q, 10, allowed=allowed)
    masked = np.where(allowed, (q @ current.T)[0], -np.inf)
    assert ids[0].tolist() == np.argsort(-masked, kind="stable")[:10].tolist()


def test_overrides_do_not_widen_the_graph_search() -> None:
    """Each update used to add one to every later query's HNSW beam (efSearch) until the
    next save: 734 ms a query at 300,000 items with 40,000 overridden."""
    x = _unit(3000, 16, 22)
    index = VectorIndex(16, IndexConfig(hnsw_ef_search=64), factory="HNSW16,Flat").build(x)
    moved = np.arange(0, 3000, 3)
    new = _unit(len(moved), 16, 23)
    index.update(moved, new)
    q = _unit(30, 16, 24)
    _, ids = index.search(q, 10)
    assert index._index.hnsw.efSearch == 64  # type: ignore[union-attr]
    current = x.copy()
    current[moved] = new
    truth = _exact(q, current, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
    assert recall >= 0.95


def test_an_exact_index_updates_in_place_and_hnsw_saves_without_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, q = _unit(1000, 8, 25), _unit(5, 8, 26)
    flat = VectorIndex(8, factory="Flat").build(x)
    flat.update(np.array([4, 9]), _unit(2, 8, 27))
    assert not len(flat._overrides)  # written into the index itself
    assert np.array_equal(flat.search(q, 10)[1], _exact(q, flat.vectors, 10))

    hnsw = VectorIndex(8, factory="HNSW16,Flat").build(x)
    moved = np.array([3, 50, 700])
    hnsw.update(moved, _unit(3, 8, 28))
    before = hnsw.search(q, 10)
    builds = []
    monkeypatch.setattr(VectorIndex, "build", lambda self, v: builds.append(1) or self)
    hnsw.save(tmp_path / "h.faiss")
    assert not builds  # a few updates no longer rebuild the whole graph
    loaded = VectorIndex.load(tmp_path / "h.faiss", hnsw.vectors, factory="HNSW16,Flat")
    assert loaded._overrides.tolist() == moved.tolist()  # found again from the stale entries
    after = loaded.search(q, 10)
    assert np.array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])
    many = np.arange(0, 1000, 4)  # 25% of the items: past the share, the graph is rebuilt
    loaded.update(many, _unit(len(many), 8, 29))
    loaded.save(tmp_path / "h2.faiss")
    assert builds == [1]
