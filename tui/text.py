"""Learner text shown literally: no markup, no terminal escapes, no invisible tricks.

A learner's message may contain `[bold]`, ANSI escape sequences or bidi overrides. The dashboard
never interprets them: escapes and control characters are removed, and what remains is wrapped
in a Rich `Text`, which Textual displays as is (a plain `str` would be parsed as markup).
"""

from __future__ import annotations

import re

from rich.text import Text

# CSI and OSC sequences first, then lone ESC sequences, then C0/C1 controls other than tab and
# newline, then the bidi controls that can make text read differently than it is stored.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b[@-_]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def clean(text: str, *, one_line: bool = False) -> str:
    """`text` without escape sequences and control characters; tabs become spaces."""
    cleaned = _ESCAPES.sub("", text).replace("\t", "    ")
    if one_line:
        cleaned = " ".join(cleaned.split())
    return cleaned


def literal(text: str, style: str = "", *, one_line: bool = False) -> Text:
    """A renderable that shows `text` exactly as the learner wrote it (minus the controls)."""
    return Text(clean(text, one_line=one_line), style=style, no_wrap=one_line, end="")


def shorten(text: str, width: int) -> str:
    """One line of at most `width` characters, with an ellipsis when cut."""
    line = clean(text, one_line=True)
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"
