"""The SQL of the daily digest: unanswered conversations, the prompts each learner was sent
and their latest activity, opt-outs, and what needs a look. `cohort_ids` None means every
cohort (and the conversations of learners enrolled in nothing); a list narrows the queries to
those cohorts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dripper.db import connection
from dripper.models import ConversationStatus, DeliveryKind, DeliveryState, MessageDirection
from dripper.store.sql import among, as_datetime, q, select, ts

Rows = list[dict[str, Any]]

_INBOUND = MessageDirection.INBOUND.value


async def unanswered(cohort_ids: Sequence[int] | None, now: datetime, *, tap_flag: str) -> Rows:
    """Open conversations with learner messages newer than the last trainer reply (not the
    records of check-in taps, flagged `tap_flag`), oldest waiting first: conversation_id,
    learner, cohort, waiting (how many), since (the oldest's time), last_id (the newest's)."""
    conn = connection()
    where, values = among("e.cohort_id", cohort_ids)
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
    where, values = among("id", ids)
    rows = await select(f"SELECT id, body FROM message WHERE 1 = 1{where}", values)
    return {int(row["id"]): str(row["body"] or "") for row in rows}


async def sent_steps(cohort_ids: Sequence[int] | None) -> Rows:
    """The first sendings of steps to active enrollments of learners still receiving, newest
    first: enrollment_id, curriculum_id, step_id, sent_at, learner_id, learner, cohort."""
    where, values = among("e.cohort_id", cohort_ids)
    rows = await select(
        "SELECT d.enrollment_id, e.curriculum_id, d.step_id, d.sent_at, e.learner_id, "
        "TRIM(l.first_name || ' ' || l.last_name) AS learner, co.name AS cohort "
        "FROM delivery d JOIN enrollment e ON e.id = d.enrollment_id "
        "JOIN learner l ON l.id = e.learner_id JOIN cohort co ON co.id = e.cohort_id "
        "WHERE d.kind = ? AND d.state = ? AND e.state = 'active' "
        f"AND l.opted_out_at IS NULL AND l.erased_at IS NULL{where} "
        "ORDER BY d.enrollment_id, d.sent_at DESC, d.id DESC",
        [DeliveryKind.STEP.value, DeliveryState.SENT.value, *values],
    )
    return [{**row, "sent_at": as_datetime(row["sent_at"])} for row in rows]


async def last_activity() -> dict[int, datetime]:
    """Each learner's latest message or quiz or check-in answer, in any cohort."""
    rows = await select(
        "SELECT learner_id, MAX(at) AS at FROM ("
        "SELECT c.learner_id, m.created_at AS at FROM message m "
        "JOIN conversation c ON c.id = m.conversation_id WHERE m.direction = ? "
        "UNION ALL SELECT e.learner_id, a.answered_at AS at FROM quiz_answer a "
        "JOIN enrollment e ON e.id = a.enrollment_id) activity GROUP BY learner_id",
        [_INBOUND],
    )
    return {
        int(row["learner_id"]): at for row in rows if (at := as_datetime(row["at"])) is not None
    }


async def opt_outs(cohort_ids: Sequence[int] | None, since: datetime) -> Rows:
    """Learners of these cohorts who opted out since `since`: learner, cohort, at."""
    conn = connection()
    where, values = among("e.cohort_id", cohort_ids)
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
    where, values = among("e.cohort_id", cohort_ids)
    rows = await select(
        "SELECT COUNT(*) AS n FROM delivery d LEFT JOIN enrollment e ON e.id = d.enrollment_id "
        f"WHERE d.state = ? AND d.dismissed_at IS NULL{where}",
        [DeliveryState.UNCERTAIN.value, *values],
    )
    return int(rows[0]["n"])
