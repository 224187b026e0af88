"""What each enrollment receives and when: the steps of a curriculum as due times, pure.

The outbox holds only work that is near; everything further out is recomputed from the same
inputs whenever it is needed (`dripper timeline`, a cohort moved, a curriculum applied). That keeps
enrolling 100,000 learners cheap and makes "move the course date" a recomputation, not a migration.

Nudges for unanswered prompts and spaced-repetition re-asks depend on what happened (when the
prompt was sent, whether the answer was right) and are planned when that happens, with the same
send-window rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dripper.curriculum import Curriculum, Quiz, StepBase
from dripper.schedule.offsets import Offset, SendWindow
from dripper.schedule.slots import expires_at, next_slot, step_due, step_dues


@dataclass(frozen=True)
class PlannedStep:
    step_id: str
    due_at: datetime
    expires_at: datetime | None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def learner_zone(learner_timezone: str | None, curriculum: Curriculum) -> ZoneInfo:
    """The learner's own zone, else the curriculum's default."""
    return _zone(learner_timezone or curriculum.timezone)


def spread_key(enrollment_id: int) -> str:
    return f"enrollment:{enrollment_id}"


_windows: dict[int, tuple[Curriculum, SendWindow]] = {}


def _window(curriculum: Curriculum) -> SendWindow:
    # Curricula hold lists, so they are not hashable; key by identity and keep the object alive
    # in the value so that its id cannot be reused by another curriculum.
    cached = _windows.get(id(curriculum))
    if cached is None or cached[0] is not curriculum:
        cached = (curriculum, curriculum.send_window.to_window())
        _windows[id(curriculum)] = cached
    return cached[1]


def window_of(curriculum: Curriculum) -> SendWindow:
    return _window(curriculum)


def due_times(
    curriculum: Curriculum,
    anchor: datetime,
    tz: ZoneInfo,
    enrollment_id: int,
    shift: timedelta = timedelta(0),
) -> list[datetime]:
    """The due time of every step, in the curriculum's step order (the planner's fast path).

    `shift` is the time the enrollment spent paused: every step moves later by that many calendar
    days (rounded up) and lands on the first send slot of its new day (or its `at` time), so a
    learner back from two weeks of holiday continues where they left off, with the same spacing.
    """
    window = _window(curriculum)
    key = spread_key(enrollment_id)
    dues = step_dues(anchor, [step.after for step in curriculum.steps], window, tz, key)
    if shift > timedelta(0):
        days = timedelta(days=math.ceil(shift / timedelta(days=1)))
        dues = [
            step_due(due, Offset(days, step.after.at), window, tz, key)
            for step, due in zip(curriculum.steps, dues, strict=True)
        ]
    return dues


def plan_steps(
    curriculum: Curriculum,
    anchor: datetime,
    tz: ZoneInfo,
    enrollment_id: int,
    shift: timedelta = timedelta(0),
) -> list[PlannedStep]:
    """Every step of the curriculum with its due time for one enrollment, earliest first."""
    window = _window(curriculum)
    dues = due_times(curriculum, anchor, tz, enrollment_id, shift)
    planned = [
        PlannedStep(step.id, due, expires_at(due, window))
        for step, due in zip(curriculum.steps, dues, strict=True)
    ]
    planned.sort(key=lambda p: p.due_at)
    return planned


def plan_nudge(
    step: StepBase,
    sent_at: datetime,
    reminder_number: int,
    window: SendWindow,
    tz: ZoneInfo,
    enrollment_id: int,
) -> datetime | None:
    """When to send reminder `reminder_number` (1-based) of an unanswered prompt, or None."""
    remind_after: timedelta | None = getattr(step, "remind_after", None)
    if remind_after is None or reminder_number > int(getattr(step, "max_reminders", 1)):
        return None
    return next_slot(sent_at + remind_after, window, tz, spread_key(enrollment_id))


def plan_reask(
    quiz: Quiz,
    answered_at: datetime,
    correct: bool,
    right_so_far: int,
    window: SendWindow,
    tz: ZoneInfo,
    enrollment_id: int,
) -> datetime | None:
    """When to ask a quiz again (spaced repetition), or None when it is retired.

    Wrong: again after `reask_after`. Right: retired once it has been answered right
    `retire_after` times; until then asked again after `reask_after` doubled per right answer.
    """
    if quiz.reask_after is None:
        return None
    if correct and right_so_far >= quiz.retire_after:
        return None
    interval = quiz.reask_after * (2**right_so_far if correct else 1)
    return next_slot(answered_at + interval, window, tz, spread_key(enrollment_id))
