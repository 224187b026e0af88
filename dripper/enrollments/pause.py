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

from dripper.db import connection
from dripper.enrollments.enroll import cohort_named
from dripper.models import DeliveryState, Enrollment, EnrollmentState
from dripper.schedule.plan import PlannedStep, learner_zone, plan_steps
from dripper.store.curricula import curriculum_of
from dripper.store.sql import as_datetime, in_list, q, ts


async def pause(
    enrollment_ids: Sequence[int], reason: str, now: datetime, resume_at: datetime | None = None
) -> int:
    """Pause active enrollments: their queued deliveries are held until resume."""
    if not enrollment_ids:
        return 0
    conn = connection()
    ids = list(enrollment_ids)
    async with in_transaction() as tx:
        count, _ = await tx.execute_query(
            q(
                conn,
                "UPDATE enrollment SET state = ?, paused_at = ?, pause_reason = ?, resume_at = ? "
                "WHERE state = ? AND id IN " + in_list(conn, len(ids)),
            ),
            ["paused", ts(conn, now), reason, ts(conn, resume_at), "active", *ids],
        )
        await tx.execute_query(
            q(
                conn,
                "UPDATE delivery SET state = ?, updated_at = ? WHERE state = ? "
                "AND enrollment_id IN " + in_list(conn, len(ids)),
            ),
            [DeliveryState.HELD.value, ts(conn, now), DeliveryState.PENDING.value, *ids],
        )
    return int(count)


async def resume(enrollment_ids: Sequence[int], now: datetime) -> int:
    """Resume paused enrollments: everything not yet sent moves later by the time paused."""
    if not enrollment_ids:
        return 0
    conn = connection()
    ids = list(enrollment_ids)
    async with in_transaction() as tx:
        paused = await tx.execute_query_dict(
            q(
                conn,
                "SELECT id, paused_at, shift_seconds FROM enrollment WHERE state = ? AND id IN "
                + in_list(conn, len(ids)),
            ),
            ["paused", *ids],
        )
        if not paused:
            return 0
        shifts: dict[int, timedelta] = {}
        for row in paused:
            paused_at = as_datetime(row["paused_at"]) or now
            shifts[int(row["id"])] = max(now - paused_at, timedelta(0))
        await tx.execute_many(
            q(
                conn,
                "UPDATE enrollment SET state = ?, paused_at = NULL, pause_reason = NULL, "
                "resume_at = NULL, shift_seconds = shift_seconds + ?, plan_due_at = ? WHERE id = ?",
            ),
            [["active", int(d.total_seconds()), ts(conn, now), i] for i, d in shifts.items()],
        )
        await _reschedule_held(tx, shifts, now)
    return len(shifts)


async def _reschedule_held(
    tx: BaseDBAsyncClient, shifts: dict[int, timedelta], now: datetime
) -> None:
    """Held deliveries go back to pending: steps at their re-planned time, nudges and re-asks
    later by the pause, rounded up to whole days."""
    held = await tx.execute_query_dict(
        q(
            tx,
            "SELECT d.id, d.enrollment_id, d.kind, d.step_id, d.due_at, d.expires_at, "
            "e.anchor_at, e.shift_seconds, e.curriculum_id, l.timezone FROM delivery d "
            "JOIN enrollment e ON e.id = d.enrollment_id JOIN learner l ON l.id = e.learner_id "
            "WHERE d.state = ? AND d.enrollment_id IN " + in_list(tx, len(shifts)),
        ),
        [DeliveryState.HELD.value, *shifts],
    )
    updates = []
    plans: dict[int, dict[str, PlannedStep]] = {}
    for row in held:
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
        updates.append(
            [
                DeliveryState.PENDING.value,
                ts(tx, new_due),
                ts(tx, new_due),
                ts(tx, new_expires),
                ts(tx, now),
                int(row["id"]),
            ]
        )
    if updates:
        await tx.execute_many(
            q(
                tx,
                "UPDATE delivery SET state = ?, due_at = ?, available_at = ?, expires_at = ?, "
                "updated_at = ? WHERE id = ?",
            ),
            updates,
        )


async def resume_due(now: datetime) -> int:
    """Resume enrollments whose pause had an end (`/pause 7d`) that has come, and give back
    any delivery recorded as held after its enrollment was already resumed (a send claimed
    just before the resume)."""
    conn = connection()
    await conn.execute_query(
        q(
            conn,
            "UPDATE delivery SET state = ? WHERE state = ? AND enrollment_id IN "
            "(SELECT id FROM enrollment WHERE state = ?)",
        ),
        [DeliveryState.PENDING.value, DeliveryState.HELD.value, "active"],
    )
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT id FROM enrollment WHERE state = ? AND resume_at IS NOT NULL "
            "AND resume_at <= ?",
        ),
        ["paused", ts(conn, now)],
    )
    return await resume([int(r["id"]) for r in rows], now)


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
