"""The conversation screen's parts: header line, thread, learner panel and composer."""

from tui.widgets.conversation.composer import Composer
from tui.widgets.conversation.header import render_header
from tui.widgets.conversation.panel import LearnerPanelView, render_panel
from tui.widgets.conversation.thread import (
    EntryView,
    ShownEntry,
    ThreadView,
    delivery_text,
    render_entry,
)

__all__ = [
    "Composer",
    "EntryView",
    "LearnerPanelView",
    "ShownEntry",
    "ThreadView",
    "delivery_text",
    "render_entry",
    "render_header",
    "render_panel",
]
