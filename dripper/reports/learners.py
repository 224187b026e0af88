"""The learners read model: one page of learners with channels, state, progress and failures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dripper.db import connection
from dripper.models import (
    EnrollmentState,
    Reachability,
)
from dripper.reports.common import (
    CANCELLED,
    ENROLLMENT_STATE,
    FAILED,
    INBOUND,
    NOT_SENT,
    SENT,
    STEP,
    UNCERTAIN,
    cohort_named,
    full_name,
    rate,
)
from dripper.store.curricula import curriculum_of
from dripper.store.sql import as_datetime, in_list, like_escape, q, ts


@dataclass(frozen=True)
class LearnerRow:
    """One learner, for the Learners screen (figures limited to one cohort when asked)."""

    learner_id: int
    name: str
    email: str | None
    telegram: str | None  # "@handle"
    telegram_connected: bool  # the learner started the bot: dripper knows their chat
    email_status: Reachability
    telegram_status: Reachability
    timezone: str | None
    opted_out: bool
    cohorts: tuple[str, ...]  # by course end
    enrollment_ids: tuple[int, ...]  # in the same order
    state: EnrollmentState | None  # paused, else active, else completed, else cancelled
    paused_until: datetime | None  # the earliest automatic resume of a paused enrollment
    steps_sent: int
    steps_due: int  # in the outbox and due (or sent), as of `now`
    steps_total: int
    progress: float | None  # steps_sent / steps_total
    failures: int  # failed and uncertain deliveries
    last_failure: str | None  # the reason of the newest one
    last_failure_at: datetime | None
    last_reply_at: datetime | None


def _learner_filter(cohort_id: int | None, search: str | None) -> tuple[str, list[Any]]:
    """WHERE clause (with `?` placeholders) and parameters for the learners of a page."""
    clauses: list[str] = []
    params: list[Any] = []
    if cohort_id is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM enrollment f WHERE f.learner_id = l.id AND f.cohort_id = ?)"
        )
        params.append(cohort_id)
    term = (search or "").strip().casefold()
    if term:
        pattern = f"%{like_escape(term)}%"
        columns = (
            "l.first_name || ' ' || l.last_name",
            "COALESCE(l.email, '')",
            "'@' || COALESCE(l.telegram_username, '')",
        )
        clauses.append(
            "(" + " OR ".join(f"LOWER({column}) LIKE ? ESCAPE '\\'" for column in columns) + ")"
        )
        params.extend([pattern] * len(columns))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def learner_count(*, cohort: str | None = None, search: str | None = None) -> int:
    """How many learners `learner_rows` pages through with the same filters."""
    conn = connection()
    cohort_id = (await cohort_named(cohort)).id if cohort is not None else None
    where, params = _learner_filter(cohort_id, search)
    rows = await conn.execute_query_dict(
        q(conn, f"SELECT COUNT(*) AS n FROM learner l{where}"), params
    )
    return int(rows[0]["n"])


async def learner_rows(
    now: datetime,
    *,
    cohort: str | None = None,
    search: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[LearnerRow]:
    """A page of learners by name, with channels, enrollments, progress, failures and replies.

    `cohort` keeps the learners enrolled in it and limits every figure to that enrollment;
    `search` keeps those whose name, email or @handle contains the text (case is ignored).
    """
    conn = connection()
    cohort_id = (await cohort_named(cohort)).id if cohort is not None else None
    where, params = _learner_filter(cohort_id, search)
    learners = await conn.execute_query_dict(
        q(
            conn,
            "SELECT l.id, l.first_name, l.last_name, l.email, l.telegram_username, "
            "l.telegram_chat_id, l.email_status, l.telegram_status, l.timezone, l.opted_out_at "
            f"FROM learner l{where} ORDER BY LOWER(l.first_name), LOWER(l.last_name), l.id "
            "LIMIT ? OFFSET ?",
        ),
        [*params, max(limit, 0), max(offset, 0)],
    )
    ids = [int(row["id"]) for row in learners]
    if not ids:
        return []
    enrollments = await _enrollments(ids, cohort_id)
    sent = await _step_counts([e.id for e in enrollments], now)
    failures = await _failures(ids, cohort_id)
    replies = await _last_replies(ids, cohort_id)
    lengths = {
        version_id: len((await curriculum_of(version_id)).steps)
        for version_id in sorted({e.curriculum_id for e in enrollments})
    }
    mine: dict[int, list[_Enrolled]] = defaultdict(list)
    for enrollment in enrollments:
        mine[enrollment.learner_id].append(enrollment)
    out = []
    for row in learners:
        learner_id = int(row["id"])
        own = mine.get(learner_id, [])
        live = [e for e in own if e.state != CANCELLED]
        steps_sent = sum(sent.get(e.id, (0, 0))[0] for e in live)
        steps_due = sum(sent.get(e.id, (0, 0))[1] for e in live)
        steps_total = sum(lengths[e.curriculum_id] for e in live)
        failed = failures.get(learner_id, [])
        handle = row["telegram_username"]
        resumes = [e.resume_at for e in own if e.state == "paused" and e.resume_at is not None]
        out.append(
            LearnerRow(
                learner_id=learner_id,
                name=full_name(row["first_name"], row["last_name"]),
                email=row["email"],
                telegram=f"@{handle}" if handle else None,
                telegram_connected=row["telegram_chat_id"] is not None,
                email_status=Reachability(row["email_status"]),
                telegram_status=Reachability(row["telegram_status"]),
                timezone=row["timezone"],
                opted_out=row["opted_out_at"] is not None,
                cohorts=tuple(e.cohort for e in own),
                enrollment_ids=tuple(e.id for e in own),
                state=_summary_state(e.state for e in own),
                paused_until=min(resumes) if resumes else None,
                steps_sent=steps_sent,
                steps_due=steps_due,
                steps_total=steps_total,
                progress=rate(steps_sent, steps_total),
                failures=len(failed),
                last_failure=failed[0][0] if failed else None,
                last_failure_at=failed[0][1] if failed else None,
                last_reply_at=replies.get(learner_id),
            )
        )
    return out


_STATE_PRIORITY = (
    EnrollmentState.PAUSED,
    EnrollmentState.ACTIVE,
    EnrollmentState.COMPLETED,
    EnrollmentState.CANCELLED,
)


def _summary_state(states: Iterable[str]) -> EnrollmentState | None:
    present = set(states)
    return next((state for state in _STATE_PRIORITY if state.value in present), None)


@dataclass(frozen=True)
class _Enrolled:
    id: int
    learner_id: int
    curriculum_id: int
    cohort: str
    state: str
    resume_at: datetime | None


async def _enrollments(learner_ids: Sequence[int], cohort_id: int | None) -> list[_Enrolled]:
    conn = connection()
    only = " AND e.cohort_id = ?" if cohort_id is not None else ""
    rows = await conn.execute_query_dict(
        q(
            conn,
            f"SELECT e.id, e.learner_id, e.curriculum_id, e.resume_at, c.name, "
            f"{ENROLLMENT_STATE} AS st FROM enrollment e JOIN cohort c ON c.id = e.cohort_id "
            f"WHERE e.learner_id IN {in_list(conn, len(learner_ids))}{only} "
            "ORDER BY c.course_end, c.name",
        ),
        [*learner_ids, *([cohort_id] if cohort_id is not None else [])],
    )
    return [
        _Enrolled(
            id=int(row["id"]),
            learner_id=int(row["learner_id"]),
            curriculum_id=int(row["curriculum_id"]),
            cohort=str(row["name"]),
            state=str(row["st"]),
            resume_at=as_datetime(row["resume_at"]),
        )
        for row in rows
    ]


async def _step_counts(enrollment_ids: Sequence[int], now: datetime) -> dict[int, tuple[int, int]]:
    """(sent, due) first sendings of each enrollment."""
    if not enrollment_ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            f"SELECT enrollment_id, SUM(CASE WHEN state = '{SENT}' THEN 1 ELSE 0 END) AS sent, "
            f"SUM(CASE WHEN state <> '{NOT_SENT}' AND (state = '{SENT}' OR due_at <= ?) "
            "THEN 1 ELSE 0 END) AS due FROM delivery "
            f"WHERE enrollment_id IN {in_list(conn, len(enrollment_ids))} "
            f"AND kind = '{STEP}' GROUP BY enrollment_id",
        ),
        [ts(conn, now), *enrollment_ids],
    )
    return {
        int(row["enrollment_id"]): (int(row["sent"] or 0), int(row["due"] or 0)) for row in rows
    }


async def _failures(
    learner_ids: Sequence[int], cohort_id: int | None
) -> dict[int, list[tuple[str | None, datetime | None]]]:
    """Failed and uncertain deliveries of each learner, newest first: (reason, when)."""
    conn = connection()
    join = (
        " JOIN enrollment e ON e.id = d.enrollment_id AND e.cohort_id = ?"
        if cohort_id is not None
        else ""
    )
    rows = await conn.execute_query_dict(
        q(
            conn,
            f"SELECT d.learner_id, d.last_error, d.updated_at FROM delivery d{join} "
            f"WHERE d.learner_id IN {in_list(conn, len(learner_ids))} "
            f"AND d.state IN ('{FAILED}', '{UNCERTAIN}') "
            "ORDER BY d.updated_at DESC, d.id DESC",
        ),
        [*([cohort_id] if cohort_id is not None else []), *learner_ids],
    )
    found: dict[int, list[tuple[str | None, datetime | None]]] = defaultdict(list)
    for row in rows:
        found[int(row["learner_id"])].append((row["last_error"], as_datetime(row["updated_at"])))
    return found


async def _last_replies(learner_ids: Sequence[int], cohort_id: int | None) -> dict[int, datetime]:
    conn = connection()
    join = (
        " JOIN enrollment e ON e.id = c.enrollment_id AND e.cohort_id = ?"
        if cohort_id is not None
        else ""
    )
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT c.learner_id, MAX(m.created_at) AS t FROM message m "
            f"JOIN conversation c ON c.id = m.conversation_id{join} "
            f"WHERE c.learner_id IN {in_list(conn, len(learner_ids))} "
            f"AND m.direction = '{INBOUND}' GROUP BY c.learner_id",
        ),
        [*([cohort_id] if cohort_id is not None else []), *learner_ids],
    )
    found = {}
    for row in rows:
        moment = as_datetime(row["t"])
        if moment is not None:
            found[int(row["learner_id"])] = moment
    return found
