"""append_rows: growing the catalogue's arrays without copying them on every add."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_rec.data.arrays import append_rows


def test_appends_reuse_the_buffer_and_leave_older_views_alone() -> None:
    start = np.arange(12, dtype=np.float32).reshape(6, 2)
    grown = append_rows(start, np.full((1, 2), -1.0))
    assert grown.shape == (7, 2) and np.array_equal(grown[:6], start)
    assert grown.base is not None and len(grown.base) > 7  # spare room for the next ones
    buffer = grown.base
    again = append_rows(grown, np.full((2, 2), -2.0))
    assert again.base is buffer  # no copy: written into the spare room
    assert again.tolist()[-3:] == [[-1.0, -1.0], [-2.0, -2.0], [-2.0, -2.0]]
    assert grown.shape == (7, 2) and grown[-1].tolist() == [-1.0, -1.0]  # older view as it was
    again[0] = 99  # writes reach the one buffer, as an update of an item does
    assert grown[0, 0] == 99


def test_many_single_appends_copy_a_few_times_only() -> None:
    array = np.zeros((1000, 4), dtype=np.float32)
    buffers = set()
    for n in range(1000):
        array = append_rows(array, np.full((1, 4), n, dtype=np.float32))
        buffers.add(id(array.base))
    assert array.shape == (2000, 4) and array[1000:, 0].tolist() == list(range(1000))
    assert len(buffers) <= 5  # 1.25x growth: a handful of buffers for doubling the size


def test_bool_and_int_arrays_and_a_wrong_shape() -> None:
    flags = append_rows(np.zeros(3, dtype=bool), np.ones(2, dtype=bool))
    assert flags.tolist() == [False, False, False, True, True]
    counts = append_rows(np.arange(3, dtype=np.int64), np.zeros(1, dtype=np.int64))
    assert counts.dtype == np.int64 and counts.tolist() == [0, 1, 2, 0]
    with pytest.raises(ValueError, match="cannot append"):
        append_rows(np.zeros((3, 2)), np.zeros((1, 3)))
