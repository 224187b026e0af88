"""Canned replies: the team's YAML file of reusable answers, with template variables.

The file (`canned_replies` in dripper.toml, default `canned-replies.yaml` next to it) is a list:

    - id: thanks
      title: Thanks for the reflection
      text: |
        Thanks, {{ learner.first_name }}! Keep it going this week.
        {{ trainer.name }}

Texts are Markdown, like a typed reply, and use the curriculum template language with the roots
`learner`, `course` and `trainer`. Every problem in the file is reported as file:line:col.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, meta
from jinja2.exceptions import SecurityError

from dripper.content.compose import CourseView, LearnerView
from dripper.curriculum.source import Problem, SourceError, read_source
from dripper.curriculum.templates import environment, render
from dripper.errors import DripperError
from dripper.models import Conversation, Enrollment, Learner, Trainer
from dripper.store.curricula import curriculum_of

_ROOTS = {"learner", "course", "trainer"}
# What `dripper init` and the demo write: a start for a team's own file.
EXAMPLE_CANNED_REPLIES = """\
# Canned replies for the inbox: ctrl+t in the dashboard's composer inserts one.
# Texts are Markdown and may use {{ learner.first_name }}, {{ course.title }}, {{ trainer.name }}.
- id: thanks
  title: Thanks for sharing
  text: |
    Thanks for sharing this, {{ learner.first_name }}! That is exactly the kind of practice
    that makes it stick. Keep going this week.
- id: follow-up-call
  title: Let's look at it together
  text: |
    Good question, {{ learner.first_name }}. It is easier to show than to write: let's look
    at it together in our follow-up call for {{ course.title }}.
- id: resources
  title: Where to read more
  text: |
    Hi {{ learner.first_name }}, the course handout has a worked example of this on the
    last pages. If it still does not click, just reply here.
"""
_FIELDS = ("id", "title", "text")


class CannedRepliesError(DripperError):
    """The canned replies file has problems; each is `path:line:col: message`."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class CannedReply:
    id: str
    title: str
    text: str

    def render(self, context: Mapping[str, Any]) -> str:
        """The reply for one learner; an unknown variable becomes a clear error."""
        try:
            return render(self.text, context).strip("\n")
        except (TemplateError, SecurityError, TypeError, ValueError) as exc:
            raise DripperError(f"canned reply {self.id!r} cannot be filled in: {exc}") from exc


def load_canned_replies(path: Path) -> list[CannedReply]:
    """The replies in the file, in file order; a missing file means none."""
    if not path.exists():
        return []
    try:
        source = read_source(path)
    except SourceError as exc:
        raise CannedRepliesError([exc.problem]) from exc
    where = str(path)
    if source.data is None:
        return []
    if not isinstance(source.data, list):
        raise CannedRepliesError([Problem(where, 1, 1, "expected a list of replies (- id: ...)")])
    problems: list[Problem] = []
    replies: list[CannedReply] = []
    seen: set[str] = set()
    for index, item in enumerate(source.data):
        line, col = source.locate([index])
        if not isinstance(item, dict):
            problems.append(Problem(where, line, col, "expected a mapping with id, title, text"))
            continue
        for key in sorted(set(item) - set(_FIELDS)):
            kline, kcol = source.locate([index, key], key=True)
            problems.append(
                Problem(where, kline, kcol, f"unknown key {key!r}: use id, title, text")
            )
        missing = [key for key in _FIELDS if not isinstance(item.get(key), str) or not item[key]]
        for key in missing:
            kline, kcol = source.locate([index, key])
            problems.append(Problem(where, kline, kcol, f"{key!r} must be non-empty text"))
        if missing:
            continue
        if item["id"] in seen:
            kline, kcol = source.locate([index, "id"])
            problems.append(Problem(where, kline, kcol, f"id {item['id']!r} is used twice"))
        seen.add(item["id"])
        tline, tcol = source.locate([index, "text"])
        problems.extend(
            Problem(where, tline, tcol, message) for message in _template_problems(item["text"])
        )
        replies.append(CannedReply(item["id"], item["title"], item["text"]))
    if problems:
        raise CannedRepliesError(sorted(problems))
    return replies


def _template_problems(text: str) -> list[str]:
    try:
        tree = environment().parse(text)
    except TemplateError as exc:
        return [f"template syntax error: {exc}"]
    unknown = sorted(meta.find_undeclared_variables(tree) - _ROOTS)
    return [
        f"unknown template variable {name!r} (canned replies know learner, course and trainer)"
        for name in unknown
    ]


async def context_for(conversation_id: int, trainer: Trainer) -> dict[str, Any]:
    """What a canned reply may use in one conversation: the learner, their course, the trainer."""
    conversation = await Conversation.get(id=conversation_id).prefetch_related(
        "learner", "enrollment__cohort"
    )
    learner: Learner = conversation.learner
    view = LearnerView(
        first_name=learner.first_name,
        last_name=learner.last_name,
        email=learner.email,
        timezone=learner.timezone or "UTC",
        language=learner.language,
        attributes=dict(learner.attributes or {}),
    )
    course = {"id": "", "title": "", "cohort": "", "end": ""}
    enrollment: Enrollment | None = conversation.enrollment
    if enrollment is not None:
        curriculum = await curriculum_of(enrollment.curriculum_id)  # type: ignore[attr-defined]
        course = CourseView(
            curriculum.id,
            curriculum.title,
            enrollment.cohort.name,
            enrollment.anchor_at.strftime("%A %-d %B %Y"),
        ).context()
    return {
        "learner": view.context(),
        "course": course,
        "trainer": {"handle": trainer.handle, "name": trainer.name, "email": trainer.email or ""},
    }
