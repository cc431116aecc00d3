"""Item → text: templates, value rendering, missing values, the character cap, hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.config import ContentConfig
from hybrid_rec.content.text import (
    PROMPTS_DIR,
    cut_text,
    html_to_text,
    item_texts,
    load_template,
    render_value,
    text_hash,
)
from hybrid_rec.errors import ConfigError, DataValidationError


def one(row: dict[str, object], **config: object) -> str:
    """The text of a one-item catalogue."""
    frame = pd.DataFrame([{"item_id": "x", **row}])
    return str(item_texts(frame, ContentConfig(**config)).iloc[0])


# ----------------------------------------------------------------------------- templates


def test_the_default_template_ships_inside_the_package() -> None:
    template = load_template("item_text_v1")
    assert template.source == PROMPTS_DIR / "item_text_v1.txt"
    assert template.source.is_file()
    assert {"title", "genres", "description"} <= template.named_fields


def test_a_template_of_ones_own_is_loaded_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# comment\n[{brand}]\n{title}\n", encoding="utf-8")
    text = one({"title": "Desk", "brand": "Acme", "colour": "red"}, text_template=str(path))
    assert text == "[Acme] Desk"  # no {*} line: other columns are left out


def test_an_unknown_template_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="no_such_template"):
        load_template("no_such_template")


def test_a_template_without_fields_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("# only a comment\njust text\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="names no column"):
        load_template(path)


# ----------------------------------------------------------------------------- texts


def test_movie_row_reads_naturally() -> None:
    text = one(
        {
            "title": "Toy Story",
            "year": 1995.0,
            "genres": "Animation|Children's|Comedy",
            "description": "A cowboy doll is threatened by a new spaceman toy.",
        }
    )
    assert text == (
        "Toy Story (1995) Genres: Animation, Children's, Comedy. "
        "A cowboy doll is threatened by a new spaceman toy."
    )


def test_missing_values_are_skipped_cleanly() -> None:
    text = one(
        {
            "title": "Lamp",
            "brand": None,
            "category": np.nan,
            "description": "   ",
            "tags": [],
            "price": float("inf"),
            "year": pd.NA,
        }
    )
    assert text == "Lamp"
    for word in ("nan", "None", "Brand", "Category", "Tags", "inf", "<NA>"):
        assert word not in text


def test_non_string_values_are_rendered() -> None:
    text = one(
        {
            "title": "Chair",
            "price": 20.0,
            "weight_kg": 3.25,
            "in_stock": True,
            "tags": ["oak", None, np.nan, "  garden "],
            "sizes": np.array([1, 2]),
            "specs": {"legs": 4, "colour": None},
            "released": pd.Timestamp("2021-03-04"),
            "colours": {"red", "blue"},
            "count": np.int64(7),
        }
    )
    assert text == (
        "Chair Price: 20. Tags: oak, garden. Weight kg: 3.25. In stock: yes. Sizes: 1, 2. "
        "Specs: legs: 4. Released: 2021-03-04. Colours: blue, red. Count: 7."
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (np.nan, None),
        (pd.NaT, None),
        ("", None),
        (" a \n\t b ", "a b"),
        ("Drama|War", "Drama, War"),
        ("||", None),
        (1995.0, "1995"),
        ("1995.0", "1995"),
        ("v2.01", "v2.01"),
        (0.1 + 0.2, "0.3"),
        (-2, "-2"),
        (np.float32(1.5), "1.5"),
        (False, "no"),
        ([], None),
        ([None, "x"], "x"),
        ((1, "b"), "1, b"),
        (dt.date(2020, 1, 2), "2020-01-02"),
        (dt.datetime(2020, 1, 2, 3, 4), "2020-01-02T03:04:00"),
        (b"bytes", "bytes"),
        ({"a": [1, 2]}, "a: 1, 2"),
    ],
)
def test_render_value(value: object, expected: str | None) -> None:
    assert render_value(value) == expected


def test_the_list_separator_can_be_turned_off() -> None:
    assert render_value("a|b", None) == "a|b"
    assert one({"title": "T", "genres": "a|b"}, list_separator=None) == "T Genres: a|b."


def test_unnamed_columns_read_as_labelled_attributes_in_frame_order() -> None:
    text = one({"title": "Kettle", "material": "steel", "power_watts": 2200})
    assert text == "Kettle Material: steel. Power watts: 2200."


def test_an_article_body_comes_after_its_section_and_survives_the_cut_last() -> None:
    # a CMS export lists the body first: cutting a long body must not cut the section
    row = {"title": "Cup final", "body": "The match went to penalties. " * 400, "section": "Sport"}
    text = one(row, max_chars=300)
    assert text.startswith("Cup final Section: Sport. Body: The match went")
    assert len(text) <= 301


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<p>Rain&nbsp;ahead &amp; wind</p><p>Tonight</p>", "Rain ahead & wind Tonight"),
        ('<div class="lead"><a href="/x">Storm</a> warning<br/>for the coast</div>',
         "Storm warning for the coast"),
        ("<script>var a = 1 < 2;</script><style>p {color: red}</style>Only this", "Only this"),
        ("<!-- teaser -->Caf&eacute; &#8211; open", "Café – open"),
        ("a < b & c > d", "a < b & c > d"),  # no markup: untouched
        ("Size <5 cm & weight>2 kg", "Size <5 cm & weight>2 kg"),
    ],
)  # fmt: skip
def test_html_reads_as_the_text_a_browser_shows(value: str, expected: str) -> None:
    assert " ".join(html_to_text(value).split()) == expected


def test_an_html_body_is_embedded_without_its_markup_unless_asked() -> None:
    """A CMS export's body: markup spent the encoder's 256-token window."""
    body = "<div><p>The council met on <b>Monday</b>.</p><script>track()</script></div>"
    frame = pd.DataFrame(
        {"item_id": ["a", "b"], "title": ["Vote", ""], "body": [body, "<div><br/></div>"]}
    )
    texts = item_texts(frame)
    assert texts["a"] == "Vote Body: The council met on Monday."
    assert texts["b"] == ""  # nothing but markup: an item without text, as if empty
    kept = item_texts(frame, ContentConfig(strip_html=False))
    assert "<script>track()</script>" in kept["a"]


def test_text_columns_choose_the_columns() -> None:
    row = {"title": "Kettle", "material": "steel", "brand": "Acme"}
    assert one(row, text_columns=["title", "brand"]) == "Kettle Brand: Acme."
    with pytest.raises(DataValidationError, match="colour"):
        one(row, text_columns=["title", "colour"])


def test_template_fields_match_columns_case_insensitively() -> None:
    assert one({"Title": "Mug", "GENRES": "Kitchen"}) == "Mug Genres: Kitchen."


def test_no_doubled_full_stop_after_punctuated_values() -> None:
    assert one({"title": "Airplane!", "category": "Comedy."}) == "Airplane! Category: Comedy."


def test_index_is_string_ids_in_catalogue_order() -> None:
    frame = pd.DataFrame({"item_id": [10, 2, 33], "title": ["a", "b", "c"]})
    texts = item_texts(frame)
    assert texts.index.tolist() == ["10", "2", "33"]
    assert texts.index.name == "item_id"
    assert texts.tolist() == ["a", "b", "c"]


def test_the_callers_frame_is_not_changed() -> None:
    frame = pd.DataFrame({"item_id": [1, 2], "title": ["a", None]})
    before = frame.copy()
    item_texts(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_duplicate_ids_are_rejected() -> None:
    frame = pd.DataFrame({"item_id": ["a", "b", "a"], "title": ["x", "y", "z"]})
    with pytest.raises(DataValidationError, match="duplicate item id"):
        item_texts(frame)


def test_missing_ids_are_rejected() -> None:
    frame = pd.DataFrame({"item_id": ["a", None], "title": ["x", "y"]})
    with pytest.raises(DataValidationError, match="missing id"):
        item_texts(frame)


def test_an_item_without_any_text_gets_empty_text_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = pd.DataFrame({"item_id": ["full", "bare"], "title": ["Named", None]})
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.content.text"):
        texts = item_texts(frame)
    assert texts["bare"] == ""
    assert "1 item(s) have no text" in caplog.text
    assert "'bare'" in caplog.text


# ----------------------------------------------------------------------------- long text


def test_long_text_is_cut_at_a_word_boundary_and_the_head_survives() -> None:
    description = " ".join(f"word{i}" for i in range(5000))
    text = one({"title": "Epic", "genres": "War", "description": description}, max_chars=200)
    assert len(text) <= 200
    assert text.startswith("Epic Genres: War. word0 word1")
    assert text.endswith("…")
    assert text[:-1].split()[-1].startswith("word")
    assert text[:-1].split()[-1] in description.split()  # no word cut in half


def test_cut_text() -> None:
    assert cut_text("short", 10) == "short"
    assert cut_text("x" * 10, 10) == "x" * 10
    assert cut_text("x" * 11, 10) == "x" * 9 + "…"  # no space to back off to
    assert cut_text("aaaa bbbb cccc", 12) == "aaaa bbbb…"


# ----------------------------------------------------------------------------- hashes


def test_text_hash_depends_on_text_and_encoder() -> None:
    expected = hashlib.sha256(b"enc\x00abc").hexdigest()
    assert text_hash("abc", "enc") == expected
    assert text_hash("abc", "other") != expected
    assert text_hash("abd", "enc") != expected
    assert len(expected) == 64
