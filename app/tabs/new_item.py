"""Tab 3: a brand-new item, typed in, added live; its neighbours, reach and top user's why.
An item added here (by mistake) can be taken back, and restored; the catalogue's own items
are the operator's (``hybrid-rec remove-items``)."""

from __future__ import annotations

import html
import re
from typing import Any

import gradio as gr

from app.render import render_notice
from app.state import DemoApp

__all__ = ["new_item_tab"]


def new_item_tab(state: DemoApp, liked: gr.Dropdown, header: gr.HTML | None = None) -> None:
    """The form shows the catalogue's own columns: an attribute list, year, keywords,
    and a ``column: value`` box for the rest (brand, price ...).

    ``liked`` is the new-user tab's picker: an added item joins its choices (a removed
    one leaves them); the page's ``header`` counts it.
    """
    column = state.catalogue.attribute_column
    cols = state.rec.items_.columns
    others = state.catalogue.other_columns()
    limits = state.limits
    with gr.Tab("New item", id="new-item"), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            fields = [
                gr.Textbox(
                    label="Item id (optional)",
                    placeholder="left empty: new-1, new-2 …",
                    max_length=limits.max_id,
                    elem_id="item-id",
                ),
                gr.Textbox(label="Title", max_length=limits.max_title, elem_id="item-title"),
                gr.Textbox(
                    label="Description", lines=4, max_length=limits.max_text, elem_id="item-desc"
                ),
                gr.Dropdown(
                    state.catalogue.vocabulary(),
                    value=[],
                    multiselect=True,
                    allow_custom_value=True,
                    max_choices=limits.max_values,
                    label=(column or "attributes").capitalize(),
                    visible=column is not None,
                    elem_id="item-attr",
                ),
                gr.Number(
                    label="Year",
                    value=None,  # blank, not 0: an untouched form has no year
                    visible="year" in cols,
                    elem_id="item-year",
                ),
                gr.Textbox(
                    label="Keywords (comma-separated)",
                    max_length=limits.max_text,
                    visible="keywords" in cols,
                    elem_id="item-kw",
                ),
                gr.Textbox(
                    label=f"Other attributes, one 'column: value' per line ({', '.join(others)})",
                    placeholder="\n".join(f"{c}: …" for c in others[:3]),
                    lines=max(2, min(len(others), 4)),
                    max_length=limits.max_text,
                    visible=bool(others),
                    elem_id="item-other",
                ),
            ]
            go = gr.Button("Add to the catalogue", variant="primary", elem_id="item-go")
            with gr.Accordion("Remove an item", open=False, elem_id="item-remove"):
                remove_id = gr.Textbox(
                    label="Item id",
                    placeholder="an item added here; the one just added is filled in",
                    max_length=limits.max_id,
                    elem_id="remove-id",
                )
                with gr.Row():
                    remove = gr.Button("Remove", variant="stop", elem_id="remove-go")
                    restore = gr.Button("Restore", elem_id="restore-go")
        with gr.Column(scale=2):
            out = gr.HTML(
                render_notice(
                    "Describe an item that does not exist yet: it is embedded and added live, "
                    "shared by everyone on this app until it restarts. An item added here "
                    "by mistake can be removed (and restored) under Remove an item; the "
                    "catalogue's own items are removed by its operator."
                ),
                elem_id="item-out",
            )
    blank: list[Any] = ["", "", "", [], None, "", ""]  # one per field, in order

    def add_and_clear(
        item_id: str | None,
        title: str | None,
        description: str | None,
        attributes: list[str] | str | None,
        year: float | None,
        keywords: str | None,
        other: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:
        """Add the item; on success empty the form (the next item inherited its values)."""
        page, picker = state.add_item(
            item_id, title, description, attributes, year, keywords, other, progress
        )
        added = 'class="hr-added' in page
        return page, picker, *(gr.update(value=v) if added else gr.update() for v in blank)

    added = go.click(add_and_clear, fields, [out, liked, *fields], api_name="add_item")
    # the id of the item just added, ready to be removed if it was a mistake
    added.then(_added_id, out, remove_id, api_visibility="private", queue=False)
    # the picker's value goes in too: a picked item that is removed must leave it as well
    removed = remove.click(
        state.remove_item, [remove_id, liked], [out, liked], api_name="remove_item"
    )
    restored = restore.click(state.restore_item, remove_id, [out, liked], api_name="restore_item")
    if header is not None:  # the item count in the header, stale until a reload before
        for event in (added, removed, restored):
            event.then(state.header_html, None, header, api_visibility="private", queue=False)


_ADDED = re.compile(r'<div class="hr-added" data-item="([^"]*)"')


def _added_id(page: str) -> Any:
    """The id of the item the page says was added, for the removal box; else no change."""
    found = _ADDED.search(page or "")
    return gr.update(value=html.unescape(found.group(1))) if found else gr.update()
