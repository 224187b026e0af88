"""Problems (F4): what needs a trainer's look, and the keys that deal with it.

Failed, uncertain and skipped deliveries (who, which step, why), mail and Telegram updates that
were stored but not filed (an unknown sender, a forged bounce, a processing failure), and
enrollments the planner cannot plan. Enter shows everything about the highlighted problem,
for an inbound item the raw message as received. `r` retries (processes the item again, plans
the enrollment now), `s` resends a delivery (asking first when the learner may get it twice),
`m` marks an uncertain delivery sent, `d` dismisses: kept, no longer listed. Each key applies
only where it fits; the line under the table says which do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from dripper.inbox.problems import (
    Action,
    Problem,
    ProblemGone,
    ProblemKind,
    act,
    list_problems,
    problem_text,
)
from tui.messages import Edited
from tui.screens.pickers import Choose
from tui.screens.table import TableScreen
from tui.session import age, session_of
from tui.text import clean, literal, shorten
from tui.widgets.tables import Column

LIMIT = 500  # of each kind
STATE_STYLE = {"failed": "red", "uncertain": "yellow", "flagged": "yellow", "unplannable": "red"}
KEYS = {Action.RETRY: "r", Action.RESEND: "s", Action.MARK_SENT: "m", Action.DISMISS: "d"}
KIND_WORD = {ProblemKind.DELIVERY: "sending", ProblemKind.PLAN: "planning"}


def kind_word(problem: Problem) -> str:
    """What went wrong where: `sending`, `email` / `telegram` (received), `planning`."""
    return KIND_WORD.get(problem.kind) or str(problem.channel or "received")


class ProblemText(ModalScreen[None]):
    """Everything about one problem: for an inbound item, the raw message as received."""

    BINDINGS = [Binding("escape,q", "close", "Close", id="problem.close")]

    def __init__(self, title: str, body: str) -> None:
        super().__init__(classes="picker")
        self._title = title
        self._body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="problem-dialog"):
            yield Label(Text(self._title), classes="dialog-title")
            with VerticalScroll(id="problem-raw"):
                yield Static(literal(self._body), id="problem-body")
            yield Static(Text("Esc closes; the keys of the list act on it."), classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)


class ProblemsScreen(TableScreen[Problem]):
    """Every problem, deliveries first; act on the highlighted one."""

    TABLE, STATUS, DETAIL = "problems", "problems-status", "problem-detail"
    REFRESH_LEAST: ClassVar[float] = 1.0

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="problems.back"),
        # Enter comes through the table's RowSelected, in order with the keys typed before it.
        Binding("enter", "view", "Details", id="problems.view"),
        Binding("r", "act('retry')", "Retry", id="problems.retry"),
        Binding("s", "act('resend')", "Resend", id="problems.resend"),
        Binding("m", "act('mark sent')", "Mark sent", id="problems.mark_sent"),
        Binding("d", "act('dismiss')", "Dismiss", id="problems.dismiss"),
        Binding("j", "cursor_down", "Down", show=False, id="problems.down"),
        Binding("k", "cursor_up", "Up", show=False, id="problems.up"),
        Binding("g", "cursor_first", "First", show=False, id="problems.first"),
        Binding("G", "cursor_last", "Last", show=False, id="problems.last"),
    ]

    def compose_hints(self) -> ComposeResult:
        yield Static(id="problems-empty", classes="hint")

    # ------------------------------------------------------------------ data

    @work(exclusive=True, exit_on_error=False, group="problems-load")
    async def reload(self) -> None:
        self.refresh_gate.started()
        try:
            rows = await list_problems(LIMIT)
        finally:  # a database that does not answer is reported by the app; the table stays usable
            self.refresh_gate.finished()
            self.table.loading = False
        selected = self.selected()
        self.rows = rows
        self.loaded = True
        self.table.loading = False
        self.fill(selected)
        self.show_status()

    def columns(self, width: int) -> Sequence[Column]:
        wide = width >= self.WIDE
        return [
            Column("kind", "Where", 8),
            Column("who", "Who", 10, grow=2, most=32),
            Column("what", "What", 8, grow=2 if wide else 1, most=40),
            Column("state", "State", 10 if wide else 9),
            Column("reason", "Why", 12, grow=3, most=80),
            Column("age", "Age", 4),
        ]

    def key(self, row: Problem) -> str:
        return row.key

    def cells(self, row: Problem) -> Sequence[Text | str]:
        widths = self.widths
        session = session_of(self)
        return (
            Text(kind_word(row), style="dim", end=""),
            literal(shorten(row.who, widths["who"])),
            literal(shorten(row.what, widths["what"])),
            Text(row.state, style=STATE_STYLE.get(row.state, ""), end=""),
            literal(shorten(row.reason, widths["reason"])),
            age(row.at, session.now()) or Text("—", style="dim"),
        )

    def filled(self) -> None:
        empty = self.query_one("#problems-empty", Static)
        empty.update(
            Text(
                "Nothing needs a look: every delivery went out or is on its way, every "
                "message was filed, every enrollment is planned."
            )
            if self.loaded and not self.rows
            else ""
        )
        self.show_detail()

    def show_status(self) -> None:
        status = Text.assemble(("Problems", "bold"))
        if not self.loaded:
            status.append(" loading…")
        else:
            counts: dict[str, int] = {}
            for row in self.rows:
                counts[kind_word(row)] = counts.get(kind_word(row), 0) + 1
            status.append(f" {len(self.rows):,}")
            for word, count in counts.items():
                status.append(f" · {count} {word}")
        self.query_one("#problems-status", Static).update(status)

    def show_detail(self) -> None:
        detail = self.query_one("#problem-detail", Static)
        row = self.selected()
        detail.display = row is not None
        if row is None:
            return
        first = Text.assemble(literal(row.who, "bold", one_line=True), " · ")
        first.append_text(literal(row.what, one_line=True))
        for part in (row.cohort and f"cohort {row.cohort}", row.channel, row.state):
            if part:
                first.append(" · ")
                first.append_text(literal(part, one_line=True))
        reason = literal(row.reason, one_line=True)
        keys = "  ".join(f"{KEYS[action]} {action.value}" for action in row.actions)
        hint = Text(f"Enter details  {keys}", style="dim", end="")
        detail.update(Text("\n", end="").join([first, reason, hint]))

    def choose(self) -> None:
        self.action_view()

    # ------------------------------------------------------------------ actions

    @work(exit_on_error=False, group="problems-view")
    async def action_view(self) -> None:
        row = self.selected()
        if row is None:
            return
        body = await problem_text(row)
        title = f"{kind_word(row).capitalize()}: {clean(row.who, one_line=True)}"
        await self.app.push_screen_wait(ProblemText(title, body))

    @work(exit_on_error=False, group="problems-act")
    async def action_act(self, name: str) -> None:
        row = self.selected()
        if row is None:
            return
        action = Action(name)
        if action not in row.actions:
            can = ", ".join(f"{KEYS[a]} {a.value}" for a in row.actions)
            self.notify(f"Not for this one; here: {can}.", title="Problems", markup=False)
            return
        if action is Action.RESEND and row.state == "uncertain":
            sure = await self.app.push_screen_wait(
                Choose[bool](
                    "The learner may have it already: resend anyway?",
                    [("Resend: they may get it twice", True), ("Keep it as it is", False)],
                )
            )
            if not sure:
                return
        session = session_of(self)
        try:
            done = await act(row, action, session.trainer.name, session.now())
        except ProblemGone as exc:
            self.notify(str(exc), title="Problems", severity="warning", markup=False)
            self.reload()
            return
        if done.reprocess:
            await session.wake_receivers()
        else:
            await session.wake_dispatcher()
        who = clean(row.who, one_line=True)
        self.notify(f"{who}, {clean(row.what, one_line=True)}: {done.text}.", markup=False)
        self.post_message(Edited())
