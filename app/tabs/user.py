"""Tab 1: a known user's recent history and top-k, each with its drivers and explanation."""

from __future__ import annotations

import gradio as gr

from app.render import render_notice
from app.state import DemoApp
from app.tabs.common import filter_box, k_slider

__all__ = ["user_tab"]


def user_tab(state: DemoApp) -> gr.Dropdown:
    """Pick a user (searchable) and k; the list shows at once, explanations fill in.
    Returns the user picker, whose choices each visit refreshes."""
    users = state.user_choices()
    with gr.Tab("A user's recommendations", id="user"), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            user = gr.Dropdown(
                users,
                value=users[0] if users else None,
                label="User",
                allow_custom_value=True,  # an unknown id typed gets its error, not the last user
                info="Type to search by id.",
                elem_id="user-pick",
            )
            k = k_slider(state.limits, "user-k")
            fresh = gr.Slider(
                0,
                5,
                value=0,
                step=1,
                label="New arrivals, at least",
                info="Places kept for items without interactions (0: by score alone).",
                elem_id="user-new",
            )
            where = filter_box(state, "user-where")
            go = gr.Button("Recommend", variant="primary", elem_id="user-go")
            history = gr.HTML(elem_id="user-history")
        with gr.Column(scale=2):
            out = gr.HTML(render_notice("Pick a user and press Recommend."), elem_id="user-out")
    go.click(
        state.recommend_user,
        [user, k, fresh, where],
        [history, out],
        api_name="recommend_user",
        trigger_mode="multiple",  # a click while explanations stream starts now; it stops them
    )
    return user
