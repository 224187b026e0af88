"""The composer: a multi-line editor for a reply to the learner, or an internal note.

The mode is always in the border title, in words and colour, so a note is never sent to a
learner by mistake (and a reply is never filed away as a note).
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import TextArea

from tui.text import literal


class Composer(TextArea):
    """Reply (the default) or note mode; the screen sends what is written."""

    note_mode: reactive[bool] = reactive(False, init=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            soft_wrap=True,
            tab_behavior="focus",
            highlight_cursor_line=False,
            placeholder="Write here (Markdown).",
            id=id,
        )
        self._recipient = "the learner"
        self._channel: str | None = None
        self._hints = ("", "")

    def on_mount(self) -> None:
        self._retitle()

    def set_recipient(self, name: str, channel: str | None) -> None:
        """Who a reply goes to and on which channel (that of their latest message)."""
        if (name, channel) != (self._recipient, self._channel):
            self._recipient, self._channel = name, channel
            self._retitle()

    def set_hints(self, reply: str, note: str) -> None:
        """The keys to show under the editor in each mode (they follow the user's keymap)."""
        self._hints = (reply, note)
        self._retitle()

    def watch_note_mode(self, note: bool) -> None:
        self.set_class(note, "-note")
        self._retitle()

    def _retitle(self) -> None:
        if self.note_mode:
            self.border_title = Text.assemble(
                ("✎ Internal note", "bold"), " · only trainers see it, never sent"
            )
            self.border_subtitle = Text(self._hints[1])
            return
        title = Text.assemble(("Reply", "bold"), " to ")
        title.append_text(literal(self._recipient, one_line=True))
        if self._channel:
            title.append(f" by {self._channel}")
        self.border_title = title
        self.border_subtitle = Text(self._hints[0])
