"""Widgets more than one tab uses."""

from __future__ import annotations

import gradio as gr

from app.settings import Limits
from app.state import DemoApp

__all__ = ["filter_box", "k_slider"]


def k_slider(limits: Limits, elem_id: str) -> gr.Slider:
    """How many recommendations: 1 to ``limits.max_k``, 10 to start with."""
    return gr.Slider(
        1, limits.max_k, value=min(10, limits.max_k), step=1, label="How many", elem_id=elem_id
    )


def filter_box(state: DemoApp, elem_id: str) -> gr.Textbox:
    """Filters as text, as the command line's ``--filter`` takes them."""
    return gr.Textbox(
        label="Only items where",
        placeholder=state.filter_hint(),
        info=f"Columns: {', '.join(state.filter_columns())}. Separate filters with ';'.",
        max_lines=1,
        max_length=state.limits.max_text,
        elem_id=elem_id,
    )
