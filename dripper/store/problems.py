"""The SQL of what needs a trainer's look: failed, uncertain and skipped deliveries, inbound items
stored but not filed, enrollments that cannot be planned; and what a trainer does about each.

Every action is one guarded UPDATE (`WHERE id = ? AND state ...`): it applies only while the row
is still the problem the trainer saw, so two trainers (or a trainer and `dripper run`) never
undo each other's work. Each returns whether it applied. `updated_at` is set by hand: raw SQL
skips Tortoise's auto_now, and the dashboards' change stamp reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dripper.db import connection
from dripper.models import DeliveryState, EnrollmentState, InboundState
from dripper.store.outbox import ADDED_LATE
from dripper.store.sql import in_list, q, select, text, ts

Rows = list[dict[str, Any]]

# The delivery states a trainer is shown: each is final until someone acts. Steps `dripper
# apply` added for learners already past them are skipped by the trainer's own doing: not shown.
PROBLEM_STATES = (DeliveryState.FAILED, DeliveryState.UNCERTAIN, DeliveryState.SKIPPED)
_STATES = tuple(state.value for state in PROBLEM_STATES)
_PROBLEM_DELIVERY = (
    "d.state IN (?, ?, ?) AND d.dismissed_at IS NULL "
    "AND (d.last_error IS NULL OR d.last_error <> ?)"
)
_ACTIVE = EnrollmentState.ACTIVE.value


# --------------------------------------------------------------------------- what is wrong


async def problem_deliveries(limit: int = 10) -> Rows:
    """The newest failed, uncertain and skipped deliveries nobody dismissed, with whom and what
    they were for: id, learner (name), learner_id, cohort, enrollment_state, step, kind, state,
    channel, reason, at, due_at, attempted_at, attempts."""
    return await select(
        "SELECT d.id, TRIM(l.first_name || ' ' || l.last_name) AS learner, "
        "d.learner_id, c.name AS cohort, e.state AS enrollment_state, d.step_id AS step, d.kind, "
        "d.state, d.channel, d.last_error AS reason, d.updated_at AS at, d.due_at, "
        "d.attempted_at, d.attempts "
        "FROM delivery d JOIN learner l ON l.id = d.learner_id "
        "LEFT JOIN enrollment e ON e.id = d.enrollment_id "
        "LEFT JOIN cohort c ON c.id = e.cohort_id "
        f"WHERE {_PROBLEM_DELIVERY} ORDER BY d.updated_at DESC, d.id DESC LIMIT ?",
        [*_STATES, ADDED_LATE, limit],
    )


async def flagged_items(limit: int = 10) -> Rows:
    """The newest inbound items stored but not filed (unreadable, unknown sender, unverified,
    failed): id, channel, external_id, reason, at, filed (a message of it is in a
    conversation)."""
    rows = await select(
        "SELECT i.id, i.channel, i.external_id, i.error AS reason, i.received_at AS at, "
        "EXISTS (SELECT 1 FROM message m WHERE m.inbound_id = i.id) AS filed "
        "FROM inbound_item i WHERE i.state = ? ORDER BY i.id DESC LIMIT ?",
        [InboundState.FLAGGED.value, limit],
    )
    return [{**row, "filed": bool(row["filed"])} for row in rows]


async def count_flagged_items() -> int:
    rows = await select(
        "SELECT COUNT(*) AS n FROM inbound_item WHERE state = ?", [InboundState.FLAGGED.value]
    )
    return int(rows[0]["n"])


async def count_problems() -> int:
    """How many problems there are in all: deliveries, flagged items, unplannable enrollments
    (the first two over an index; the last scans the enrollments, which stay few per box)."""
    rows = await select(
        f"SELECT (SELECT COUNT(*) FROM delivery d WHERE {_PROBLEM_DELIVERY})"
        " + (SELECT COUNT(*) FROM inbound_item WHERE state = ?)"
        " + (SELECT COUNT(*) FROM enrollment WHERE plan_error IS NOT NULL AND state = ?) AS n",
        [*_STATES, ADDED_LATE, InboundState.FLAGGED.value, _ACTIVE],
    )
    return int(rows[0]["n"])


async def unplannable(limit: int = 10) -> Rows:
    """Active enrollments the planner cannot plan: id, learner (name), cohort, reason. (A
    paused one is planned again when it resumes; a cancelled or completed one needs nothing.)"""
    return await select(
        "SELECT e.id, TRIM(l.first_name || ' ' || l.last_name) AS learner, c.name AS cohort, "
        "e.plan_error AS reason FROM enrollment e JOIN learner l ON l.id = e.learner_id "
        "JOIN cohort c ON c.id = e.cohort_id WHERE e.plan_error IS NOT NULL AND e.state = ? "
        "ORDER BY e.id LIMIT ?",
        [_ACTIVE, limit],
    )


async def item_payload(item_id: int) -> bytes | None:
    """The raw bytes of one inbound item as received; None when there is no such item."""
    rows = await select("SELECT payload FROM inbound_item WHERE id = ?", [item_id])
    return bytes(rows[0]["payload"]) if rows else None


async def item_heads(item_ids: Sequence[int], size: int) -> dict[int, bytes]:
    """The first `size` bytes of each item's payload (enough for an email's From and Subject),
    by id."""
    if not item_ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT id, substr(payload, 1, ?) AS head FROM inbound_item "
            f"WHERE id IN {in_list(conn, len(item_ids))}",
        ),
        [size, *item_ids],
    )
    return {int(row["id"]): bytes(row["head"] or b"") for row in rows}


async def item_is_filed(item_id: int) -> bool:
    """Whether a message of this item is in a conversation (retrying it would file it twice)."""
    rows = await select("SELECT 1 AS one FROM message WHERE inbound_id = ? LIMIT 1", [item_id])
    return bool(rows)


# --------------------------------------------------------------------------- what to do


async def _update(sql: str, params: list[Any]) -> bool:
    conn = connection()
    count, _ = await conn.execute_query(q(conn, sql), params)
    return bool(count)


async def retry_item(item_id: int) -> bool:
    """A flagged (or dismissed) item back to pending: `dripper run` processes it again. Never
    one already filed in a conversation: that would file it twice."""
    return await _update(
        "UPDATE inbound_item SET state = ?, error = NULL, processed_at = NULL "
        "WHERE id = ? AND state IN (?, ?) "
        "AND NOT EXISTS (SELECT 1 FROM message WHERE inbound_id = inbound_item.id)",
        [
            InboundState.PENDING.value,
            item_id,
            InboundState.FLAGGED.value,
            InboundState.DISMISSED.value,
        ],
    )


async def dismiss_item(item_id: int, note: str, now: datetime) -> bool:
    """A flagged item seen and let be; its reason stays, `note` (who, when) is added to it."""
    conn = connection()
    return await _update(
        "UPDATE inbound_item SET state = ?, error = COALESCE(error, '') || ?, processed_at = ? "
        "WHERE id = ? AND state = ?",
        [
            InboundState.DISMISSED.value,
            text(note),
            ts(conn, now),
            item_id,
            InboundState.FLAGGED.value,
        ],
    )


async def resend_delivery(delivery_id: int, note: str, now: datetime) -> bool:
    """A failed, uncertain or skipped delivery queued again as if new: due now, every attempt
    available, no expiry (the trainer chose to send it late)."""
    conn = connection()
    return await _update(
        "UPDATE delivery SET state = ?, available_at = ?, expires_at = NULL, attempts = 0, "
        "uncertain = ?, attempted_at = NULL, lease_until = NULL, claimed_by = NULL, "
        "dismissed_at = NULL, last_error = ?, updated_at = ? WHERE id = ? AND state IN (?, ?, ?)",
        [
            DeliveryState.PENDING.value,
            ts(conn, now),
            False,
            text(note),
            ts(conn, now),
            delivery_id,
            *_STATES,
        ],
    )


async def mark_delivery_sent(delivery_id: int, note: str, now: datetime) -> bool:
    """An uncertain delivery the learner did get: sent, at its last attempt."""
    conn = connection()
    return await _update(
        "UPDATE delivery SET state = ?, sent_at = COALESCE(attempted_at, updated_at), "
        "dismissed_at = NULL, last_error = ?, updated_at = ? WHERE id = ? AND state = ?",
        [
            DeliveryState.SENT.value,
            text(note),
            ts(conn, now),
            delivery_id,
            DeliveryState.UNCERTAIN.value,
        ],
    )


async def dismiss_delivery(delivery_id: int, now: datetime) -> bool:
    """A failed, uncertain or skipped delivery seen and let be: no longer listed."""
    conn = connection()
    return await _update(
        "UPDATE delivery SET dismissed_at = ?, updated_at = ? "
        "WHERE id = ? AND state IN (?, ?, ?) AND dismissed_at IS NULL",
        [ts(conn, now), ts(conn, now), delivery_id, *_STATES],
    )


async def replan_enrollment(enrollment_id: int, now: datetime) -> bool:
    """An unplannable enrollment planned again at the planner's next pass, not in an hour."""
    conn = connection()
    return await _update(
        "UPDATE enrollment SET plan_due_at = ? WHERE id = ? AND plan_error IS NOT NULL",
        [ts(conn, now), enrollment_id],
    )
