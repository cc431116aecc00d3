"""The hybrid_rec demo app (Gradio), built on the library's public API only.

``python -m app.gradio_app`` or ``hybrid-rec serve`` starts it; see
:func:`app.gradio_app.serve` and :func:`app.gradio_app.build_app`.

The package, one job a module:

``settings``   paths, display sizes, input limits and their checks
``locks``      the read/write lock that lets ``add_items`` run alone
``catalogue``  read-only views of the fitted catalogue (titles, attributes, coldness)
``explainer``  explanations from the library, with the app's template as a fallback
``render``     HTML for cards, history, errors, the new item and the catalogue tiles
``benchmarks`` the insight tab's files under ``benchmarks/``
``state``      :class:`~app.state.DemoApp`: the callbacks, testable without a browser
``theme``      the Gradio theme and the page's CSS
``tabs``       one module per tab: its components and their wiring
``blocks``     :func:`~app.blocks.build_app` and :func:`~app.blocks.launch`
``server``     fit or load the demo model and serve it
``gradio_app`` the entry point; re-exports the names above that callers use
"""

from __future__ import annotations

import os

# Before anything imports gradio: its analytics stall start-up on DNS look-ups offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
