"""Serve the demo: fit or load the model, pick the explanation backend, launch, warm up.

``hybrid-rec serve`` (``make demo``) and ``python -m app.gradio_app`` end up in
:func:`serve`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time

import gradio as gr

from app.blocks import build_app, launch
from app.catalogue import ITEM_COL
from app.explainer import TEMPLATE
from app.model import load_or_fit
from app.settings import DEFAULT_BENCHMARKS_DIR, DEFAULT_MODEL_DIR, DEMO_EPOCHS
from app.state import DemoApp
from hybrid_rec import HybridRecError, HybridRecommender

__all__ = ["serve", "use_explain_backend", "warm_up_explanations"]

log = logging.getLogger(__name__)


def serve(
    model_dir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    epochs: int = DEMO_EPOCHS,
    refit: bool = False,
    is_demo: bool = False,
    benchmarks_dir: str | os.PathLike[str] = DEFAULT_BENCHMARKS_DIR,
    concurrency: int = 2,
    explain_backend: str | None = None,
    block: bool = True,
    reload_every: float = 10.0,
) -> gr.Blocks:
    """Fit or load the demo model and serve the app on ``host:port``.

    ``is_demo`` says that ``model_dir`` is a folder for the MovieLens demo (see
    :func:`~app.model.load_or_fit`). ``explain_backend`` (``llama_cpp``,
    ``transformers``, ``template``) overrides the saved model's explanation backend;
    by default the local LLM
    is used when llama-cpp-python is installed. With ``block=False`` it
    returns once the page is up (the server keeps running in a thread);
    otherwise it serves until interrupted.

    Every ``reload_every`` seconds (0: never) the app checks whether a save has
    replaced the model directory — ``hybrid-rec sync-catalogue`` or
    ``update-items`` run at night, say — and serves the new model once loaded.
    With ``block=False``, ``demo.hr_stop_watching.set()`` stops those checks.
    """
    start = time.perf_counter()
    _configure_logging()
    library = logging.getLogger("hybrid_rec")
    level = library.level
    library.setLevel(min(level or logging.INFO, logging.INFO))  # the fit's stages and bars
    directory = model_dir or DEFAULT_MODEL_DIR
    try:
        rec = load_or_fit(directory, epochs=epochs, refit=refit, is_demo=is_demo)
        rec.recommend_for_new_user(text="warm up the text encoder", k=1)  # load it now
    finally:
        library.setLevel(level)  # requests then log quietly (no progress bar per request)
    use_explain_backend(rec, explain_backend)
    demo = build_app(
        rec, benchmarks_dir=benchmarks_dir, concurrency=concurrency, model_dir=directory
    )
    try:
        url = launch(demo, host=host, port=port)
    except OSError as exc:
        raise HybridRecError(
            f"cannot listen on {host}:{port} ({exc}); pass another --port."
        ) from None
    log.info("app ready at %s (%.1f s after start)", url, time.perf_counter() - start)
    state = demo.hr_state  # type: ignore[attr-defined]
    threading.Thread(target=warm_up_explanations, args=(state,), daemon=True).start()
    stop = threading.Event()
    demo.hr_stop_watching = stop  # type: ignore[attr-defined]
    if reload_every > 0:
        watcher = threading.Thread(target=state.watch, args=(reload_every, stop), daemon=True)
        watcher.start()
    if block:
        try:
            demo.block_thread()
        finally:
            stop.set()
            demo.close()
    return demo


def use_explain_backend(rec: HybridRecommender, backend: str | None = None) -> str:
    """Set the explanation backend: ``backend``, or when None ``llama_cpp`` if
    llama-cpp-python is installed and else the saved model's own."""
    if backend is None and importlib.util.find_spec("llama_cpp") is not None:
        backend = "llama_cpp"
    if backend:
        try:
            rec.config.explain.backend = backend  # type: ignore[assignment]
        except ValueError:
            raise HybridRecError(
                f"unknown explanation backend {backend!r}: choose llama_cpp, transformers or "
                "template."
            ) from None
    return str(rec.config.explain.backend)


def warm_up_explanations(state: DemoApp) -> None:
    """Load the explanation model with one explanation: lists are served meanwhile, and
    explanations wait for it (the explainer's lock) rather than load it twice."""
    rec = state.rec
    users = state.user_choices()
    if rec.config.explain.backend == TEMPLATE or not users:
        return
    start = time.perf_counter()
    with state.lock.read():
        item = str(rec.recommend([users[0]], k=1)[ITEM_COL].iloc[0])
        state.explainer.for_user(users[0], item)  # logs and falls back if it fails
    if state.explainer.fallback_reason:
        return
    log.info(
        "explanations by %s ready (%.1f s)", rec.config.explain.backend, time.perf_counter() - start
    )


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("app").setLevel(logging.INFO)  # every module of the app package
