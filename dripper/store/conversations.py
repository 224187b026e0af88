"""The inbox's SQL: conversations and their messages, read marks and labels.

A conversation keeps denormalised columns (`last_message_id`, `last_message_at`,
`last_inbound_id`, `updated_at`) so the inbox list is one statement; every write here keeps
them right, and never moves them backwards when two writers race.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.db import connection
from dripper.models import Channel, Conversation, ConversationStatus, InboundState, MessageDirection
from dripper.store.sql import in_list, json_param, like_escape, q, returning, text, ts


async def insert_message(
    tx: BaseDBAsyncClient,
    conversation_id: int,
    direction: MessageDirection,
    channel: Channel | None,
    body: str,
    now: datetime,
    *,
    raw_body: str | None = None,
    attachments: Sequence[dict[str, Any]] = (),
    step_id: str | None = None,
    inbound_id: int | None = None,
    flags: Sequence[str] = (),
) -> int:
    """One message in a conversation; returns its id."""
    rows = await returning(
        tx,
        "INSERT INTO message (conversation_id, direction, channel, body, raw_body, "
        "attachments, step_id, inbound_id, flags, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [
            conversation_id,
            direction.value,
            channel.value if channel is not None else None,
            text(body),
            text(raw_body) if raw_body is not None else None,
            json_param(tx, list(attachments)),
            step_id,
            inbound_id,
            json_param(tx, list(flags)),
            ts(tx, now),
        ],
    )
    return int(rows[0]["id"])


async def reopen_with_messages(
    tx: BaseDBAsyncClient, newest: Mapping[int, int], now: datetime
) -> None:
    """Learner messages were filed (conversation id -> its newest new message): each of these
    conversations is open again (closed, snoozed or waiting before) and shows that message.
    Never backwards: another receiver may have filed a newer message meanwhile."""
    await tx.execute_many(
        q(
            tx,
            "UPDATE conversation SET status = ?, snoozed_until = NULL, updated_at = ?, "
            "last_message_at = CASE WHEN COALESCE(last_message_id, 0) > ? "
            "THEN last_message_at ELSE ? END, "
            "last_message_id = CASE WHEN COALESCE(last_message_id, 0) > ? "
            "THEN last_message_id ELSE ? END, "
            "last_inbound_id = CASE WHEN COALESCE(last_inbound_id, 0) > ? "
            "THEN last_inbound_id ELSE ? END WHERE id = ?",
        ),
        [
            [
                ConversationStatus.OPEN.value,
                ts(tx, now),
                message_id,
                ts(tx, now),
                message_id,
                message_id,
                message_id,
                message_id,
                conversation_id,
            ]
            for conversation_id, message_id in newest.items()
        ],
    )


async def touch_conversation(
    tx: BaseDBAsyncClient,
    conversation_id: int,
    message_id: int,
    now: datetime,
    status: ConversationStatus | None,
    *,
    answered_id: int | None = None,
) -> None:
    """The conversation's newest message is `message_id`, unless a newer one was filed
    meanwhile (never backwards). `status` applies only if no learner message is newer than the
    one answered (`answered_id`, default `message_id`): a learner message the trainer had not
    seen, or one racing the reply, keeps the conversation open."""
    sets = (
        "last_message_at = CASE WHEN COALESCE(last_message_id, 0) > ? THEN last_message_at "
        "ELSE ? END, "
        "last_message_id = CASE WHEN COALESCE(last_message_id, 0) > ? THEN last_message_id "
        "ELSE ? END, updated_at = ?"
    )
    values: list[object] = [message_id, ts(tx, now), message_id, message_id, ts(tx, now)]
    if status is not None:
        guard = answered_id if answered_id is not None else message_id
        sets += (
            ", status = CASE WHEN COALESCE(last_inbound_id, 0) > ? THEN status ELSE ? END, "
            "snoozed_until = CASE WHEN COALESCE(last_inbound_id, 0) > ? THEN snoozed_until "
            "ELSE NULL END"
        )
        values += [guard, status.value, guard]
    await tx.execute_query(
        q(tx, f"UPDATE conversation SET {sets} WHERE id = ?"), [*values, conversation_id]
    )


async def mark_read_in(
    tx: BaseDBAsyncClient, conversation_id: int, trainer_id: int, *, upto: int | None = None
) -> None:
    """The trainer has seen the conversation up to message `upto` (default: all of it so far).
    A read mark never moves back."""
    if upto is None:
        rows = await tx.execute_query_dict(
            q(tx, "SELECT COALESCE(last_message_id, 0) AS newest FROM conversation WHERE id = ?"),
            [conversation_id],
        )
        upto = int(rows[0]["newest"]) if rows else 0
    await tx.execute_query(
        q(
            tx,
            "INSERT INTO read_mark (trainer_id, conversation_id, last_read_message_id) "
            "VALUES (?, ?, ?) ON CONFLICT (trainer_id, conversation_id) DO UPDATE SET "
            "last_read_message_id = CASE WHEN read_mark.last_read_message_id > "
            "excluded.last_read_message_id THEN read_mark.last_read_message_id "
            "ELSE excluded.last_read_message_id END",
        ),
        [trainer_id, conversation_id, upto],
    )


async def update_conversation(conversation_id: int, now: datetime, **columns: object) -> bool:
    """Set these columns of one conversation (and `updated_at`) in one statement, so two
    trainers changing different things never undo each other; False when it does not exist."""
    conn = connection()
    sets = "".join(f"{name} = ?, " for name in columns)
    values = [
        ts(conn, v) if isinstance(v, datetime) else v.value if isinstance(v, Enum) else v
        for v in columns.values()
    ]
    count, _ = await conn.execute_query(
        q(conn, f"UPDATE conversation SET {sets}updated_at = ? WHERE id = ?"),
        [*values, ts(conn, now), conversation_id],
    )
    return bool(count)


async def label_conversation(conversation_id: int, label: str, now: datetime) -> None:
    """Add a label (a second time is harmless); the conversation counts as changed."""
    async with in_transaction() as tx:
        await tx.execute_query(
            q(
                tx,
                "INSERT INTO conversation_label (conversation_id, label) VALUES (?, ?) "
                "ON CONFLICT (conversation_id, label) DO NOTHING",
            ),
            [conversation_id, label],
        )
        await _changed(tx, conversation_id, now)


async def unlabel_conversation(conversation_id: int, label: str, now: datetime) -> None:
    async with in_transaction() as tx:
        await tx.execute_query(
            q(tx, "DELETE FROM conversation_label WHERE conversation_id = ? AND label = ?"),
            [conversation_id, label],
        )
        await _changed(tx, conversation_id, now)


async def _changed(tx: BaseDBAsyncClient, conversation_id: int, now: datetime) -> None:
    await tx.execute_query(
        q(tx, "UPDATE conversation SET updated_at = ? WHERE id = ?"),
        [ts(tx, now), conversation_id],
    )


async def known_labels() -> list[str]:
    """Every label in use, in order."""
    rows = await connection().execute_query_dict(
        "SELECT DISTINCT label FROM conversation_label ORDER BY label"
    )
    return [str(row["label"]) for row in rows]


async def unread_again(conversation_id: int, trainer_id: int) -> None:
    """The trainer's read mark moves back before the conversation's newest learner message."""
    conn = connection()
    await conn.execute_query(
        q(
            conn,
            "UPDATE read_mark SET last_read_message_id = COALESCE((SELECT last_inbound_id - 1 "
            "FROM conversation WHERE id = ?), 0) WHERE trainer_id = ? AND conversation_id = ?",
        ),
        [conversation_id, trainer_id, conversation_id],
    )


# --------------------------------------------------------------------------- the inbox list


@dataclass(frozen=True)
class InboxFilter:
    """Which conversations a page of the inbox shows (dripper.inbox.views.Folder values)."""

    folder: str
    cohort: str | None = None
    label: str | None = None
    search: str | None = None  # every word must appear in a message, the name or an address


_FROM = (
    " FROM conversation c JOIN learner l ON l.id = c.learner_id"
    " LEFT JOIN enrollment e ON e.id = c.enrollment_id"
    " LEFT JOIN cohort co ON co.id = e.cohort_id"
)


def _where(wanted: InboxFilter, trainer_id: int | None, now_param: Any) -> tuple[str, list[object]]:
    clauses: list[str] = []
    values: list[object] = []
    awake = "(c.status = 'open' OR (c.status = 'snoozed' AND c.snoozed_until <= ?))"
    folder = wanted.folder
    if folder in ("open", "mine", "unassigned"):
        clauses.append(awake)
        values.append(now_param)
    if folder == "mine":
        clauses.append("c.assignee_id = ?")
        values.append(trainer_id if trainer_id is not None else -1)
    elif folder == "unassigned":
        clauses.append("c.assignee_id IS NULL")
    elif folder == "waiting":
        clauses.append("c.status = 'waiting'")
    elif folder == "snoozed":
        clauses.append("c.status = 'snoozed' AND c.snoozed_until > ?")
        values.append(now_param)
    elif folder == "closed":
        clauses.append("c.status = 'closed'")
    if wanted.cohort:
        clauses.append("co.name = ?")
        values.append(wanted.cohort)
    if wanted.label:
        clauses.append(
            "EXISTS (SELECT 1 FROM conversation_label cl WHERE cl.conversation_id = c.id "
            "AND cl.label = ?)"
        )
        values.append(wanted.label.strip().lower())
    for word in (wanted.search or "").split():
        pattern = "%" + like_escape(word.lower()) + "%"
        clauses.append(
            "(LOWER(l.first_name || ' ' || l.last_name) LIKE ? ESCAPE '\\' "
            "OR LOWER(COALESCE(l.email, '')) LIKE ? ESCAPE '\\' "
            "OR LOWER(COALESCE(l.telegram_username, '')) LIKE ? ESCAPE '\\' "
            "OR EXISTS (SELECT 1 FROM message sm WHERE sm.conversation_id = c.id "
            "AND LOWER(sm.body) LIKE ? ESCAPE '\\'))"
        )
        values.extend([pattern] * 4)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), values


async def conversation_page(
    wanted: InboxFilter, trainer_id: int | None, now: datetime, limit: int, offset: int
) -> list[dict[str, Any]]:
    """One page of the inbox, newest activity first: the conversation, its learner, cohort,
    assignee, last message (the first 200 characters) and the trainer's read mark."""
    conn = connection()
    where, values = _where(wanted, trainer_id, ts(conn, now))
    return list(
        await conn.execute_query_dict(
            q(
                conn,
                "SELECT c.id, c.learner_id, c.status, c.snoozed_until, c.last_message_at, "
                "c.last_inbound_id, l.first_name, l.last_name, l.telegram_chat_id, "
                "co.name AS cohort, t.handle AS assignee, lm.channel AS last_channel, "
                "lm.direction AS last_direction, SUBSTR(lm.body, 1, 200) AS preview, "
                "rm.last_read_message_id AS read_upto"
                + _FROM
                + " LEFT JOIN trainer t ON t.id = c.assignee_id"
                " LEFT JOIN message lm ON lm.id = c.last_message_id"
                " LEFT JOIN read_mark rm ON rm.conversation_id = c.id AND rm.trainer_id = ?"
                + where
                + " ORDER BY c.last_message_at DESC NULLS LAST, c.id DESC LIMIT ? OFFSET ?",
            ),
            [trainer_id if trainer_id is not None else -1, *values, limit, offset],
        )
    )


async def count_in_folder(wanted: InboxFilter, trainer_id: int | None, now: datetime) -> int:
    conn = connection()
    where, values = _where(wanted, trainer_id, ts(conn, now))
    rows = await conn.execute_query_dict(q(conn, "SELECT COUNT(*) AS n" + _FROM + where), values)
    return int(rows[0]["n"])


async def unread_count(trainer_id: int) -> int:
    """Conversations with a learner message this trainer has not opened yet."""
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT COUNT(*) AS n FROM conversation c LEFT JOIN read_mark rm "
            "ON rm.conversation_id = c.id AND rm.trainer_id = ? "
            "WHERE c.last_inbound_id > COALESCE(rm.last_read_message_id, 0)",
        ),
        [trainer_id],
    )
    return int(rows[0]["n"])


async def labels_of(conversation_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """Each conversation's labels, in order."""
    if not conversation_ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT conversation_id, label FROM conversation_label WHERE conversation_id IN "
            + in_list(conn, len(conversation_ids))
            + " ORDER BY label",
        ),
        list(conversation_ids),
    )
    found: dict[int, tuple[str, ...]] = {}
    for row in rows:
        key = int(row["conversation_id"])
        found[key] = (*found.get(key, ()), str(row["label"]))
    return found


async def cohort_names() -> list[str]:
    rows = await connection().execute_query_dict("SELECT name FROM cohort ORDER BY name")
    return [str(row["name"]) for row in rows]


async def change_stamp() -> tuple[object, ...]:
    """Changes whenever anything a dashboard shows changes: a message or quiz answer (new ids),
    a conversation's status, assignment or labels, a delivery's state (their `updated_at`), an
    inbound item received, flagged, retried or dismissed. Each is a MAX or a COUNT over an
    index, so polling it every second costs next to nothing. (A plan error does not change it:
    the Problems view shows those when it is next read.)"""
    rows = await connection().execute_query_dict(
        "SELECT (SELECT MAX(id) FROM message) AS message, "
        "(SELECT MAX(id) FROM quiz_answer) AS answer, "
        "(SELECT MAX(updated_at) FROM conversation) AS conversation, "
        "(SELECT MAX(updated_at) FROM delivery) AS delivery, "
        "(SELECT MAX(id) FROM inbound_item) AS inbound, "
        f"(SELECT COUNT(*) FROM inbound_item WHERE state = '{InboundState.FLAGGED.value}') "
        "AS flagged"
    )
    row = rows[0]
    keys = ("message", "answer", "conversation", "delivery", "inbound", "flagged")
    return tuple(str(row[key]) for key in keys)


# --------------------------------------------------------------------------- seed data in bulk


@dataclass(frozen=True)
class SeedMessage:
    """One message of seeded data (`dripper.sandbox.seed.seed_inbox`), by its conversation's
    position among the seeded ones."""

    position: int
    direction: MessageDirection
    channel: Channel
    body: str
    at: datetime


async def insert_seed_threads(
    enrollments: Sequence[tuple[int, int]],
    messages: Sequence[SeedMessage],
    waiting: Sequence[int],
    now: datetime,
) -> None:
    """One open conversation per (learner id, enrollment id), with `messages` in it, in a few
    large batches: the benchmarks seed tens of thousands. Conversations at the positions in
    `waiting` wait on the learner. The denormalised columns are computed once at the end."""
    conn = connection()
    stamp = ts(conn, now)
    await conn.execute_many(
        q(
            conn,
            "INSERT INTO conversation (learner_id, enrollment_id, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
        ),
        [
            [learner_id, enrollment_id, ConversationStatus.OPEN.value, stamp, stamp]
            for learner_id, enrollment_id in enrollments
        ],
    )
    rows = await conn.execute_query_dict("SELECT id FROM conversation ORDER BY id")
    ids = [int(row["id"]) for row in rows][-len(enrollments) :] if enrollments else []
    await conn.execute_many(
        q(
            conn,
            "INSERT INTO message (conversation_id, direction, channel, body, attachments, flags, "
            "created_at) VALUES (?, ?, ?, ?, '[]', '[]', ?)",
        ),
        [
            [ids[m.position], m.direction.value, m.channel.value, m.body, ts(conn, m.at)]
            for m in messages
        ],
    )
    mine = "FROM message m WHERE m.conversation_id = conversation.id"
    await conn.execute_script(
        "UPDATE conversation SET "
        f"last_message_id = (SELECT MAX(id) {mine}), "
        f"last_inbound_id = (SELECT MAX(id) {mine} AND m.direction = "
        f"'{MessageDirection.INBOUND.value}'), "
        f"last_message_at = (SELECT MAX(created_at) {mine})"
    )
    for start in range(0, len(waiting), 500):
        chosen = [ids[position] for position in waiting[start : start + 500]]
        await conn.execute_query(
            q(conn, f"UPDATE conversation SET status = ? WHERE id IN {in_list(conn, len(chosen))}"),
            [ConversationStatus.WAITING.value, *chosen],
        )


async def conversation_ids(
    tx: BaseDBAsyncClient,
    wanted: set[tuple[int, int | None]],
    *,
    new_status: ConversationStatus = ConversationStatus.OPEN,
) -> dict[tuple[int, int | None], int]:
    """The conversation of each (learner, enrollment) pair, created where missing (with
    `new_status`)."""
    found: dict[tuple[int, int | None], int] = {}
    enrollments = sorted({e for _, e in wanted if e is not None})
    if enrollments:
        for conversation in await Conversation.filter(enrollment_id__in=enrollments).using_db(tx):
            found[(conversation.learner_id, conversation.enrollment_id)] = conversation.id  # type: ignore[attr-defined]
    loose = sorted({learner for learner, e in wanted if e is None})
    if loose:
        query = Conversation.filter(learner_id__in=loose, enrollment_id=None).using_db(tx)
        for conversation in await query.order_by("id"):
            found.setdefault((conversation.learner_id, None), conversation.id)  # type: ignore[attr-defined]
    for learner_id, enrollment_id in sorted(wanted - set(found), key=str):
        created = await Conversation.create(
            learner_id=learner_id, enrollment_id=enrollment_id, status=new_status, using_db=tx
        )
        found[(learner_id, enrollment_id)] = created.id
    return found
