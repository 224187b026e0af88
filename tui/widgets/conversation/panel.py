"""The learner panel: how to reach the learner, their time of day, and where they stand.

Beside the thread when the terminal is wide; toggled with a key when it is not.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from dripper.inbox import LearnerPanel
from tui.text import literal

_REACH = {
    "ok": ("reachable", "green"),
    "unknown": ("not used yet", "dim"),
    "unreachable": ("unreachable", "bold red"),
}
BAR_WIDTH = 12


def _reach(status: str) -> Text:
    words, style = _REACH.get(status, (status, ""))
    return Text(words, style=style)


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> Text:
    """A bar such as ████░░░░ for `done` of `total`."""
    filled = round(width * done / total) if total else 0
    filled = max(0, min(width, filled))
    return Text.assemble(("█" * filled, "green"), ("░" * (width - filled), "dim"))


def render_panel(panel: LearnerPanel, now: datetime) -> Text:
    """The panel's text; `now` gives the learner's local time (it moves on while it is shown)."""
    text = Text(end="")
    text.append_text(literal(panel.name, "bold", one_line=True))
    text.append("\n")
    if panel.opted_out:
        text.append("Opted out: dripper sends nothing more\n", style="bold red")

    text.append("\nChannels\n", style="bold underline")
    if panel.email:
        text.append("email ")
        text.append_text(literal(panel.email, one_line=True))
        text.append("\n  ")
        text.append_text(_reach(panel.email_status))
        text.append("\n")
    else:
        text.append("email ", style="dim")
        text.append("no address\n", style="dim")
    text.append("telegram ")
    if panel.telegram_username:
        text.append_text(literal("@" + panel.telegram_username, one_line=True))
    text.append("\n  ")
    if panel.telegram_linked:
        text.append("linked", style="green")
        text.append(" · ")
        text.append_text(_reach(panel.telegram_status))
    else:
        text.append("not linked", style="dim")
    text.append("\n")

    local = now.astimezone(ZoneInfo(panel.timezone))
    text.append("\nLocal time\n", style="bold underline")
    text.append(local.strftime("%a %H:%M"), style="bold")
    text.append(" ")
    text.append_text(literal(panel.timezone, "dim", one_line=True))
    text.append("\n")

    text.append("\nCourse\n", style="bold underline")
    if panel.curriculum is None:
        text.append("not enrolled\n", style="dim")
        return text
    text.append_text(literal(panel.curriculum, one_line=True))
    text.append("\ncohort ")
    text.append_text(literal(panel.cohort or "", "bold", one_line=True))
    if panel.enrollment_state and panel.enrollment_state != "active":
        text.append(f" · {panel.enrollment_state}", style="yellow")
    text.append("\n")
    text.append_text(progress_bar(panel.steps_sent, panel.steps_total))
    text.append(f" {panel.steps_sent}/{panel.steps_total} steps\n")
    text.append("quizzes ")
    if panel.quizzes_answered:
        text.append(f"{panel.quizzes_correct}/{panel.quizzes_answered} correct")
    else:
        text.append("none answered", style="dim")
    return text


class LearnerPanelView(VerticalScroll, can_focus=False):
    """The panel's frame; its text is one `Static` inside, so a long address can scroll."""

    def compose(self) -> ComposeResult:
        yield Static(id="learner-panel-text")

    def show(self, panel: LearnerPanel, now: datetime) -> None:
        self.query_one("#learner-panel-text", Static).update(render_panel(panel, now))
