"""Learners: channels and reachability, cohorts, state, progress, failures and last reply.

`/` searches names, emails and @handles; `c` keeps the learners of one cohort and limits every
figure to it; `p` and `r` pause and resume the highlighted learner; Enter opens their latest
conversation. The list is paged like the inbox: 200 learners, more as the cursor reaches the end.
The line under the table tells everything about the highlighted learner that the columns had
no room for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from dripper.enrollments.pause import pause, resume
from dripper.errors import DripperError
from dripper.inbox import cohort_names
from dripper.models import Conversation, EnrollmentState, Reachability
from dripper.reports.learners import LearnerRow, learner_count, learner_rows
from tui.messages import Edited, OpenConversation
from tui.screens.pickers import Ask, Choose
from tui.screens.table import TableScreen
from tui.session import Session, age, session_of
from tui.text import clean, literal, shorten
from tui.widgets.tables import Column, bar_cell, show_more_line

PAGE = 200
WIDE = 110  # from this width on, channels, state and progress say more
FAILED = "red"
STATE_STYLE = {
    EnrollmentState.ACTIVE: "green3",
    EnrollmentState.PAUSED: "yellow",
    EnrollmentState.COMPLETED: "dim",
    EnrollmentState.CANCELLED: "dim",
}
STATE_SHORT = {EnrollmentState.COMPLETED: "done"}
UNREACHABLE_WORD = {"TG": "blocked", "@": "bounced"}


def _enrollments(count: int) -> str:
    return f"{count} enrollment{'s' if count != 1 else ''}"


def channels_cell(row: LearnerRow, wide: bool) -> Text:
    """Each channel the learner has and whether it reaches them: `TG ✓  @ ✗ bounced` (wide) or
    `TG✓ @✗`; `TG not linked` when dripper knows a Telegram handle but no chat."""
    text = Text(no_wrap=True, end="")
    gap = " " if wide else ""
    parts: list[Text] = []
    if row.telegram or row.telegram_connected:
        if row.telegram_connected:
            parts.append(_reach("TG", row.telegram_status, wide))
        else:
            parts.append(Text(f"TG{gap}{'not linked' if wide else '-'}", style="yellow"))
    if row.email:
        parts.append(_reach("@", row.email_status, wide))
    if row.opted_out:
        parts.append(Text("opted out" if wide else "out", style="yellow"))
    if not parts:
        parts.append(Text("none", style=FAILED))
    for index, part in enumerate(parts):
        if index:
            text.append("  " if wide else " ")
        text.append_text(part)
    return text


def _reach(mark: str, status: Reachability, wide: bool) -> Text:
    gap = " " if wide else ""
    if status is Reachability.OK:
        return Text.assemble(mark, gap, ("✓", "green3"))
    if status is Reachability.UNREACHABLE:
        word = f" {UNREACHABLE_WORD[mark]}" if wide else ""
        return Text.assemble(mark, gap, (f"✗{word}", FAILED))
    return Text.assemble(mark, gap, ("?", "dim"))  # known, never used yet


def state_text(row: LearnerRow, session: Session, wide: bool, *, exact: bool = False) -> Text:
    """The learner's state: `active`, `paused until 17 Dec` (`exact`: with the time; narrow:
    `paused`), `done`..."""
    if row.state is None:
        return Text("not enrolled", style="dim")
    style = STATE_STYLE[row.state]
    if row.state is EnrollmentState.PAUSED and row.paused_until is not None and wide:
        until = session.local(row.paused_until, "%a %d %b %H:%M" if exact else "%d %b")
        return Text(f"paused until {until}", style=style)
    word = row.state.value if wide else STATE_SHORT.get(row.state, row.state.value)
    return Text(word, style=style)


class LearnersScreen(TableScreen[LearnerRow]):
    """Every learner, or those of one cohort; pause and resume them."""

    TABLE, STATUS, DETAIL = "learners", "learners-status", "learner-detail"
    WIDE = WIDE
    REFRESH_LEAST = 0.5

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="learners.back"),
        Binding("slash", "search", "Search", id="learners.search"),
        Binding("c", "filter_cohort", "Cohort", id="learners.cohort"),
        Binding("p", "pause", "Pause", id="learners.pause"),
        Binding("r", "resume", "Resume", id="learners.resume"),
        # Enter comes through the table's RowSelected, in order with the keys typed before it.
        Binding("enter", "open_conversation", "Conversation", id="learners.open"),
        Binding("j", "cursor_down", "Down", show=False, id="learners.down"),
        Binding("k", "cursor_up", "Up", show=False, id="learners.up"),
        Binding("g", "cursor_first", "First", show=False, id="learners.first"),
        Binding("G", "cursor_last", "Last (loads more)", show=False, id="learners.last"),
    ]

    def __init__(self, cohort: str | None = None) -> None:
        """`cohort`: open with the learners of that cohort only."""
        super().__init__()
        self.cohort = cohort
        self.search: str | None = None
        self.limit = PAGE
        self.total = 0
        self.total_known = False
        self.fills = 0  # how many times the list was filled from the database

    def compose_hints(self) -> ComposeResult:
        yield Static(id="learners-more", classes="hint")

    # ------------------------------------------------------------------ data

    @work(exclusive=True, exit_on_error=False, group="learners-load")
    async def reload(self) -> None:
        """Read the shown learners again (filters changed, more were asked for, or the data did)."""
        session = session_of(self)
        self.refresh_gate.started()
        try:
            rows = await learner_rows(
                session.now(), cohort=self.cohort, search=self.search, limit=self.limit
            )
        except DripperError as exc:  # the cohort was deleted meanwhile
            self.notify(str(exc), title="Learners", severity="error", markup=False)
            self.cohort = None
            rows = await learner_rows(session.now(), search=self.search, limit=self.limit)
        self.refresh_gate.finished()
        selected = self.selected()  # before the rows change: the cursor stays on it
        self.rows = rows
        if not self.total_known:
            self.total = len(rows)
        self.loaded = True
        self.table.loading = False
        self.fill(selected)
        self.fills += 1
        self.total = await learner_count(cohort=self.cohort, search=self.search)
        self.total_known = True
        self._show_more()
        self.show_status()

    def columns(self, width: int) -> Sequence[Column]:
        wide = width >= WIDE
        return [
            Column("name", "Learner", 12, grow=2 if wide else 3, most=32),
            Column("channels", "Channels", 14 if wide else 8),
            Column("cohorts", "Cohort", 10 if wide else 8, grow=3 if wide else 2, most=40),
            Column("state", "State", 19 if wide else 9),
            Column("progress", "Progress", 14 if wide else 10),
            Column("failures", "Failures", 7, grow=2 if wide else 3, most=48),
            Column("reply", "Reply", 5),
        ]

    def key(self, row: LearnerRow) -> str:
        return str(row.learner_id)

    def cells(self, row: LearnerRow) -> Sequence[Text | str]:
        session = session_of(self)
        widths = self.widths
        bar_width = 6 if self.wide else 4
        label = f"{row.steps_sent}/{row.steps_total}"
        progress = bar_cell(row.progress, bar_width, label, cell=widths["progress"])
        return (
            literal(shorten(row.name, widths["name"])),
            channels_cell(row, self.wide),
            literal(shorten(", ".join(row.cohorts) or "—", widths["cohorts"])),
            state_text(row, session, self.wide),
            progress,
            self._failures_cell(row, widths["failures"]),
            age(row.last_reply_at, session.now()) or Text("—", style="dim"),
        )

    def filled(self) -> None:
        self._show_more()
        self.show_detail()

    @staticmethod
    def _failures_cell(row: LearnerRow, width: int) -> Text:
        if not row.failures:
            return Text("0", style="dim")
        count = f"{row.failures}"
        reason = shorten(row.last_failure or "", max(0, width - len(count) - 1))
        return Text.assemble((count, f"bold {FAILED}"), " ", literal(reason, one_line=True))

    def _show_more(self) -> None:
        more = self.query_one("#learners-more", Static)
        empty = self._empty_text() if self.loaded else ""
        show_more_line(more, shown=len(self.rows), total=self.total, empty=empty)

    def _empty_text(self) -> str:
        if self.search or self.cohort:
            return "No learner matches: `/` changes the search, `c` the cohort."
        return "No learners yet: `dripper learners import FILE.csv` adds them."

    def show_status(self) -> None:
        status = Text.assemble(("Learners", "bold"))
        status.append(f" {self.total:,}" if self.loaded else " loading…")
        extras = []
        if self.cohort:
            extras.append(f"cohort {self.cohort}")
        if self.search:
            extras.append(f"search “{shorten(self.search, 30)}”")
        for extra in extras:
            status.append(" · ")
            status.append_text(literal(extra, one_line=True))
        self.query_one("#learners-status", Static).update(status)

    def show_detail(self) -> None:
        detail = self.query_one("#learner-detail", Static)
        row = self.selected()
        detail.display = row is not None
        if row is None:
            return
        session = session_of(self)
        first = Text.assemble(literal(row.name, "bold", one_line=True))
        for part in (
            row.email,
            f"{row.telegram}{'' if row.telegram_connected else ' (not linked)'}"
            if row.telegram
            else None,
            row.timezone,
            ", ".join(row.cohorts) or None,
            "opted out" if row.opted_out else None,
        ):
            if part:
                first.append(" · ")
                first.append_text(literal(part, one_line=True))
        second = Text(end="")
        second.append_text(state_text(row, session, wide=True, exact=True))
        second.append(f" · {row.steps_sent} of {row.steps_total} steps sent, {row.steps_due} due")
        if row.failures:
            second.append(" · ")
            second.append(f"{row.failures} failed", style=FAILED)
            when = session.local(row.last_failure_at)
            reason = literal(row.last_failure or "no reason recorded", one_line=True)
            second.append_text(Text.assemble(f", last {when}: " if when else ", last: ", reason))
        if row.last_reply_at is not None:
            second.append(f" · last reply {age(row.last_reply_at, session.now())} ago")
        detail.update(Text("\n", end="").join([first, second]))

    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        if event.cursor_row == len(self.rows) - 1 and self.total > len(self.rows):
            self.limit = len(self.rows) + PAGE
            self.reload()

    def choose(self) -> None:
        self.action_open_conversation()

    # ------------------------------------------------------------------ actions

    def _requery(self) -> None:
        self.limit = PAGE
        self.total_known = False
        self.table.move_cursor(row=0)
        self.reload()

    def action_search(self) -> None:
        def done(text: str | None) -> None:
            if text is not None:  # None: Escape, which keeps the search as it was
                self.search = text or None
                self._requery()

        self.app.push_screen(
            Ask("Search names, emails and @handles (empty: everyone)", value=self.search or ""),
            done,
        )

    @work(exit_on_error=False, group="learners-pick")
    async def action_filter_cohort(self) -> None:
        names = await cohort_names()
        # "" is every cohort: None is what Escape gives, and leaves the filter as it was.
        choices: list[tuple[str, str]] = [("All cohorts", "")]
        choices += [(name, name) for name in names]
        picked = await self.app.push_screen_wait(Choose[str]("Show the cohort", choices))
        if picked is None:
            return
        self.cohort = picked or None
        self._requery()

    @work(exit_on_error=False, group="learners-act")
    async def action_pause(self) -> None:
        await self._apply(
            lambda ids, now: pause(ids, "trainer", now),
            "Paused",
            "{name} paused ({count}): nothing more is sent until r resumes.",
            "{name} has no active enrollment to pause.",
        )

    @work(exit_on_error=False, group="learners-act")
    async def action_resume(self) -> None:
        await self._apply(
            resume,
            "Resumed",
            "{name} resumed ({count}): the rest of the drip moves later by the time paused.",
            "{name} is not paused.",
        )

    async def _apply(
        self,
        change: Callable[[list[int], datetime], Awaitable[int]],
        title: str,
        done: str,
        nothing: str,
    ) -> None:
        """Pause or resume the highlighted learner's enrollments and say what happened."""
        row = self.selected()
        if row is None:
            return
        session = session_of(self)
        count = await change(list(row.enrollment_ids), session.now())
        name = clean(row.name, one_line=True)
        if count:
            message = done.format(name=name, count=_enrollments(count))
            self.notify(message, title=title, markup=False)
        else:
            self.notify(nothing.format(name=name), severity="warning", markup=False)
        await self._changed(session)

    async def _changed(self, session: Session) -> None:
        await session.wake_dispatcher()
        self.post_message(Edited())

    @work(exit_on_error=False, group="learners-open")
    async def action_open_conversation(self) -> None:
        row = self.selected()
        if row is None:
            return
        conversation_id = await latest_conversation(row, limited=self.cohort is not None)
        if conversation_id is None:
            name = clean(row.name, one_line=True)
            self.notify(f"{name} has no conversation yet.", markup=False)
            return
        self.post_message(OpenConversation(conversation_id))


async def latest_conversation(row: LearnerRow, *, limited: bool) -> int | None:
    """The learner's conversation with the newest message (of the row's enrollments when the
    list is limited to a cohort), else their newest conversation."""
    found = Conversation.filter(learner_id=row.learner_id)
    if limited:
        found = found.filter(enrollment_id__in=list(row.enrollment_ids))
    ids = (
        await found.filter(last_message_at__not_isnull=True)
        .order_by("-last_message_at", "-id")
        .limit(1)
        .values_list("id", flat=True)
    )
    if not ids:
        ids = await found.order_by("-id").limit(1).values_list("id", flat=True)
    return int(ids[0]) if ids else None  # type: ignore[call-overload]
