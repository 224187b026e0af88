"""A learner becoming unreachable on a channel, or reachable again, as an event.

The channel's status changes with a guarded UPDATE, so a change happens once however many
workers and receivers see it (a blocked bot seen by the dispatcher and by the `my_chat_member`
update). Each change leaves a system line in the conversations of the learner's open
enrollments, "Telegram blocked on 3 Dec; continuing by email", which the dashboard shows in the
thread, the digest lists and `dripper status` counts. A system line is never sent, never
announced to trainers and never reopens a conversation.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from textwrap import shorten
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.db import connection
from dripper.models import Channel, ConversationStatus, MessageDirection, Reachability
from dripper.store.conversations import conversation_ids, insert_message, touch_conversation
from dripper.store.sql import among, as_datetime, as_json, q, ts

CHANNEL_NAMES = {Channel.TELEGRAM: "Telegram", Channel.EMAIL: "Email"}
# The channels this process sends on: the worker sets it for its receivers, whose events
# then say where the drip goes on as the dispatcher will decide it. None: by the addresses.
sending_channels: ContextVar[frozenset[Channel] | None] = ContextVar(
    "sending_channels", default=None
)
DETAIL = 100  # characters of the provider's words kept in the line
SWITCHED = "switched"  # flag of a line saying the drip goes on on the other channel


@dataclass(frozen=True)
class Unreachable:
    """A learner found unreachable on `channel` (or reachable again).

    `cause`, the line's flag: blocked, bounced, unreachable or reachable. `detail`: the
    provider's words. `continues_on`: the channel the drip goes on with, if any; the dispatcher
    knows it (`decided`), for a receiver it is worked out from the learner's other address and
    the worker's channels."""

    learner_id: int
    channel: Channel
    cause: str
    detail: str | None = None
    continues_on: Channel | None = None
    decided: bool = False
    opted_out: bool = False  # the learner asked for nothing more: no drip goes on anywhere


def found_unreachable(
    learner_id: int, channel: Channel, error: str | None, continues_on: Channel | None
) -> Unreachable:
    """The dispatcher's event for a send the provider refused for good: a blocked bot needs no
    detail, a refused address or a deactivated account keeps the provider's words."""
    if channel is Channel.TELEGRAM and "blocked" in (error or "").lower():
        return Unreachable(learner_id, channel, "blocked", None, continues_on, decided=True)
    cause = "bounced" if channel is Channel.EMAIL else "unreachable"
    return Unreachable(learner_id, channel, cause, error, continues_on, decided=True)


def system_line(event: Unreachable, at: datetime, zone: tzinfo) -> str:
    """ "Telegram blocked on 3 Dec; continuing by email" (the date in the learner's zone)."""
    day = at.astimezone(zone).strftime("%-d %b")
    name = CHANNEL_NAMES[event.channel]
    if event.cause == "reachable":
        return f"{name} reachable again on {day}"
    what = {"blocked": "blocked", "bounced": "bounced"}.get(event.cause, "unreachable")
    detail = f" ({shorten(event.detail, DETAIL, placeholder='…')})" if event.detail else ""
    if event.opted_out:
        return f"{name} {what} on {day}{detail}"
    if event.continues_on is Channel.TELEGRAM:
        rest = "continuing on Telegram"
    elif event.continues_on is Channel.EMAIL:
        rest = "continuing by email"
    else:
        rest = "no other channel, so drip messages fail until the learner is reachable again"
    return f"{name} {what} on {day}{detail}; {rest}"


async def mark_unreachable(tx: BaseDBAsyncClient, event: Unreachable, now: datetime) -> bool:
    """Mark the channel unreachable and leave the system line, once; True when it changed."""
    if not event.decided:
        continues, opted_out = await _other_reachable(tx, event.learner_id, event.channel)
        event = replace(event, continues_on=continues, decided=True, opted_out=opted_out)
    changed = await _set_status(tx, event.learner_id, event.channel, Reachability.UNREACHABLE, now)
    if changed:
        await _leave_line(tx, event, now)
    return changed


async def mark_reachable(
    tx: BaseDBAsyncClient, learner_id: int, channel: Channel, now: datetime
) -> bool:
    """The learner can be reached on the channel again (they restarted the bot): a line only
    when it was unreachable before; a first contact (unknown -> ok) is not an event."""
    column = _column(channel)
    changed, _ = await tx.execute_query(
        q(tx, f"UPDATE learner SET {column} = ?, updated_at = ? WHERE id = ? AND {column} = ?"),
        [Reachability.OK.value, ts(tx, now), learner_id, Reachability.UNREACHABLE.value],
    )
    if changed:
        await _leave_line(tx, Unreachable(learner_id, channel, "reachable"), now)
        return True
    await mark_first_contact(tx, [learner_id], channel, now)
    return False


async def mark_first_contact(
    tx: BaseDBAsyncClient, learner_ids: Collection[int], channel: Channel, now: datetime
) -> None:
    """These learners were reached on the channel for the first time (unknown -> ok), in one
    batch; a status already known, reachable or not, stays."""
    if not learner_ids:
        return
    column = _column(channel)
    await tx.execute_many(
        q(tx, f"UPDATE learner SET {column} = ?, updated_at = ? WHERE id = ? AND {column} = ?"),
        [
            [Reachability.OK.value, ts(tx, now), learner_id, Reachability.UNKNOWN.value]
            for learner_id in sorted(learner_ids)
        ],
    )


async def reach_events(
    since: datetime, *, cohort_ids: Sequence[int] | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The newest `limit` system lines since `since`, in time order, one per learner and event
    (a learner in two cohorts has the line in both conversations): learner_id, learner,
    channel, body, flags, at; within these cohorts' conversations if `cohort_ids`."""
    conn = connection()
    where = "m.direction = ? AND m.created_at >= ?"
    values: list[object] = [MessageDirection.SYSTEM.value, ts(conn, since)]
    cohorts, cohort_values = among("e.cohort_id", cohort_ids)
    where += cohorts
    values.extend(cohort_values)
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT c.learner_id, TRIM(l.first_name || ' ' || l.last_name) AS learner, "
            "m.channel, m.body, m.flags, MIN(m.created_at) AS at FROM message m "
            "JOIN conversation c ON c.id = m.conversation_id "
            "JOIN learner l ON l.id = c.learner_id "
            "LEFT JOIN enrollment e ON e.id = c.enrollment_id "
            f"WHERE {where} GROUP BY c.learner_id, l.first_name, l.last_name, m.channel, "
            "m.body, m.flags ORDER BY at DESC, c.learner_id DESC LIMIT ?",
        ),
        [*values, limit],
    )
    return [
        {**row, "flags": list(as_json(row["flags"]) or []), "at": as_datetime(row["at"])}
        for row in reversed(rows)
    ]


def _column(channel: Channel) -> str:
    return "telegram_status" if channel is Channel.TELEGRAM else "email_status"


async def _set_status(
    tx: BaseDBAsyncClient, learner_id: int, channel: Channel, status: Reachability, now: datetime
) -> bool:
    column = _column(channel)
    changed, _ = await tx.execute_query(
        q(tx, f"UPDATE learner SET {column} = ?, updated_at = ? WHERE id = ? AND {column} <> ?"),
        [status.value, ts(tx, now), learner_id, status.value],
    )
    return bool(changed)


def other_channel(
    channel: Channel,
    *,
    email: str | None,
    email_status: str,
    telegram_chat_id: int | None,
    telegram_status: str,
    available: Collection[Channel] | None,
) -> Channel | None:
    """The channel a drip goes on with when `channel` fails for good: the learner's other
    address, if it is not known to fail too and (`available`) this worker sends on it."""
    unreachable = Reachability.UNREACHABLE.value
    if channel is Channel.TELEGRAM:
        other, ok = Channel.EMAIL, bool(email) and email_status != unreachable
    else:
        other, ok = Channel.TELEGRAM, telegram_chat_id is not None
        ok = ok and telegram_status != unreachable
    if available is not None and other not in available:
        return None
    return other if ok else None


async def _other_reachable(
    tx: BaseDBAsyncClient, learner_id: int, channel: Channel
) -> tuple[Channel | None, bool]:
    """Where the drip goes on, and whether the learner opted out (then: nowhere)."""
    rows = await tx.execute_query_dict(
        q(
            tx,
            "SELECT email, email_status, telegram_chat_id, telegram_status, opted_out_at "
            "FROM learner WHERE id = ?",
        ),
        [learner_id],
    )
    if not rows:
        return None, False
    row = rows[0]
    if row["opted_out_at"] is not None:
        return None, True
    return other_channel(
        channel,
        email=row["email"],
        email_status=str(row["email_status"]),
        telegram_chat_id=row["telegram_chat_id"],
        telegram_status=str(row["telegram_status"]),
        available=sending_channels.get(),
    ), False


async def _leave_line(tx: BaseDBAsyncClient, event: Unreachable, now: datetime) -> None:
    """The line in each conversation of the learner's open enrollments (active or paused),
    else of their latest enrollment, else their own loose conversation."""
    rows = await tx.execute_query_dict(
        q(
            tx,
            "SELECT e.id, e.state, l.timezone FROM learner l "
            "LEFT JOIN enrollment e ON e.learner_id = l.id WHERE l.id = ? ORDER BY e.id",
        ),
        [event.learner_id],
    )
    if not rows:
        return
    zone = _zone(rows[0]["timezone"])
    enrollments = [int(r["id"]) for r in rows if r["id"] is not None]
    open_ones = [int(r["id"]) for r in rows if r["state"] in ("active", "paused")]
    chosen: list[int | None] = list(open_ones or enrollments[-1:]) or [None]
    # A conversation made only for the line is not a question waiting: it starts closed.
    conversations = await conversation_ids(
        tx, {(event.learner_id, e) for e in chosen}, new_status=ConversationStatus.CLOSED
    )
    body = system_line(event, now, zone)
    flags = [event.cause, *([SWITCHED] if event.continues_on is not None else [])]
    for conversation_id in sorted(conversations.values()):
        message_id = await insert_message(
            tx, conversation_id, MessageDirection.SYSTEM, event.channel, body, now, flags=flags
        )
        await touch_conversation(tx, conversation_id, message_id, now, None)


def _zone(name: str | None) -> tzinfo:
    """The learner's zone; UTC when they have none or an unknown one (a line is never lost)."""
    try:
        return ZoneInfo(name) if name else UTC
    except (KeyError, ValueError):
        return UTC
