"""The line under a paged list (the inbox, the learners): why it is empty, or how much shows."""

from __future__ import annotations

from textual.widgets import Static


def show_more_line(line: Static, *, shown: int, total: int, empty: str) -> None:
    """`empty` when nothing shows, "200 of 1,234 shown..." when more can be loaded, else
    nothing (the line hides)."""
    if not shown:
        text = empty
    elif total > shown:
        text = f"{shown:,} of {total:,} shown: move past the end for more"
    else:
        text = ""
    line.update(text)
    line.display = bool(text)
