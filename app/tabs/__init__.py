"""One module per tab: its components, and the wiring of its button to :class:`~app.state.DemoApp`.

Each ``*_tab`` function is called inside ``gr.Blocks`` / ``gr.Tabs`` by
:func:`app.blocks.build_app`; element ids (``elem_id``) are the browser tests' handles.
"""

from __future__ import annotations

from app.tabs.insight import insight_tab
from app.tabs.new_item import new_item_tab
from app.tabs.new_user import new_user_tab
from app.tabs.user import user_tab

__all__ = ["insight_tab", "new_item_tab", "new_user_tab", "user_tab"]
