"""The header line: the learner, the conversation's status, assignee, labels and cohort."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text

from dripper.inbox import ConversationSummary
from tui.text import literal

_STATUS_STYLES = {
    "open": "bold green",
    "waiting": "bold yellow",
    "snoozed": "bold magenta",
    "closed": "bold",
}


def render_header(summary: ConversationSummary, local: Callable[[datetime], str]) -> Text:
    """`Ada Lovelace · open · anna · #question · cohort dec` (snoozed shows until when)."""
    line = literal(summary.learner_name, "bold", one_line=True)
    line.append(" · ")
    line.append(summary.status, style=_STATUS_STYLES.get(summary.status, ""))
    if summary.status == "snoozed" and summary.snoozed_until is not None:
        line.append(f" until {local(summary.snoozed_until)}")
    line.append(" · ")
    if summary.assignee:
        line.append("assigned to ")
        line.append_text(literal(summary.assignee, "bold", one_line=True))
    else:
        line.append("unassigned", style="dim")
    if summary.labels:
        line.append(" · ")
        line.append_text(literal(" ".join(f"#{label}" for label in summary.labels), one_line=True))
    if summary.cohort:
        line.append(" · cohort ")
        line.append_text(literal(summary.cohort, one_line=True))
    return line
