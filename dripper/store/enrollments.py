"""Enrollments' SQL: enrolling in bulk, pausing and resuming, re-pointing an enrollment at a new
course date or curriculum version, and the queued deliveries these move, hold or cancel.

The functions that take `tx` run inside the caller's transaction, so a pause, a resume or a
move commits as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.db import connection
from dripper.models import DeliveryKind, DeliveryState, EnrollmentState
from dripper.store.sql import in_list, q, ts

ENROLL_BATCH = 5000  # rows per transaction

PAUSED = EnrollmentState.PAUSED.value
ACTIVE = EnrollmentState.ACTIVE.value
QUEUED = (DeliveryState.PENDING.value, DeliveryState.HELD.value)


@dataclass(frozen=True)
class NewEnrollment:
    learner_id: int
    cohort_id: int
    curriculum_id: int
    state: EnrollmentState
    anchor_at: datetime
    paused_at: datetime | None = None
    pause_reason: str | None = None


async def insert_enrollments(rows: Sequence[NewEnrollment], now: datetime) -> None:
    """New enrollments, each due for planning at its anchor (the planner adds their steps)."""
    conn = connection()
    sql = q(
        conn,
        "INSERT INTO enrollment (learner_id, cohort_id, curriculum_id, state, anchor_at, "
        "plan_due_at, shift_seconds, paused_at, pause_reason, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    values = [
        [
            row.learner_id,
            row.cohort_id,
            row.curriculum_id,
            row.state.value,
            ts(conn, row.anchor_at),
            ts(conn, row.anchor_at),
            0,
            ts(conn, row.paused_at),
            row.pause_reason,
            ts(conn, now),
        ]
        for row in rows
    ]
    for start in range(0, len(values), ENROLL_BATCH):
        async with in_transaction() as tx:
            await tx.execute_many(sql, values[start : start + ENROLL_BATCH])


async def latest_enrollments(learner_ids: Sequence[int]) -> dict[int, int]:
    """Each learner's most recent enrollment."""
    if not learner_ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT learner_id, MAX(id) AS id FROM enrollment WHERE learner_id IN "
            + in_list(conn, len(learner_ids))
            + " GROUP BY learner_id",
        ),
        list(learner_ids),
    )
    return {int(row["learner_id"]): int(row["id"]) for row in rows}


# --------------------------------------------------------------------------- pause and resume


async def pause_enrollments(
    ids: Sequence[int], reason: str, now: datetime, resume_at: datetime | None
) -> int:
    """Active enrollments paused, their queued deliveries held; returns how many were paused."""
    conn = connection()
    async with in_transaction() as tx:
        count, _ = await tx.execute_query(
            q(
                conn,
                "UPDATE enrollment SET state = ?, paused_at = ?, pause_reason = ?, resume_at = ? "
                "WHERE state = ? AND id IN " + in_list(conn, len(ids)),
            ),
            [PAUSED, ts(conn, now), reason, ts(conn, resume_at), ACTIVE, *ids],
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


async def paused_enrollments(tx: BaseDBAsyncClient, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Which of these are paused: id, paused_at and the shift they have so far."""
    return list(
        await tx.execute_query_dict(
            q(
                tx,
                "SELECT id, paused_at, shift_seconds FROM enrollment WHERE state = ? AND id IN "
                + in_list(tx, len(ids)),
            ),
            [PAUSED, *ids],
        )
    )


async def mark_resumed(
    tx: BaseDBAsyncClient, shifts: Mapping[int, timedelta], now: datetime
) -> None:
    """Enrollments active again, later by the time paused, and due for planning now."""
    await tx.execute_many(
        q(
            tx,
            "UPDATE enrollment SET state = ?, paused_at = NULL, pause_reason = NULL, "
            "resume_at = NULL, shift_seconds = shift_seconds + ?, plan_due_at = ? WHERE id = ?",
        ),
        [[ACTIVE, int(d.total_seconds()), ts(tx, now), i] for i, d in shifts.items()],
    )


async def held_deliveries(
    tx: BaseDBAsyncClient, enrollment_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """The held deliveries of these enrollments, with what re-planning them needs."""
    return list(
        await tx.execute_query_dict(
            q(
                tx,
                "SELECT d.id, d.enrollment_id, d.kind, d.step_id, d.due_at, d.expires_at, "
                "e.anchor_at, e.shift_seconds, e.curriculum_id, l.timezone FROM delivery d "
                "JOIN enrollment e ON e.id = d.enrollment_id "
                "JOIN learner l ON l.id = e.learner_id "
                "WHERE d.state = ? AND d.enrollment_id IN " + in_list(tx, len(enrollment_ids)),
            ),
            [DeliveryState.HELD.value, *enrollment_ids],
        )
    )


async def release_held_of_active() -> None:
    """Give back deliveries recorded as held after their enrollment was already resumed (a
    send claimed just before the resume)."""
    conn = connection()
    await conn.execute_query(
        q(
            conn,
            "UPDATE delivery SET state = ? WHERE state = ? AND enrollment_id IN "
            "(SELECT id FROM enrollment WHERE state = ?)",
        ),
        [DeliveryState.PENDING.value, DeliveryState.HELD.value, ACTIVE],
    )


async def resumes_due(now: datetime) -> list[int]:
    """Paused enrollments whose pause had an end (`/pause 7d`) that has come."""
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT id FROM enrollment WHERE state = ? AND resume_at IS NOT NULL "
            "AND resume_at <= ?",
        ),
        [PAUSED, ts(conn, now)],
    )
    return [int(row["id"]) for row in rows]


# --------------------------------------------------------------------------- re-planning


async def repoint(
    tx: BaseDBAsyncClient,
    enrollment_id: int,
    now: datetime,
    *,
    anchor: datetime | None = None,
    curriculum_id: int | None = None,
) -> None:
    """A new anchor or curriculum version for an enrollment; with a new anchor it is due for
    planning again now. On PostgreSQL this waits for a planner that holds the row, so what is
    read after it includes whatever that planner has just inserted."""
    if curriculum_id is not None:
        await tx.execute_query(
            q(tx, "UPDATE enrollment SET curriculum_id = ? WHERE id = ?"),
            [curriculum_id, enrollment_id],
        )
    if anchor is not None:
        await tx.execute_query(
            q(tx, "UPDATE enrollment SET anchor_at = ?, plan_due_at = ? WHERE id = ?"),
            [ts(tx, anchor), ts(tx, now), enrollment_id],
        )


async def queued_first_sendings(tx: BaseDBAsyncClient, enrollment_id: int) -> list[dict[str, Any]]:
    """The enrollment's steps queued but not sent (id and step id): first sendings only."""
    return list(
        await tx.execute_query_dict(
            q(
                tx,
                "SELECT id, step_id FROM delivery WHERE enrollment_id = ? AND kind = ? "
                "AND state IN (?, ?)",
            ),
            [enrollment_id, DeliveryKind.STEP.value, *QUEUED],
        )
    )


async def move_deliveries(
    tx: BaseDBAsyncClient,
    moves: Sequence[tuple[int, datetime, datetime | None]],
    now: datetime,
    *,
    release: bool = False,
) -> None:
    """Queued deliveries at new times: (id, due, expires). With `release`, held ones are
    pending again (a resume); without, each keeps its state (a new course date)."""
    if not moves:
        return
    state = f"state = '{DeliveryState.PENDING.value}', " if release else ""
    await tx.execute_many(
        q(
            tx,
            f"UPDATE delivery SET {state}due_at = ?, available_at = ?, expires_at = ?, "
            "updated_at = ? WHERE id = ?",
        ),
        [
            [ts(tx, due), ts(tx, due), ts(tx, expires), ts(tx, now), delivery_id]
            for delivery_id, due, expires in moves
        ],
    )


async def cancel_queued_steps(
    tx: BaseDBAsyncClient, enrollment_id: int, step_ids: Sequence[str], reason: str, now: datetime
) -> int:
    """Queued deliveries of these steps cancelled with `reason`; returns how many."""
    count, _ = await tx.execute_query(
        q(
            tx,
            "UPDATE delivery SET state = ?, last_error = ?, updated_at = ? "
            "WHERE enrollment_id = ? AND state IN (?, ?) AND step_id IN "
            + in_list(tx, len(step_ids)),
        ),
        [
            DeliveryState.CANCELLED.value,
            reason,
            ts(tx, now),
            enrollment_id,
            *QUEUED,
            *step_ids,
        ],
    )
    return int(count)


async def set_course_end(tx: BaseDBAsyncClient, cohort_id: int, course_end: datetime) -> None:
    await tx.execute_query(
        q(tx, "UPDATE cohort SET course_end = ? WHERE id = ?"), [ts(tx, course_end), cohort_id]
    )


OPEN = (DeliveryState.PENDING.value, DeliveryState.CLAIMED.value, DeliveryState.HELD.value)


async def complete_finished(now: datetime) -> int:
    """Active enrollments with every step planned and nothing of theirs left to send become
    completed; returns how many. One statement, whatever the number of enrollments.

    A failed or uncertain delivery a trainer has not dismissed keeps the enrollment active:
    it may still be resent from the Problems view."""
    conn = connection()
    count, _ = await conn.execute_query(
        q(
            conn,
            "UPDATE enrollment SET state = ? WHERE state = ? AND plan_due_at IS NULL "
            "AND plan_error IS NULL AND NOT EXISTS (SELECT 1 FROM delivery d "
            "WHERE d.enrollment_id = enrollment.id AND (d.state IN (?, ?, ?) "
            "OR (d.state IN (?, ?) AND d.dismissed_at IS NULL)))",
        ),
        [
            EnrollmentState.COMPLETED.value,
            ACTIVE,
            *OPEN,
            DeliveryState.FAILED.value,
            DeliveryState.UNCERTAIN.value,
        ],
    )
    return int(count)


async def reactivate(tx: BaseDBAsyncClient, enrollment_id: int) -> None:
    """A completed enrollment got something new to send (a re-ask): active again."""
    await tx.execute_query(
        q(tx, "UPDATE enrollment SET state = ? WHERE id = ? AND state = ?"),
        [ACTIVE, enrollment_id, EnrollmentState.COMPLETED.value],
    )


async def cancel_enrollments(
    tx: BaseDBAsyncClient, enrollment_ids: Sequence[int], reason: str, now: datetime
) -> tuple[int, int]:
    """Enrollments cancelled, with everything of theirs not sent yet (also a trainer's reply
    still queued); (enrollments, deliveries) cancelled."""
    if not enrollment_ids:
        return 0, 0
    ids = list(enrollment_ids)
    enrollments, _ = await tx.execute_query(
        q(
            tx,
            "UPDATE enrollment SET state = ?, plan_due_at = NULL WHERE state <> ? AND id IN "
            + in_list(tx, len(ids)),
        ),
        [EnrollmentState.CANCELLED.value, EnrollmentState.CANCELLED.value, *ids],
    )
    deliveries, _ = await tx.execute_query(
        q(
            tx,
            "UPDATE delivery SET state = ?, last_error = ?, updated_at = ? "
            "WHERE state IN (?, ?) AND enrollment_id IN " + in_list(tx, len(ids)),
        ),
        [DeliveryState.CANCELLED.value, reason, ts(tx, now), *QUEUED, *ids],
    )
    return int(enrollments), int(deliveries)
