from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.data.idmap import IdMap, id_list, ids_in
from hybrid_rec.data.schema import normalize_ids
from hybrid_rec.errors import DataValidationError, ModelFileError, UnknownIdError


def test_round_trip_and_order_of_first_appearance() -> None:
    m = IdMap.from_values(["b", "a", "b", 3])
    assert m.external_ids.tolist() == ["b", "a", "3"]
    assert m.to_internal(["3", "b"]).tolist() == [2, 0]
    assert m.to_external([1, 0]).tolist() == ["a", "b"]
    assert "a" in m and 3 in m and "z" not in m


def test_add_ids_is_immutable_and_stable() -> None:
    m = IdMap(["a", "b"])
    grown = m.add_ids(["c", "a", "d", "c"])
    assert len(m) == 2  # unchanged
    assert grown.external_ids.tolist() == ["a", "b", "c", "d"]
    assert grown.to_internal(["a", "b"]).tolist() == m.to_internal(["a", "b"]).tolist()
    assert m.add_ids(["a"]) is m
    with pytest.raises(ValueError):
        m.external_ids[0] = "x"


def test_ids_appended_one_at_a_time_stay_found_across_table_rebuilds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Appended ids live in a small table of their own until they are about the
    square root of the map (one-id appends at 200,000 ids: 50 -> 3 ms); every
    lookup must answer as one table over all the ids would, old maps unchanged."""
    builds: list[int] = []
    real = pd.Index.__new__

    def counting(cls: type, data: object = None, *args: object, **kw: object) -> pd.Index:
        if isinstance(data, np.ndarray) and len(data) >= 5000:
            builds.append(len(data))
        return real(cls, data, *args, **kw)

    base = IdMap([f"i{k}" for k in range(5000)])  # the tail holds up to 256 ids
    monkeypatch.setattr(pd.Index, "__new__", counting)
    maps = [base]
    for k in range(600):
        maps.append(maps[-1].add_ids([f"n{k}", f"i{k}"]))  # one new id, one known
    assert len(builds) == 2  # a table of the whole map twice in 600 appends, not 600 times
    grown = maps[-1]
    assert len(grown) == 5600
    query = ["n599", "i3", "zz", "n0", "n256", "i4999", "n257"]
    assert grown.lookup(query).tolist() == [5599, 3, -1, 5000, 5256, 4999, 5257]
    assert "n300" in grown and "n600" not in grown and "n300" not in maps[300]
    assert maps[300].lookup(["n299", "n300"]).tolist() == [5299, -1]  # old maps unchanged
    with pytest.raises(UnknownIdError, match="'zz'"):
        grown.to_internal(["n5", "zz"])
    assert maps[10].add_ids(["n3", "i1"]) is maps[10]  # ids in the tail are known ones
    bulk = maps[10].add_ids([f"b{k}" for k in range(1000)])  # past the tail's size at once
    assert bulk.lookup(["b999", "n9"]).tolist() == [6009, 5009]


def test_unknown_ids() -> None:
    m = IdMap(["a"])
    with pytest.raises(UnknownIdError, match=r"unknown user.*'zz'"):
        m.to_internal(["a", "zz"], kind="user")
    assert m.lookup(["zz", "a"]).tolist() == [-1, 0]
    with pytest.raises(UnknownIdError):
        m.to_external(np.array([5]))


def test_duplicates_rejected() -> None:
    with pytest.raises(DataValidationError, match="duplicate"):
        IdMap(["a", "a"])


def test_save_load(tmp_path: Path) -> None:
    m = IdMap(["x", "y"])
    m.save(tmp_path / "ids.json")
    assert IdMap.load(tmp_path / "ids.json") == m
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ModelFileError, match=r"bad\.json"):
        IdMap.load(tmp_path / "bad.json")


def test_every_entry_point_reads_an_id_as_the_validators_store_it() -> None:
    raw = pd.Series([7.0, np.float32(8.0), True, " 42", b"ab", 1e20], dtype=object)
    stored = normalize_ids(raw, source="ids", column="item_id").tolist()
    assert stored == ["7", "8", "1", "42", "ab", "100000000000000000000"]
    assert id_list(raw.tolist()) == stored
    ids = IdMap(stored)
    assert ids.to_internal(raw.tolist()).tolist() == list(range(6))
    assert ids.lookup([np.int64(7), 8, "x"]).tolist() == [0, 1, -1]
    assert id_list("SKU-1") == ["SKU-1"] and id_list(12) == ["12"]
    with pytest.raises(DataValidationError, match="an id or a list"):
        id_list(None)


def test_ids_in_answers_as_isin_does_for_arrow_and_object_columns() -> None:
    pool = pd.Index(["a", "b", "007"], dtype=object)
    for values in (
        pd.Series(["a", "c", "007", "7"]),  # pandas 3: Arrow strings
        pd.Series(["a", "c", "007", "7"], dtype=object),
        pd.Series(["b", None, "x"], dtype="string"),
    ):
        want = values.isin(pool).to_numpy(dtype=bool)
        np.testing.assert_array_equal(ids_in(values, pool), want)
        np.testing.assert_array_equal(ids_in(values, np.asarray(pool)), want)
    assert ids_in(pd.Series([], dtype=str), pool).shape == (0,)


def test_ids_in_never_takes_the_arrow_isin_that_walks_the_pool_in_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pandas.core.arrays.string_arrow import ArrowStringArray

    def walk(*args: object, **kwargs: object) -> None:
        raise AssertionError("ArrowStringArray.isin: 9.8 s for one id against 1M")

    monkeypatch.setattr(ArrowStringArray, "isin", walk)
    catalogue = pd.Series([f"i{n}" for n in range(100)])
    assert catalogue.dtype != object  # pandas 3 reads text as Arrow strings
    assert ids_in(pd.Series(["i5", "x"]), catalogue).tolist() == [True, False]
