"""A cohort's steps: delivered, replied and quiz-correct rates per step, with bar charts."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from dripper.errors import DripperError
from dripper.reports.steps import StepFigures, step_figures
from tui.messages import OpenAnswers
from tui.screens.cohorts.common import FAILED, WIDE, plural, report_command
from tui.screens.table import TableScreen
from tui.text import clean, literal, shorten
from tui.widgets.tables import Column, bar_cell, percent

KIND_SHORT = {"question": "ask", "checkin": "chk"}


def answers_cell(figures: StepFigures, width: int, wide: bool) -> Text:
    """Quiz: the share of right first answers; check-in: how many chose each button."""
    if figures.correct_rate is not None or figures.kind == "quiz":
        bar_width = 10 if wide else 4
        return bar_cell(
            figures.correct_rate,
            bar_width,
            f"{percent(figures.correct_rate)} right" if wide else None,
            style="dodger_blue1",
            label_width=10 if wide else 4,
        )
    if figures.options:
        counts = (" · " if wide else "·").join(
            f"{clean(option.label, one_line=True)} {option.count:,}" for option in figures.options
        )
        return literal(shorten(counts, width), one_line=True)
    return Text("")


def options_chart(figures: StepFigures, width: int) -> list[Text]:
    """One line per quiz option or check-in button: ✓/✗, the label, a bar and the count."""
    if not figures.options:
        return []
    total = sum(option.count for option in figures.options)
    labels = [shorten(option.label, 28) for option in figures.options]
    label_width = max(len(label) for label in labels)
    bar_width = max(6, min(30, width - label_width - 16))
    lines = []
    for option, label in zip(figures.options, labels, strict=True):
        mark = {True: ("✓", "green3"), False: ("✗", FAILED), None: ("•", "dim")}[option.correct]
        share = option.count / total if total else 0.0
        line = Text.assemble("  ", mark, " ")
        line.append_text(literal(label, one_line=True))
        line.append(" " * (label_width - len(label) + 1))
        line.append_text(
            bar_cell(share, bar_width, f"{option.count:,}", style="dodger_blue1", label_width=5)
        )
        lines.append(line)
    return lines


class StepFiguresScreen(TableScreen[StepFigures]):
    """Per step of one cohort: delivered, replied, quiz correct or check-in counts."""

    TABLE, STATUS, DETAIL = "steps", "steps-status", "step-detail"
    WIDE = WIDE

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="steps.back"),
        Binding("enter", "show_answers", "Answers", id="steps.answers"),
        Binding("j", "cursor_down", "Down", show=False, id="steps.down"),
        Binding("k", "cursor_up", "Up", show=False, id="steps.up"),
    ]

    def __init__(self, cohort_name: str) -> None:
        super().__init__()
        self.cohort_name = cohort_name
        self.problem: str | None = None

    def compose_hints(self) -> ComposeResult:
        yield Static(
            Text.assemble("Export these figures: ", (report_command(self.cohort_name), "bold")),
            id="steps-export",
            classes="hint",
        )

    @work(exclusive=True, exit_on_error=False, group="steps-load")
    async def reload(self) -> None:
        self.refresh_gate.started()
        selected = self.selected()  # before the rows change: the cursor stays on it
        try:
            self.rows = await step_figures(self.cohort_name)
            self.problem = None
        except DripperError as exc:  # the cohort was deleted or renamed meanwhile
            self.rows, self.problem = [], str(exc)
        finally:
            self.refresh_gate.finished()
        self.loaded = True
        self.table.loading = False
        self.fill(selected)
        self.show_status()

    def columns(self, width: int) -> Sequence[Column]:
        wide = width >= WIDE
        return [
            Column("when", "When", 8 if wide else 6),
            Column("kind", "Kind", 8 if wide else 4),
            Column("step", "Step", 10, grow=4, most=70),
            Column("delivered", "Delivered", 20 if wide else 10),
            Column("replied", "Replied", 15 if wide else 9),
            Column(
                "answers",
                "Quiz right / check-in" if wide else "Answers",
                21 if wide else 12,
                grow=1,
                most=40,
            ),
        ]

    def key(self, row: StepFigures) -> str:
        return row.step_id

    def cells(self, row: StepFigures) -> Sequence[Text | str]:
        wide, widths = self.wide, self.widths
        bar_width = 10 if wide else 4
        step = Text(no_wrap=True, end="")
        if wide:
            step.append_text(literal(row.step_id, "dim", one_line=True))
            step.append(" ")
        step.append_text(literal(row.summary or row.step_id, one_line=True))
        if not row.in_curriculum:
            step = Text.assemble(("(removed) ", "italic dim"), step)
        step.truncate(widths["step"], overflow="ellipsis")
        label = f"{row.delivered:,}/{row.planned:,}"
        delivered = bar_cell(row.delivered_rate, bar_width, label, cell=widths["delivered"])
        return (
            literal(shorten(row.when, widths["when"]), one_line=True),
            row.kind if wide else KIND_SHORT.get(row.kind, row.kind),
            step,
            delivered,
            bar_cell(row.reply_rate, bar_width, style="dodger_blue1"),
            answers_cell(row, widths["answers"], wide),
        )

    def show_status(self) -> None:
        status = Text.assemble(("Steps", "bold"), " of ")
        status.append_text(literal(self.cohort_name, "bold", one_line=True))
        if not self.loaded:
            status.append(" · loading (counting every delivery)…")
        elif self.problem is None:
            status.append(f" · {plural(len(self.rows), 'step')}")
        self.query_one("#steps-status", Static).update(status)

    def show_detail(self) -> None:
        detail = self.query_one("#step-detail", Static)
        row = self.selected()
        if row is None:
            message = self.problem or (
                "This cohort's curriculum has no steps." if self.loaded else ""
            )
            detail.update(literal(message))
            detail.display = bool(message)
            return
        detail.display = True
        first = Text.assemble(literal(row.step_id, "bold", one_line=True))
        first.append(f" · {row.kind or 'unknown kind'} · after {row.when or '?'} · ")
        first.append_text(literal(row.summary, one_line=True))
        if not row.in_curriculum:
            first.append(" · only older versions of the curriculum have it", style="italic")
        second = Text(
            f"{row.delivered:,} of {row.planned:,} delivered ({percent(row.delivered_rate)})",
            end="",
        )
        for count, word, style in (
            (row.failed, "failed", FAILED),
            (row.uncertain, "uncertain", FAILED),
            (row.skipped, "skipped", ""),
        ):
            if count:
                second.append(f", {count:,} {word}", style=style)
        second.append(f" · {row.replied:,} replied ({percent(row.reply_rate)})")
        lines = [first, second]
        if row.answer_rate is not None:
            third = Text(f"{row.answered:,} answered ({percent(row.answer_rate)})", end="")
            if row.correct is not None:
                third.append(f" · {row.correct:,} right ({percent(row.correct_rate)})")
            lines += [third, *options_chart(row, self.size.width or 80)]
        detail.update(Text("\n", end="").join(lines))

    def choose(self) -> None:
        self.action_show_answers()

    def action_show_answers(self) -> None:
        row = self.selected()
        if row is not None:
            self.post_message(OpenAnswers(self.cohort_name, row.step_id, row))
