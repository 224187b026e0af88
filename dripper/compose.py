"""Turn one curriculum step, for one learner, into what a channel sends. Pure.

Templates are rendered in the sandbox with the learner's data (every value Markdown-escaped),
then the Markdown becomes Telegram HTML or an email's text. Quizzes and check-ins get buttons
whose callback data stays far below Telegram's 64 bytes: "a:<delivery id>:<option index>".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dripper.curriculum import Checkin, Curriculum, Quiz, StepBase, Tip
from dripper.curriculum.templates import render
from dripper.render import plain_text, telegram_html

CALLBACK_ANSWER = "a"
CALLBACK_TOGGLE = "t"
CALLBACK_SUBMIT = "s"


@dataclass(frozen=True)
class Button:
    label: str
    callback_data: str


@dataclass(frozen=True)
class Content:
    """A message ready for a channel: Markdown source plus what each channel needs."""

    markdown: str
    subject: str
    telegram_html: str
    text: str
    image_url: str | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    options: tuple[str, ...] = ()  # numbered choices for email replies
    multiple: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LearnerView:
    """The learner fields templates may use; attributes are the custom CSV columns."""

    first_name: str
    last_name: str
    email: str | None
    timezone: str
    language: str | None
    attributes: dict[str, str]

    def context(self) -> dict[str, Any]:
        base: dict[str, Any] = dict(self.attributes)
        base.update(
            first_name=self.first_name,
            last_name=self.last_name,
            name=f"{self.first_name} {self.last_name}".strip(),
            email=self.email or "",
            timezone=self.timezone,
            language=self.language or "",
        )
        return base


@dataclass(frozen=True)
class CourseView:
    id: str
    title: str
    cohort: str
    end: str

    def context(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "cohort": self.cohort, "end": self.end}


def _context(learner: LearnerView, course: CourseView) -> dict[str, Any]:
    return {"learner": learner.context(), "course": course.context()}


def _buttons(step: StepBase, delivery_id: int) -> tuple[tuple[Button, ...], ...]:
    if isinstance(step, Quiz):
        labels = step.options
    elif isinstance(step, Checkin):
        labels = step.buttons
    else:
        return ()
    if isinstance(step, Quiz) and step.multiple:
        rows = [
            (Button(f"☐ {label}", f"{CALLBACK_TOGGLE}:{delivery_id}:{index}"),)
            for index, label in enumerate(labels)
        ]
        rows.append((Button("Submit", f"{CALLBACK_SUBMIT}:{delivery_id}"),))
        return tuple(rows)
    return tuple(
        (Button(label, f"{CALLBACK_ANSWER}:{delivery_id}:{index}"),)
        for index, label in enumerate(labels)
    )


def compose_step(
    curriculum: Curriculum,
    step: StepBase,
    learner: LearnerView,
    course: CourseView,
    delivery_id: int,
    *,
    reminder: bool = False,
) -> Content:
    """Render a step (or its reminder) for one learner."""
    context = _context(learner, course)
    body = render(step.text, context)
    if reminder:
        reminder_text = getattr(step, "reminder_text", None)
        nudge = render(reminder_text, context) if reminder_text else "A gentle reminder:"
        body = f"{nudge}\n\n{body}"
    if isinstance(step, Tip) and step.link:
        label = render(step.link.label, context) if step.link.label else step.link.url
        body = f"{body}\n\n[{label}]({step.link.url})"
    subject = render(step.subject, context) if step.subject else curriculum.title
    options: tuple[str, ...] = ()
    multiple = False
    if isinstance(step, Quiz):
        options, multiple = tuple(step.options), step.multiple
    elif isinstance(step, Checkin):
        options = tuple(step.buttons)
    return Content(
        markdown=body,
        subject=subject,
        telegram_html=telegram_html(body),
        text=plain_text(body),
        image_url=step.image if isinstance(step, Tip) else None,
        buttons=_buttons(step, delivery_id),
        options=options,
        multiple=multiple,
    )


def compose_reply(body: str, subject: str) -> Content:
    """A trainer's reply: the trainer's own Markdown, not a template."""
    return Content(
        markdown=body, subject=subject, telegram_html=telegram_html(body), text=plain_text(body)
    )
