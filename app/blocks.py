"""The Gradio Blocks: the banner and four tabs over one :class:`~app.state.DemoApp`.

:func:`build_app` builds the page for any fitted recommender (the tests use a
small synthetic one); :func:`launch` serves it on loopback with the app's
theme and CSS.
"""

from __future__ import annotations

import os

import gradio as gr

from app.settings import DEFAULT_BENCHMARKS_DIR, Limits
from app.state import DemoApp
from app.tabs import insight_tab, new_item_tab, new_user_tab, user_tab
from app.theme import CSS, theme
from hybrid_rec import HybridRecommender

__all__ = ["build_app", "launch"]


def build_app(
    rec: HybridRecommender,
    *,
    benchmarks_dir: str | os.PathLike[str] = DEFAULT_BENCHMARKS_DIR,
    max_k: int = 50,
    max_text: int = 2000,
    concurrency: int = 2,
    max_queue: int = 64,
    model_dir: str | os.PathLike[str] | None = None,
) -> gr.Blocks:
    """The Gradio Blocks for a fitted recommender.

    Parameters
    ----------
    rec
        A fitted :class:`~hybrid_rec.HybridRecommender`; items added in the app
        are added to it (in memory, not saved).
    benchmarks_dir
        Where ``quality.json``, ``RESULTS.md`` and ``recall_by_decile*.png`` are read.
    max_k, max_text
        Largest k and longest free text accepted (checked in the page and on the server).
    concurrency, max_queue
        Workers of the request queue and its length: requests beyond them wait
        (or are refused when the queue is full) so the LLM is never overloaded.
    model_dir
        Where ``rec`` was loaded from: the app state can then reload it when a save
        replaces it (:meth:`~app.state.DemoApp.reload_if_changed`).

    Launch it with :func:`launch` (which applies the theme and CSS).
    """
    limits = Limits(max_k=max_k, max_text=max_text)
    state = DemoApp(rec, benchmarks_dir=benchmarks_dir, limits=limits, model_dir=model_dir)
    with gr.Blocks(
        title="hybrid_rec · cold-start recommendations",
        analytics_enabled=False,
        delete_cache=(3600, 3600),  # and delete what Gradio cached, at the latest on exit
    ) as demo:
        header = gr.HTML(state.header_html(), elem_id="header")
        with gr.Tabs():
            users = user_tab(state)
            liked = new_user_tab(state)
            new_item_tab(state, liked, header)
            insight_tab(state, demo)
        # each visit sees the catalogue's size and the explanation backend as they are now
        demo.load(state.header_html, None, header, api_visibility="private", queue=False)
        # and the items added since the Blocks were built: the picker's choices are also
        # the server's list of allowed values, per visit
        demo.load(state.picker_update, None, liked, api_visibility="private", queue=False)
        # the users too: a model reloaded since the page was built has others
        demo.load(state.user_picker_update, None, users, api_visibility="private", queue=False)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    demo.hr_state = state  # serve() and the tests use it
    return demo


MAX_UPLOAD_BYTES = 0
"""Uploads the server accepts: none (it serves no file input)."""


def launch(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    prevent_thread_lock: bool = True,
    quiet: bool = False,
) -> str:
    """Start the server with the app's theme and CSS; return the local URL."""
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        share=False,
        inbrowser=False,
        quiet=quiet,
        show_error=False,
        # the app has no upload component: refuse uploads (any web page could POST them)
        max_file_size=MAX_UPLOAD_BYTES,
        footer_links=["api"],
        theme=theme(),
        css=CSS,
    )
    return str(url)
