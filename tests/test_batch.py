"""Chunked, resumable batch jobs: exact top-k, Parquet output, resume and refusal rules."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.batch import (
    BatchReport,
    ChunkFn,
    InputTable,
    TopK,
    collect,
    partial_dir,
    result_schema,
    write_parquet,
)
from hybrid_rec.errors import BatchOutputError, DataValidationError

SCHEMA = result_schema("item_id", "user_id")


def _vectors(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _truth(scores: np.ndarray, k: int) -> np.ndarray:
    return -np.sort(-scores, axis=1)[:, :k]


@pytest.mark.parametrize(
    ("rows", "n", "k"), [(30, 7, 3), (30, 7, 7), (1, 100, 5), (300, 5003, 100)]
)
def test_topk_is_exact(rows: int, n: int, k: int) -> None:
    """Each row's k best targets, best first (faiss takes its direct path for a few
    rows and its blocked-BLAS path for many: both are covered)."""
    queries, targets = _vectors(rows, 8, 0), _vectors(n, 8, 1)
    scores = queries.astype(np.float64) @ targets.T.astype(np.float64)
    values, cols = TopK(targets, k)(queries)
    assert values.shape == cols.shape == (rows, k)
    np.testing.assert_allclose(values, _truth(scores, k), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(scores, cols, 1), values, rtol=1e-5, atol=1e-5)
    assert all(len(set(row)) == k for row in cols)
    assert (np.diff(values, axis=1) <= 0).all()


def test_topk_caps_k_and_takes_empty_chunks() -> None:
    scorer = TopK(_vectors(4, 8, 2), 10)
    assert scorer.k == 4
    values, cols = scorer(np.zeros((0, 8), np.float32))
    assert values.shape == cols.shape == (0, 4)
    _, cols = scorer(_vectors(3, 8, 3))
    assert sorted(cols[0].tolist()) == [0, 1, 2, 3]


def test_topk_refuses_nan_instead_of_returning_empty_slots() -> None:
    queries = _vectors(4, 8, 4)
    queries[2, 3] = np.nan
    with pytest.raises(DataValidationError, match="NaN"):
        TopK(_vectors(50, 8, 5), 5)(queries)


def _items(n: int, start: int = 0) -> pd.DataFrame:
    ids = [f"n{i}" for i in range(start, start + n)]
    return pd.DataFrame({"item_id": ids, "x": np.arange(start, start + n, dtype=float)})


def _process(k: int = 3, calls: list[int] | None = None, fail_at: int | None = None) -> ChunkFn:
    """A stand-in scorer: user ``u{j}`` scores ``x - j`` for item with value ``x``."""

    def process(chunk: pd.DataFrame, first_row: int) -> pd.DataFrame:
        if calls is not None:
            calls.append(first_row)
        if first_row == fail_at:
            raise RuntimeError("crash")
        n = len(chunk)
        return pd.DataFrame(
            {
                "item_id": np.repeat(chunk["item_id"].to_numpy(), k),
                "user_id": [f"u{j}" for j in range(k)] * n,
                "score": (np.repeat(chunk["x"].to_numpy(), k) - np.tile(np.arange(k), n)).astype(
                    np.float32
                ),
                "rank": np.tile(np.arange(1, k + 1), n),
            }
        )

    return process


def _run(table: InputTable, out: Path, **kw: Any) -> BatchReport:
    options: dict[str, Any] = {"schema": SCHEMA, "chunk_size": 4, "params": {"k": 3}, **kw}
    process = options.pop("process", _process())
    return write_parquet(table, process, out, **options)


def test_parquet_output_matches_in_memory_result(tmp_path: Path) -> None:
    table = InputTable(_items(10))
    report = _run(table, tmp_path / "s.parquet")
    assert report.rows == 30 and report.chunks == 3 and report.resumed == 0
    expected = collect(table, _process(), chunk_size=4).astype({"score": np.float32})
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), expected)
    assert not partial_dir(tmp_path / "s.parquet").exists()


def test_crash_then_resume_redoes_nothing_and_writes_the_same_file(tmp_path: Path) -> None:
    table, out, calls = InputTable(_items(18)), tmp_path / "s.parquet", []
    with pytest.raises(RuntimeError, match="crash"):
        _run(table, out, process=_process(calls=calls, fail_at=12))
    assert not out.exists()
    state = json.loads((partial_dir(out) / "state.json").read_text())
    assert state["input"]["rows"] == 18 and state["chunk_size"] == 4
    calls.clear()
    report = _run(table, out, process=_process(calls=calls))
    assert calls == [12, 16] and report.resumed == 3
    _run(table, tmp_path / "ref.parquet")
    assert out.read_bytes() == (tmp_path / "ref.parquet").read_bytes()


def test_a_second_job_on_the_same_output_is_refused_and_the_first_finishes(
    tmp_path: Path,
) -> None:
    """Two jobs writing one output used to break each other with a raw OSError."""
    table, out, refused = InputTable(_items(10)), tmp_path / "s.parquet", []
    inner = _process()

    def process(chunk: pd.DataFrame, first_row: int) -> pd.DataFrame:
        if first_row == 4:  # the first job is half done: a second one starts
            with pytest.raises(BatchOutputError, match="another job is writing") as err:
                _run(table, out)
            refused.append(str(err.value))
        return inner(chunk, first_row)

    report = _run(table, out, process=process)
    assert refused and report.rows == 30 and report.resumed == 0
    _run(table, tmp_path / "ref.parquet")
    assert out.read_bytes() == (tmp_path / "ref.parquet").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.parquet", "s.parquet"]


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    out.write_bytes(b"old")
    with pytest.raises(BatchOutputError, match=r"already exists.*overwrite=True"):
        _run(InputTable(_items(5)), out)
    assert out.read_bytes() == b"old"
    _run(InputTable(_items(5)), out, overwrite=True)
    assert len(pd.read_parquet(out)) == 15


def test_partial_run_with_other_input_or_params_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    with pytest.raises(RuntimeError):
        _run(InputTable(_items(12)), out, process=_process(fail_at=8))
    with pytest.raises(BatchOutputError, match=r"other parameters \(k: 3 -> 5\)"):
        _run(InputTable(_items(12)), out, params={"k": 5})
    with pytest.raises(BatchOutputError, match="another input"):
        _run(InputTable(_items(12, start=1)), out)
    with pytest.raises(BatchOutputError, match=r"chunk_size: 4 -> 6"):
        _run(InputTable(_items(12)), out, chunk_size=6)
    report = _run(InputTable(_items(12, start=1)), out, overwrite=True)
    assert report.resumed == 0 and pd.read_parquet(out)["item_id"].iloc[0] == "n1"


def test_a_run_killed_before_its_state_was_written_starts_again(tmp_path: Path) -> None:
    """A kill between creating OUT.partial/ and writing state.json left a folder every
    later run refused ("an unreadable state.json ... pass --overwrite")."""
    out = tmp_path / "s.parquet"
    partial_dir(out).mkdir()
    report = _run(InputTable(_items(8)), out)
    assert report.rows == 24 and report.resumed == 0
    partial_dir(out).mkdir()  # with a chunk in it, something would be lost: still refused
    (partial_dir(out) / "chunk-000000.parquet").write_bytes(b"x")
    out.unlink()
    with pytest.raises(BatchOutputError, match=r"unreadable state\.json"):
        _run(InputTable(_items(8)), out)


def test_a_finished_chunk_changed_since_it_was_written_is_computed_again(
    tmp_path: Path,
) -> None:
    """A chunk file replaced by other (valid) Parquet bytes used to be combined as if it
    were the chunk: its sha256 is in its name now, and a mismatch is recomputed."""
    out, calls = tmp_path / "s.parquet", []
    with pytest.raises(RuntimeError):
        _run(InputTable(_items(12)), out, process=_process(fail_at=8))
    first, second = sorted(partial_dir(out).glob("chunk-*.parquet"))
    second.write_bytes(first.read_bytes())
    report = _run(InputTable(_items(12)), out, process=_process(calls=calls))
    assert calls == [4, 8] and report.resumed == 1
    reference = _run(InputTable(_items(12)), tmp_path / "ref.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "ref.parquet"))
    assert reference.rows == 36


def test_temporary_files_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    with pytest.raises(RuntimeError):
        _run(InputTable(_items(12)), out, process=_process(fail_at=8))
    combine = tmp_path / ".s.parquet.k1ll3d.tmp"  # killed while combining the chunks
    chunk = partial_dir(out) / ".chunk-000002-x.parquet.k1ll3d.tmp"  # killed mid-chunk
    other = tmp_path / ".t.parquet.k1ll3d.tmp"  # another output's: not ours to remove
    for path in (combine, chunk, other):
        path.write_bytes(b"half")
    report = _run(InputTable(_items(12)), out)
    assert report.resumed == 2 and report.rows == 36
    assert not combine.exists() and not chunk.exists() and other.exists()


def test_an_unfinished_run_of_an_older_state_format_is_explained(tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    with pytest.raises(RuntimeError):
        _run(InputTable(_items(12)), out, process=_process(fail_at=8))
    state_file = partial_dir(out) / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "format": 1}))
    with pytest.raises(BatchOutputError, match=r"state format 1 \(another hybrid_rec version"):
        _run(InputTable(_items(12)), out)


def test_no_resume_starts_afresh(tmp_path: Path) -> None:
    out, calls = tmp_path / "s.parquet", []
    with pytest.raises(RuntimeError):
        _run(InputTable(_items(12)), out, process=_process(fail_at=8))
    _run(InputTable(_items(12)), out, resume=False, process=_process(calls=calls))
    assert calls == [0, 4, 8]


def test_bad_output_paths(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"\.parquet"):
        _run(InputTable(_items(3)), tmp_path / "s.csv")
    (tmp_path / "d.parquet").mkdir()
    with pytest.raises(BatchOutputError, match="directory"):
        _run(InputTable(_items(3)), tmp_path / "d.parquet")
    with pytest.raises(DataValidationError, match="chunk_size"):
        _run(InputTable(_items(3)), tmp_path / "s.parquet", chunk_size=0)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_file_input_is_read_in_chunks_like_a_frame(tmp_path: Path, suffix: str) -> None:
    frame = _items(11).assign(x=lambda f: f["x"].astype(str))
    path = tmp_path / f"items{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, row_group_size=3)  # row groups that do not line up with chunks
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
    table = InputTable(path)
    assert table.column("item_id").tolist() == frame["item_id"].tolist()
    assert table.n_rows == 11
    chunks = list(table.chunks(4))
    assert [len(c) for c in chunks] == [4, 4, 3]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), frame)
    assert chunks[1].attrs["source"] == str(path)
    before = table.sha256()
    frame.iloc[:10].to_csv(tmp_path / "other.csv", index=False)
    assert InputTable(tmp_path / "other.csv").sha256() != before
    with pytest.raises(DataValidationError, match="no column 'nope'"):
        table.column("nope")


def test_frame_fingerprint_follows_content() -> None:
    a = InputTable(_items(5)).sha256()
    assert a == InputTable(_items(5)).sha256()
    assert a != InputTable(_items(5).assign(x=1.0)).sha256()


def test_memory_holds_one_chunk_whatever_the_number_of_items(tmp_path: Path) -> None:
    """Peak traced memory with 8x the items stays that of a single chunk."""
    targets = _vectors(20_000, 16, 7)

    def peak(n_items: int, name: str) -> int:
        scorer = TopK(targets, 10)
        queries = _vectors(n_items, 16, 8)

        def process(chunk: pd.DataFrame, first_row: int) -> pd.DataFrame:
            scores, ids = scorer(queries[first_row : first_row + len(chunk)])
            return pd.DataFrame(
                {
                    "item_id": np.repeat(chunk["item_id"].to_numpy(), 10),
                    "user_id": ids.ravel().astype(str),
                    "score": scores.ravel(),
                    "rank": np.tile(np.arange(1, 11), len(chunk)),
                }
            )

        table = InputTable(_items(n_items))
        tracemalloc.start()
        write_parquet(table, process, tmp_path / name, schema=SCHEMA, chunk_size=100, params={})
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    small, large = peak(200, "a.parquet"), peak(1600, "b.parquet")
    one_chunk = 100 * 20_000 * 4
    assert large < small + one_chunk // 2, (small, large)
    assert large < 4 * one_chunk
