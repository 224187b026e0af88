"""The SQL of the daily digest: unanswered conversations, the prompts each learner was sent
and answered, opt-outs, and what needs a look. `cohort_ids` None means every cohort (and the
conversations of learners enrolled in nothing); a list narrows every query to those cohorts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dripper.db import connection
from dripper.models import ConversationStatus, DeliveryKind, DeliveryState, MessageDirection
from dripper.store.sql import as_datetime, in_list, q, ts

Rows = list[dict[str, Any]]

_INBOUND = MessageDirection.INBOUND.value


def _cohorts(conn: Any, column: str, cohort_ids: Sequence[int] | None) -> tuple[str, list[Any]]:
    if cohort_ids is None:
        return "", []
    if not cohort_ids:
        return " AND 1 = 0", []
    return f" AND {column} IN {in_list(conn, len(cohort_ids))}", list(cohort_ids)


async def unanswered(cohort_ids: Sequence[int] | None, now: datetime, *, tap_flag: str) -> Rows:
    """Open conversations with learner messages newer than the last trainer reply (not the
    records of check-in taps, flagged `tap_flag`), oldest waiting first: conversation_id,
    learner, cohort, waiting (how many), since (the oldest's time), last_id (the newest's)."""
    conn = connection()
    where, values = _cohorts(conn, "e.cohort_id", cohort_ids)
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT c.id AS conversation_id, TRIM(l.first_name || ' ' || l.last_name) AS learner, "
            "co.name AS cohort, COUNT(*) AS waiting, MIN(m.created_at) AS since, "
            "MAX(m.id) AS last_id FROM conversation c "
            "JOIN learner l ON l.id = c.learner_id "
            "LEFT JOIN enrollment e ON e.id = c.enrollment_id "
            "LEFT JOIN cohort co ON co.id = e.cohort_id "
            "JOIN message m ON m.conversation_id = c.id "
            "WHERE (c.status = ? OR (c.status = ? AND c.snoozed_until <= ?)) "
            "AND m.direction = ? AND CAST(m.flags AS TEXT) NOT LIKE ? "
            "AND m.id > COALESCE((SELECT MAX(r.id) "
            "FROM message r WHERE r.conversation_id = c.id AND r.direction = ?), 0)"
            + where
            + " GROUP BY c.id, l.first_name, l.last_name, co.name ORDER BY since, c.id",
        ),
        [
            ConversationStatus.OPEN.value,
            ConversationStatus.SNOOZED.value,
            ts(conn, now),
            _INBOUND,
            f'%"{tap_flag}"%',
            MessageDirection.OUTBOUND.value,
            *values,
        ],
    )
    return [{**row, "since": as_datetime(row["since"])} for row in rows]


async def message_bodies(ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(conn, f"SELECT id, body FROM message WHERE id IN {in_list(conn, len(ids))}"), list(ids)
    )
    return {int(row["id"]): str(row["body"] or "") for row in rows}


async def sent_steps(cohort_ids: Sequence[int] | None) -> Rows:
    """The first sendings of steps to active enrollments of learners still receiving, newest
    first: enrollment_id, curriculum_id, step_id, sent_at, learner_id, learner, cohort."""
    conn = connection()
    where, values = _cohorts(conn, "e.cohort_id", cohort_ids)
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT d.enrollment_id, e.curriculum_id, d.step_id, d.sent_at, e.learner_id, "
            "TRIM(l.first_name || ' ' || l.last_name) AS learner, co.name AS cohort "
            "FROM delivery d JOIN enrollment e ON e.id = d.enrollment_id "
            "JOIN learner l ON l.id = e.learner_id JOIN cohort co ON co.id = e.cohort_id "
            "WHERE d.kind = ? AND d.state = ? AND e.state = 'active' "
            "AND l.opted_out_at IS NULL AND l.erased_at IS NULL" + where + " "
            "ORDER BY d.enrollment_id, d.sent_at DESC, d.id DESC",
        ),
        [DeliveryKind.STEP.value, DeliveryState.SENT.value, *values],
    )
    return [{**row, "sent_at": as_datetime(row["sent_at"])} for row in rows]


async def learner_activity(cohort_ids: Sequence[int] | None) -> Rows:
    """What learners did: learner_id, enrollment_id, step_id (None: a message not linked to a
    step), at; their messages and their quiz or check-in answers."""
    conn = connection()
    where_m, values_m = _cohorts(conn, "e.cohort_id", cohort_ids)
    where_a, values_a = _cohorts(conn, "e.cohort_id", cohort_ids)
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT e.learner_id, c.enrollment_id, m.step_id, m.created_at AS at FROM message m "
            "JOIN conversation c ON c.id = m.conversation_id "
            "JOIN enrollment e ON e.id = c.enrollment_id WHERE m.direction = ?"
            + where_m
            + " UNION ALL SELECT e.learner_id, a.enrollment_id, a.step_id, a.answered_at AS at "
            "FROM quiz_answer a JOIN enrollment e ON e.id = a.enrollment_id WHERE 1 = 1" + where_a,
        ),
        [_INBOUND, *values_m, *values_a],
    )
    return [{**row, "at": as_datetime(row["at"])} for row in rows]


async def opt_outs(cohort_ids: Sequence[int] | None, since: datetime) -> Rows:
    """Learners of these cohorts who opted out since `since`: learner, cohort, at."""
    conn = connection()
    where, values = _cohorts(conn, "e.cohort_id", cohort_ids)
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT DISTINCT TRIM(l.first_name || ' ' || l.last_name) AS learner, "
            "co.name AS cohort, l.opted_out_at AS at FROM learner l "
            "JOIN enrollment e ON e.learner_id = l.id JOIN cohort co ON co.id = e.cohort_id "
            "WHERE l.opted_out_at >= ? AND l.erased_at IS NULL" + where + " ORDER BY at",
        ),
        [ts(conn, since), *values],
    )
    return [{**row, "at": as_datetime(row["at"])} for row in rows]


async def uncertain_count(cohort_ids: Sequence[int] | None) -> int:
    """Deliveries that may not have arrived and nobody dismissed yet."""
    conn = connection()
    where, values = _cohorts(conn, "e.cohort_id", cohort_ids)
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT COUNT(*) AS n FROM delivery d LEFT JOIN enrollment e ON e.id = d.enrollment_id "
            "WHERE d.state = ? AND d.dismissed_at IS NULL" + where,
        ),
        [DeliveryState.UNCERTAIN.value, *values],
    )
    return int(rows[0]["n"])
