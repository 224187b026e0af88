"""Pausing and resuming enrollments, one by one or a whole cohort.

A pause holds what is queued; on resume the rest of the drip moves later by the time paused
(steps at their re-planned time, nudges and re-asks by whole days).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.enrollments.enroll import cohort_named
from dripper.models import Enrollment, EnrollmentState
from dripper.schedule.plan import PlannedStep, learner_zone, plan_steps
from dripper.store.curricula import curriculum_of
from dripper.store.enrollments import (
    held_deliveries,
    mark_resumed,
    move_deliveries,
    pause_enrollments,
    paused_enrollments,
    release_held_of_active,
    resumes_due,
)
from dripper.store.sql import as_datetime


async def pause(
    enrollment_ids: Sequence[int], reason: str, now: datetime, resume_at: datetime | None = None
) -> int:
    """Pause active enrollments: their queued deliveries are held until resume."""
    if not enrollment_ids:
        return 0
    return await pause_enrollments(list(enrollment_ids), reason, now, resume_at)


async def resume(enrollment_ids: Sequence[int], now: datetime) -> int:
    """Resume paused enrollments: everything not yet sent moves later by the time paused."""
    if not enrollment_ids:
        return 0
    async with in_transaction() as tx:
        paused = await paused_enrollments(tx, list(enrollment_ids))
        if not paused:
            return 0
        shifts: dict[int, timedelta] = {}
        for row in paused:
            paused_at = as_datetime(row["paused_at"]) or now
            shifts[int(row["id"])] = max(now - paused_at, timedelta(0))
        await mark_resumed(tx, shifts, now)
        await _reschedule_held(tx, shifts, now)
    return len(shifts)


async def _reschedule_held(
    tx: BaseDBAsyncClient, shifts: dict[int, timedelta], now: datetime
) -> None:
    """Held deliveries go back to pending: steps at their re-planned time, nudges and re-asks
    later by the pause, rounded up to whole days."""
    moves: list[tuple[int, datetime, datetime | None]] = []
    plans: dict[int, dict[str, PlannedStep]] = {}
    for row in await held_deliveries(tx, list(shifts)):
        enrollment_id = int(row["enrollment_id"])
        due = as_datetime(row["due_at"]) or now
        expires = as_datetime(row["expires_at"])
        if row["kind"] == "step":
            if enrollment_id not in plans:
                curriculum = await curriculum_of(int(row["curriculum_id"]), tx)
                anchor = as_datetime(row["anchor_at"]) or now
                plans[enrollment_id] = {
                    p.step_id: p
                    for p in plan_steps(
                        curriculum,
                        anchor,
                        learner_zone(row["timezone"], curriculum),
                        enrollment_id,
                        timedelta(seconds=int(row["shift_seconds"])),
                    )
                }
            planned = plans[enrollment_id].get(row["step_id"])
            new_due, new_expires = (
                (planned.due_at, planned.expires_at) if planned else (due, expires)
            )
        else:
            days = timedelta(days=math.ceil(shifts[enrollment_id] / timedelta(days=1)))
            new_due, new_expires = due + days, (expires + days if expires else None)
        moves.append((int(row["id"]), new_due, new_expires))
    await move_deliveries(tx, moves, now, release=True)


async def resume_due(now: datetime) -> int:
    """Resume enrollments whose pause had an end (`/pause 7d`) that has come, and give back
    any delivery recorded as held after its enrollment was already resumed (a send claimed
    just before the resume)."""
    await release_held_of_active()
    return await resume(await resumes_due(now), now)


async def pause_cohort(name: str, now: datetime) -> int:
    """Pause a cohort: its active enrollments are held, and it is marked paused so that learners
    enrolled later start paused too. Returns how many enrollments were paused."""
    cohort = await cohort_named(name)
    ids = await Enrollment.filter(cohort_id=cohort.id, state=EnrollmentState.ACTIVE).values_list(
        "id", flat=True
    )
    count = await pause([int(i) for i in ids], "cohort", now)  # type: ignore[call-overload]
    cohort.paused = True
    await cohort.save(update_fields=["paused"])
    return count


@dataclass(frozen=True)
class CohortResume:
    resumed: int
    still_paused: int  # paused by the learner (/pause) or a trainer: a cohort resume leaves them


async def resume_cohort(name: str, now: datetime) -> CohortResume:
    """Resume what the cohort pause held; the rest of the drip moves later by the time paused."""
    cohort = await cohort_named(name)
    ids = await Enrollment.filter(
        cohort_id=cohort.id, state=EnrollmentState.PAUSED, pause_reason="cohort"
    ).values_list("id", flat=True)
    count = await resume([int(i) for i in ids], now)  # type: ignore[call-overload]
    cohort.paused = False
    await cohort.save(update_fields=["paused"])
    still = await Enrollment.filter(cohort_id=cohort.id, state=EnrollmentState.PAUSED).count()
    return CohortResume(count, still)
