"""Enrollments: learners into cohorts, pause and resume, moving a course date.

An enrollment does not write its steps into the outbox: it records the anchor and the time of
its first step (`plan_due_at`), and the planner inside `dripper run` adds steps as they come
near. So enrolling 100,000 learners writes 100,000 rows, and moving a course date or pausing a
learner only recomputes what has not been sent yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.curriculum import CheckResult, Curriculum
from dripper.db import connection
from dripper.errors import DripperError
from dripper.models import Cohort, DeliveryState, Enrollment, EnrollmentState, Learner
from dripper.schedule.plan import PlannedStep, learner_zone, plan_steps
from dripper.store.curricula import curriculum_of, store_version
from dripper.store.sql import as_datetime, in_list, q, ts

ENROLL_BATCH = 5000


@dataclass
class EnrollReport:
    cohort: str
    enrolled: int = 0
    already: int = 0
    rejected: list[str] = field(default_factory=list)


def learner_label(learner: Learner) -> str:
    handle = f"@{learner.telegram_username}" if learner.telegram_username else ""
    return learner.email or handle or f"learner {learner.id}"


def missing_attributes(curriculum: Curriculum, learner: Learner) -> list[str]:
    return [name for name in curriculum.attributes if not (learner.attributes or {}).get(name)]


async def get_or_create_cohort(
    name: str, curriculum: Curriculum, course_end: datetime
) -> tuple[Cohort, bool]:
    cohort = await Cohort.get_or_none(name=name)
    if cohort is None:
        cohort = await Cohort.create(name=name, curriculum_key=curriculum.id, course_end=course_end)
        return cohort, True
    if cohort.curriculum_key != curriculum.id:
        raise DripperError(
            f"cohort '{name}' runs curriculum '{cohort.curriculum_key}', not '{curriculum.id}'; "
            "pick another cohort name"
        )
    if cohort.course_end != course_end:
        raise DripperError(
            f"cohort '{name}' ends at {cohort.course_end:%Y-%m-%d %H:%M} UTC, not "
            f"{course_end:%Y-%m-%d %H:%M} UTC; to change it run "
            f"`dripper cohort move '{name}' --course-end ...`"
        )
    return cohort, False


async def enroll(
    checked: CheckResult,
    cohort_name: str,
    course_end: datetime,
    learners: Sequence[Learner],
    now: datetime,
) -> EnrollReport:
    """Enroll learners in a cohort of a checked curriculum; a learner already in it is skipped."""
    curriculum = checked.curriculum
    assert curriculum is not None
    version = await store_version(checked)
    cohort, _ = await get_or_create_cohort(cohort_name, curriculum, course_end)
    report = EnrollReport(cohort=cohort.name)
    rows_in_cohort = await Enrollment.filter(cohort_id=cohort.id).values("learner_id")
    existing: set[int] = {int(row["learner_id"]) for row in rows_in_cohort}
    rows: list[list[object]] = []
    conn = connection()
    state = EnrollmentState.PAUSED if cohort.paused else EnrollmentState.ACTIVE
    for learner in learners:
        if learner.id in existing:
            report.already += 1
            continue
        missing = missing_attributes(curriculum, learner)
        if missing:
            report.rejected.append(
                f"{learner_label(learner)}: no value for {', '.join(missing)} "
                f"(the curriculum's texts use it; add the column to the CSV and re-import)"
            )
            continue
        existing.add(learner.id)
        anchor = course_end if curriculum.anchor == "course_end" else now
        rows.append(
            [
                learner.id,
                cohort.id,
                version.id,
                state.value,
                ts(conn, anchor),
                ts(conn, anchor),
                0,
                ts(conn, now if cohort.paused else None),
                "cohort" if cohort.paused else None,
                ts(conn, now),
            ]
        )
    sql = q(
        conn,
        "INSERT INTO enrollment (learner_id, cohort_id, curriculum_id, state, anchor_at, "
        "plan_due_at, shift_seconds, paused_at, pause_reason, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    for start in range(0, len(rows), ENROLL_BATCH):
        async with in_transaction() as tx:
            await tx.execute_many(sql, rows[start : start + ENROLL_BATCH])
    report.enrolled = len(rows)
    return report


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


async def cohort_named(name: str) -> Cohort:
    """The cohort, or an error that lists the names it might have meant."""
    cohort = await Cohort.get_or_none(name=name)
    if cohort is None:
        from dripper.hints import did_you_mean

        names = [c.name for c in await Cohort.all()]
        raise DripperError(f"no cohort named '{name}'{did_you_mean(name, names)}")
    return cohort


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
