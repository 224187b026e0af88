"""Moving a cohort's course date: every unsent step is recomputed, sent steps stay as they are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.curriculum import Curriculum
from dripper.enrollments.enroll import cohort_named
from dripper.models import Enrollment
from dripper.schedule.plan import learner_zone, plan_steps
from dripper.store.curricula import curriculum_of
from dripper.store.enrollments import (
    move_deliveries,
    queued_first_sendings,
    repoint,
    set_course_end,
)


async def replan_unsent(
    tx: BaseDBAsyncClient,
    enrollment_id: int,
    curriculum: Curriculum,
    anchor: datetime,
    shift: timedelta,
    timezone: str | None,
    now: datetime,
) -> int:
    """Recompute the due times of an enrollment's queued first sendings and point the planner
    at it again; returns how many queued deliveries moved."""
    # The enrollment row first, so what is read below includes a running planner's inserts.
    await repoint(tx, enrollment_id, now, anchor=anchor)
    due_by_step = {
        p.step_id: p
        for p in plan_steps(
            curriculum, anchor, learner_zone(timezone, curriculum), enrollment_id, shift
        )
    }
    moves = [
        (int(row["id"]), planned.due_at, planned.expires_at)
        for row in await queued_first_sendings(tx, enrollment_id)
        if (planned := due_by_step.get(row["step_id"])) is not None
    ]
    await move_deliveries(tx, moves, now)
    return len(moves)


@dataclass
class MoveReport:
    enrollments: int
    rescheduled: int


async def move_cohort(name: str, course_end: datetime, now: datetime) -> MoveReport:
    """Move a cohort's course end; every unsent step is recomputed, sent steps stay as they are."""
    cohort = await cohort_named(name)
    enrollments = await Enrollment.filter(cohort_id=cohort.id).prefetch_related("learner")
    moved = 0
    rescheduled = 0
    async with in_transaction() as tx:
        await set_course_end(tx, cohort.id, course_end)
        for enrollment in enrollments:
            curriculum = await curriculum_of(enrollment.curriculum_id, tx)  # type: ignore[attr-defined]
            if curriculum.anchor != "course_end":
                continue
            moved += 1
            updates = await replan_unsent(
                tx,
                enrollment.id,
                curriculum,
                course_end,
                timedelta(seconds=enrollment.shift_seconds),
                enrollment.learner.timezone,
                now,
            )
            rescheduled += updates
    return MoveReport(enrollments=moved, rescheduled=rescheduled)
