"""Trainer replies and notes: kept in the conversation, replies queued for the dispatcher.

A reply is a Message and an outbound REPLY Delivery written in one transaction, so it goes out
through the same dispatcher, rate limits and retries as the drip, on the channel of the learner
message it answers. Notes are Messages that are never sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from dripper.errors import DripperError
from dripper.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    DeliveryKind,
    InboundItem,
    Message,
    MessageDirection,
)
from dripper.schedule.keys import reply_key
from dripper.store.conversations import mark_read_in, touch_conversation


class EmptyMessageError(DripperError, ValueError):
    """A reply or note with nothing but white space in it."""


async def reply_to_learner(
    conversation_id: int,
    body: str,
    now: datetime,
    *,
    author_id: int | None = None,
    answering: int | None = None,
) -> Message:
    """A trainer's answer: kept in the conversation and queued as a delivery, so it goes out
    through the dispatcher on the channel of the message it answers (the latest learner message
    unless `answering` names one). Two trainers answering at once both get their reply kept.

    The caller wakes the dispatcher (`dripper.engine.wake.notify_wake`) so the reply leaves at once.
    """
    body = _checked(body)
    now = now.astimezone(UTC)  # the outbox compares times as UTC text on SQLite
    conversation = await Conversation.get(id=conversation_id)
    query = Message.filter(conversation_id=conversation_id, direction=MessageDirection.INBOUND)
    if answering is not None:
        query = query.filter(id=answering)
    answered = await query.order_by("-created_at", "-id").first()
    channel = answered.channel if answered is not None else None
    async with in_transaction() as tx:
        message = await Message.create(
            conversation_id=conversation_id,
            direction=MessageDirection.OUTBOUND,
            channel=channel,
            author_id=author_id,
            body=body,
            step_id=answered.step_id if answered else None,
            in_reply_to_id=answered.id if answered else None,
            created_at=now,
            using_db=tx,
        )
        delivery = await Delivery.create(
            business_key=reply_key(message.id),
            enrollment_id=conversation.enrollment_id,  # type: ignore[attr-defined]
            learner_id=conversation.learner_id,  # type: ignore[attr-defined]
            kind=DeliveryKind.REPLY,
            step_id=message.step_id,
            channel_preference=channel.value if channel else "any",
            due_at=now,
            available_at=now,
            payload={"message_id": message.id},
            using_db=tx,
        )
        message.delivery_id = delivery.id
        await message.save(using_db=tx, update_fields=["delivery_id"])
        await touch_conversation(
            tx,
            conversation_id,
            message.id,
            now,
            ConversationStatus.WAITING,
            answered_id=answered.id if answered is not None else None,
        )
        if author_id is not None and answered is not None:
            # Read up to what was answered: a learner message that arrived since stays unread.
            await mark_read_in(tx, conversation_id, author_id, upto=answered.id)
    return message


async def add_note(conversation_id: int, body: str, now: datetime, *, author_id: int) -> Message:
    """An internal note for the other trainers; never sent to the learner."""
    body = _checked(body)
    now = now.astimezone(UTC)
    async with in_transaction() as tx:
        message = await Message.create(
            conversation_id=conversation_id,
            direction=MessageDirection.NOTE,
            author_id=author_id,
            body=body,
            created_at=now,
            using_db=tx,
        )
        await touch_conversation(tx, conversation_id, message.id, now, None)
    return message


def _checked(body: str) -> str:
    body = body.strip("\n")
    if not body.strip():
        raise EmptyMessageError("the message is empty")
    return body


@dataclass(frozen=True)
class ReplyContext:
    """What sending a trainer's reply needs: its text, and the email thread it continues."""

    body: str
    subject: str
    in_reply_to: str | None
    references: tuple[str, ...]


_HEADER = re.compile(
    rb"(?im)^(message-id|subject|references|in-reply-to):[ \t]*(.*(?:\r?\n[ \t].*)*)"
)


async def reply_context(message_id: int, default_subject: str) -> ReplyContext:
    """The reply's body, and, when it answers an email, that email's Message-ID, References and
    Subject, read from the raw message as it arrived (a mail client threads on them)."""
    message = await Message.get(id=message_id)
    if message.in_reply_to_id is not None:  # type: ignore[attr-defined]
        answered = await Message.get(id=message.in_reply_to_id)  # type: ignore[attr-defined]
        if answered.inbound_id is not None and answered.channel is Channel.EMAIL:  # type: ignore[attr-defined]
            return await email_thread(answered.inbound_id, message.body, default_subject)  # type: ignore[attr-defined]
    return ReplyContext(message.body, default_subject, None, ())


async def email_thread(inbound_id: int, body: str, default_subject: str) -> ReplyContext:
    """`body` as an answer to the email received as `inbound_id`: its Message-ID, References
    and Subject, read from the raw message as it arrived (a mail client threads on them)."""
    item = await InboundItem.get_or_none(id=inbound_id)
    if item is None:
        return ReplyContext(body, default_subject, None, ())
    headers = _headers(bytes(item.payload))
    return ReplyContext(
        body,
        headers.get("subject") or default_subject,
        headers.get("message-id"),
        tuple(headers.get("references", "").split()),
    )


def _headers(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found: dict[str, str] = {}
    for match in _HEADER.finditer(head):
        name = match.group(1).decode("ascii").lower()
        value = re.sub(rb"\r?\n[ \t]+", b" ", match.group(2)).decode("utf-8", "replace").strip()
        found.setdefault(name, _decode_words(value) if name == "subject" else value)
    return found


def _decode_words(value: str) -> str:
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        return value
