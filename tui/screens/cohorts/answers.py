"""Every learner's answer to one step of a cohort, one block after the other."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, ListItem, ListView, Static

from dripper.errors import DripperError
from dripper.reports.steps import StepAnswer, StepFigures, step_answers
from tui.messages import DataChanged, OpenConversation
from tui.screens.cohorts.common import CHANNEL_NAME, FAILED, plural, report_command
from tui.session import Session, session_of
from tui.text import clean, literal
from tui.widgets.tables import RefreshGate

ANSWERS_PAGE = 100  # answer blocks mounted at a time


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
            status.append(f" · {plural(len(self.answers), 'answer')}")
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
        self.post_message(OpenConversation(answer.conversation_id))

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
