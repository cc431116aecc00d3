from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybrid_rec.data.io import atomic_path, read_table, write_table
from hybrid_rec.errors import BatchOutputError, DataValidationError

FRAME = pd.DataFrame({"user_id": ["007", "8"], "item_id": ["a", "b"], "rating": ["4", "5"]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_round_trip_keeps_string_ids(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"x{suffix}"
    write_table(FRAME, path)
    back = read_table(path)
    assert back["user_id"].astype(str).tolist() == ["007", "8"]
    assert back.attrs["source"] == str(path)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_missing_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataValidationError, match="empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("user_id,item_id\n")
    with pytest.raises(DataValidationError, match="no data rows"):
        read_table(tmp_path / "header.csv")


def test_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("item_id,title\n1,Cit\xe9\n".encode("latin-1"))
    with pytest.raises(DataValidationError, match="UTF-8") as info:
        read_table(path)
    assert "line 2" in str(info.value) and str(path) in str(info.value)


def test_wrong_format_for_extension(tmp_path: Path) -> None:
    parquet_named_csv = tmp_path / "data.csv"
    FRAME.to_parquet(parquet_named_csv)
    with pytest.raises(DataValidationError, match="Parquet"):
        read_table(parquet_named_csv)
    csv_named_parquet = tmp_path / "data.parquet"
    csv_named_parquet.write_text("user_id,item_id\nu,i\n")
    with pytest.raises(DataValidationError, match="not a valid Parquet"):
        read_table(csv_named_parquet)
    bad_jsonl = tmp_path / "data.jsonl"
    bad_jsonl.write_text('{"user_id": "u"}\nnot json\n')
    with pytest.raises(DataValidationError, match="line 2"):
        read_table(bad_jsonl)
    with pytest.raises(DataValidationError, match="unsupported"):
        read_table(tmp_path / "data.xlsx")


@pytest.mark.parametrize("sep, suffix", [(",", ".csv"), ("\t", ".tsv")])
def test_an_extra_field_is_an_error_not_a_shifted_file(
    tmp_path: Path, sep: str, suffix: str
) -> None:
    """pandas takes a first row one field longer than the header for an index and shifts
    every column name by one: ids became titles, titles categories."""
    path = tmp_path / f"items{suffix}"
    rows = [
        ["item_id", "title", "category"],
        ["x1", "Orbit", "space", "EXTRA"],
        ["x2", "Bread", "food"],
    ]
    path.write_text("".join(sep.join(r) + "\n" for r in rows))
    with pytest.raises(DataValidationError, match="first data row has 4 fields, the header 3"):
        read_table(path)
    rows[1], rows[2] = rows[2], rows[1]  # further down, pandas' own check names the line
    path.write_text("".join(sep.join(r) + "\n" for r in rows))
    with pytest.raises(DataValidationError, match="line 3"):
        read_table(path)
    quoted = tmp_path / "quoted.csv"  # a separator inside quotes is not a field
    quoted.write_text('item_id,title\nx1,"Orbit, the guide"\n')
    assert read_table(quoted)["title"].tolist() == ["Orbit, the guide"]


def test_na_words_are_names_in_id_and_text_columns(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    huge = "y" * 200_000  # over the csv module's field limit: still read
    path.write_text(f"item_id,title,rating,brand\nNA,{huge},NA,null\nnull,None,4,Acme\n,x,,\n")
    frame = read_table(path)
    assert frame["item_id"].tolist()[:2] == ["NA", "null"] and pd.isna(frame["item_id"][2])
    assert frame["title"].tolist() == [huge, "None", "x"]
    assert frame["rating"].isna().tolist() == [True, False, True]  # "NA" is a missing rating
    assert frame["brand"].isna().tolist() == [True, False, True]


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_exclusive_lock_waits_as_long_as_asked(tmp_path: Path) -> None:
    import threading
    import time

    from hybrid_rec.data.io import exclusive_lock

    path = tmp_path / "job.lock"
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with exclusive_lock(path, RuntimeError("busy")):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        held.wait(30)
        with (
            pytest.raises(RuntimeError, match="busy"),
            exclusive_lock(path, RuntimeError("busy"), wait=0.2),
        ):
            pass
        threading.Timer(0.5, release.set).start()
        start = time.monotonic()
        with exclusive_lock(path, RuntimeError("busy"), wait=30):
            waited = time.monotonic() - start
    finally:
        release.set()
        thread.join()
    assert 0.4 < waited < 10
    assert not path.exists()  # removed by its last holder


def test_number_columns_of_a_csv_are_numbers_codes_and_ids_stay_text(tmp_path: Path) -> None:
    """Every CSV column used to stay text: a CSV-fitted model then cited prices as shared
    attributes in explanations and let update-items store 'cheap' as a price."""
    path = tmp_path / "items.csv"
    path.write_text(
        "item_id,title,price,year,zip,code,big\n"
        "1,1984,12.50,1995,00123,A1,123456789012345678901234567890\n"
        "2,2001,3,,00456,7,1\n"
    )
    frame = read_table(path)
    assert frame["price"].tolist() == [12.5, 3.0] and frame["price"].dtype == "float64"
    assert str(frame["year"].dtype) == "Int64" and frame["year"].isna().tolist() == [False, True]
    assert frame["item_id"].tolist() == ["1", "2"] and frame["title"].tolist() == ["1984", "2001"]
    assert frame["zip"].tolist() == ["00123", "00456"]  # a leading zero: a code
    assert frame["code"].tolist() == ["A1", "7"]
    assert frame["big"].dtype != "Int64"  # beyond 64 bits: kept as it was read


def test_a_column_of_numbers_but_for_a_few_cells_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """12,50 and $9.99 kept a price column text, and price filters then left those
    items out with no word said."""
    path = tmp_path / "items.csv"
    prices = ["1.5", "2", "3.25", "4", "12,50", "5", "$9.99", "6", "7", "8", "9"]
    sizes = ["S", "M", "L", "XL", "42", "S", "M", "L", "XL", "S", "M"]  # words: a text column
    pd.DataFrame({"item_id": range(11), "price": prices, "size": sizes}).to_csv(path, index=False)
    frame = read_table(path)
    assert frame["price"].tolist() == prices  # left as written
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "column 'price'" in warned[0]
    assert "2 cell(s) such as '12,50', '$9.99'" in warned[0] and str(path) in warned[0]


def test_csv_cells_a_spreadsheet_would_run_are_escaped(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d", "e"],
            "title": ['=HYPERLINK("http://x","Click")', "@SUM(1+1)", "+cmd", "-2+3", "Dune"],
            "note": ["-0.5", "+1e3", "\tindent", None, "plain"],
            "score": [-0.08, 1.0, 2.0, 3.0, 4.0],
        }
    )
    for name, sep in (("out.csv", ","), ("out.tsv", "\t")):
        write_table(frame, tmp_path / name)
        back = pd.read_csv(tmp_path / name, sep=sep, dtype=str, keep_default_na=False)
        assert back["title"].tolist() == [
            '\'=HYPERLINK("http://x","Click")',
            "'@SUM(1+1)",
            "'+cmd",
            "'-2+3",
            "Dune",
        ]
        assert back["note"].tolist() == ["-0.5", "+1e3", "'\tindent", "", "plain"]
        assert back["score"].tolist()[0] == "-0.08"  # numbers are left alone
    write_table(frame, tmp_path / "out.parquet")  # typed formats keep the text as it is
    assert pd.read_parquet(tmp_path / "out.parquet")["title"].tolist() == frame["title"].tolist()


def test_write_table_refuses_an_existing_file_or_a_model_directory(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1]})
    target = tmp_path / "t.csv"
    target.write_text("keep\n")
    with pytest.raises(BatchOutputError, match="already exists"):
        write_table(frame, target)
    assert target.read_text() == "keep\n"
    write_table(frame, target, overwrite=True)
    assert pd.read_csv(target)["a"].tolist() == [1]
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{}")
    with pytest.raises(BatchOutputError, match="saved model"):
        write_table(frame, model / "x.csv", overwrite=True)
    assert sorted(p.name for p in model.iterdir()) == ["manifest.json"]
