"""The inbound side's SQL: raw items stored with their channel's cursor, then processed.

Every channel receives the same way (DESIGN: "stored raw before it is processed"): a batch of
raw items (Telegram updates, emails) is inserted with the cursor that follows it (Telegram's
offset, IMAP's UIDVALIDITY and last UID) in one transaction, keyed by (channel, account,
external id) so a re-fetched item is absorbed; each item is then marked processed or flagged
with its reason. Both receivers use these functions; only the cursor's content differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.db import connection
from dripper.models import Channel, InboundState
from dripper.store.sql import as_json, in_list, json_param, q, returning, text, ts

INSERT_BATCH = 500  # rows per INSERT: 3,500 parameters, well under either backend's limit


# How a flagged item's note starts when its processing or filing raised (rather than the item
# being handled and found wanting): only such an item is worth another try as it is.
PROCESSING_FAILED = "processing failed"
FILING_FAILED = "filing failed"


def failure_note(what: str, exc: BaseException) -> str:
    """The note of an item whose `what` (PROCESSING_FAILED, FILING_FAILED) raised `exc`."""
    return f"{what}: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class RawItem:
    """One item as received: its dedupe key, its bytes, and a note kept with it (or None)."""

    external_id: str
    payload: bytes
    note: str | None = None
    state: InboundState = InboundState.PENDING  # FLAGGED: stored only to show why it is skipped


async def store_items(
    tx: BaseDBAsyncClient,
    channel: Channel,
    account: str,
    items: Sequence[RawItem],
    cursor: dict[str, Any],
    now: datetime,
) -> int:
    """Insert `items` as pending and move the account's cursor to `cursor`, inside the caller's
    transaction; returns how many items were new."""
    stored = 0
    for start in range(0, len(items), INSERT_BATCH):
        batch = items[start : start + INSERT_BATCH]
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(batch))
        params: list[Any] = []
        for item in batch:
            params += [
                channel.value,
                account,
                item.external_id,
                item.payload,
                item.state.value,
                text(item.note) if item.note is not None else None,
                ts(tx, now),
            ]
        inserted = await returning(
            tx,
            "INSERT INTO inbound_item (channel, account, external_id, payload, state, error, "
            f"received_at) VALUES {values} "
            "ON CONFLICT (channel, account, external_id) DO NOTHING RETURNING id",
            params,
        )
        stored += len(inserted)
    await tx.execute_query(
        q(
            tx,
            "INSERT INTO channel_cursor (channel, account, position, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (channel, account) DO UPDATE SET "
            "position = excluded.position, updated_at = excluded.updated_at",
        ),
        [channel.value, account, json_param(tx, cursor), ts(tx, now)],
    )
    return stored


async def load_cursor(channel: Channel, account: str) -> dict[str, Any] | None:
    """Where the last stored batch of this account ended, or None before the first one."""
    conn = connection()
    rows = await conn.execute_query_dict(
        q(conn, "SELECT position FROM channel_cursor WHERE channel = ? AND account = ?"),
        [channel.value, account],
    )
    if not rows:
        return None
    position = as_json(rows[0]["position"])
    return position if isinstance(position, dict) else None


async def pending_items(channel: Channel, account: str, limit: int) -> list[dict[str, Any]]:
    """The oldest pending items of an account (id, payload, received_at), at most `limit`."""
    conn = connection()
    return list(
        await conn.execute_query_dict(
            q(
                conn,
                "SELECT id, payload, received_at FROM inbound_item WHERE channel = ? "
                "AND account = ? "
                "AND state = ? ORDER BY id LIMIT ?",
            ),
            [channel.value, account, InboundState.PENDING.value, limit],
        )
    )


async def last_pending_id(channel: Channel, account: str) -> int:
    """The newest pending item of an account (0 when none is pending)."""
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT MAX(id) AS id FROM inbound_item WHERE channel = ? AND account = ? "
            "AND state = ?",
        ),
        [channel.value, account, InboundState.PENDING.value],
    )
    return int(rows[0]["id"] or 0)


async def filed_item_ids(item_ids: Sequence[int]) -> set[int]:
    """Which of these items already became an inbox message (filed by an earlier run)."""
    if not item_ids:
        return set()
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT DISTINCT inbound_id FROM message WHERE inbound_id IN "
            + in_list(conn, len(item_ids)),
        ),
        list(item_ids),
    )
    return {int(row["inbound_id"]) for row in rows}


async def mark_items(
    tx: BaseDBAsyncClient, outcomes: Sequence[tuple[int, str | None]], now: datetime
) -> None:
    """Items processed (reason None) or flagged with their reason, in the caller's transaction."""
    processed = [item_id for item_id, reason in outcomes if reason is None]
    flagged = [(item_id, reason) for item_id, reason in outcomes if reason is not None]
    if processed:
        await tx.execute_query(
            q(
                tx,
                "UPDATE inbound_item SET state = ?, processed_at = ? WHERE id IN "
                + in_list(tx, len(processed)),
            ),
            [InboundState.PROCESSED.value, ts(tx, now), *processed],
        )
    if flagged:
        await tx.execute_many(
            q(tx, "UPDATE inbound_item SET state = ?, error = ?, processed_at = ? WHERE id = ?"),
            [
                [InboundState.FLAGGED.value, reason, ts(tx, now), item_id]
                for item_id, reason in flagged
            ],
        )


async def finish_item(
    conn: BaseDBAsyncClient, item_id: int, state: InboundState, note: str | None, now: datetime
) -> None:
    """One item's new state, with the note (or the flag's reason) kept in its error column."""
    await conn.execute_query(
        q(conn, "UPDATE inbound_item SET state = ?, error = ?, processed_at = ? WHERE id = ?"),
        [state.value, note, ts(conn, now), item_id],
    )
