"""The outbox's SQL: the only place that claims, records, recovers and plans deliveries.

Every statement is short and runs in its own transaction; no network call happens while one is
open. Correctness rests on the database: claims are one statement (SQLite: UPDATE ... WHERE id IN
(SELECT ... LIMIT n) RETURNING; PostgreSQL: FOR UPDATE SKIP LOCKED), records only apply while the
claim is still ours, and the unique business key refuses a second delivery of the same step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.db import connection
from dripper.models import Channel, DeliveryKind, DeliveryState
from dripper.store.reach import Unreachable, mark_first_contact, mark_unreachable
from dripper.store.sql import as_datetime, as_json, in_list, is_postgres, json_param, q, ts

PENDING = DeliveryState.PENDING.value
CLAIMED = DeliveryState.CLAIMED.value
# Why a delivery waits for a learner with no usable channel yet (recorded by the dispatcher,
# looked for when the learner connects their Telegram).
WAITING_FOR_CHAT = "waiting for the learner to start the bot (send them their invite link)"
# Why a step `dripper apply` added is skipped for learners already past it (the trainer's own
# doing: not a problem to show them).
ADDED_LATE = "added by dripper apply after its due time"


@dataclass(frozen=True)
class ClaimedDelivery:
    """A claimed delivery with what sending it needs: its learner and enrollment."""

    id: int
    business_key: str
    kind: str
    step_id: str | None
    occurrence: int
    channel_preference: str
    due_at: datetime
    expires_at: datetime | None
    attempts: int
    uncertain: bool
    payload: dict[str, Any]
    enrollment_id: int | None
    enrollment_state: str | None
    curriculum_version_id: int | None
    cohort_name: str | None
    course_end: datetime | None
    learner_id: int
    email: str | None
    telegram_chat_id: int | None
    first_name: str
    last_name: str
    timezone: str | None
    language: str | None
    attributes: dict[str, str]
    email_status: str
    telegram_status: str
    opted_out: bool


@dataclass(frozen=True)
class Outcome:
    """What to write for one delivery after its send."""

    delivery_id: int
    state: DeliveryState
    available_at: datetime | None = None
    channel: str | None = None
    provider_message_id: str | None = None
    sent_at: datetime | None = None
    last_error: str | None = None
    mark_uncertain: bool = False


@dataclass(frozen=True)
class NewDelivery:
    business_key: str
    enrollment_id: int | None
    learner_id: int
    kind: str
    step_id: str | None
    occurrence: int
    channel_preference: str
    due_at: datetime
    expires_at: datetime | None
    payload: dict[str, Any]
    state: DeliveryState = DeliveryState.PENDING
    last_error: str | None = None


async def claim_due(now: datetime, limit: int, lease: timedelta, worker: str) -> list[int]:
    """Claim up to `limit` deliveries whose time has come, oldest first; returns their ids."""
    conn = connection()
    lease_until = ts(conn, now + lease)
    if is_postgres(conn):
        sql = (
            "UPDATE delivery d SET state = ?, lease_until = ?, claimed_by = ?, "
            "attempted_at = NULL, attempts = d.attempts + 1, updated_at = ? "
            "FROM (SELECT id FROM delivery WHERE state = ? AND available_at <= ? "
            "ORDER BY available_at LIMIT ? FOR UPDATE SKIP LOCKED) c "
            "WHERE d.id = c.id RETURNING d.id"
        )
    else:
        sql = (
            "UPDATE delivery SET state = ?, lease_until = ?, claimed_by = ?, "
            "attempted_at = NULL, attempts = attempts + 1, updated_at = ? "
            "WHERE id IN (SELECT id FROM delivery WHERE state = ? AND available_at <= ? "
            "ORDER BY available_at LIMIT ?) RETURNING id"
        )
    params = [CLAIMED, lease_until, worker, ts(conn, now), PENDING, ts(conn, now), limit]
    async with in_transaction() as tx:
        # execute_query_dict, not execute_query: Tortoise's asyncpg client drops the rows of
        # an UPDATE ... RETURNING in execute_query.
        rows = await tx.execute_query_dict(q(conn, sql), params)
    return sorted(int(row["id"]) for row in rows)


_LOAD = (
    "SELECT d.id, d.business_key, d.kind, d.step_id, d.occurrence, d.channel_preference, "
    "d.due_at, d.expires_at, d.attempts, d.uncertain, d.payload, d.enrollment_id, "
    "e.state AS enrollment_state, e.curriculum_id AS curriculum_version_id, "
    "c.name AS cohort_name, c.course_end, "
    "l.id AS learner_id, l.email, l.telegram_chat_id, l.first_name, l.last_name, l.timezone, "
    "l.language, l.attributes, l.email_status, l.telegram_status, l.opted_out_at "
    "FROM delivery d JOIN learner l ON l.id = d.learner_id "
    "LEFT JOIN enrollment e ON e.id = d.enrollment_id "
    "LEFT JOIN cohort c ON c.id = e.cohort_id "
    "WHERE d.id IN "
)


async def load_claimed(ids: Sequence[int]) -> list[ClaimedDelivery]:
    if not ids:
        return []
    conn = connection()
    rows = await conn.execute_query_dict(q(conn, _LOAD + in_list(conn, len(ids))), list(ids))
    out = []
    for row in rows:
        due = as_datetime(row["due_at"])
        assert due is not None
        out.append(
            ClaimedDelivery(
                id=int(row["id"]),
                business_key=row["business_key"],
                kind=row["kind"],
                step_id=row["step_id"],
                occurrence=int(row["occurrence"]),
                channel_preference=row["channel_preference"],
                due_at=due,
                expires_at=as_datetime(row["expires_at"]),
                attempts=int(row["attempts"]),
                uncertain=bool(row["uncertain"]),
                payload=as_json(row["payload"]) or {},
                enrollment_id=row["enrollment_id"],
                enrollment_state=row["enrollment_state"],
                curriculum_version_id=row["curriculum_version_id"],
                cohort_name=row["cohort_name"],
                course_end=as_datetime(row["course_end"]),
                learner_id=int(row["learner_id"]),
                email=row["email"],
                telegram_chat_id=row["telegram_chat_id"],
                first_name=row["first_name"],
                last_name=row["last_name"] or "",
                timezone=row["timezone"],
                language=row["language"],
                attributes=as_json(row["attributes"]) or {},
                email_status=row["email_status"],
                telegram_status=row["telegram_status"],
                opted_out=row["opted_out_at"] is not None,
            )
        )
    out.sort(key=lambda d: d.id)
    return out


async def record(
    outcomes: Sequence[Outcome],
    worker: str,
    now: datetime,
    *,
    new_deliveries: Sequence[NewDelivery] = (),
    unreachable: Iterable[Unreachable] = (),
    reached: Iterable[tuple[int, str]] = (),
) -> int:
    """Write outcomes in one transaction, only for claims this worker still holds.

    Also inserts follow-up deliveries (nudges) and marks learners unreachable on a channel (with the
    conversation's system line, dripper.store.reach), or
    reachable after a first successful send. An outcome without an error keeps the previous
    one, so a delivery that went out after a retry still tells what happened on the way.
    Returns how many outcomes were applied (a claim recovered by another worker is not).
    """
    if not outcomes and not new_deliveries:
        return 0
    conn = connection()
    sql = q(
        conn,
        "UPDATE delivery SET state = ?, available_at = COALESCE(?, available_at), "
        "channel = COALESCE(?, channel), provider_message_id = COALESCE(?, provider_message_id), "
        "sent_at = COALESCE(?, sent_at), last_error = COALESCE(?, last_error), "
        "uncertain = CASE WHEN ? THEN ? ELSE uncertain END, "
        "lease_until = NULL, claimed_by = NULL, updated_at = ? "
        "WHERE id = ? AND state = ? AND claimed_by = ?",
    )
    yes = True if is_postgres(conn) else 1
    rows = [
        [
            o.state.value,
            ts(conn, o.available_at),
            o.channel,
            o.provider_message_id,
            ts(conn, o.sent_at),
            o.last_error,
            o.mark_uncertain if is_postgres(conn) else int(o.mark_uncertain),
            yes,
            ts(conn, now),
            o.delivery_id,
            CLAIMED,
            worker,
        ]
        for o in outcomes
    ]
    async with in_transaction() as tx:
        if rows:
            await tx.execute_many(sql, rows)
        if new_deliveries:
            await insert_in(tx, new_deliveries, now)
        for event in unreachable:
            await mark_unreachable(tx, event, now)
        reached_by = set(reached)
        for channel in Channel:
            first = {learner_id for learner_id, name in reached_by if name == channel.value}
            await mark_first_contact(tx, first, channel, now)
    return len(rows)


_INSERT = (
    "INSERT INTO delivery (business_key, enrollment_id, learner_id, kind, step_id, occurrence, "
    "channel_preference, due_at, available_at, expires_at, state, uncertain, attempts, payload, "
    "last_error, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) "
    "ON CONFLICT (business_key) DO NOTHING"
)


async def insert_in(
    tx: BaseDBAsyncClient, deliveries: Sequence[NewDelivery], now: datetime
) -> None:
    conn = tx
    no = False if is_postgres(conn) else 0
    await tx.execute_many(
        q(conn, _INSERT),
        [
            [
                d.business_key,
                d.enrollment_id,
                d.learner_id,
                d.kind,
                d.step_id,
                d.occurrence,
                d.channel_preference,
                ts(conn, d.due_at),
                ts(conn, d.due_at),
                ts(conn, d.expires_at),
                d.state.value,
                no,
                json_param(conn, d.payload),
                d.last_error,
                ts(conn, now),
                ts(conn, now),
            ]
            for d in deliveries
        ],
    )


async def release_waiting_for_chat(tx: BaseDBAsyncClient, learner_id: int, now: datetime) -> None:
    """The learner just connected their Telegram: what waited for that goes out now instead of
    at its next hourly retry."""
    await tx.execute_query(
        q(
            tx,
            "UPDATE delivery SET available_at = ?, updated_at = ? WHERE learner_id = ? "
            "AND state = ? AND available_at > ? AND last_error = ?",
        ),
        [ts(tx, now), ts(tx, now), learner_id, PENDING, ts(tx, now), WAITING_FOR_CHAT],
    )


async def release(ids: Sequence[int], worker: str, now: datetime) -> None:
    """Give claims back untouched (graceful stop before sending): no attempt is counted."""
    if not ids:
        return
    conn = connection()
    sql = q(
        conn,
        "UPDATE delivery SET state = ?, lease_until = NULL, claimed_by = NULL, "
        "attempts = attempts - 1, updated_at = ? WHERE state = ? AND claimed_by = ? AND id IN "
        + in_list(conn, len(ids)),
    )
    async with in_transaction() as tx:
        await tx.execute_query(sql, [PENDING, ts(conn, now), CLAIMED, worker, *ids])


async def renew_leases(worker: str, now: datetime, lease: timedelta) -> None:
    """Extend the leases of this worker's claims: its sends may wait long behind a rate limit
    or a 429 pause, and must not look abandoned to another worker meanwhile."""
    conn = connection()
    sql = "UPDATE delivery SET lease_until = ? WHERE state = ? AND claimed_by = ?"
    if is_postgres(conn):
        # Rows locked right now are being recorded (or recovered): skip them rather than wait,
        # since waiting on the recorder's transaction while it waits on ours is a deadlock.
        sql = (
            "UPDATE delivery SET lease_until = ? WHERE id IN (SELECT id FROM delivery "
            "WHERE state = ? AND claimed_by = ? FOR UPDATE SKIP LOCKED)"
        )
    async with in_transaction() as tx:
        await tx.execute_query(q(conn, sql), [ts(conn, now + lease), CLAIMED, worker])


async def mark_attempted(ids: Sequence[int], worker: str, now: datetime) -> set[int]:
    """These claims of `worker` are about to be written to their channel: from now on a crash
    leaves their outcome unknown. Claims never marked go back untouched when a worker dies.

    Returns the ids marked: a claim that is no longer this worker's (its lease ran out and
    another worker recovered it, and may be sending it right now) is not, and must not be
    sent."""
    if not ids:
        return set()
    conn = connection()
    # One statement, committed on its own: it must be durable before the sends start.
    rows = await conn.execute_query_dict(
        q(
            conn,
            "UPDATE delivery SET attempted_at = ? WHERE state = ? AND claimed_by = ? "
            f"AND id IN {in_list(conn, len(ids))} RETURNING id",
        ),
        [ts(conn, now), CLAIMED, worker, *ids],
    )
    return {int(row["id"]) for row in rows}


@dataclass(frozen=True)
class Recovered:
    """What `recover_claims` did with the claims of stopped workers."""

    returned: int = 0  # never attempted: pending again, no attempt counted
    retried: int = 0  # attempted, outcome unknown: tried once more, flagged uncertain
    given_up: int = 0  # attempted with an unknown outcome twice: left uncertain

    def __bool__(self) -> bool:
        return bool(self.returned or self.retried or self.given_up)


async def recover_claims(
    now: datetime, *, expired_only: bool = True, except_worker: str | None = None
) -> Recovered:
    """Claims whose worker died (their lease ran out).

    A claim the worker never marked attempted (`mark_attempted`) was never written to its
    channel: it goes back to pending as if never claimed. An attempted one may or may not have
    arrived: a first unknown outcome is retried once (pending, flagged uncertain), a second one
    is final (state uncertain). `expired_only=False` takes every claim (a single runner
    starting up on SQLite knows no other process holds any).
    """
    conn = connection()
    condition = "state = ?" + (" AND lease_until < ?" if expired_only else "")
    params: list[Any] = [CLAIMED] + ([ts(conn, now)] if expired_only else [])
    if except_worker is not None:  # a live worker's own claims are in flight, not abandoned
        condition += " AND claimed_by <> ?"
        params.append(except_worker)
    yes, no = (True, False) if is_postgres(conn) else (1, 0)
    note = "the worker stopped before recording the outcome; it may have been delivered"
    attempted = f"{condition} AND attempted_at IS NOT NULL"
    async with in_transaction() as tx:
        returned, _ = await tx.execute_query(
            q(
                conn,
                "UPDATE delivery SET state = ?, lease_until = NULL, claimed_by = NULL, "
                "attempts = attempts - 1, updated_at = ? "
                f"WHERE {condition} AND attempted_at IS NULL",
            ),
            [PENDING, ts(conn, now), *params],
        )
        given_up, _ = await tx.execute_query(
            q(
                conn,
                "UPDATE delivery SET state = ?, last_error = ?, lease_until = NULL, "
                f"claimed_by = NULL, updated_at = ? WHERE {attempted} AND uncertain = ?",
            ),
            [DeliveryState.UNCERTAIN.value, note, ts(conn, now), *params, yes],
        )
        retried, _ = await tx.execute_query(
            q(
                conn,
                "UPDATE delivery SET state = ?, uncertain = ?, available_at = ?, last_error = ?, "
                f"lease_until = NULL, claimed_by = NULL, updated_at = ? WHERE {attempted} "
                "AND uncertain = ?",
            ),
            [PENDING, yes, ts(conn, now), note, ts(conn, now), *params, no],
        )
    return Recovered(int(returned), int(retried), int(given_up))


async def next_wake(now: datetime, horizon: timedelta) -> datetime | None:
    """The next moment there may be work: a delivery becoming available, an enrollment to plan,
    or a lease to recover."""
    conn = connection()
    candidates: list[datetime] = []
    for sql, params in (
        ("SELECT MIN(available_at) AS t FROM delivery WHERE state = ?", [PENDING]),
        (
            "SELECT MIN(plan_due_at) AS t FROM enrollment WHERE state = ? "
            "AND plan_due_at IS NOT NULL",
            ["active"],
        ),
        ("SELECT MIN(lease_until) AS t FROM delivery WHERE state = ?", [CLAIMED]),
        (
            "SELECT MIN(resume_at) AS t FROM enrollment WHERE state = ? AND resume_at IS NOT NULL",
            ["paused"],
        ),
    ):
        rows = await conn.execute_query_dict(q(conn, sql), params)
        moment = as_datetime(rows[0]["t"]) if rows else None
        if moment is not None:
            candidates.append(moment - horizon if "plan_due_at" in sql else moment)
    return min(candidates) if candidates else None


async def cancel_nudges(
    enrollment_id: int, step_id: str, now: datetime, using: BaseDBAsyncClient | None = None
) -> int:
    """The learner answered: reminders for that prompt that have not gone out are cancelled,
    and so are those that failed, were skipped or whose outcome is unknown (no trainer should
    resend a reminder of an answered prompt)."""
    conn = using or connection()
    count, _ = await conn.execute_query(
        q(
            conn,
            "UPDATE delivery SET state = ?, last_error = ?, updated_at = ? WHERE enrollment_id = ? "
            "AND step_id = ? AND kind = ? AND state IN (?, ?, ?, ?, ?)",
        ),
        [
            DeliveryState.CANCELLED.value,
            "answered before the reminder was due",
            ts(conn, now),
            enrollment_id,
            step_id,
            DeliveryKind.NUDGE.value,
            DeliveryState.PENDING.value,
            DeliveryState.HELD.value,
            DeliveryState.FAILED.value,
            DeliveryState.SKIPPED.value,
            DeliveryState.UNCERTAIN.value,
        ],
    )
    return int(count)


@dataclass(frozen=True)
class SentStep:
    """A step (first sending, reminder or re-ask) that went out, newest first where listed."""

    id: int
    learner_id: int
    enrollment_id: int
    step_id: str
    occurrence: int
    curriculum_id: int


async def sent_steps(
    *, learner_ids: Sequence[int] = (), enrollment_id: int | None = None, limit: int | None = None
) -> list[SentStep]:
    """The steps sent to these learners (or in this enrollment), each learner's newest first:
    where a learner's reply is filed and which prompt it answers is decided from these."""
    conn = connection()
    if enrollment_id is not None:
        whose, values = "d.enrollment_id = ?", [enrollment_id]
    else:
        whose, values = "d.learner_id IN " + in_list(conn, len(learner_ids)), list(learner_ids)
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT d.id, d.learner_id, d.enrollment_id, d.step_id, d.occurrence, "
            "e.curriculum_id FROM delivery d JOIN enrollment e ON e.id = d.enrollment_id "
            f"WHERE {whose} AND d.state = ? AND d.kind IN (?, ?, ?) AND d.step_id IS NOT NULL "
            "ORDER BY d.learner_id, d.sent_at DESC, d.id DESC" + (" LIMIT ?" if limit else ""),
        ),
        [
            *values,
            DeliveryState.SENT.value,
            DeliveryKind.STEP.value,
            DeliveryKind.NUDGE.value,
            DeliveryKind.REASK.value,
            *([limit] if limit else []),
        ],
    )
    return [
        SentStep(
            int(row["id"]),
            int(row["learner_id"]),
            int(row["enrollment_id"]),
            str(row["step_id"]),
            int(row["occurrence"]),
            int(row["curriculum_id"]),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class SentMail:
    """A delivery of ours found by the Message-ID it went out with."""

    id: int
    learner_id: int
    enrollment_id: int | None
    step_id: str | None
    occurrence: int
    business_key: str


def _sent_mail(row: dict[str, Any]) -> SentMail:
    return SentMail(
        int(row["id"]),
        int(row["learner_id"]),
        None if row["enrollment_id"] is None else int(row["enrollment_id"]),
        row["step_id"],
        int(row["occurrence"]),
        str(row["business_key"]),
    )


async def sent_by_message_id(message_ids: Sequence[str]) -> dict[str, SentMail]:
    """Our deliveries whose provider message id (an email's Message-ID) is one of these, by
    that id in lower case."""
    if not message_ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT id, learner_id, enrollment_id, step_id, occurrence, business_key, "
            "provider_message_id FROM delivery "
            f"WHERE provider_message_id IN {in_list(conn, len(message_ids))}",
        ),
        list(message_ids),
    )
    return {str(row["provider_message_id"]).lower(): _sent_mail(row) for row in rows}


async def deliveries_by_id(delivery_ids: Sequence[int]) -> list[SentMail]:
    """Our deliveries with these ids (a signed return path names one), in id order."""
    if not delivery_ids:
        return []
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT id, learner_id, enrollment_id, step_id, occurrence, business_key "
            f"FROM delivery WHERE id IN {in_list(conn, len(delivery_ids))} ORDER BY id",
        ),
        list(delivery_ids),
    )
    return [_sent_mail(row) for row in rows]
