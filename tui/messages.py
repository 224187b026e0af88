"""The messages between the dashboard's screens and its app.

Screens never hold the app: they post one of these and it bubbles up to `tui.app.DripperApp`,
which knows every screen (Harlequin's and Posting's way). A screen says what happened (`Edited`)
or where the trainer wants to go (`Open...`); the app decides what that means for the others.
The one message going the other way, `DataChanged`, the app sends to every screen on the stack.
"""

from __future__ import annotations

from textual.message import Message

from dripper.reports.steps import StepFigures


class DataChanged(Message, bubble=False):
    """To every screen: something in the database changed (this dashboard, another one, or
    `dripper run`); read your data again."""


class Edited(Message):
    """From a screen: it changed data (a reply queued, a learner paused); every screen reads its
    data again."""


class OpenConversation(Message):
    """Show the conversation, on top of the current screen."""

    def __init__(self, conversation_id: int) -> None:
        super().__init__()
        self.conversation_id = conversation_id


class OpenLearners(Message):
    """Show the learners, of one cohort only when `cohort` is given."""

    def __init__(self, cohort: str | None = None) -> None:
        super().__init__()
        self.cohort = cohort


class OpenSteps(Message):
    """Show the per-step figures of a cohort."""

    def __init__(self, cohort: str) -> None:
        super().__init__()
        self.cohort = cohort


class OpenAnswers(Message):
    """Show every answer to one step of a cohort; `figures`: that step's row, for the heading."""

    def __init__(self, cohort: str, step_id: str, figures: StepFigures | None = None) -> None:
        super().__init__()
        self.cohort = cohort
        self.step_id = step_id
        self.figures = figures
