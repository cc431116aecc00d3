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
