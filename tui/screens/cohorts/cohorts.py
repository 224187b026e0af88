"""Cohorts (F3): learners, progress and failures per cohort; pause and resume a whole cohort.

Pausing here takes the same steps as `dripper cohort pause/resume` (dripper/cli/enroll.py),
through the domain functions of dripper.enrollments: no SQL of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.widgets import Static

from dripper.enrollments.pause import pause_cohort, resume_cohort
from dripper.errors import DripperError
from dripper.reports.cohorts import CohortRow, cohort_rows
from tui.messages import Edited, OpenLearners, OpenSteps
from tui.screens.cohorts.common import FAILED, PAUSED, WIDE_COHORTS, plural
from tui.screens.table import TableScreen
from tui.session import Session, session_of
from tui.text import clean, literal, shorten
from tui.widgets.tables import Column, bar_cell, percent


class CohortsScreen(TableScreen[CohortRow]):
    """Every cohort with its learners, progress and failures."""

    TABLE, STATUS, DETAIL = "cohorts", "cohorts-status", "cohort-detail"
    WIDE = WIDE_COHORTS

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
        self.table.loading = False
        self.fill(selected)
        self.show_status()

    def columns(self, width: int) -> Sequence[Column]:
        wide = width >= WIDE_COHORTS
        return [
            Column("cohort", "Cohort", 10, grow=2, most=28),
            Column("curriculum", "Curriculum", 10, grow=2, most=32),
            Column("end", "Course end" if wide else "End", 15 if wide else 6),
            Column("learners", "Learners", 26 if wide else 8),
            Column("progress", "Progress", 18 if wide else 11),
            Column("overall", "Overall", 18 if wide else 11),
            Column("failures", "Failures" if wide else "Fail", 12 if wide else 4),
        ]

    def key(self, row: CohortRow) -> str:
        return row.name

    def cells(self, row: CohortRow) -> Sequence[Text | str]:
        wide, widths = self.wide, self.widths
        bar_width = 8 if wide else 6
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
        return (
            name,
            literal(shorten(row.curriculum_title, widths["curriculum"])),
            session_of(self).local(row.course_end, "%a %d %b %Y" if wide else "%d %b"),
            Text(learners, style=PAUSED if row.paused else ""),
            self._rate(row.progress, row.steps_sent, row.steps_due, bar_width),
            self._rate(row.overall, row.steps_sent, row.steps_total, bar_width),
            failed,
        )

    def _rate(self, fraction: float | None, part: int, whole: int, width: int) -> Text:
        if self.wide:
            return bar_cell(
                fraction, width, f"{percent(fraction)} {part:,}/{whole:,}", label_width=9
            )
        return bar_cell(fraction, width)

    def show_status(self) -> None:
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

    def show_detail(self) -> None:
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
            f"{plural(row.learners, 'learner')}: {row.learners_active:,} active, "
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

    def choose(self) -> None:
        self.action_show_steps()

    def action_show_steps(self) -> None:
        row = self.selected()
        if row is not None:
            self.post_message(OpenSteps(row.name))

    def action_show_learners(self) -> None:
        row = self.selected()
        if row is not None:
            self.post_message(OpenLearners(row.name))

    @work(exit_on_error=False, group="cohorts-act")
    async def action_pause(self) -> None:
        row, session, name = self._target()
        if row is None:
            return
        if row.paused:
            self.notify(f"Cohort {name} is already paused.", severity="warning", markup=False)
            return
        try:
            count = await pause_cohort(row.name, session.now())
        except DripperError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify(
            f"Cohort {name} paused ({plural(count, 'enrollment')}): nothing more is sent "
            "until r resumes it.",
            title="Paused",
            markup=False,
        )
        await self._changed(session)

    @work(exit_on_error=False, group="cohorts-act")
    async def action_resume(self) -> None:
        row, session, name = self._target()
        if row is None:
            return
        if not row.paused:
            self.notify(f"Cohort {name} is not paused.", severity="warning", markup=False)
            return
        try:
            report = await resume_cohort(row.name, session.now())
        except DripperError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        message = (
            f"Cohort {name} resumed ({plural(report.resumed, 'enrollment')}): the rest of the "
            "drip moves later by the time paused."
        )
        if report.still_paused:
            message += f" {plural(report.still_paused, 'learner')} paused on their own stay paused."
        self.notify(message, title="Resumed", markup=False)
        await self._changed(session)

    def _target(self) -> tuple[CohortRow | None, Session, str]:
        """The highlighted cohort, the session and the cohort's name fit for a message."""
        row = self.selected()
        return row, session_of(self), clean(row.name, one_line=True) if row else ""

    async def _changed(self, session: Session) -> None:
        """After a pause or resume: the dispatcher re-reads its queue, every screen its data."""
        await session.wake_dispatcher()
        self.post_message(Edited())
