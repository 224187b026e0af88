"""The SQL of trainer notifications: new learner messages past each trainer's mark, the
notices waiting to go out, and binding a trainer's chat.

A trainer's `notified_upto` is a high-water mark over message ids: messages up to it have been
announced to the trainer or passed over (another cohort, assigned to someone else). It only
moves forward, with a guarded UPDATE, so two notifiers can never announce the same messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.db import connection
from dripper.models import MessageDirection
from dripper.store.sql import as_json, q, select, ts

Rows = list[dict[str, Any]]

MAX_ATTEMPTS = 5  # a notice that failed this often (or failed for good) is given up


async def newest_message_id(tx: BaseDBAsyncClient | None = None) -> int:
    conn = tx or connection()
    rows = await conn.execute_query_dict("SELECT COALESCE(MAX(id), 0) AS n FROM message")
    return int(rows[0]["n"])


async def bind_trainer_chat(
    tx: BaseDBAsyncClient, trainer_id: int, serial: int, chat_id: int
) -> bool:
    """Bind the chat and use up the invite (its serial), unless it was used meanwhile. The
    trainer hears of messages from now on, not of the inbox's history."""
    newest = await newest_message_id(tx)
    changed, _ = await tx.execute_query(
        q(
            tx,
            "UPDATE trainer SET telegram_chat_id = ?, invite_serial = invite_serial + 1, "
            "notified_upto = CASE WHEN notified_upto > ? THEN notified_upto ELSE ? END "
            "WHERE id = ? AND invite_serial = ?",
        ),
        [chat_id, newest, newest, trainer_id, serial],
    )
    return bool(changed)


async def learner_messages_after(after_id: int, limit: int) -> Rows:
    """Learner messages with an id above `after_id`, oldest first, with what a notification
    says of them: id, conversation_id, assignee_id, cohort_id, cohort, learner, channel, body,
    attachments, flags, created_at."""
    rows = await select(
        "SELECT m.id, m.conversation_id, c.assignee_id, e.cohort_id, h.name AS cohort, "
        "TRIM(l.first_name || ' ' || l.last_name) AS learner, m.channel, m.body, "
        "m.attachments, m.flags, m.created_at "
        "FROM message m JOIN conversation c ON c.id = m.conversation_id "
        "JOIN learner l ON l.id = c.learner_id "
        "LEFT JOIN enrollment e ON e.id = c.enrollment_id "
        "LEFT JOIN cohort h ON h.id = e.cohort_id "
        "WHERE m.direction = ? AND m.id > ? ORDER BY m.id LIMIT ?",
        [MessageDirection.INBOUND.value, after_id, limit],
    )
    return [
        {**row, "attachments": as_json(row["attachments"]), "flags": as_json(row["flags"])}
        for row in rows
    ]


async def advance_mark(
    tx: BaseDBAsyncClient, trainer_id: int, seen: int, upto: int, noticed_at: datetime | None
) -> bool:
    """Move the trainer's mark from `seen` to `upto` (and, with `noticed_at`, record that a
    notice was made then); False when another notifier moved it first."""
    sets, params = "notified_upto = ?", [upto]
    if noticed_at is not None:
        sets, params = f"{sets}, last_notice_at = ?", [*params, ts(tx, noticed_at)]
    changed, _ = await tx.execute_query(
        q(tx, f"UPDATE trainer SET {sets} WHERE id = ? AND notified_upto = ?"),
        [*params, trainer_id, seen],
    )
    return bool(changed)


async def unsent_notices(limit: int = 50) -> Rows:
    """Notices to send, oldest first, with their trainer's addresses: id, trainer_id, channel,
    body, subject, attempts, telegram_chat_id, email, name."""
    return await select(
        "SELECT n.id, n.trainer_id, n.channel, n.body, n.subject, n.attempts, "
        "t.telegram_chat_id, t.email, t.name FROM trainer_notice n "
        "JOIN trainer t ON t.id = n.trainer_id "
        "WHERE n.sent = ? AND n.attempts < ? ORDER BY n.id LIMIT ?",
        [False, MAX_ATTEMPTS, limit],
    )


async def record_sent(notice_id: int, telegram_message_id: int | None, now: datetime) -> None:
    conn = connection()
    await conn.execute_query(
        q(
            conn,
            "UPDATE trainer_notice SET sent = ?, sent_at = ?, telegram_message_id = ?, "
            "attempts = attempts + 1, last_error = NULL WHERE id = ?",
        ),
        [True, ts(conn, now), telegram_message_id, notice_id],
    )


async def record_failure(notice_id: int, error: str, *, final: bool) -> None:
    """A failed try; `final` gives the notice up (the trainer blocked the bot, no address)."""
    conn = connection()
    attempts = str(MAX_ATTEMPTS) if final else "attempts + 1"
    await conn.execute_query(
        q(conn, f"UPDATE trainer_notice SET attempts = {attempts}, last_error = ? WHERE id = ?"),
        [error[:1000], notice_id],
    )


async def notice_conversations(
    trainer_id: int, telegram_message_id: int
) -> tuple[str, list[int]] | None:
    """The kind ("notice", "digest") and conversations of the notice the trainer's chat shows
    as `telegram_message_id`; None when it is not one of ours."""
    rows = await select(
        "SELECT kind, conversations FROM trainer_notice "
        "WHERE trainer_id = ? AND telegram_message_id = ? ORDER BY id DESC LIMIT 1",
        [trainer_id, telegram_message_id],
    )
    if not rows:
        return None
    return str(rows[0]["kind"]), [int(i) for i in as_json(rows[0]["conversations"])]


async def claim_digest(
    tx: BaseDBAsyncClient, trainer_id: int, last_sent_on: str | None, today: str
) -> bool:
    """Mark today's digest as made, unless another notifier made it meanwhile."""
    changed, _ = await tx.execute_query(
        q(
            tx,
            "UPDATE trainer SET digest_sent_on = ? "
            "WHERE id = ? AND COALESCE(digest_sent_on, '') = ?",
        ),
        [today, trainer_id, last_sent_on or ""],
    )
    return bool(changed)


async def conversation_learners(conversation_ids: Sequence[int]) -> dict[int, str]:
    """The learner's first name of each conversation (for the bot's confirmations)."""
    if not conversation_ids:
        return {}
    marks = ", ".join("?" for _ in conversation_ids)
    rows = await select(
        "SELECT c.id, l.first_name FROM conversation c JOIN learner l ON l.id = c.learner_id "
        f"WHERE c.id IN ({marks})",
        list(conversation_ids),
    )
    return {int(row["id"]): str(row["first_name"]) for row in rows}
