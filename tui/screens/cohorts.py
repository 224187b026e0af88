"""Cohorts, their per-step figures, and every learner's answer to one step side by side.

Cohorts (F3): learners, progress and failures per cohort; `p`/`r` pause and resume a whole
cohort, `l` lists its learners, Enter shows its steps. Steps: delivered, replied and quiz-correct
rates per step with small bar charts (the figures `dripper report --cohort NAME --csv`
exports); Enter shows every answer to that step. Answers: one block per learner, the whole text
wrapped; Enter opens that learner's conversation.

Counting a large cohort takes about a second: figures load in a worker behind a loading
indicator, and a change in the database reloads them at most every few seconds (see
`tui.widgets.tables.refresh`).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ListItem, ListView, Static

from dripper.enrollments.pause import pause_cohort, resume_cohort
from dripper.errors import DripperError
from dripper.models import Channel
from dripper.reports.cohorts import CohortRow, cohort_rows
from dripper.reports.steps import StepAnswer, StepFigures, step_answers, step_figures
from tui.messages import DataChanged
from tui.session import Session, session_of
from tui.text import clean, literal, shorten
from tui.widgets.tables import Column, RefreshGate, bar_cell, percent, set_columns

if TYPE_CHECKING:
    from tui.app import DripperApp

WIDE = 110  # from this width on, the tables say more in each cell
WIDE_COHORTS = 130  # the cohorts table has more to say per cell
ANSWERS_PAGE = 100  # answer blocks mounted at a time
PAUSED = "yellow"
FAILED = "red"
KIND_SHORT = {"question": "ask", "checkin": "chk"}
CHANNEL_NAME = {Channel.TELEGRAM: "Telegram", Channel.EMAIL: "email"}


def _app(screen: Screen[None]) -> DripperApp:
    return cast("DripperApp", screen.app)


async def _changed(screen: Screen[None], session: Session) -> None:
    """After a pause or resume: the dispatcher re-reads its queue, every screen its data."""
    await session.wake_dispatcher()
    _app(screen).data_changed()


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def report_command(cohort_name: str, step_id: str | None = None) -> str:
    """The `dripper report` command that exports what the screen shows, ready to paste."""
    command = f"dripper report --cohort {shlex.quote(cohort_name)}"
    if step_id is not None:
        command += f" --step {shlex.quote(step_id)}"
    return command + " --csv"


# --------------------------------------------------------------------------- cohort pause
# The same steps as `dripper cohort pause/resume` (dripper/cli/enroll.py), which keeps them
# inside its click commands; over the domain functions of dripper.enrollments, no SQL of its own.


# --------------------------------------------------------------------------- cohorts


class CohortsScreen(Screen[None]):
    """Every cohort with its learners, progress and failures."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="cohorts.back"),
        # Enter reaches the action through the table's RowSelected, in order with the keys typed
        # before it (a priority binding would jump ahead of them); so the footer does not show it.
        Binding("enter", "show_steps", "Steps", id="cohorts.steps"),
        Binding("l", "show_learners", "Learners", id="cohorts.learners"),
        Binding("p", "pause", "Pause cohort", id="cohorts.pause"),
        Binding("r", "resume", "Resume cohort", id="cohorts.resume"),
        Binding("j", "cursor_down", "Down", show=False, id="cohorts.down"),
        Binding("k", "cursor_up", "Up", show=False, id="cohorts.up"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[CohortRow] = []
        self.loaded = False
        self.refresh_gate = RefreshGate(self, self.reload)
        self._wide = False
        self._widths: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="cohorts-status", classes="status-line")
        table: DataTable[Text | str] = DataTable(
            id="cohorts", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static(id="cohort-detail", classes="table-detail")
        yield Footer()

    def on_mount(self) -> None:
        self._set_columns()
        self.query_one("#cohorts", DataTable).loading = True
        self._show_status()
        self.reload()

    def on_resize(self) -> None:
        selected = self.selected()
        self._set_columns()
        self._fill(selected)

    def on_data_changed(self, _: DataChanged) -> None:
        self.refresh_gate.changed()

    def on_screen_resume(self) -> None:
        self.refresh_gate.resumed()

    @work(exclusive=True, exit_on_error=False, group="cohorts-load")
    async def reload(self) -> None:
        self.refresh_gate.started()
        try:
            rows = await cohort_rows(session_of(self).now())
        finally:
            self.refresh_gate.finished()
        selected = self.selected()  # before the rows change: the cursor stays on it
        self.rows = rows
        self.loaded = True
        self.query_one("#cohorts", DataTable).loading = False
        self._fill(selected)
        self._show_status()

    def _set_columns(self) -> None:
        width = max(60, self.size.width or 80)
        self._wide = wide = width >= WIDE_COHORTS
        columns = [
            Column("cohort", "Cohort", 10, grow=2, most=28),
            Column("curriculum", "Curriculum", 10, grow=2, most=32),
            Column("end", "Course end" if wide else "End", 15 if wide else 6),
            Column("learners", "Learners", 26 if wide else 8),
            Column("progress", "Progress", 18 if wide else 11),
            Column("overall", "Overall", 18 if wide else 11),
            Column("failures", "Failures" if wide else "Fail", 12 if wide else 4),
        ]
        self._widths = set_columns(self.query_one("#cohorts", DataTable), columns, width)

    def _fill(self, selected: CohortRow | None = None) -> None:
        table = self.query_one("#cohorts", DataTable)
        if not table.columns:
            return
        table.clear()
        session = session_of(self)
        wide, widths = self._wide, self._widths
        bar_width = 8 if wide else 6
        for row in self.rows:
            name = literal(shorten(row.name, widths["cohort"] - (2 if row.paused else 0)))
            if row.paused:
                name = Text.assemble(("‖ ", f"bold {PAUSED}"), name)
            learners = (
                f"{row.learners_active:,} active, {row.learners_paused:,} paused, "
                f"{row.learners_completed:,} done"
                if wide
                else f"{row.learners_active}/{row.learners_paused}/{row.learners_completed}"
            )
            failures = row.failed + row.uncertain
            failed = Text(f"{failures:,}", style=f"bold {FAILED}" if failures else "dim")
            if wide and row.uncertain:
                failed.append(f" ({row.uncertain:,} unsure)", style="")
            table.add_row(
                name,
                literal(shorten(row.curriculum_title, widths["curriculum"])),
                session.local(row.course_end, "%a %d %b %Y" if wide else "%d %b"),
                Text(learners, style=PAUSED if row.paused else ""),
                self._rate(row.progress, row.steps_sent, row.steps_due, bar_width),
                self._rate(row.overall, row.steps_sent, row.steps_total, bar_width),
                failed,
                key=row.name,
            )
        if selected is not None and selected.name in table.rows:
            table.move_cursor(row=table.get_row_index(selected.name))
        self._show_detail()

    def _rate(self, fraction: float | None, part: int, whole: int, width: int) -> Text:
        if self._wide:
            return bar_cell(
                fraction, width, f"{percent(fraction)} {part:,}/{whole:,}", label_width=9
            )
        return bar_cell(fraction, width)

    def _show_status(self) -> None:
        status = Text.assemble(("Cohorts", "bold"))
        if not self.loaded:
            status.append(" loading (counting every delivery)…")
        else:
            status.append(f" {len(self.rows):,}")
            paused = sum(row.paused for row in self.rows)
            if paused:
                status.append(f" · {paused:,} paused", style=PAUSED)
            status.append(f" · times in {session_of(self).zone.key}", style="dim")
        self.query_one("#cohorts-status", Static).update(status)

    def _show_detail(self) -> None:
        detail = self.query_one("#cohort-detail", Static)
        row = self.selected()
        if row is None:
            detail.update(
                Text("No cohorts yet: `dripper enroll` creates one.") if self.loaded else ""
            )
            detail.display = self.loaded
            return
        detail.display = True
        session = session_of(self)
        first = Text.assemble(literal(row.name, "bold", one_line=True), " · ")
        first.append_text(literal(f"{row.curriculum_title} ({row.curriculum_key})", one_line=True))
        first.append(f" · course end {session.local(row.course_end, '%a %d %b %Y %H:%M')}")
        second = Text(
            f"{_plural(row.learners, 'learner')}: {row.learners_active:,} active, "
            f"{row.learners_paused:,} paused, {row.learners_completed:,} completed"
            + (f", {row.learners_cancelled:,} cancelled" if row.learners_cancelled else ""),
            end="",
        )
        if row.paused:
            second.append(" · cohort paused: r resumes it", style=f"bold {PAUSED}")
        third = Text(
            f"{row.steps_sent:,} of {row.steps_due:,} due steps sent, {row.steps_total:,} planned",
            end="",
        )
        if row.failed or row.uncertain:
            third.append(f" · {row.failed:,} failed, {row.uncertain:,} uncertain", style=FAILED)
        detail.update(Text("\n", end="").join([first, second, third]))

    def selected(self) -> CohortRow | None:
        table = self.query_one("#cohorts", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    @on(DataTable.RowHighlighted, "#cohorts")
    def _highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_detail()

    @on(DataTable.RowSelected, "#cohorts")
    def _row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_show_steps()

    def action_show_steps(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.push_screen(StepFiguresScreen(row.name))

    def action_show_learners(self) -> None:
        row = self.selected()
        if row is not None:
            from tui.screens.learners import LearnersScreen

            self.app.push_screen(LearnersScreen(cohort=row.name))

    def action_cursor_down(self) -> None:
        self.query_one("#cohorts", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#cohorts", DataTable).action_cursor_up()

    @work(exit_on_error=False, group="cohorts-act")
    async def action_pause(self) -> None:
        row = self.selected()
        if row is None:
            return
        session = session_of(self)
        name = clean(row.name, one_line=True)
        if row.paused:
            self.notify(f"Cohort {name} is already paused.", severity="warning", markup=False)
            return
        try:
            count = await pause_cohort(row.name, session.now())
        except DripperError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify(
            f"Cohort {name} paused ({_plural(count, 'enrollment')}): nothing more is sent "
            "until r resumes it.",
            title="Paused",
            markup=False,
        )
        await _changed(self, session)

    @work(exit_on_error=False, group="cohorts-act")
    async def action_resume(self) -> None:
        row = self.selected()
        if row is None:
            return
        session = session_of(self)
        name = clean(row.name, one_line=True)
        if not row.paused:
            self.notify(f"Cohort {name} is not paused.", severity="warning", markup=False)
            return
        try:
            report = await resume_cohort(row.name, session.now())
        except DripperError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        message = (
            f"Cohort {name} resumed ({_plural(report.resumed, 'enrollment')}): the rest of the "
            "drip moves later by the time paused."
        )
        if report.still_paused:
            message += (
                f" {_plural(report.still_paused, 'learner')} paused on their own stay paused."
            )
        self.notify(message, title="Resumed", markup=False)
        await _changed(self, session)


# --------------------------------------------------------------------------- steps


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


class StepFiguresScreen(Screen[None]):
    """Per step of one cohort: delivered, replied, quiz correct or check-in counts."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="steps.back"),
        Binding("enter", "show_answers", "Answers", id="steps.answers"),
        Binding("j", "cursor_down", "Down", show=False, id="steps.down"),
        Binding("k", "cursor_up", "Up", show=False, id="steps.up"),
    ]

    def __init__(self, cohort_name: str) -> None:
        super().__init__()
        self.cohort_name = cohort_name
        self.rows: list[StepFigures] = []
        self.loaded = False
        self.problem: str | None = None
        self.refresh_gate = RefreshGate(self, self.reload)
        self._wide = False
        self._widths: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="steps-status", classes="status-line")
        table: DataTable[Text | str] = DataTable(id="steps", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="step-detail", classes="table-detail")
        yield Static(
            Text.assemble("Export these figures: ", (report_command(self.cohort_name), "bold")),
            id="steps-export",
            classes="hint",
        )
        yield Footer()

    def on_mount(self) -> None:
        self._set_columns()
        self.query_one("#steps", DataTable).loading = True
        self._show_status()
        self.reload()

    def on_resize(self) -> None:
        selected = self.selected()
        self._set_columns()
        self._fill(selected)

    def on_data_changed(self, _: DataChanged) -> None:
        self.refresh_gate.changed()

    def on_screen_resume(self) -> None:
        self.refresh_gate.resumed()

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
        self.query_one("#steps", DataTable).loading = False
        self._fill(selected)
        self._show_status()

    def _set_columns(self) -> None:
        width = max(60, self.size.width or 80)
        self._wide = wide = width >= WIDE
        columns = [
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
        self._widths = set_columns(self.query_one("#steps", DataTable), columns, width)

    def _fill(self, selected: StepFigures | None = None) -> None:
        table = self.query_one("#steps", DataTable)
        if not table.columns:
            return
        table.clear()
        wide, widths = self._wide, self._widths
        bar_width = 10 if wide else 4
        for row in self.rows:
            step = Text(no_wrap=True, end="")
            if wide:
                step.append_text(literal(row.step_id, "dim", one_line=True))
                step.append(" ")
            step.append_text(literal(row.summary or row.step_id, one_line=True))
            if not row.in_curriculum:
                step = Text.assemble(("(removed) ", "italic dim"), step)
            step.truncate(widths["step"], overflow="ellipsis")
            delivered = bar_cell(
                row.delivered_rate,
                bar_width,
                f"{row.delivered:,}/{row.planned:,}",
                label_width=widths["delivered"] - bar_width - 1,
            )
            table.add_row(
                literal(shorten(row.when, widths["when"]), one_line=True),
                row.kind if wide else KIND_SHORT.get(row.kind, row.kind),
                step,
                delivered,
                bar_cell(row.reply_rate, bar_width, style="dodger_blue1"),
                answers_cell(row, widths["answers"], wide),
                key=row.step_id,
            )
        if selected is not None and selected.step_id in table.rows:
            table.move_cursor(row=table.get_row_index(selected.step_id))
        self._show_detail()

    def _show_status(self) -> None:
        status = Text.assemble(("Steps", "bold"), " of ")
        status.append_text(literal(self.cohort_name, "bold", one_line=True))
        if not self.loaded:
            status.append(" · loading (counting every delivery)…")
        elif self.problem is None:
            status.append(f" · {_plural(len(self.rows), 'step')}")
        self.query_one("#steps-status", Static).update(status)

    def _show_detail(self) -> None:
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

    def selected(self) -> StepFigures | None:
        table = self.query_one("#steps", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    @on(DataTable.RowHighlighted, "#steps")
    def _highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_detail()

    @on(DataTable.RowSelected, "#steps")
    def _row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_show_answers()

    def action_show_answers(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.push_screen(StepAnswersScreen(self.cohort_name, row.step_id, row))

    def action_cursor_down(self) -> None:
        self.query_one("#steps", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#steps", DataTable).action_cursor_up()


# --------------------------------------------------------------------------- answers


class AnswerItem(ListItem):
    """One learner's answer: who, where and when on the first line, then the answer in full."""

    def __init__(self, answer: StepAnswer, session: Session) -> None:
        super().__init__(classes="answer")
        self.answer = answer
        self._session = session

    def compose(self) -> ComposeResult:
        answer = self.answer
        head = Text.assemble(literal(answer.learner_name, "bold", one_line=True))
        if answer.channel is not None:
            head.append(f" · {CHANNEL_NAME.get(answer.channel, answer.channel.value)}", style="dim")
        head.append(f" · {self._session.local(answer.answered_at)}", style="dim")
        if answer.correct is not None:
            head.append(" · ")
            head.append(*(("right", "green3") if answer.correct else ("wrong", FAILED)))
        yield Static(head, classes="answer-head")
        for choice in answer.choices:
            mark = {True: ("✓ ", "green3"), False: ("✗ ", FAILED), None: ("• ", "")}
            line = Text.assemble(mark[answer.correct])
            line.append_text(literal(choice))
            yield Static(line, classes="answer-choice")
        if answer.text:
            yield Static(literal(answer.text), classes="answer-text")


class StepAnswersScreen(Screen[None]):
    """Every learner's answer to one step of one cohort, one after the other."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="answers.back"),
        Binding("enter", "open_conversation", "Conversation", id="answers.open"),
        Binding("j", "cursor_down", "Next", show=False, id="answers.down"),
        Binding("k", "cursor_up", "Previous", show=False, id="answers.up"),
        Binding("g", "cursor_first", "First", show=False, id="answers.first"),
        Binding("G", "cursor_last", "Last", show=False, id="answers.last"),
    ]

    def __init__(self, cohort_name: str, step_id: str, figures: StepFigures | None = None) -> None:
        """`figures`: the step's row of the steps table, for the heading (kind and text)."""
        super().__init__()
        self.cohort_name = cohort_name
        self.step_id = step_id
        self.figures = figures
        self.answers: list[StepAnswer] = []
        self.loaded = False
        self.fills = 0
        self.problem: str | None = None
        self.refresh_gate = RefreshGate(self, self.reload, least=0.5)

    def compose(self) -> ComposeResult:
        yield Static(id="answers-status", classes="status-line")
        if self.figures is not None and self.figures.summary:
            yield Static(literal(self.figures.summary, "italic", one_line=True), id="answers-step")
        yield ListView(id="answers")
        yield Static(id="answers-empty", classes="table-detail")
        yield Static(
            Text.assemble("Export: ", (report_command(self.cohort_name, self.step_id), "bold")),
            id="answers-export",
            classes="hint",
        )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#answers", ListView).loading = True
        self._show_status()
        self.reload()

    def on_data_changed(self, _: DataChanged) -> None:
        self.refresh_gate.changed()

    def on_screen_resume(self) -> None:
        self.refresh_gate.resumed()

    @work(exclusive=True, exit_on_error=False, group="answers-load")
    async def reload(self) -> None:
        self.refresh_gate.started()
        try:
            answers = await step_answers(self.cohort_name, self.step_id)
            self.problem = None
        except DripperError as exc:
            answers, self.problem = [], str(exc)
        finally:
            self.refresh_gate.finished()
        view = self.query_one("#answers", ListView)
        view.loading = False
        if not self.loaded or answers != self.answers:
            await self._fill(view, answers)
        self.loaded = True
        self.fills += 1
        self._show_status()

    async def _fill(self, view: ListView, answers: list[StepAnswer]) -> None:
        """Show `answers`, keeping the highlighted one (and at least as many as were shown)."""
        current = self.selected()
        shown = max(ANSWERS_PAGE, len(view.children))
        session = session_of(self)
        await view.clear()
        await view.extend(AnswerItem(answer, session) for answer in answers[:shown])
        self.answers = answers
        index = 0
        if current is not None:
            index = next(
                (
                    i
                    for i, answer in enumerate(answers[:shown])
                    if answer.enrollment_id == current.enrollment_id
                ),
                0,
            )
        view.index = index if answers else None
        empty = self.query_one("#answers-empty", Static)
        message = self.problem or "No answers to this step yet."
        empty.update(literal(message))
        empty.display = not answers

    async def _show_more(self, view: ListView) -> None:
        shown = len(view.children)
        if shown < len(self.answers):
            session = session_of(self)
            more = self.answers[shown : shown + ANSWERS_PAGE]
            await view.extend(AnswerItem(answer, session) for answer in more)
            self._show_status()

    def _show_status(self) -> None:
        status = Text.assemble(("Answers", "bold"), " · ")
        status.append_text(literal(self.cohort_name, one_line=True))
        status.append(" · ")
        status.append_text(literal(self.step_id, "bold", one_line=True))
        if self.figures is not None:
            status.append(f" ({self.figures.kind})")
        if not self.loaded:
            status.append(" · loading…")
        elif self.problem is None:
            status.append(f" · {_plural(len(self.answers), 'answer')}")
            shown = len(self.query_one("#answers", ListView).children)
            if shown < len(self.answers):
                status.append(f", {shown:,} shown (more at the end)", style="dim")
        self.query_one("#answers-status", Static).update(status)

    def selected(self) -> StepAnswer | None:
        item = self.query_one("#answers", ListView).highlighted_child
        return item.answer if isinstance(item, AnswerItem) else None

    @on(ListView.Highlighted, "#answers")
    async def _highlighted(self, event: ListView.Highlighted) -> None:
        view = self.query_one("#answers", ListView)
        if view.index is not None and view.index >= len(view.children) - 1:
            await self._show_more(view)

    @on(ListView.Selected, "#answers")
    def _selected(self, _: ListView.Selected) -> None:
        self.action_open_conversation()

    def action_open_conversation(self) -> None:
        answer = self.selected()
        if answer is None:
            return
        if answer.conversation_id is None:
            name = clean(answer.learner_name, one_line=True)
            self.notify(f"{name} has no conversation.", markup=False)
            return
        from tui.screens.conversation import ConversationScreen

        self.app.push_screen(ConversationScreen(answer.conversation_id))

    def action_cursor_down(self) -> None:
        self.query_one("#answers", ListView).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#answers", ListView).action_cursor_up()

    def action_cursor_first(self) -> None:
        view = self.query_one("#answers", ListView)
        if view.children:
            view.index = 0

    def action_cursor_last(self) -> None:
        view = self.query_one("#answers", ListView)
        if view.children:
            view.index = len(view.children) - 1
