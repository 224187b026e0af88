"""The shared send budget's SQL: reserving send slots in `rate_bucket` rows, pausing, pruning.

PostgreSQL only: several workers share one bot token's budget there (SQLite has one runner,
which keeps its budget in memory). Times are the database's clock in Unix seconds, so workers
on different machines agree without synchronised clocks: every answer carries the database's
`now`, and a worker waits the difference on its own monotonic clock.

One bot token has one row (`next_at`: the start of its next free slot, GCRA; `paused_until`:
a 429's retry_after for everyone). Every chat it has written to recently has a row too, whose
`next_at` is the earliest moment the next message to that chat may start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dripper.db import connection
from dripper.store.sql import like_escape

_NOW = "extract(epoch FROM clock_timestamp())"

# One statement takes `len(chats)` consecutive slots of the token, then gives slot i to chat i
# unless that chat's own next_at is later than the slot (another worker wrote to it less than
# `chat_interval` ago): such a slot stays unused, which only ever lowers the rate, and the chat's
# next_at is returned so the caller can wait for it. The token's row is locked first (the chats'
# rows are computed from its answer), so concurrent reservations queue behind it: no deadlock.
_RESERVE = f"""
WITH budget AS (
    INSERT INTO rate_bucket AS b (key, next_at, paused_until)
    VALUES ($1, {_NOW} + $2::float8, 0)
    ON CONFLICT (key) DO UPDATE
    SET next_at = GREATEST(b.next_at, {_NOW}, b.paused_until) + $2::float8
    RETURNING b.next_at - $2::float8 AS start, b.paused_until
),
wanted AS (
    SELECT w.key, w.n, budget.start + (w.n - 1) * $3::float8 AS at
    FROM unnest($4::varchar[]) WITH ORDINALITY AS w(key, n), budget
),
chats AS (
    INSERT INTO rate_bucket AS c (key, next_at, paused_until)
    SELECT key, at + $5::float8, 0 FROM wanted
    ON CONFLICT (key) DO UPDATE SET next_at = EXCLUDED.next_at
    WHERE c.next_at <= EXCLUDED.next_at - $5::float8
    RETURNING c.key
)
SELECT w.n, w.at, chats.key IS NOT NULL AS granted, earlier.next_at AS chat_next_at,
    budget.paused_until, {_NOW} AS db_now
FROM wanted w CROSS JOIN budget
LEFT JOIN chats ON chats.key = w.key
LEFT JOIN rate_bucket earlier ON earlier.key = w.key
ORDER BY w.n
"""

_PAUSE = f"""
INSERT INTO rate_bucket AS b (key, next_at, paused_until)
VALUES ($1, {_NOW} + $2::float8, {_NOW} + $2::float8)
ON CONFLICT (key) DO UPDATE
SET paused_until = GREATEST(b.paused_until, EXCLUDED.paused_until),
    next_at = GREATEST(b.next_at, EXCLUDED.paused_until)
"""

_PRUNE = f"DELETE FROM rate_bucket WHERE key LIKE $1 AND next_at < {_NOW} - $2::float8"


@dataclass(frozen=True)
class Slot:
    """One reserved slot, in database seconds: `at` when granted, else when the chat is free."""

    at: float
    granted: bool
    chat_next_at: float | None  # for a slot not granted: the chat's next free moment


@dataclass(frozen=True)
class Reservation:
    slots: list[Slot]  # one per requested chat, in the order asked
    paused_until: float  # the token's pause (0 when never paused), database seconds
    db_now: float  # the database's clock when it answered


async def reserve_slots(
    budget_key: str, chat_keys: Sequence[str], interval: float, chat_interval: float
) -> Reservation:
    """Reserve one slot of the token `budget_key` (slots `interval` apart) for each chat in
    `chat_keys` (distinct, at least one), each chat's slots at least `chat_interval` apart."""
    if not chat_keys:
        raise ValueError("reserve at least one slot")
    rows = await connection().execute_query_dict(
        _RESERVE,
        [budget_key, len(chat_keys) * interval, interval, list(chat_keys), chat_interval],
    )
    slots = [
        Slot(
            at=float(row["at"]),
            granted=bool(row["granted"]),
            chat_next_at=None if row["chat_next_at"] is None else float(row["chat_next_at"]),
        )
        for row in rows
    ]
    return Reservation(slots, float(rows[0]["paused_until"]), float(rows[0]["db_now"]))


async def pause_budget(budget_key: str, seconds: float) -> None:
    """No slot of the token starts before `seconds` from now (a 429's retry_after)."""
    await connection().execute_query(_PAUSE, [budget_key, seconds])


async def prune_chat_buckets(budget_key: str, idle_seconds: float) -> int:
    """Forget the chats of the token that have been free for `idle_seconds`; returns how many."""
    pattern = f"{like_escape(budget_key)}:chat:%"
    count, _ = await connection().execute_query(_PRUNE, [pattern, idle_seconds])
    return int(count)
