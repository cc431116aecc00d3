"""Tab 2: a brand-new user, described by items picked from the catalogue and/or in words."""

from __future__ import annotations

import gradio as gr

from app.render import render_notice
from app.state import DemoApp
from app.tabs.common import filter_box, k_slider

__all__ = ["new_user_tab"]


def new_user_tab(state: DemoApp) -> gr.Dropdown:
    """The new-user tab; returns its item picker (adding an item updates its choices)."""
    with gr.Tab("New user", id="new-user"), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            liked = gr.Dropdown(
                state.catalogue.choices(),
                value=[],
                multiselect=True,
                max_choices=state.limits.max_liked,
                label="Items you like",
                info="Type to search the catalogue.",
                elem_id="liked-pick",
            )
            taste = gr.Textbox(
                label="Your taste, in words",
                placeholder="what they like, in their own words",
                lines=3,
                max_length=state.limits.max_text,
                elem_id="taste",
            )
            k = k_slider(state.limits, "new-k")
            where = filter_box(state, "new-where")
            go = gr.Button("Recommend", variant="primary", elem_id="new-go")
        with gr.Column(scale=2):
            out = gr.HTML(
                render_notice("Pick a few items and/or describe a taste."), elem_id="new-out"
            )
    go.click(
        state.recommend_new_user,
        [liked, taste, k, where],
        out,
        api_name="recommend_new_user",
        trigger_mode="multiple",  # a click while explanations stream starts now; it stops them
    )
    return liked
