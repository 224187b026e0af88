"""Moving a cohort's course date: every unsent step is recomputed, sent steps stay as they are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.curriculum import Curriculum
from dripper.db import connection
from dripper.enrollments.enroll import cohort_named
from dripper.models import DeliveryState, Enrollment
from dripper.schedule.plan import learner_zone, plan_steps
from dripper.store.curricula import curriculum_of
from dripper.store.sql import q, ts


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
    # The enrollment row first: on PostgreSQL this waits for a planner that holds it, so the
    # deliveries read below include whatever that planner has just inserted.
    await tx.execute_query(
        q(tx, "UPDATE enrollment SET anchor_at = ?, plan_due_at = ? WHERE id = ?"),
        [ts(tx, anchor), ts(tx, now), enrollment_id],
    )
    due_by_step = {
        p.step_id: p
        for p in plan_steps(
            curriculum, anchor, learner_zone(timezone, curriculum), enrollment_id, shift
        )
    }
    rows = await tx.execute_query_dict(
        q(
            tx,
            "SELECT id, step_id FROM delivery WHERE enrollment_id = ? AND kind = ? "
            "AND state IN (?, ?)",
        ),
        [enrollment_id, "step", DeliveryState.PENDING.value, DeliveryState.HELD.value],
    )
    updates = []
    for row in rows:
        planned = due_by_step.get(row["step_id"])
        if planned is None:
            continue
        updates.append(
            [
                ts(tx, planned.due_at),
                ts(tx, planned.due_at),
                ts(tx, planned.expires_at),
                ts(tx, now),
                int(row["id"]),
            ]
        )
    if updates:
        await tx.execute_many(
            q(
                tx,
                "UPDATE delivery SET due_at = ?, available_at = ?, expires_at = ?, "
                "updated_at = ? WHERE id = ?",
            ),
            updates,
        )
    return len(updates)


@dataclass
class MoveReport:
    enrollments: int
    rescheduled: int


async def move_cohort(name: str, course_end: datetime, now: datetime) -> MoveReport:
    """Move a cohort's course end; every unsent step is recomputed, sent steps stay as they are."""
    cohort = await cohort_named(name)
    conn = connection()
    enrollments = await Enrollment.filter(cohort_id=cohort.id).prefetch_related("learner")
    moved = 0
    rescheduled = 0
    async with in_transaction() as tx:
        await tx.execute_query(
            q(conn, "UPDATE cohort SET course_end = ? WHERE id = ?"),
            [ts(conn, course_end), cohort.id],
        )
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
