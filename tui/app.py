"""The dashboard application: screens, global keys, the live refresh and the keymap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from dripper.db import open_db
from dripper.errors import DripperError
from dripper.inbox import CannedRepliesError, change_stamp, ensure_trainer
from tui.commands import ActionCommands
from tui.keymap import binding_ids, default_keymap_path, load_keymap
from tui.messages import (
    DataChanged,
    Edited,
    OpenAnswers,
    OpenConversation,
    OpenLearners,
    OpenSteps,
)
from tui.screens.cohorts import CohortsScreen, StepAnswersScreen, StepFiguresScreen
from tui.screens.conversation import ConversationScreen, notify_canned_trouble
from tui.screens.help import HelpScreen
from tui.screens.inbox import InboxScreen
from tui.screens.learners import LearnersScreen
from tui.screens.problems import ProblemsScreen, ProblemText
from tui.session import DashboardConfig, Session
from tui.text import clean

Background = Callable[[Callable[[str], None]], Awaitable[None]]


class DripperApp(App[None]):
    """`dripper tui`: the trainers' inbox, learners, cohorts and problems."""

    CSS_PATH = "styles/dripper.tcss"
    TITLE = "dripper"
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = [
        Binding("f1", "show_inbox", "Inbox", id="app.inbox"),
        Binding("f2", "show_learners", "Learners", id="app.learners"),
        Binding("f3", "show_cohorts", "Cohorts", id="app.cohorts"),
        Binding("f4", "show_problems", "Problems", id="app.problems"),
        Binding("question_mark", "show_keys", "Keys", id="app.keys"),
    ]

    def __init__(
        self,
        config: DashboardConfig,
        *,
        open_database: bool = False,
        background: Background | None = None,
    ) -> None:
        """`open_database`: open (and close) the database around the app's run; tests that
        already hold it open pass False. `background`: work to run while the dashboard is open
        (the demo's dispatcher); it is given a function that shows a line to the trainer."""
        super().__init__()
        self.config = config
        self._open_database = open_database
        self._background = background
        self._stamp: tuple[object, ...] | None = None
        self._database_trouble = False
        self._polling = False
        self.keymap: dict[str, str] = {}
        self.session: Session

    async def run_async(self, *args: Any, **kwargs: Any) -> None:
        if not self._open_database:
            return await super().run_async(*args, **kwargs)
        # Tortoise keeps its state in a context: it must exist before Textual starts its tasks.
        async with open_db(self.config.database_url):
            return await super().run_async(*args, **kwargs)

    async def on_mount(self) -> None:
        trainer = await ensure_trainer(self.config.trainer_handle, timezone=self.config.timezone)
        self.session = Session(self.config, trainer)
        self._apply_keymap()
        self._check_canned_replies()
        self._stamp = await change_stamp()
        self.set_interval(self.config.live_interval, self._look_for_changes)
        await self.push_screen(InboxScreen())
        if self._background is not None:
            self.run_worker(self._background(self.tell), name="background", exit_on_error=False)

    def tell(self, text: str) -> None:
        """Show a line from background work (such as "delivered to Zoë's chat") to the trainer;
        the work changed data, so every screen reads it again."""
        self.notify(clean(text), timeout=12, markup=False)
        self.data_changed()

    def binding_groups(self) -> list[list[Any]]:
        screens = (
            InboxScreen,
            ConversationScreen,
            LearnersScreen,
            CohortsScreen,
            StepFiguresScreen,
            StepAnswersScreen,
            ProblemsScreen,
            ProblemText,
        )
        return [list(self.BINDINGS), *(list(screen.BINDINGS) for screen in screens)]

    def _apply_keymap(self) -> None:
        path = self.config.keymap or default_keymap_path()
        known = binding_ids(self.binding_groups())
        try:
            self.keymap = load_keymap(path, known)  # `dripper tui` reports errors before start
        except DripperError as exc:
            self.notify(str(exc), title="Keymap not used", severity="error", markup=False)
            return
        if self.keymap:
            self.set_keymap(self.keymap)

    def _check_canned_replies(self) -> None:
        """Say at the start when the canned replies file is broken, not at the first use."""
        try:
            self.session.canned_replies()
        except CannedRepliesError as exc:
            notify_canned_trouble(self, exc)

    async def _look_for_changes(self) -> None:
        """Another process (a worker filing a reply, another trainer) changed something: every
        screen reloads. One look at a time, and cheap: a few MAX() over indexed columns. A
        database that does not answer is reported once and tried again at the next tick."""
        if self._polling:
            return
        self._polling = True
        try:
            stamp = await change_stamp()
        except Exception as exc:  # the dashboard stays up; the composer keeps its text
            if not self._database_trouble:
                self._database_trouble = True
                self.notify(
                    f"The database does not answer ({exc}); retrying every "
                    f"{self.config.live_interval:g} s.",
                    severity="error",
                    markup=False,
                )
            return
        finally:
            self._polling = False
        if self._database_trouble:
            self._database_trouble = False
            self.notify("The database answers again.", markup=False)
        if stamp != self._stamp:
            self._stamp = stamp
            self.data_changed()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A screen's loader or action failed (a database error, a conversation deleted
        meanwhile): say so and keep the dashboard, and the trainer's typing, alive."""
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(
                f"{type(error).__name__}: {error}",
                title="That did not work",
                severity="error",
                markup=False,
            )

    def data_changed(self) -> None:
        """Tell every screen on the stack to read its data again."""
        for screen in self.screen_stack:
            screen.post_message(DataChanged())

    # Messages from the screens (tui.messages): the app is the one place that knows them all.

    def on_edited(self, _: Edited) -> None:
        self.data_changed()

    def on_open_conversation(self, message: OpenConversation) -> None:
        self.push_screen(ConversationScreen(message.conversation_id))

    def on_open_learners(self, message: OpenLearners) -> None:
        self.push_screen(LearnersScreen(cohort=message.cohort))

    def on_open_steps(self, message: OpenSteps) -> None:
        self.push_screen(StepFiguresScreen(message.cohort))

    def on_open_answers(self, message: OpenAnswers) -> None:
        self.push_screen(StepAnswersScreen(message.cohort, message.step_id, message.figures))

    def _bring_forward(self, kind: type[Screen[None]], make: Callable[[], Screen[None]]) -> None:
        """Go back to the screen of that kind if it is open, else open one: pressing F2 twice
        never stacks two learner screens."""
        for index, screen in enumerate(self.screen_stack):
            if isinstance(screen, kind):
                while len(self.screen_stack) > index + 1:
                    self.pop_screen()
                return
        self.push_screen(make())

    def action_show_inbox(self) -> None:
        self._bring_forward(InboxScreen, InboxScreen)

    def action_show_learners(self) -> None:
        self._bring_forward(LearnersScreen, LearnersScreen)

    def action_show_cohorts(self) -> None:
        self._bring_forward(CohortsScreen, CohortsScreen)

    def action_show_problems(self) -> None:
        self._bring_forward(ProblemsScreen, ProblemsScreen)

    def action_show_keys(self) -> None:
        self.push_screen(HelpScreen(self.screen))
