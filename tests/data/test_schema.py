from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.config import DataConfig
from hybrid_rec.data.schema import ValidationReport, validate_interactions, validate_items
from hybrid_rec.errors import DataValidationError


def _items() -> pd.DataFrame:
    return pd.DataFrame({"item_id": [1, 2, 3], "title": ["a", "b", "c"]})


def test_numeric_ids_become_strings_and_caller_frame_untouched() -> None:
    raw = pd.DataFrame({"user_id": [10, 11], "item_id": [1.0, 2.0]})
    before = raw.copy()
    out = validate_interactions(raw)
    assert out["user_id"].tolist() == ["10", "11"]
    assert out["item_id"].tolist() == ["1", "2"]
    assert out["weight"].dtype == np.float32
    pd.testing.assert_frame_equal(raw, before)


def test_unsigned_ids_past_2_to_the_63_keep_their_value() -> None:
    """uint64 ids (hashes) went through int64 and wrapped to negative numbers."""
    raw = pd.DataFrame(
        {"user_id": np.array([2**64 - 1, 5], dtype=np.uint64), "item_id": ["a", "b"]}
    )
    assert validate_interactions(raw)["user_id"].tolist() == ["18446744073709551615", "5"]


def test_event_weights_follow_config_order() -> None:
    raw = pd.DataFrame(
        {"user_id": ["u"] * 3, "item_id": ["a", "b", "c"], "event": ["view", "Click", "purchase"]}
    )
    out = validate_interactions(raw)
    w = out["weight"].tolist()
    assert w[0] < w[1] < w[2]
    custom = validate_interactions(
        raw, config=DataConfig(event_weights={"view": 1, "click": 1, "purchase": 9})
    )
    assert custom["weight"].tolist() == [1.0, 1.0, 9.0]


def test_unknown_event_is_an_error_or_default() -> None:
    raw = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "event": ["teleport"]})
    with pytest.raises(DataValidationError, match="teleport"):
        validate_interactions(raw)
    out = validate_interactions(
        raw, config=DataConfig(unknown_event="default", default_event_weight=0.5)
    )
    assert out["weight"].tolist() == [0.5]


@pytest.mark.parametrize(
    ("frame", "column", "row"),
    [
        (pd.DataFrame({"user_id": ["u", None], "item_id": ["a", "b"]}), "user_id", 1),
        (pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "  "]}), "item_id", 1),
        (pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", np.nan]}), "item_id", 1),
    ],
)
def test_missing_or_empty_ids_name_column_and_row(
    frame: pd.DataFrame, column: str, row: int
) -> None:
    with pytest.raises(DataValidationError) as info:
        validate_interactions(frame)
    assert info.value.column == column
    assert info.value.rows == [row]
    assert column in str(info.value) and "Fix:" in str(info.value)


def test_missing_required_column() -> None:
    with pytest.raises(DataValidationError, match="'item_id'") as info:
        validate_interactions(pd.DataFrame({"user_id": ["u"], "product": ["a"]}))
    assert "product" in str(info.value)  # lists what is there


def test_empty_frame() -> None:
    with pytest.raises(DataValidationError, match="no interactions"):
        validate_interactions(pd.DataFrame({"user_id": [], "item_id": []}))
    with pytest.raises(DataValidationError, match="empty"):
        validate_items(pd.DataFrame({"item_id": []}))


@pytest.mark.parametrize(
    ("column", "bad"),
    [
        ("weight", np.nan),
        *((c, b) for c in ("weight", "rating") for b in (np.inf, -1.0, "lots", 1e308, "1e39")),
    ],
)
def test_bad_weight_or_rating(bad: object, column: str) -> None:
    frame = pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "b"], column: [1.0, bad]})
    with pytest.raises(DataValidationError) as info:
        validate_interactions(frame)
    assert info.value.column == column and info.value.rows == [1]


def test_missing_rating_means_unrated_and_survives_min_rating() -> None:
    # a shop log: only some purchases were reviewed
    frame = pd.DataFrame(
        {"user_id": ["u", "v", "w"], "item_id": ["a", "b", "c"], "rating": [5.0, np.nan, 2.0]}
    )
    spaces = frame.astype({"rating": object}).assign(rating=["5", "  ", "2"])  # a CSV's blank
    assert np.isnan(validate_interactions(spaces)["rating"].iloc[1])
    out = validate_interactions(frame)
    assert np.isnan(out["rating"].iloc[1]) and out["rating"].iloc[0] == 5.0
    liked = validate_interactions(frame, config=DataConfig(min_rating=4))
    assert liked["item_id"].tolist() == ["a", "b"]


def test_datetime_timestamps_are_seconds_at_any_resolution_and_zone() -> None:
    times = pd.to_datetime(["2024-01-01 10:00", "2024-03-01 10:00"])
    expected = [1704103200, 1709287200]
    base = {"user_id": ["u", "v"], "item_id": ["a", "b"]}
    for unit in ("s", "ms", "us", "ns"):
        frame = pd.DataFrame({**base, "timestamp": times.as_unit(unit)})
        assert validate_interactions(frame)["timestamp"].tolist() == expected, unit
    berlin = times.tz_localize("Europe/Berlin")  # 10:00 in Berlin is 09:00 UTC
    out = validate_interactions(pd.DataFrame({**base, "timestamp": berlin}))
    assert out["timestamp"].tolist() == [t - 3600 for t in expected]


@pytest.mark.parametrize("gap", [np.nan, None, pd.NaT])
def test_missing_timestamp_names_only_its_row(gap: object) -> None:
    frame = pd.DataFrame(
        {"user_id": ["u", "v", "w"], "item_id": ["a", "b", "c"], "timestamp": [1.7e9, gap, 1.7e9]}
    )
    with pytest.raises(DataValidationError, match="missing timestamp") as info:
        validate_interactions(frame)
    assert info.value.rows == [1]


def test_timestamps_seconds_millis_and_iso() -> None:
    base = {"user_id": ["u", "v"], "item_id": ["a", "b"]}
    secs = validate_interactions(
        pd.DataFrame({**base, "timestamp": [1_700_000_000, 1_700_000_060]})
    )
    millis = validate_interactions(
        pd.DataFrame({**base, "timestamp": [1_700_000_000_000, 1_700_000_060_000]})
    )
    iso = validate_interactions(
        pd.DataFrame({**base, "timestamp": ["2023-11-14T22:13:20Z", "2023-11-14T22:14:20Z"]})
    )
    assert secs["timestamp"].tolist() == millis["timestamp"].tolist() == iso["timestamp"].tolist()


def test_timestamps_out_of_range_or_of_mixed_units_are_refused() -> None:
    """1e30 used to wrap to -9.2e18 (and drag the unit guess for the whole column);
    seconds beside milliseconds were divided by 1000 into 1970."""
    base = {"user_id": ["u", "v", "w"], "item_id": ["a", "b", "c"]}
    for times, message, row in [
        ([1e30, 1.7e9, 1.7e9], "not between the years 1900 and 2200", "row(s) 0"),
        ([1.7e9, -5e12, 1.7e9], "not between the years 1900 and 2200", "row(s) 1"),
        ([1.7e9, 1.7e9, 9e9], "not between the years 1900 and 2200", "row(s) 2"),
        ([1.7e12, 1_700_000_000, 1.7e12], "mix seconds and milliseconds", "row(s) 1"),
    ]:
        with pytest.raises(DataValidationError, match=message) as info:
            validate_interactions(pd.DataFrame({**base, "timestamp": times}))
        assert row in str(info.value)
    mixed = pd.DataFrame({**base, "timestamp": [1.7e12, 1.7e9, 1.7e12]})
    with pytest.raises(DataValidationError, match="not between"):  # all as seconds: 1.7e12 s
        validate_interactions(mixed, config=DataConfig(timestamp_unit="s"))
    as_ms = validate_interactions(mixed.iloc[[0, 2]], config=DataConfig(timestamp_unit="ms"))
    assert as_ms["timestamp"].tolist() == [1_700_000_000, 1_700_000_000]


def test_an_explicit_unit_reads_every_time_in_it() -> None:
    """With timestamp_unit = "ms", 5e10 is a millisecond count (1971), not 5e10
    seconds (year 3554); the guess for "auto" does not apply."""
    base = {"user_id": ["u", "v"], "item_id": ["a", "b"]}
    early = pd.DataFrame({**base, "timestamp": [5e10, 1.7e12]})
    as_ms = validate_interactions(early, config=DataConfig(timestamp_unit="ms"))
    assert as_ms["timestamp"].tolist() == [50_000_000, 1_700_000_000]
    with pytest.raises(DataValidationError, match="as a unix time is not between"):
        validate_interactions(early)  # auto: 5e10 is below 1e11, so seconds
    with pytest.raises(DataValidationError, match="millisecond count is not between"):
        validate_interactions(
            pd.DataFrame({**base, "timestamp": [1.7e12, 1e30]}),
            config=DataConfig(timestamp_unit="ms"),
        )


def test_day_first_dates_are_read_day_first_throughout() -> None:
    """13/06/2024 was read day-first and 01/06/2024 beside it month-first (January 6th),
    each cell alone; ISO times beside them keep their meaning."""
    base = {"user_id": ["u", "v", "w", "x"], "item_id": ["a", "b", "c", "d"]}
    times = ["13/06/2024", "01/06/2024 10:00", "2024-06-02T10:00:00Z", "02.06.2024"]
    out = validate_interactions(pd.DataFrame({**base, "timestamp": times}))
    expected = pd.to_datetime(
        ["2024-06-13", "2024-06-01 10:00", "2024-06-02 10:00", "2024-06-02"],
        utc=True,
        format="mixed",
    )
    assert out["timestamp"].tolist() == [int(t.timestamp()) for t in expected]
    us = validate_interactions(pd.DataFrame({**base, "timestamp": ["06/13/2024"] * 4}))
    assert us["timestamp"].iloc[0] == int(pd.Timestamp("2024-06-13", tz="UTC").timestamp())
    mixed = ["13/06/2024", "06/14/2024", "01/06/2024", "2024-06-02"]
    with pytest.raises(DataValidationError, match="mix day-first dates") as info:
        validate_interactions(pd.DataFrame({**base, "timestamp": mixed}))
    assert "row(s) 1" in str(info.value)


def test_unparseable_timestamp() -> None:
    frame = pd.DataFrame(
        {"user_id": ["u", "v"], "item_id": ["a", "b"], "timestamp": ["2024-01-01", "yesterday"]}
    )
    with pytest.raises(DataValidationError, match="yesterday") as info:
        validate_interactions(frame)
    assert info.value.rows == [1]


def test_duplicate_item_ids() -> None:
    with pytest.raises(DataValidationError, match="duplicate") as info:
        validate_items(pd.DataFrame({"item_id": [1, 2, "1"], "title": ["x", "y", "z"]}))
    assert info.value.rows == [0, 2]


def test_unknown_items_error_or_drop(caplog: pytest.LogCaptureFixture) -> None:
    items = validate_items(_items())
    raw = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": [1, 99, 98]})
    with pytest.raises(DataValidationError, match="absent from the catalogue") as info:
        validate_interactions(raw, items)
    assert info.value.rows == [1, 2]
    report = ValidationReport()
    out = validate_interactions(raw, items, config=DataConfig(unknown_items="drop"), report=report)
    assert out["item_id"].tolist() == ["1"]
    assert report.dropped_unknown_items == 2
    assert "dropped 2" in caplog.text


def test_min_rating_filter() -> None:
    raw = pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "b", "c"], "rating": [1, 4, 5]})
    out = validate_interactions(raw, config=DataConfig(min_rating=4))
    assert out["item_id"].tolist() == ["b", "c"]
    assert out["rating"].dtype == np.float32


def test_items_keep_attribute_columns() -> None:
    out = validate_items(pd.DataFrame({"item_id": [7], "title": ["x"], "price": [9.5]}))
    assert list(out.columns) == ["item_id", "title", "price"]
    assert out["item_id"].tolist() == ["7"]


def test_not_a_frame() -> None:
    with pytest.raises(DataValidationError, match="DataFrame"):
        validate_items([1, 2, 3])  # type: ignore[arg-type]


def test_missing_ids_suggest_the_likely_column_or_the_delimiter() -> None:
    shop = pd.DataFrame({"Customer ID": ["c1"], "sku": ["s1"]})
    with pytest.raises(DataValidationError, match=r"rename Customer ID → user_id, sku → item_id"):
        validate_interactions(shop)
    excel = pd.DataFrame({"user_id;item_id;timestamp": ["u;i;1"]})
    with pytest.raises(DataValidationError, match="delimited by ';'"):
        validate_interactions(excel)


def test_an_unread_time_or_event_column_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    raw = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "ts": [1.7e9], "event_type": ["buy"]})
    with caplog.at_level("WARNING", logger="hybrid_rec"):
        out = validate_interactions(raw)
    assert "timestamp" not in out.columns
    assert "'ts' is not read; rename it to 'timestamp'" in caplog.text
    assert "'event_type' is not read; rename it to 'event'" in caplog.text


def test_an_event_weight_of_zero_ignores_that_type() -> None:
    raw = pd.DataFrame(
        {"user_id": ["u", "u", "v"], "item_id": ["a", "b", "c"], "event": ["view", "buy", "view"]}
    )
    report = ValidationReport()
    cfg = DataConfig(event_weights={"view": 0, "buy": 4})
    out = validate_interactions(raw, config=cfg, report=report)
    assert out["item_id"].tolist() == ["b"] and report.dropped_ignored_events == 2
    with pytest.raises(DataValidationError, match="event weights of 0"):
        validate_interactions(raw[raw["event"] == "view"], config=cfg)


def test_a_column_name_twice_is_an_error() -> None:
    items = pd.DataFrame([["a", "Tea", "Green tea"]], columns=["item_id", "title", "title"])
    with pytest.raises(DataValidationError, match="'title' appear more than once"):
        validate_items(items)
    log = pd.DataFrame([["u", "a", "b"]], columns=["user_id", "item_id", "item_id"])
    with pytest.raises(DataValidationError, match="'item_id' appear more than once"):
        validate_interactions(log)


def test_a_frame_validated_without_event_weights_gets_them_once_later() -> None:
    """hybrid-rec evaluate validated the log, then fit validated the split's training part
    again: a purchase (5) weighed 25 against a view's 1."""
    raw = pd.DataFrame(
        {
            "user_id": ["u", "u", "v"],
            "item_id": ["a", "b", "a"],
            "event": ["view", "purchase", "click"],
            "weight": [1.0, 2.0, 1.0],
        }
    )
    once = validate_interactions(raw)["weight"].tolist()
    assert once == [1.0, 10.0, 2.0]
    checked = validate_interactions(raw, event_weights=False)
    assert checked["weight"].tolist() == [1.0, 2.0, 1.0] and "event" in checked
    assert validate_interactions(checked)["weight"].tolist() == once
    assert validate_interactions(validate_interactions(raw))["weight"].tolist() != once


def test_a_weight_that_overflows_float32_with_its_event_is_refused() -> None:
    """1e38 is a float32, five times it (a purchase) is not: it used to reach training as
    inf and end in "lower model.lr"."""
    frame = pd.DataFrame(
        {"user_id": ["u", "v"], "item_id": ["a", "b"], "event": ["view", "purchase"]}
    )
    validate_interactions(frame.assign(weight=[1.0, 1e37]))
    with pytest.raises(DataValidationError, match="float32") as info:
        validate_interactions(frame.assign(weight=[1.0, 1e38]))
    assert info.value.rows == [1]
