"""The hybrid_rec demo: cold-start recommendations with explanations, in Gradio.

Four tabs over the public API only (``HybridRecommender``, ``RecommenderConfig``,
``datasets``): a known user's recommendations with the history items that
drove each one; a brand-new user described by picked items and/or words; a
brand-new item added live (``add_items``) with the users it would reach; and
catalogue insight (benchmark results, long-tail share).

>>> from app.gradio_app import serve
>>> serve()                                   # doctest: +SKIP

``serve`` fits MovieLens-100k once (MiniLM encoder), saves it to
``models/ml100k`` and loads it on later starts; :func:`build_app` builds the
Blocks for any fitted recommender (the tests use a small synthetic one).

This module is the entry point (``python -m app.gradio_app``, and what
``hybrid-rec serve`` imports); the work is done in the ``app`` package's
modules, listed in ``app/__init__.py``.
"""

from __future__ import annotations

from app.blocks import build_app, launch
from app.explainer import Explainer, ExplanationView
from app.model import fit_demo_model, load_or_fit
from app.server import serve, use_explain_backend, warm_up_explanations
from app.settings import DEFAULT_MODEL_DIR
from app.state import DemoApp
from app.theme import CSS, theme

__all__ = [
    "CSS",
    "DEFAULT_MODEL_DIR",
    "DemoApp",
    "Explainer",
    "ExplanationView",
    "build_app",
    "fit_demo_model",
    "launch",
    "load_or_fit",
    "main",
    "serve",
    "theme",
    "use_explain_backend",
    "warm_up_explanations",
]


def main() -> None:
    """Serve the demo with its defaults until interrupted (``python -m app.gradio_app``)."""
    serve()


if __name__ == "__main__":
    main()
