"""A learner's data rights (GDPR articles 15 and 17): everything stored about them, and erasure.

`export_learner` gathers every row about the learner: the learner, enrollments (with cohort
and curriculum), deliveries, quiz and check-in answers, conversations with every message (the
learner's and the trainers'), invites, and the raw Telegram updates and emails received from
them (text, or base64 when not UTF-8).

`erase_learner` deletes the personal data and keeps what the reports count, anonymous:
- the learner row stays as "(erased)": no name, address, Telegram chat, time zone, language or
  attributes; opted out, so nothing is ever sent again; `erased_at` says when;
- enrollments not finished are cancelled with everything not sent yet; deliveries keep their
  step, state and times but lose their payload and error texts (which may quote an address);
- messages keep their place and time but lose their text, raw text and attachments;
  conversations are closed and unlabelled;
- raw updates and emails from the learner keep their id (so a mailbox re-read does not store
  them again) but lose their bytes;
- quiz and check-in answers stay as they are (a choice and whether it was right);
- invites are deleted, and so are the files they sent (the media folder's learner-<id>).
All of it in one transaction, logged with the counts. Mail in the IMAP mailbox and chats on
Telegram are outside dripper: the operator deletes those there.

Raw items are found by the messages filed from them, by the learner named in their processing
note, by the learner's address as an email's From, Sender or Reply-To (not To or Cc: those
name other people), and by the learner's chat id as a Telegram update's own chat or sender
(not someone it forwards, quotes or mentions); each is read in chunks, once.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from dripper import oplog
from dripper.media.folder import MediaFolder
from dripper.models import (
    Channel,
    Conversation,
    ConversationLabel,
    ConversationStatus,
    Delivery,
    Enrollment,
    EnrollmentState,
    InboundItem,
    Invite,
    Learner,
    Message,
    QuizAnswer,
    ReadMark,
)
from dripper.store.enrollments import cancel_enrollments

log = logging.getLogger("dripper.learners.privacy")

ERASED = "(erased)"
SCAN_CHUNK = 1000


@dataclass(frozen=True)
class Erasure:
    learner_id: int
    enrollments_cancelled: int
    deliveries_cancelled: int
    deliveries_cleared: int
    messages_erased: int
    conversations_closed: int
    raw_items_erased: int
    invites_deleted: int
    files_deleted: int = 0


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _payload(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


async def _raw_items(learner: Learner, message_item_ids: set[int]) -> list[InboundItem]:
    """Every raw update or email that came from the learner (see the module docstring)."""
    note = re.compile(rf"\blearner {learner.id}\b")
    address = learner.email.lower() if learner.email else None
    chat = learner.telegram_chat_id
    found: list[InboundItem] = []
    last = 0
    while True:
        chunk = await InboundItem.filter(id__gt=last).order_by("id").limit(SCAN_CHUNK)
        if not chunk:
            return found
        last = chunk[-1].id
        for item in chunk:
            data = bytes(item.payload)
            if item.id in message_item_ids or note.search(item.error or ""):
                found.append(item)
            elif item.channel is Channel.EMAIL and address is not None:
                if address in _senders(data):
                    found.append(item)
            elif (
                item.channel is Channel.TELEGRAM
                and chat is not None
                and chat in _update_people(data)
            ):
                found.append(item)


def _senders(data: bytes) -> set[str]:
    """The addresses an email is from (From, Sender, Reply-To), lower-case: not its To or Cc,
    which name other people."""
    from email.parser import BytesHeaderParser
    from email.utils import getaddresses

    head = BytesHeaderParser().parsebytes(data)
    values = [str(v) for name in ("from", "sender", "reply-to") for v in head.get_all(name, [])]
    return {address.lower() for _, address in getaddresses(values) if address}


def _update_people(data: bytes) -> set[int]:
    """The chat and sender ids of a Telegram update's own message, button press or member
    change: not the people it forwards, quotes or mentions."""
    try:
        update = json.loads(data)
    except ValueError:
        return set()
    ids: set[int] = set()
    if not isinstance(update, dict):
        return ids
    for key in ("message", "edited_message", "callback_query", "my_chat_member"):
        event = update.get(key)
        if not isinstance(event, dict):
            continue
        for part in (event, event.get("message")):
            if not isinstance(part, dict):
                continue
            for holder in ("chat", "from"):
                value = part.get(holder)
                if isinstance(value, dict) and isinstance(value.get("id"), int):
                    ids.add(value["id"])
    return ids


async def export_learner(learner_id: int) -> dict[str, Any]:
    """Every stored datum about the learner, as JSON-ready data."""
    learner = await Learner.get(id=learner_id)
    enrollments = await Enrollment.filter(learner_id=learner_id).prefetch_related(
        "cohort", "curriculum"
    )
    conversations = await Conversation.filter(learner_id=learner_id).order_by("id")
    messages = (
        await Message.filter(conversation__learner_id=learner_id)
        .prefetch_related("author")
        .order_by("id")
    )
    item_ids = {m.inbound_id for m in messages if m.inbound_id is not None}  # type: ignore[attr-defined]
    raw = await _raw_items(learner, item_ids)
    return {
        "learner": {
            "id": learner.id,
            "first_name": learner.first_name,
            "last_name": learner.last_name,
            "email": learner.email,
            "telegram_username": learner.telegram_username,
            "telegram_chat_id": learner.telegram_chat_id,
            "timezone": learner.timezone,
            "language": learner.language,
            "attributes": learner.attributes,
            "email_status": learner.email_status.value,
            "telegram_status": learner.telegram_status.value,
            "soft_bounces": learner.soft_bounces,
            "paused_until": _when(learner.paused_until),
            "opted_out_at": _when(learner.opted_out_at),
            "erased_at": _when(learner.erased_at),
            "created_at": _when(learner.created_at),
            "updated_at": _when(learner.updated_at),
        },
        "enrollments": [
            {
                "id": e.id,
                "cohort": e.cohort.name,
                "course_end": _when(e.cohort.course_end),
                "curriculum": e.curriculum.key,
                "curriculum_title": e.curriculum.title,
                "state": e.state.value,
                "anchor_at": _when(e.anchor_at),
                "paused_at": _when(e.paused_at),
                "created_at": _when(e.created_at),
            }
            for e in enrollments
        ],
        "deliveries": [
            {
                "id": d.id,
                "enrollment_id": d.enrollment_id,  # type: ignore[attr-defined]
                "kind": d.kind.value,
                "step": d.step_id,
                "occurrence": d.occurrence,
                "state": d.state.value,
                "channel": d.channel.value if d.channel else None,
                "due_at": _when(d.due_at),
                "sent_at": _when(d.sent_at),
                "attempts": d.attempts,
                "provider_message_id": d.provider_message_id,
                "last_error": d.last_error,
                "payload": d.payload,
            }
            for d in await Delivery.filter(learner_id=learner_id).order_by("id")
        ],
        "answers": [
            {
                "enrollment_id": a.enrollment_id,  # type: ignore[attr-defined]
                "step": a.step_id,
                "occurrence": a.occurrence,
                "choices": a.choices,
                "correct": a.correct,
                "channel": a.channel.value if a.channel else None,
                "answered_at": _when(a.answered_at),
            }
            for a in await QuizAnswer.filter(enrollment__learner_id=learner_id).order_by("id")
        ],
        "conversations": [
            {
                "id": c.id,
                "enrollment_id": c.enrollment_id,  # type: ignore[attr-defined]
                "status": c.status.value,
                "created_at": _when(c.created_at),
                "labels": await ConversationLabel.filter(conversation_id=c.id).values_list(
                    "label", flat=True
                ),
                "messages": [
                    {
                        "id": m.id,
                        "direction": m.direction.value,
                        "channel": m.channel.value if m.channel else None,
                        "author": m.author.handle if m.author else None,
                        "body": m.body,
                        "raw_body": m.raw_body,
                        "attachments": m.attachments,
                        "step": m.step_id,
                        "flags": m.flags,
                        "created_at": _when(m.created_at),
                    }
                    for m in messages
                    if m.conversation_id == c.id  # type: ignore[attr-defined]
                ],
            }
            for c in conversations
        ],
        "invites": [
            {
                "id": i.id,
                "created_at": _when(i.created_at),
                "used_at": _when(i.used_at),
                "used_by_chat_id": i.used_by_chat_id,
            }
            for i in await Invite.filter(learner_id=learner_id).order_by("id")
        ],
        "received": [
            {
                "id": item.id,
                "channel": item.channel.value,
                "received_at": _when(item.received_at),
                "state": item.state.value,
                "note": item.error,
                **_payload(bytes(item.payload)),
            }
            for item in raw
        ],
    }


def _ids(rows: Iterator[Any] | list[Any]) -> list[int]:
    return [int(row.id) for row in rows]


async def erase_learner(
    learner_id: int, now: datetime, *, media: MediaFolder | None = None
) -> Erasure:
    """Delete the learner's personal data, keep the anonymous counts (see the module docstring);
    with `media`, the files they sent go too."""
    learner = await Learner.get(id=learner_id)
    message_items = set(
        await Message.filter(
            conversation__learner_id=learner_id, inbound_id__not_isnull=True
        ).values_list("inbound_id", flat=True)
    )
    raw = _ids(await _raw_items(learner, {int(i) for i in message_items if i is not None}))  # type: ignore[call-overload]
    open_enrollments = await Enrollment.filter(
        learner_id=learner_id,
        state__in=[EnrollmentState.ACTIVE, EnrollmentState.PAUSED],
    ).values_list("id", flat=True)
    conversation_ids = list(
        await Conversation.filter(learner_id=learner_id).values_list("id", flat=True)
    )
    # The files first: if that fails, nothing is erased yet and the erasure can be run again
    # (afterwards the learner's address is gone). Again after the commit, for a download
    # that finished in between.
    files = media.erase_learner(learner_id) if media is not None else 0
    async with in_transaction() as tx:
        enrollments, cancelled = await cancel_enrollments(
            tx,
            [int(i) for i in open_enrollments],  # type: ignore[call-overload]
            "learner erased",
            now,
        )
        cleared = (
            await Delivery.filter(learner_id=learner_id)
            .using_db(tx)
            .update(payload={}, updated_at=now)
        )
        await (
            Delivery.filter(learner_id=learner_id, last_error__not_isnull=True)
            .using_db(tx)
            .update(last_error=ERASED)
        )
        erased_messages = (
            await Message.filter(conversation_id__in=conversation_ids)
            .using_db(tx)
            .update(body=ERASED, raw_body=None, attachments=[])
        )
        await ConversationLabel.filter(conversation_id__in=conversation_ids).using_db(tx).delete()
        await ReadMark.filter(conversation_id__in=conversation_ids).using_db(tx).delete()
        closed = (
            await Conversation.filter(id__in=conversation_ids)
            .using_db(tx)
            .update(
                status=ConversationStatus.CLOSED,
                assignee_id=None,
                snoozed_until=None,
                updated_at=now,
            )
        )
        erased_items = (
            await InboundItem.filter(id__in=raw).using_db(tx).update(payload=b"", error=ERASED)
        )
        invites = await Invite.filter(learner_id=learner_id).using_db(tx).delete()
        await (
            Learner.filter(id=learner_id)
            .using_db(tx)
            .update(
                first_name=ERASED,
                last_name="",
                email=None,
                telegram_username=None,
                telegram_chat_id=None,
                timezone=None,
                language=None,
                attributes={},
                paused_until=None,
                opted_out_at=learner.opted_out_at or now,
                erased_at=now,
                media_bytes=0,
                updated_at=now,
            )
        )
    if media is not None:
        try:
            files += media.erase_learner(learner_id)
        except OSError:
            log.exception("files of erased learner %d could not be deleted", learner_id)
    erasure = Erasure(
        learner_id,
        enrollments,
        cancelled,
        int(cleared),
        int(erased_messages),
        int(closed),
        int(erased_items),
        int(invites),
        files,
    )
    oplog.event(
        log,
        "learner-erased",
        learner=learner_id,
        **{k: v for k, v in erasure.__dict__.items() if k != "learner_id"},
    )
    return erasure


def export_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
