"""The queries of the read models (`dripper.reports`): cohorts, learners, steps, answers.

Each function runs one aggregate query and returns its rows as dicts; `dripper.reports` turns
them into figures. The definitions (what *completed*, *due* and *delivered* mean) are in the
docstring of `dripper.reports`; the SQL fragments here are their one spelling. Every value in
these fragments is one of the constants below: no user input is ever pasted into SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dripper.db import connection
from dripper.models import DeliveryKind, DeliveryState, EnrollmentState, MessageDirection
from dripper.store.sql import in_list, is_postgres, like_escape, select, ts

Rows = list[dict[str, Any]]

STEP = DeliveryKind.STEP.value
SENT = DeliveryState.SENT.value
FAILED = DeliveryState.FAILED.value
UNCERTAIN = DeliveryState.UNCERTAIN.value
SKIPPED = DeliveryState.SKIPPED.value
NOT_SENT = DeliveryState.CANCELLED.value
CANCELLED = EnrollmentState.CANCELLED.value
COMPLETED = EnrollmentState.COMPLETED.value
INBOUND = MessageDirection.INBOUND.value

# The enrollment's state, with "completed" derived.
FINISHED = f"e.state = '{EnrollmentState.ACTIVE.value}' AND e.plan_due_at IS NULL"
WAITING = (
    f"w.kind = '{STEP}' AND w.state IN ('{DeliveryState.PENDING.value}', "
    f"'{DeliveryState.CLAIMED.value}', '{DeliveryState.HELD.value}')"
)
# Per row: a lookup in the delivery index (fastest on SQLite, and for a few enrollments).
ENROLLMENT_STATE = (
    f"CASE WHEN {FINISHED} AND NOT EXISTS (SELECT 1 FROM delivery w WHERE "
    f"w.enrollment_id = e.id AND {WAITING}) THEN '{COMPLETED}' ELSE e.state END"
)
# For every enrollment on PostgreSQL: one pass over the waiting deliveries, joined as `u`. It
# estimates the lookups per row so dear that its JIT compiler takes longer than the query.
WAITING_ENROLLMENTS = f"SELECT DISTINCT w.enrollment_id FROM delivery w WHERE {WAITING}"
ENROLLMENT_STATES = (
    f"CASE WHEN {FINISHED} AND u.enrollment_id IS NULL THEN '{COMPLETED}' ELSE e.state END"
)
# One SUM per outcome rather than a GROUP BY state: SQLite sorts every row it groups.
OUTCOMES = (SENT, FAILED, UNCERTAIN, SKIPPED)
OUTCOME_SUMS = ", ".join(
    f"SUM(CASE WHEN d.state = '{state}' THEN 1 ELSE 0 END) AS {state}" for state in OUTCOMES
)


def _cohort_param(cohort_id: int | None) -> list[int]:
    return [cohort_id] if cohort_id is not None else []


def _in_cohort(table: str, cohort_id: int | None) -> str:
    """A join keeping the rows of `table` (an alias with an enrollment_id) of one cohort,
    when given; its parameter is `_cohort_param(cohort_id)`."""
    if cohort_id is None:
        return ""
    return f" JOIN enrollment e ON e.id = {table}.enrollment_id AND e.cohort_id = ?"


# --------------------------------------------------------------------------- cohorts


async def cohorts() -> Rows:
    """id, name, curriculum_key, course_end, paused of every cohort, by course end."""
    return await select(
        "SELECT id, name, curriculum_key, course_end, paused FROM cohort ORDER BY course_end, name"
    )


async def enrollment_states() -> Rows:
    """cohort_id, curriculum_id, st (the derived state), n: enrollments counted."""
    conn = connection()
    enrollments = (
        f"SELECT e.cohort_id, e.curriculum_id, {ENROLLMENT_STATES} AS st FROM enrollment e "
        f"LEFT JOIN ({WAITING_ENROLLMENTS}) u ON u.enrollment_id = e.id"
        if is_postgres(conn)
        else f"SELECT e.cohort_id, e.curriculum_id, {ENROLLMENT_STATE} AS st FROM enrollment e"
    )
    return await select(
        "SELECT x.cohort_id, x.curriculum_id, x.st, COUNT(*) AS n "
        f"FROM ({enrollments}) x GROUP BY x.cohort_id, x.curriculum_id, x.st"
    )


async def cohort_deliveries(now: datetime) -> Rows:
    """cohort_id, sent, due (first sendings of live enrollments), failed, uncertain (any kind)."""
    conn = connection()
    step_of_live = f"d.kind = '{STEP}' AND e.state <> '{CANCELLED}'"
    return await select(
        "SELECT e.cohort_id, "
        f"SUM(CASE WHEN {step_of_live} AND d.state = '{SENT}' THEN 1 ELSE 0 END) AS sent, "
        f"SUM(CASE WHEN {step_of_live} AND d.state <> '{NOT_SENT}' "
        f"AND (d.state = '{SENT}' OR d.due_at <= ?) THEN 1 ELSE 0 END) AS due, "
        f"SUM(CASE WHEN d.state = '{FAILED}' THEN 1 ELSE 0 END) AS failed, "
        f"SUM(CASE WHEN d.state = '{UNCERTAIN}' THEN 1 ELSE 0 END) AS uncertain "
        "FROM delivery d JOIN enrollment e ON e.id = d.enrollment_id "
        "GROUP BY e.cohort_id",
        [ts(conn, now)],
    )


async def cohort_versions(cohort_id: int) -> Rows:
    """curriculum_id, state, n: the enrollments of one cohort by version and state."""
    return await select(
        "SELECT curriculum_id, state, COUNT(*) AS n FROM enrollment WHERE cohort_id = ? "
        "GROUP BY curriculum_id, state",
        [cohort_id],
    )


# --------------------------------------------------------------------------- learners


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


async def count_learners(cohort_id: int | None, search: str | None) -> int:
    """Learners (of the cohort, when given) whose name, email or @handle contains `search`."""
    where, params = _learner_filter(cohort_id, search)
    rows = await select(f"SELECT COUNT(*) AS n FROM learner l{where}", params)
    return int(rows[0]["n"])


async def learner_page(cohort_id: int | None, search: str | None, limit: int, offset: int) -> Rows:
    """One page of the learners `count_learners` counts, by name."""
    where, params = _learner_filter(cohort_id, search)
    return await select(
        "SELECT l.id, l.first_name, l.last_name, l.email, l.telegram_username, "
        "l.telegram_chat_id, l.email_status, l.telegram_status, l.timezone, "
        f"l.opted_out_at FROM learner l{where} "
        "ORDER BY LOWER(l.first_name), LOWER(l.last_name), l.id LIMIT ? OFFSET ?",
        [*params, max(limit, 0), max(offset, 0)],
    )


async def learner_enrollments(learner_ids: Sequence[int], cohort_id: int | None) -> Rows:
    """id, learner_id, curriculum_id, resume_at, name (of the cohort), st (derived state)."""
    conn = connection()
    only = " AND e.cohort_id = ?" if cohort_id is not None else ""
    return await select(
        f"SELECT e.id, e.learner_id, e.curriculum_id, e.resume_at, c.name, "
        f"{ENROLLMENT_STATE} AS st FROM enrollment e "
        "JOIN cohort c ON c.id = e.cohort_id "
        f"WHERE e.learner_id IN {in_list(conn, len(learner_ids))}{only} "
        "ORDER BY c.course_end, c.name",
        [*learner_ids, *_cohort_param(cohort_id)],
    )


async def step_counts(enrollment_ids: Sequence[int], now: datetime) -> Rows:
    """enrollment_id, sent, due: first sendings of each enrollment."""
    if not enrollment_ids:
        return []
    conn = connection()
    return await select(
        f"SELECT enrollment_id, SUM(CASE WHEN state = '{SENT}' THEN 1 ELSE 0 END) AS sent, "
        f"SUM(CASE WHEN state <> '{NOT_SENT}' AND (state = '{SENT}' OR due_at <= ?) "
        "THEN 1 ELSE 0 END) AS due FROM delivery "
        f"WHERE enrollment_id IN {in_list(conn, len(enrollment_ids))} "
        f"AND kind = '{STEP}' GROUP BY enrollment_id",
        [ts(conn, now), *enrollment_ids],
    )


async def learner_failures(learner_ids: Sequence[int], cohort_id: int | None) -> Rows:
    """learner_id, last_error, updated_at of failed and uncertain deliveries, newest first."""
    conn = connection()
    return await select(
        "SELECT d.learner_id, d.last_error, d.updated_at FROM delivery d"
        f"{_in_cohort('d', cohort_id)} "
        f"WHERE d.learner_id IN {in_list(conn, len(learner_ids))} "
        f"AND d.state IN ('{FAILED}', '{UNCERTAIN}') "
        "ORDER BY d.updated_at DESC, d.id DESC",
        [*_cohort_param(cohort_id), *learner_ids],
    )


async def last_replies(learner_ids: Sequence[int], cohort_id: int | None) -> Rows:
    """learner_id, t: when each learner last wrote (in the cohort's conversations, if given)."""
    conn = connection()
    return await select(
        "SELECT c.learner_id, MAX(m.created_at) AS t FROM message m "
        f"JOIN conversation c ON c.id = m.conversation_id{_in_cohort('c', cohort_id)} "
        f"WHERE c.learner_id IN {in_list(conn, len(learner_ids))} "
        f"AND m.direction = '{INBOUND}' GROUP BY c.learner_id",
        [*_cohort_param(cohort_id), *learner_ids],
    )


# --------------------------------------------------------------------------- steps


async def step_outcomes(cohort_id: int) -> Rows:
    """step_id and one column per outcome in OUTCOMES: first sendings of the cohort's steps."""
    return await select(
        f"SELECT d.step_id, {OUTCOME_SUMS} FROM delivery d "
        "JOIN enrollment e ON e.id = d.enrollment_id "
        f"WHERE e.cohort_id = ? AND d.kind = '{STEP}' GROUP BY d.step_id",
        [cohort_id],
    )


async def step_reached_by_cancelled(cohort_id: int) -> Rows:
    """step_id, n: cancelled enrollments (unenrolled, erased) whose first sending of the step
    has an outcome: the step was planned for them, and counts as such."""
    return await select(
        "SELECT d.step_id, COUNT(DISTINCT d.enrollment_id) AS n FROM delivery d "
        "JOIN enrollment e ON e.id = d.enrollment_id "
        f"WHERE e.cohort_id = ? AND e.state = 'cancelled' AND d.kind = '{STEP}' "
        "AND d.state IN ('sent', 'failed', 'uncertain', 'skipped') GROUP BY d.step_id",
        [cohort_id],
    )


async def step_replies(cohort_id: int) -> Rows:
    """step_id, n: enrollments of the cohort with a learner message linked to the step."""
    return await select(
        "SELECT m.step_id, COUNT(DISTINCT c.enrollment_id) AS n FROM message m "
        "JOIN conversation c ON c.id = m.conversation_id "
        "JOIN enrollment e ON e.id = c.enrollment_id "
        f"WHERE e.cohort_id = ? AND m.direction = '{INBOUND}' "
        "AND m.step_id IS NOT NULL GROUP BY m.step_id",
        [cohort_id],
    )


async def step_choices(cohort_id: int) -> Rows:
    """step_id, curriculum_id, choices (JSON text), correct, n: first answers, grouped."""
    return await select(
        "SELECT qa.step_id, e.curriculum_id, CAST(qa.choices AS TEXT) AS choices, "
        "qa.correct, COUNT(*) AS n FROM quiz_answer qa "
        "JOIN enrollment e ON e.id = qa.enrollment_id "
        "WHERE e.cohort_id = ? AND qa.occurrence = 0 "
        "GROUP BY qa.step_id, e.curriculum_id, CAST(qa.choices AS TEXT), qa.correct",
        [cohort_id],
    )


async def answer_messages(cohort_id: int, step_id: str) -> Rows:
    """The learners' messages linked to one step, oldest first, with who wrote them."""
    return await select(
        "SELECT e.id AS enrollment_id, e.learner_id, l.first_name, l.last_name, "
        "c.id AS conversation_id, m.body, m.channel, m.created_at FROM message m "
        "JOIN conversation c ON c.id = m.conversation_id "
        "JOIN enrollment e ON e.id = c.enrollment_id "
        "JOIN learner l ON l.id = e.learner_id "
        f"WHERE e.cohort_id = ? AND m.direction = '{INBOUND}' AND m.step_id = ? "
        "ORDER BY m.created_at, m.id",
        [cohort_id, step_id],
    )


async def answer_choices(cohort_id: int, step_id: str) -> Rows:
    """The first answers to one quiz or check-in step, with who chose and where."""
    return await select(
        "SELECT e.id AS enrollment_id, e.learner_id, e.curriculum_id, l.first_name, "
        "l.last_name, c.id AS conversation_id, qa.choices, qa.correct, qa.channel, "
        "qa.answered_at FROM quiz_answer qa JOIN enrollment e ON e.id = qa.enrollment_id "
        "JOIN learner l ON l.id = e.learner_id "
        "LEFT JOIN conversation c ON c.enrollment_id = e.id "
        "WHERE e.cohort_id = ? AND qa.step_id = ? AND qa.occurrence = 0",
        [cohort_id, step_id],
    )
