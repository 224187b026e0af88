"""Messages that reach screens from outside them: the live poller and the pickers."""

from __future__ import annotations

from textual.message import Message


class DataChanged(Message):
    """Something in the database changed (this dashboard, another one, or `dripper run`)."""
