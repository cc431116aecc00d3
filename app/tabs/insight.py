"""Tab 4: catalogue insight: cold / long-tail / head shares and the benchmark results."""

from __future__ import annotations

import gradio as gr

from app.state import DemoApp

__all__ = ["insight_tab"]


def insight_tab(state: DemoApp, demo: gr.Blocks) -> None:
    """Filled on page load and when the tab is selected (items may have been added since)."""
    with gr.Tab("Catalogue insight", id="insight") as tab:
        catalogue = gr.HTML(elem_id="insight-catalogue")
        quality = gr.HTML(elem_id="insight-quality")
        plot = gr.Image(
            label="Recall by item-popularity decile",
            type="pil",
            interactive=False,
            buttons=["download", "fullscreen"],  # no "share": it posts to Hugging Face
            elem_id="insight-plot",
        )
        with gr.Accordion("benchmarks/RESULTS.md", open=False):
            results = gr.Markdown(elem_id="insight-results")
        refresh = gr.Button("Refresh", size="sm")
    outputs = [catalogue, quality, plot, results]
    tab.select(state.insight, None, outputs, api_visibility="private")
    refresh.click(state.insight, None, outputs, api_name="insight")
    demo.load(state.insight, None, outputs, api_visibility="private")
