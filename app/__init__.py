"""The hybrid_rec demo app (Gradio), built on the library's public API only.

``python -m app.gradio_app`` or ``hybrid-rec serve`` starts it; see
:func:`app.gradio_app.serve` and :func:`app.gradio_app.build_app`.
"""

from __future__ import annotations
