"""Learners' SQL: bulk inserts, bounce counts, and claiming an invite (one chat, once).

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
from dripper.models import Reachability
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
