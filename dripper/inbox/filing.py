"""Filing learner messages: which conversation a message lands in and which drip step it answers.

The Telegram and email receivers call `record_learner_messages` after they have stored the raw
item.

One conversation per learner enrollment. A message is filed under the enrollment whose prompt
(question, quiz or check-in) was delivered to the learner most recently, and linked to that step;
a learner with no delivered prompt gets their most recent enrollment; a learner enrolled in
nothing gets a conversation of their own (enrollment None), so nothing is ever dropped.
Answering a prompt cancels its pending nudges. A new learner message reopens a closed or
snoozed conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.db import connection
from dripper.models import (
    Channel,
    Conversation,
    ConversationStatus,
    DeliveryKind,
    DeliveryState,
    Message,
    MessageDirection,
)
from dripper.store.curricula import curriculum_of
from dripper.store.sql import in_list, json_param, q, ts

PROMPT_KINDS = ("question", "quiz", "checkin")


@dataclass(frozen=True)
class AnsweredPrompt:
    enrollment_id: int
    step_id: str
    occurrence: int
    delivery_id: int


async def cancel_nudges(
    enrollment_id: int, step_id: str, now: datetime, using: BaseDBAsyncClient | None = None
) -> int:
    """The learner answered: reminders for that prompt that have not gone out are cancelled."""
    conn = using or connection()
    count, _ = await conn.execute_query(
        q(
            conn,
            "UPDATE delivery SET state = ?, last_error = ?, updated_at = ? WHERE enrollment_id = ? "
            "AND step_id = ? AND kind = ? AND state IN (?, ?)",
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
        ],
    )
    return int(count)


@dataclass(frozen=True)
class IncomingMessage:
    """A learner's message to file, as a receiver hands it over."""

    learner_id: int
    channel: Channel
    body: str
    raw_body: str | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    inbound_id: int | None = None
    flags: tuple[str, ...] = ()
    answers: AnsweredPrompt | None = None


async def record_learner_message(
    learner_id: int,
    channel: Channel,
    body: str,
    now: datetime,
    *,
    raw_body: str | None = None,
    attachments: Sequence[dict[str, Any]] = (),
    inbound_id: int | None = None,
    flags: Sequence[str] = (),
    answers: AnsweredPrompt | None = None,
) -> Message:
    """File a learner's message in the right conversation and link it to the step it answers.

    `answers` overrides the guess (an email reply carries the conversation in its token).
    """
    [message_id] = await record_learner_messages(
        [
            IncomingMessage(
                learner_id,
                channel,
                body,
                raw_body,
                tuple(attachments),
                inbound_id,
                tuple(flags),
                answers,
            )
        ],
        now,
    )
    return await Message.get(id=message_id)


async def record_learner_messages(items: Sequence[IncomingMessage], now: datetime) -> list[int]:
    """File many messages in one transaction (receivers hand over a whole round of updates);
    returns the new message ids in order. Same rules as `record_learner_message`."""
    if not items:
        return []
    prompts = await _latest_prompts({i.learner_id for i in items if i.answers is None})
    fallback = await _latest_enrollments(
        {i.learner_id for i in items if i.answers is None and i.learner_id not in prompts}
    )
    ids: list[int] = []
    placed = []
    for item in items:
        prompt = item.answers or prompts.get(item.learner_id)
        enrollment_id = prompt.enrollment_id if prompt else fallback.get(item.learner_id)
        placed.append((item, prompt, enrollment_id))
    async with in_transaction() as tx:
        conversations = await _conversation_ids(
            tx, {(item.learner_id, enrollment_id) for item, _, enrollment_id in placed}
        )
        touched: dict[int, int] = {}  # conversation -> its newest new message
        nudged: dict[tuple[int, str], None] = {}
        for item, prompt, enrollment_id in placed:
            conversation_id = conversations[(item.learner_id, enrollment_id)]
            rows = await tx.execute_query_dict(
                q(
                    tx,
                    "INSERT INTO message (conversation_id, direction, channel, body, raw_body, "
                    "attachments, step_id, inbound_id, flags, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                ),
                [
                    conversation_id,
                    MessageDirection.INBOUND.value,
                    item.channel.value,
                    item.body,
                    item.raw_body,
                    json_param(tx, list(item.attachments)),
                    prompt.step_id if prompt else None,
                    item.inbound_id,
                    json_param(tx, list(item.flags)),
                    ts(tx, now),
                ],
            )
            ids.append(int(rows[0]["id"]))
            touched[conversation_id] = ids[-1]
            if prompt is not None:
                nudged[(prompt.enrollment_id, prompt.step_id)] = None
        # A learner's message reopens a closed, snoozed or waiting conversation.
        # Never backwards: another receiver may have filed a newer message meanwhile.
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
                    newest,
                    ts(tx, now),
                    newest,
                    newest,
                    newest,
                    newest,
                    cid,
                ]
                for cid, newest in touched.items()
            ],
        )
        for enrollment_id, step_id in nudged:
            await cancel_nudges(enrollment_id, step_id, now, tx)
    return ids


async def _latest_prompts(learner_ids: set[int]) -> dict[int, AnsweredPrompt]:
    """The latest delivered prompt of each learner, with one query for all of them."""
    if not learner_ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT d.id, d.learner_id, d.enrollment_id, d.step_id, d.occurrence, "
            "e.curriculum_id FROM delivery d JOIN enrollment e ON e.id = d.enrollment_id "
            "WHERE d.state = ? AND d.kind IN (?, ?, ?) AND d.learner_id IN "
            + in_list(conn, len(learner_ids))
            + " ORDER BY d.learner_id, d.sent_at DESC, d.id DESC",
        ),
        [
            DeliveryState.SENT.value,
            DeliveryKind.STEP.value,
            DeliveryKind.NUDGE.value,
            DeliveryKind.REASK.value,
            *sorted(learner_ids),
        ],
    )
    found: dict[int, AnsweredPrompt] = {}
    for row in rows:
        learner_id = int(row["learner_id"])
        if learner_id in found:
            continue
        curriculum = await curriculum_of(int(row["curriculum_id"]))
        try:
            step = curriculum.step(str(row["step_id"]))
        except KeyError:
            continue
        if getattr(step, "kind", "") in PROMPT_KINDS:
            found[learner_id] = AnsweredPrompt(
                int(row["enrollment_id"]),
                str(row["step_id"]),
                int(row["occurrence"]),
                int(row["id"]),
            )
    return found


async def _latest_enrollments(learner_ids: set[int]) -> dict[int, int]:
    if not learner_ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT learner_id, MAX(id) AS id FROM enrollment WHERE learner_id IN "
            + in_list(conn, len(learner_ids))
            + " GROUP BY learner_id",
        ),
        sorted(learner_ids),
    )
    return {int(row["learner_id"]): int(row["id"]) for row in rows}


async def _conversation_ids(
    tx: BaseDBAsyncClient, wanted: set[tuple[int, int | None]]
) -> dict[tuple[int, int | None], int]:
    """The conversation of each (learner, enrollment) pair, created where missing."""
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
            learner_id=learner_id, enrollment_id=enrollment_id, using_db=tx
        )
        found[(learner_id, enrollment_id)] = created.id
    return found
