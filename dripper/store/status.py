"""Counts of the whole outbox and inbox: `dripper status`, the demo's summary, the benchmarks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dripper.models import (
    DeliveryState,
    MessageDirection,
)
from dripper.store.sql import as_datetime, select

Rows = list[dict[str, Any]]


# --------------------------------------------------------------------------- the outbox


async def deliveries_by_state() -> dict[str, int]:
    rows = await select("SELECT state, COUNT(*) AS n FROM delivery GROUP BY state ORDER BY state")
    return {str(row["state"]): int(row["n"]) for row in rows}


async def deliveries_by_cohort() -> Rows:
    """cohort, state, n."""
    return await select(
        "SELECT c.name AS cohort, d.state AS state, COUNT(*) AS n FROM delivery d "
        "JOIN enrollment e ON e.id = d.enrollment_id JOIN cohort c ON c.id = e.cohort_id "
        "GROUP BY c.name, d.state ORDER BY c.name, d.state"
    )


async def deliveries_by_channel() -> Rows:
    """channel (None: not yet routed to one), state, n; by channel with None first."""
    rows = await select(
        "SELECT channel, state, COUNT(*) AS n FROM delivery GROUP BY channel, state"
    )
    return sorted(rows, key=lambda row: (row["channel"] or "", row["state"]))


async def enrollments_by_state() -> dict[str, int]:
    rows = await select("SELECT state, COUNT(*) AS n FROM enrollment GROUP BY state ORDER BY state")
    return {str(row["state"]): int(row["n"]) for row in rows}


async def next_pending() -> datetime | None:
    """When the next delivery already in the outbox may go out."""
    rows = await select(
        "SELECT MIN(available_at) AS t FROM delivery WHERE state = ?",
        [DeliveryState.PENDING.value],
    )
    return as_datetime(rows[0]["t"]) if rows else None


async def retrying(limit: int = 10) -> Rows:
    """Pending deliveries that failed once and wait for their next try, soonest first: id,
    learner (name), cohort, step, kind, available_at, attempts, last_error."""
    return await select(
        "SELECT d.id, TRIM(l.first_name || ' ' || l.last_name) AS learner, c.name AS cohort, "
        "d.step_id AS step, d.kind, d.available_at, d.attempts, d.last_error "
        "FROM delivery d JOIN learner l ON l.id = d.learner_id "
        "LEFT JOIN enrollment e ON e.id = d.enrollment_id "
        "LEFT JOIN cohort c ON c.id = e.cohort_id "
        "WHERE d.state = ? AND d.last_error IS NOT NULL ORDER BY d.available_at LIMIT ?",
        [DeliveryState.PENDING.value, limit],
    )


async def delivery_notes() -> Rows:
    """learner (first name), step, state, error of every delivery that recorded an error."""
    return await select(
        "SELECT l.first_name AS learner, d.step_id AS step, d.state AS state, "
        "d.last_error AS error FROM delivery d JOIN learner l ON l.id = d.learner_id "
        "WHERE d.last_error IS NOT NULL ORDER BY d.due_at"
    )


async def sent_times() -> list[datetime]:
    rows = await select("SELECT sent_at FROM delivery WHERE sent_at IS NOT NULL")
    return [moment for row in rows if (moment := as_datetime(row["sent_at"])) is not None]


# --------------------------------------------------------------------------- learners, inbox


async def reachability() -> Rows:
    """first_name, telegram_status, email_status of every learner."""
    return await select("SELECT first_name, telegram_status, email_status FROM learner ORDER BY id")


async def messages_by_direction() -> dict[str, int]:
    rows = await select(
        "SELECT direction, COUNT(*) AS n FROM message GROUP BY direction ORDER BY direction"
    )
    return {str(row["direction"]): int(row["n"]) for row in rows}


async def inbound_by_channel() -> dict[str, int]:
    rows = await select(
        "SELECT channel, COUNT(*) AS n FROM message WHERE direction = ? "
        "GROUP BY channel ORDER BY channel",
        [MessageDirection.INBOUND.value],
    )
    return {str(row["channel"]): int(row["n"]) for row in rows}


async def quiz_answers_by_correctness() -> dict[bool | None, int]:
    rows = await select(
        "SELECT correct, COUNT(*) AS n FROM quiz_answer GROUP BY correct ORDER BY correct"
    )
    return {None if row["correct"] is None else bool(row["correct"]): int(row["n"]) for row in rows}
