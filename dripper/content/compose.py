"""Turn one curriculum step, for one learner, into what a channel sends. Pure.

Templates are rendered in the sandbox with the learner's data (every value Markdown-escaped),
then the Markdown becomes Telegram HTML or an email's text. Quizzes and check-ins get buttons
whose callback data stays far below Telegram's 64 bytes: "a:<delivery id>:<option index>".
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from dripper.content.render import escape_markdown, plain_text, telegram_html
from dripper.curriculum import Checkin, Curriculum, Quiz, StepBase, Tip
from dripper.curriculum.templates import render, simple_variables

CALLBACK_ANSWER = "a"
CALLBACK_TOGGLE = "t"
CALLBACK_SUBMIT = "s"


@dataclass(frozen=True)
class Button:
    label: str
    callback_data: str


@dataclass(frozen=True)
class Content:
    """A message ready for a channel: the Markdown source and what each channel needs.

    The renderings are computed on first use: Telegram needs only the HTML, email only the text
    (and its own HTML), and rendering Markdown is a large part of the cost of a send.
    """

    markdown: str
    subject: str
    image_url: str | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    options: tuple[str, ...] = ()  # numbered choices for email replies
    multiple: bool = False

    @cached_property
    def telegram_html(self) -> str:
        return telegram_html(self.markdown)

    @cached_property
    def text(self) -> str:
        return plain_text(self.markdown)


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


def body_template(step: StepBase, *, reminder: bool = False) -> str:
    """The whole message body of a step as one template: nudge line, text, link."""
    parts = []
    if reminder:
        parts.append(getattr(step, "reminder_text", None) or "A gentle reminder:")
    parts.append(step.text)
    if isinstance(step, Tip) and step.link:
        label = step.link.label or escape_markdown(step.link.url)
        parts.append(f"[{label}](<{step.link.url}>)")
    return "\n\n".join(parts)


_MARK = "zqxq"
_PLACEHOLDER = re.compile(rf"{_MARK}(\d+){_MARK}")
# Values that render to exactly themselves inside a paragraph: not empty (an empty name turns
# "**{{ name }}**" into literal asterisks), no edge or repeated whitespace (Markdown trims and
# breaks lines there), no control characters.
_PLAIN_VALUE = re.compile(r"[^\s\x00-\x1f\x7f](?: ?[^\s\x00-\x1f\x7f])*")


@dataclass(frozen=True)
class _Prerendered:
    """A template whose Telegram HTML is rendered once, with each variable as a placeholder.

    Only for templates that are plain text with `{{ learner.x }}` / `{{ course.x }}` outputs:
    their variables are Markdown-escaped when inserted, so they always end up as literal text,
    and the HTML for a learner is the cached HTML with each placeholder replaced by the
    HTML-escaped value. Anything else (filters, conditions, loops) is rendered in full.
    """

    html: str
    placeholders: tuple[tuple[str, str, str], ...]  # (placeholder, root, attribute)

    def for_context(self, context: dict[str, Any]) -> str | None:
        """The HTML for this context, or None when a value needs the full rendering."""
        values = []
        for _, root, attribute in self.placeholders:
            value = str(context[root][attribute])
            if not _PLAIN_VALUE.fullmatch(value):
                return None
            values.append(html.escape(value, quote=False))
        return _PLACEHOLDER.sub(lambda match: values[int(match.group(1))], self.html)


@lru_cache(maxsize=1024)
def _prerendered(source: str) -> _Prerendered | None:
    uses = simple_variables(source)
    if uses is None:
        return None
    placeholders = tuple(
        (f"{_MARK}{index}{_MARK}", root, attribute) for index, (root, attribute) in enumerate(uses)
    )
    context: dict[str, dict[str, str]] = {"learner": {}, "course": {}}
    for placeholder, root, attribute in placeholders:
        context[root][attribute] = placeholder
    markup = telegram_html(render(source, context))
    outside_tags = re.sub(r"<[^>]*>", "", markup)
    for placeholder, _, _ in placeholders:
        if outside_tags.count(placeholder) != markup.count(placeholder):
            return None  # a variable inside a tag attribute (a link URL): render in full
    return _Prerendered(markup, placeholders)


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
    source = body_template(step, reminder=reminder)
    body = render(source, context)
    subject = render(step.subject, context) if step.subject else curriculum.title
    options: tuple[str, ...] = ()
    multiple = False
    if isinstance(step, Quiz):
        options, multiple = tuple(step.options), step.multiple
    elif isinstance(step, Checkin):
        options = tuple(step.buttons)
    content = Content(
        markdown=body,
        subject=subject,
        image_url=step.image if isinstance(step, Tip) else None,
        buttons=_buttons(step, delivery_id),
        options=options,
        multiple=multiple,
    )
    prerendered = _prerendered(source)
    fast = prerendered.for_context(context) if prerendered is not None else None
    if fast is not None:
        content.__dict__["telegram_html"] = fast
    return content


def compose_reply(body: str, subject: str) -> Content:
    """A trainer's reply: the trainer's own Markdown, not a template."""
    return Content(markdown=body, subject=subject)


def answer_feedback(
    step: Quiz | Checkin,
    choices: Sequence[int],
    correct: bool | None,
    *,
    already: bool = False,
    explanation: str | None = None,
) -> str:
    """What dripper answers to a quiz or check-in answered by email, in Markdown: right or
    wrong, the right answer, and the step's explanation (`explanation`, rendered already)."""
    labels = step.options if isinstance(step, Quiz) else step.buttons
    chosen = ", ".join(escape_markdown(labels[i]) for i in choices if 0 <= i < len(labels))
    lead = "You already answered this one. " if already else ""
    if isinstance(step, Checkin):
        return f"{lead}Thanks! Your answer: **{chosen}**"
    verdict = "✅ **Right!**" if correct else "❌ **Not quite.**"
    parts = [f"{lead}{verdict} Your answer: {chosen}"]
    if not correct:
        right = ", ".join(escape_markdown(option) for option in step.correct_options)
        parts.append(f"Right answer: {right}")
    if explanation:
        parts.append(explanation)
    return "\n\n".join(parts)
