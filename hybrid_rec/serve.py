"""``hybrid-rec serve``: start the demo app of a source checkout.

The Gradio app is the ``app/`` package at the repository root (entry point
``app/gradio_app.py``), above the library (it uses only the public API), and is
not part of the installed package. A console script does not have the checkout
on ``sys.path``, so this module finds the app next to the package (an editable
install or a checkout) and imports it; anywhere else it says how to get it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hybrid_rec.errors import HybridRecError

__all__ = ["app_module", "serve"]

APP_MODULE = "app.gradio_app"


def app_module() -> ModuleType:
    """Import ``app.gradio_app`` from the checkout that holds this package."""
    if importlib.util.find_spec("gradio") is None:
        raise HybridRecError(
            "the demo app needs Gradio: pip install 'hybrid_rec[app]' (make demo does it)."
        )
    root = Path(__file__).resolve().parents[1]
    if not (root / "app" / "gradio_app.py").is_file():
        raise HybridRecError(
            f"the demo app ships with the source tree, not the package, and {root} has no "
            "app/gradio_app.py: clone the repository and run `make demo` there."
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(APP_MODULE)


def serve(
    model_dir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    **kwargs: Any,
) -> None:
    """Fit (first run) or load the demo model and serve the app; see ``app.gradio_app.serve``."""
    app_module().serve(model_dir=model_dir, host=host, port=port, **kwargs)
