"""The planner's SQL: which enrollments need their next steps put in the outbox.

Enrollments carry `plan_due_at`, the earliest due time of a step that is not in the outbox yet.
The planner takes the enrollments whose `plan_due_at` falls within its horizon, inserts those
steps (a step already there is left alone: the business key is unique) and moves `plan_due_at`
on. On PostgreSQL the enrollments are locked with SKIP LOCKED, so workers plan different ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.db import connection
from dripper.store.sql import as_datetime, in_list, is_postgres, q, text, ts


@dataclass(frozen=True)
class EnrollmentToPlan:
    id: int
    learner_id: int
    curriculum_version_id: int
    anchor_at: datetime
    shift_seconds: int
    timezone: str | None


def _to_plan(row: dict[str, Any]) -> EnrollmentToPlan:
    anchor = as_datetime(row["anchor_at"])
    assert anchor is not None
    return EnrollmentToPlan(
        id=int(row["id"]),
        learner_id=int(row["learner_id"]),
        curriculum_version_id=int(row["curriculum_id"]),
        anchor_at=anchor,
        shift_seconds=int(row["shift_seconds"]),
        timezone=row["timezone"],
    )


_TO_PLAN = (
    "SELECT e.id, e.learner_id, e.curriculum_id, e.anchor_at, e.shift_seconds, l.timezone, "
    "e.plan_due_at FROM enrollment e JOIN learner l ON l.id = e.learner_id "
    "WHERE e.state = ? AND e.plan_due_at IS NOT NULL"
)


async def lock_due_enrollments(
    tx: BaseDBAsyncClient, until: datetime, limit: int
) -> list[EnrollmentToPlan]:
    """Active enrollments with a step to plan before `until` (call inside a transaction)."""
    lock = " FOR UPDATE OF e SKIP LOCKED" if is_postgres(tx) else ""
    rows = await tx.execute_query_dict(
        q(tx, f"{_TO_PLAN} AND e.plan_due_at <= ? ORDER BY e.plan_due_at LIMIT ?{lock}"),
        ["active", ts(tx, until), limit],
    )
    return [_to_plan(row) for row in rows]


async def soonest_to_plan(
    before: datetime | None, limit: int
) -> list[tuple[datetime, EnrollmentToPlan]]:
    """Active enrollments with their `plan_due_at` (a lower bound of their next step not yet in
    the outbox), soonest first, that bound before `before` (read only, no lock)."""
    conn = connection()
    sql, params = _TO_PLAN, ["active"]
    if before is not None:
        sql, params = f"{sql} AND e.plan_due_at < ?", [*params, ts(conn, before)]
    rows = await conn.execute_query_dict(
        q(conn, f"{sql} ORDER BY e.plan_due_at, e.id LIMIT ?"), [*params, limit]
    )
    out = []
    for row in rows:
        bound = as_datetime(row["plan_due_at"])
        assert bound is not None
        out.append((bound, _to_plan(row)))
    return out


async def planned_steps(
    tx: BaseDBAsyncClient, enrollment_ids: Sequence[int]
) -> set[tuple[int, str]]:
    """(enrollment id, step id) of the first sending of every step already in the outbox."""
    if not enrollment_ids:
        return set()
    rows = await tx.execute_query_dict(
        q(
            tx,
            "SELECT enrollment_id, step_id FROM delivery WHERE kind = ? AND enrollment_id IN "
            + in_list(tx, len(enrollment_ids)),
        ),
        ["step", *enrollment_ids],
    )
    return {(int(row["enrollment_id"]), str(row["step_id"])) for row in rows}


async def set_plan_due(
    tx: BaseDBAsyncClient,
    updates: Sequence[tuple[int, datetime | None]],
    now: datetime,
    errors: Mapping[int, str] | None = None,
) -> None:
    """When each enrollment needs planning next, and why it could not be planned (`errors`;
    the others' error is cleared)."""
    if not updates:
        return
    errors = errors or {}
    await tx.execute_many(
        q(tx, "UPDATE enrollment SET plan_due_at = ?, plan_error = ? WHERE id = ?"),
        [
            [
                ts(tx, due),
                text(errors[enrollment_id]) if enrollment_id in errors else None,
                enrollment_id,
            ]
            for enrollment_id, due in updates
        ],
    )
