"""Widgets more than one tab uses."""

from __future__ import annotations

import gradio as gr

from app.settings import Limits

__all__ = ["k_slider"]


def k_slider(limits: Limits, elem_id: str) -> gr.Slider:
    """How many recommendations: 1 to ``limits.max_k``, 10 to start with."""
    return gr.Slider(
        1, limits.max_k, value=min(10, limits.max_k), step=1, label="k", elem_id=elem_id
    )
