"""The SQL of media fetching: learner messages with attachments past the fetcher's mark, an
attachment list written back with what was kept, and each learner's running total.

The mark (per channel, in `channel_cursor` with the account "media") only moves past messages
whose every file is settled, kept or given up on, so a crash never skips one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.transactions import in_transaction

from dripper.db import connection
from dripper.models import Channel, ChannelCursor, MessageDirection
from dripper.store.sql import as_datetime, as_json, json_param, q, select

Rows = list[dict[str, Any]]

ACCOUNT = "media"


async def fetch_mark(channel: Channel) -> int:
    cursor = await ChannelCursor.get_or_none(channel=channel, account=ACCOUNT)
    return int((cursor.position if cursor else {}).get("upto", 0))


async def move_mark(channel: Channel, upto: int) -> None:
    cursor, _ = await ChannelCursor.get_or_create(channel=channel, account=ACCOUNT)
    if int(cursor.position.get("upto", 0)) < upto:
        cursor.position = {"upto": upto}
        await cursor.save()


async def messages_with_files(channel: Channel, after_id: int, limit: int) -> Rows:
    """Learner messages on `channel` above `after_id` that list attachments, oldest first: id,
    learner_id, attachments (decoded), inbound_id, created_at, media_bytes (the learner's total
    so far)."""
    rows = await select(
        "SELECT m.id, c.learner_id, m.attachments, m.inbound_id, m.created_at, l.media_bytes "
        "FROM message m JOIN conversation c ON c.id = m.conversation_id "
        "JOIN learner l ON l.id = c.learner_id "
        "WHERE m.direction = ? AND m.channel = ? AND m.id > ? "
        "AND CAST(m.attachments AS TEXT) <> '[]' ORDER BY m.id LIMIT ?",
        [MessageDirection.INBOUND.value, channel.value, after_id, limit],
    )
    return [
        {
            **row,
            "attachments": list(as_json(row["attachments"]) or []),
            "created_at": as_datetime(row["created_at"]),
        }
        for row in rows
    ]


async def save_attachments(
    message_id: int, learner_id: int, attachments: Sequence[dict[str, Any]], added: int
) -> bool:
    """The message's attachment list as it now stands, and `added` bytes more for the learner,
    in one transaction; False (nothing written) when the learner was erased meanwhile."""
    async with in_transaction() as tx:
        changed, _ = await tx.execute_query(
            q(
                tx,
                "UPDATE message SET attachments = ? WHERE id = ? AND EXISTS (SELECT 1 FROM "
                "learner l WHERE l.id = ? AND l.erased_at IS NULL)",
            ),
            [json_param(tx, list(attachments)), message_id, learner_id],
        )
        if not changed:
            return False
        if added:
            await tx.execute_query(
                q(tx, "UPDATE learner SET media_bytes = media_bytes + ? WHERE id = ?"),
                [added, learner_id],
            )
    return True


async def inbound_payload(inbound_id: int) -> bytes | None:
    conn = connection()
    rows = await conn.execute_query_dict(
        q(conn, "SELECT payload FROM inbound_item WHERE id = ?"), [inbound_id]
    )
    return bytes(rows[0]["payload"]) if rows and rows[0]["payload"] is not None else None
