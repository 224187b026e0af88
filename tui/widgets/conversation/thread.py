"""The thread: every entry of a conversation, oldest first, in a scrollable column.

Each entry is one `Static` whose first line says when, who, on which channel and, for the
learner, which drip step they answer; for a trainer's reply, whether it has gone out. The body
is the text as written: learner text goes through `literal()` and is never read as markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from dripper.inbox import EntryKind, ThreadEntry
from dripper.media.folder import display_name, is_file
from tui.text import clean, literal

# How a delivery state reads on screen, and its colour (plain Rich colours: works in any theme).
_STATE_STYLES = {
    "queued": "yellow",
    "sending": "yellow",
    "sent": "green",
    "failed": "bold red",
    "uncertain": "bold dark_orange",
    "held (paused)": "yellow",
    "skipped": "dim",
    "cancelled": "dim",
}
_STATE_HINTS = {"uncertain": " (may not have arrived)"}


@dataclass(frozen=True)
class ShownEntry:
    """One entry as drawn: its text and the CSS classes that give it its look."""

    text: Text
    classes: str


def delivery_text(state: str | None, error: str | None) -> Text:
    """`queued`, `sent`, `failed: Chat not found`... coloured by how worried a trainer should be."""
    if not state:
        return Text("")
    style = _STATE_STYLES.get(state, "")
    shown = Text(state + _STATE_HINTS.get(state, ""), style=style)
    if error and state in ("failed", "uncertain"):
        shown.append(": ", style=style)
        shown.append_text(literal(error, style, one_line=True))
    return shown


def _meta(*parts: Text | str) -> Text:
    line = Text(end="")
    for part in parts:
        if not part:
            continue
        if line:
            line.append(" · ", style="dim")
        line.append_text(part if isinstance(part, Text) else Text(part))
    return line


def render_entry(
    entry: ThreadEntry, learner_name: str, local: Callable[[datetime], str]
) -> ShownEntry:
    """The entry's heading line and body; `local` formats a time in the trainer's zone."""
    when = Text(local(entry.at), style="dim")
    channel = Text(entry.channel or "", style="dim")
    learner = literal(learner_name or "learner", "bold", one_line=True)
    kind = entry.kind
    if kind is EntryKind.LEARNER:
        answers = (
            Text.assemble(("answers ", "dim"), literal(entry.step_title, "italic", one_line=True))
            if entry.step_title
            else Text("")
        )
        extras: list[Text | str] = [Text(f"⚑ {flag}", style="bold red") for flag in entry.flags]
        if entry.files:
            extras.append(Text(attachments_line(entry), style="dim"))
        head = _meta(learner, when, channel, answers, *extras)
        classes = "entry entry-in"
    elif kind is EntryKind.TRAINER:
        author = literal(entry.author or "a trainer", "bold", one_line=True)
        head = _meta(
            Text.assemble(author, (" replied", "")),
            when,
            channel,
            delivery_text(entry.delivery_state, entry.delivery_error),
        )
        classes = "entry entry-out"
        if entry.delivery_state in ("failed", "uncertain"):
            classes += " entry-problem"
    elif kind is EntryKind.NOTE:
        author = literal(entry.author or "a trainer", "bold", one_line=True)
        head = _meta(
            Text("✎ Internal note", style="bold"),
            author,
            when,
            Text("not sent to the learner", style="italic"),
        )
        classes = "entry entry-note"
    elif kind is EntryKind.SYSTEM:
        head = _meta(Text("⚙ dripper noted", style="bold"), when, channel)
        classes = "entry entry-system"
    elif kind is EntryKind.ANSWER:
        head = _meta(learner, when, channel, literal(entry.step_title or "", "italic"))
        classes = "entry entry-answer"
    else:
        title = literal(entry.step_title or entry.step_id or "", "italic", one_line=True)
        state = (
            delivery_text(entry.delivery_state, entry.delivery_error)
            if entry.delivery_state != "sent"
            else Text("")
        )
        head = _meta(Text("dripper", style="bold"), when, channel, title, state)
        classes = "entry entry-drip"
        if entry.delivery_state in ("failed", "uncertain"):
            classes += " entry-problem"
    text = Text(end="")
    text.append_text(head)
    text.append("\n")
    text.append_text(literal(entry.body))
    return ShownEntry(text, classes)


def attachments_line(entry: ThreadEntry) -> str:
    """ "📎 photo.jpg, voice.ogg (o opens)": the files by name (as the learner named them,
    control characters removed), "+1 place" for the rest; the hint once one is kept."""
    files = [a for a in entry.files if is_file(a)]
    names = [clean(display_name(a), one_line=True) for a in files]
    places = len(entry.files) - len(names)
    parts = names[:3] + ([f"+{len(names) - 3} more"] if len(names) > 3 else [])
    if places > 0:
        parts.append(f"+{places} place{'s' if places != 1 else ''}")
    hint = " (o opens)" if any("stored" in a for a in files) else ""
    return "📎 " + ", ".join(parts) + hint


class EntryView(Static):
    """One entry of the thread."""


class ThreadView(VerticalScroll):
    """The conversation, kept at its end like a chat: it opens on the newest entry, and new
    entries scroll into view unless the trainer has scrolled up to read."""

    async def show(self, entries: Sequence[ShownEntry], *, to_end: bool = False) -> None:
        """Show these entries, reusing the widgets already there so a live reload neither
        flickers nor moves what the trainer is reading; `to_end` scrolls to the newest anyway."""
        if not entries:
            entries = [ShownEntry(Text("No messages yet.", style="dim"), "entry entry-empty")]
        existing = list(self.query_children(EntryView))
        at_end = to_end or not existing or self.scroll_y >= self.max_scroll_y
        for widget, entry in zip(existing, entries, strict=False):
            widget.update(entry.text)
            widget.set_classes(entry.classes)
        if len(existing) > len(entries):
            await self.remove_children(existing[len(entries) :])
        added = [EntryView(entry.text, classes=entry.classes) for entry in entries[len(existing) :]]
        if added:
            await self.mount_all(added)
        if at_end:
            self.scroll_end(animate=False)
            # Entries just mounted may be laid out after that first scroll: once more then.
            self.call_after_refresh(self.scroll_end, animate=False)
