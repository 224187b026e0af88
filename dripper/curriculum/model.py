"""The curriculum language as pydantic models: field types, defaults, and the JSON Schema.

Pure data. Field-level rules (cron syntax, time zones, offsets) are checked here; rules that span
fields or need rendering (quiz answers among the options, template variables, Telegram limits)
are checked in `checks.py`, which has the source positions for its messages.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from dripper.schedule.offsets import (
    Offset,
    QuietHours,
    SendWindow,
    parse_duration,
    parse_offset,
    parse_quiet_hours,
)

STEP_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
CURRICULUM_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]*$"
MAX_OPTIONS = 10
MAX_OPTION_LENGTH = 100
MAX_BUTTONS = 6


def _from_text(parser: Any) -> Any:
    def parse(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"a bare number is ambiguous here; write the unit, e.g. {value}d")
        if not isinstance(value, str):
            return value  # let pydantic report the wrong type
        return parser(value)

    return parse


def _check_cron(value: Any) -> Any:
    if isinstance(value, str):
        if len(value.split()) != 5:
            raise ValueError(
                f"cron {value!r} must have 5 fields (minute hour day month weekday), "
                'e.g. "0 9 * * 1-5"'
            )
        if not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}")
    return value


def _check_timezone(value: Any) -> Any:
    if isinstance(value, str):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
            raise ValueError(
                f"unknown time zone {value!r:.60}; use an IANA name such as Europe/Berlin"
            ) from None
    return value


def _date_or_range(value: Any) -> Any:
    """Read "2026-12-25" or a range "2026-12-24..2027-01-01" as a (first, last) pair."""
    if isinstance(value, dt.date):
        return (value, value)
    if not isinstance(value, str):
        raise ValueError(f"expected a date such as 2026-12-25, not {value!r}")
    first, _, last = value.partition("..")
    try:
        start = dt.date.fromisoformat(first.strip())
        end = dt.date.fromisoformat(last.strip()) if last else start
    except ValueError:
        raise ValueError(
            f"cannot read {value!r}; write a date 2026-12-25 or a range 2026-12-24..2027-01-01"
        ) from None
    if end < start:
        raise ValueError(f"date range {value!r} ends before it starts")
    return (start, end)


DateOrRange = Annotated[
    tuple[dt.date, dt.date],
    BeforeValidator(_date_or_range),
    PlainSerializer(lambda r: f"{r[0]}" if r[0] == r[1] else f"{r[0]}..{r[1]}", return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}(\.\.\d{4}-\d{2}-\d{2})?$",
            "description": "A date 2026-12-25 or an inclusive range 2026-12-24..2027-01-01.",
        }
    ),
]


def _duration_json(description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {"type": "string", "pattern": r"^\s*(\d+\s*[wdhm]\s*)+$", "description": description}
    )


Duration = Annotated[
    dt.timedelta,
    BeforeValidator(_from_text(parse_duration)),
    PlainSerializer(lambda d: str(Offset(d)), return_type=str),
    _duration_json("A duration: weeks, days, hours, minutes, e.g. 3d, 2w, 12h, 1w 2d."),
]
OffsetText = Annotated[
    Offset,
    BeforeValidator(_from_text(parse_offset)),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*(\d+\s*[wdhm]\s*)*(\d{1,2}:\d{2})?\s*$",
            "description": "When the step falls after the anchor: 1d, 2w, 1w 2d, 12h, or a day "
            "plus a local time such as 3d 14:00.",
        }
    ),
]
QuietHoursText = Annotated[
    QuietHours,
    BeforeValidator(_from_text(parse_quiet_hours)),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$"}),
]
Cron = Annotated[str, BeforeValidator(_check_cron)]
TimeZoneName = Annotated[str, BeforeValidator(_check_timezone)]
NonEmptyText = Annotated[str, Field(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SendWindowSpec(Strict):
    """When drips may reach a learner, in the learner's own time zone."""

    send_at: Cron = Field(
        "0 9 * * 1-5",
        description="Cron (minute hour day month weekday) of allowed send slots, local time.",
    )
    spread: Duration = Field(
        dt.timedelta(minutes=30),
        description="Learners are spread over this long after each slot, stable per learner.",
    )
    quiet_hours: list[QuietHoursText] = Field(
        default_factory=list, description='Local spans with no sends, e.g. ["20:00-08:00"].'
    )
    skip_dates: list[DateOrRange] = Field(
        default_factory=list,
        description="Dates with no sends (holidays): 2026-12-25 or a range 2026-12-24..2027-01-01.",
    )
    expire_after: Duration | None = Field(
        None, description="A delivery later than this past its due time is skipped, not sent."
    )

    def to_window(self) -> SendWindow:
        return SendWindow(
            send_at=self.send_at,
            spread=self.spread,
            quiet_hours=tuple(self.quiet_hours),
            skip_dates=frozenset(
                first + dt.timedelta(days=n)
                for first, last in self.skip_dates
                for n in range((last - first).days + 1)
            ),
            expire_after=self.expire_after,
        )


class Link(Strict):
    url: Annotated[str, Field(pattern=r"^(https?://|mailto:)\S+$")]
    label: NonEmptyText | None = None


class StepBase(Strict):
    id: Annotated[str, Field(pattern=STEP_ID_PATTERN)] = Field(
        description="Stable id (lowercase letters, digits, - and _; at most 32). Never reuse one: "
        "enrollments track steps by id."
    )
    after: OffsetText
    channel: Literal["telegram", "email", "any"] = Field(
        "any", description="Preferred channel; any = the learner's Telegram, else email."
    )
    subject: NonEmptyText | None = Field(
        None, description="Email subject (template); default: the curriculum title."
    )
    text: NonEmptyText = Field(description="Markdown body; Jinja2 templates allowed.")


class Reminders(Strict):
    """Nudges for a prompt nobody answered."""

    remind_after: Duration | None = Field(
        None, description="Nudge when there is no answer this long after sending."
    )
    max_reminders: Annotated[int, Field(ge=1, le=5)] = Field(
        1, description="At most this many nudges."
    )
    reminder_text: NonEmptyText | None = Field(
        None, description="Markdown text of the nudge; default: a short reminder and the prompt."
    )


class Tip(StepBase):
    kind: Literal["tip"]
    image: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = Field(
        None, description="Image URL; the text becomes its caption (1024 characters at most)."
    )
    link: Link | None = None


class Question(StepBase, Reminders):
    kind: Literal["question"]


class Quiz(StepBase, Reminders):
    kind: Literal["quiz"]
    options: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=2)]
    correct: str | list[str] = Field(description="The right option text, or a list of them.")
    multiple: bool = Field(False, description="Learners may pick several options.")
    explanation: NonEmptyText | None = Field(None, description="Shown after the answer.")
    reask_after: Duration | None = Field(
        None, description="Spaced repetition: ask again this long after a wrong answer."
    )
    retire_after: Annotated[int, Field(ge=1, le=10)] = Field(
        1, description="Stop re-asking after this many right answers."
    )

    @property
    def correct_options(self) -> list[str]:
        return [self.correct] if isinstance(self.correct, str) else list(self.correct)


class Checkin(StepBase, Reminders):
    kind: Literal["checkin"]
    buttons: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=2)]


Step = Annotated[Tip | Question | Quiz | Checkin, Field(discriminator="kind")]
STEP_KINDS: dict[str, type[StepBase]] = {
    "tip": Tip,
    "question": Question,
    "quiz": Quiz,
    "checkin": Checkin,
}


class Curriculum(Strict):
    """One post-course drip sequence."""

    id: Annotated[str, Field(pattern=CURRICULUM_ID_PATTERN)] = Field(
        description="Stable id used on the command line (lowercase, digits, - and _)."
    )
    title: NonEmptyText
    description: str = ""
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en"
    timezone: TimeZoneName = Field(
        "UTC", description="Zone for learners who have none of their own."
    )
    anchor: Literal["course_end", "enrollment"] = Field(
        "course_end", description="What step offsets count from."
    )
    send_window: SendWindowSpec = Field(default_factory=SendWindowSpec)
    attributes: dict[Annotated[str, Field(pattern=IDENTIFIER_PATTERN)], str] = Field(
        default_factory=dict,
        description="Custom learner attributes the templates use (CSV columns), each with an "
        "example value used by `dripper check`.",
    )
    steps: Annotated[list[Step], Field(min_length=1)]

    def step(self, step_id: str) -> StepBase:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


def json_schema() -> dict[str, Any]:
    schema = Curriculum.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dripper curriculum"
    return schema


def is_identifier(name: str) -> bool:
    return re.fullmatch(IDENTIFIER_PATTERN, name) is not None
