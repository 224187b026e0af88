"""The shared inbox, core: where a learner's message lands and which drip step it answers.

No UI code and no channel code: the Telegram and email receivers call `record_learner_message`
after they have stored the raw item, and the TUI reads conversations and messages.

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
    Enrollment,
    Message,
    MessageDirection,
)
from dripper.store.sql import q, ts
from dripper.versions import curriculum_of

PROMPT_KINDS = ("question", "quiz", "checkin")


@dataclass(frozen=True)
class AnsweredPrompt:
    enrollment_id: int
    step_id: str
    occurrence: int
    delivery_id: int


async def latest_prompt(learner_id: int) -> AnsweredPrompt | None:
    """The prompt most recently delivered to the learner, across all their enrollments."""
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT d.id, d.enrollment_id, d.step_id, d.occurrence, e.curriculum_id "
            "FROM delivery d JOIN enrollment e ON e.id = d.enrollment_id "
            "WHERE d.learner_id = ? AND d.state = ? AND d.kind IN (?, ?, ?) "
            "ORDER BY d.sent_at DESC, d.id DESC LIMIT 20",
        ),
        [
            learner_id,
            DeliveryState.SENT.value,
            DeliveryKind.STEP.value,
            DeliveryKind.NUDGE.value,
            DeliveryKind.REASK.value,
        ],
    )
    for row in rows:
        curriculum = await curriculum_of(int(row["curriculum_id"]))
        try:
            step = curriculum.step(str(row["step_id"]))
        except KeyError:
            continue
        if getattr(step, "kind", "") in PROMPT_KINDS:
            return AnsweredPrompt(
                int(row["enrollment_id"]),
                str(row["step_id"]),
                int(row["occurrence"]),
                int(row["id"]),
            )
    return None


async def conversation_for(learner_id: int, enrollment_id: int | None) -> Conversation:
    """The conversation of an enrollment (or the learner's own, without one), created once."""
    if enrollment_id is not None:
        found = await Conversation.get_or_none(enrollment_id=enrollment_id)
        if found is not None:
            return found
        return await Conversation.create(learner_id=learner_id, enrollment_id=enrollment_id)
    found = await Conversation.filter(learner_id=learner_id, enrollment_id=None).first()
    return found or await Conversation.create(learner_id=learner_id)


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
    prompt = answers or await latest_prompt(learner_id)
    enrollment_id = prompt.enrollment_id if prompt else None
    if enrollment_id is None:
        latest = await Enrollment.filter(learner_id=learner_id).order_by("-created_at").first()
        enrollment_id = latest.id if latest else None
    async with in_transaction() as tx:
        conversation = await conversation_for(learner_id, enrollment_id)
        message = await Message.create(
            conversation_id=conversation.id,
            direction=MessageDirection.INBOUND,
            channel=channel,
            body=body,
            raw_body=raw_body,
            attachments=list(attachments),
            step_id=prompt.step_id if prompt else None,
            inbound_id=inbound_id,
            flags=list(flags),
            created_at=now,
        )
        conversation.last_message_at = now
        if conversation.status in (ConversationStatus.CLOSED, ConversationStatus.SNOOZED):
            conversation.status = ConversationStatus.OPEN
            conversation.snoozed_until = None
        if conversation.status is ConversationStatus.WAITING:
            conversation.status = ConversationStatus.OPEN
        await conversation.save()
        if prompt is not None:
            await cancel_nudges(prompt.enrollment_id, prompt.step_id, now, tx)
    return message
