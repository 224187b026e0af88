"""Learners' SQL: bulk inserts, bounce counts, claiming an invite (one chat, once), opting out.

Most learner reads and writes go through the Tortoise models; the statements here are the ones
that must be one statement (a count that concurrent workers increase, a claim that only one
chat may win) or that write many rows at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.db import connection
from dripper.models import Learner, Reachability
from dripper.store.sql import json_param, q, ts

INSERT_BATCH = 10_000


@dataclass(frozen=True)
class NewLearner:
    first_name: str
    last_name: str = ""
    email: str | None = None
    telegram_chat_id: int | None = None
    timezone: str | None = None


async def insert_learners(learners: Sequence[NewLearner], now: datetime) -> None:
    """Many learners at once, with no attributes, reachability unknown."""
    conn = connection()
    sql = q(
        conn,
        "INSERT INTO learner (first_name, last_name, email, telegram_chat_id, timezone, "
        "attributes, email_status, telegram_status, soft_bounces, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    rows = [
        [
            learner.first_name,
            learner.last_name,
            learner.email,
            learner.telegram_chat_id,
            learner.timezone,
            json_param(conn, {}),
            Reachability.UNKNOWN.value,
            Reachability.UNKNOWN.value,
            0,
            ts(conn, now),
            ts(conn, now),
        ]
        for learner in learners
    ]
    for start in range(0, len(rows), INSERT_BATCH):
        await conn.execute_many(sql, rows[start : start + INSERT_BATCH])


async def count_soft_bounce(learner_id: int) -> None:
    """One more soft bounce for the learner's address (in one statement: workers race)."""
    conn = connection()
    await conn.execute_query(
        q(conn, "UPDATE learner SET soft_bounces = soft_bounces + 1 WHERE id = ?"), [learner_id]
    )


async def claim_invite(tx: BaseDBAsyncClient, invite_id: int, chat_id: int, now: datetime) -> bool:
    """Mark the invite used by `chat_id` unless a chat used it first; True when this one won."""
    claimed, _ = await tx.execute_query(
        q(
            tx,
            "UPDATE invite SET used_at = ?, used_by_chat_id = ? "
            "WHERE id = ? AND used_by_chat_id IS NULL",
        ),
        [ts(tx, now), chat_id, invite_id],
    )
    return bool(claimed)


async def set_opted_out(learner_id: int, now: datetime, *, opted_out: bool) -> bool | None:
    """Opt the learner out of every drip (`opted_out`) or back in. True when that changed
    something, False when it was so already, None when there is no such learner."""
    if opted_out:
        changed = await Learner.filter(id=learner_id, opted_out_at=None).update(
            opted_out_at=now, updated_at=now
        )
    else:
        changed = await Learner.filter(id=learner_id, opted_out_at__not_isnull=True).update(
            opted_out_at=None, updated_at=now
        )
    if changed:
        return True
    return False if await Learner.exists(id=learner_id) else None


async def opt_out_state(learner_id: int) -> tuple[str | None, bool] | None:
    """(email, opted out) of a learner, None when there is no such learner."""
    learner = await Learner.get_or_none(id=learner_id).only("id", "email", "opted_out_at")
    if learner is None:
        return None
    return learner.email, learner.opted_out_at is not None
