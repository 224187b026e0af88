"""Working the inbox: who the trainer is, assignment, status, snoozing, labels and read marks.

Every change moves `conversation.updated_at`, which is how a dashboard in another terminal sees
it. Changes are single statements, so two trainers acting at once never undo each other's
unrelated work: one assigning while the other labels keeps both.
"""

from __future__ import annotations

import getpass
import re
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from dripper.errors import DripperError
from dripper.models import ConversationStatus, Trainer
from dripper.store.conversations import (
    label_conversation,
    mark_read_in,
    unlabel_conversation,
    unread_again,
    update_conversation,
)

_HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LABEL = re.compile(r"^[^\s,\x00-\x1f\x7f-\x9f][^,\x00-\x1f\x7f-\x9f]{0,63}$")


class InboxError(DripperError):
    """A trainer's action that cannot be done as asked; the message says why."""


def trainer_handle(configured: str | None) -> str:
    """Who sits at the keyboard: `trainer` in dripper.toml or DRIPPER_TRAINER, else the login."""
    handle = (configured or getpass.getuser() or "trainer").strip()
    if not _HANDLE.fullmatch(handle):
        raise InboxError(
            f"trainer handle {handle!r} is not usable: use letters, digits, '.', '_' or '-' "
            "(set `trainer` in dripper.toml or DRIPPER_TRAINER)"
        )
    return handle


async def ensure_trainer(handle: str, *, timezone: str | None = None) -> Trainer:
    """The trainer row for a handle, created on first use."""
    trainer, created = await Trainer.get_or_create(
        handle=handle, defaults={"name": handle, "timezone": timezone or "UTC"}
    )
    if not created and timezone and trainer.timezone != timezone:
        trainer.timezone = timezone
        await trainer.save(update_fields=["timezone"])
    return trainer


async def trainers() -> list[Trainer]:
    return await Trainer.all().order_by("handle")


async def assign(conversation_id: int, trainer_id: int | None, now: datetime) -> None:
    """Give the conversation to a trainer, or take it back to unassigned (None)."""
    await _update(conversation_id, now, assignee_id=trainer_id)


async def close(conversation_id: int, now: datetime) -> None:
    await _set_status(conversation_id, ConversationStatus.CLOSED, now)


async def reopen(conversation_id: int, now: datetime) -> None:
    await _set_status(conversation_id, ConversationStatus.OPEN, now)


async def wait_on_learner(conversation_id: int, now: datetime) -> None:
    await _set_status(conversation_id, ConversationStatus.WAITING, now)


async def snooze(conversation_id: int, until: datetime, now: datetime) -> None:
    """Hide the conversation until `until`; it counts as open again from then, and at once if
    the learner writes."""
    if until <= now:
        raise InboxError("a snooze must end in the future")
    await _update(conversation_id, now, status=ConversationStatus.SNOOZED, snoozed_until=until)


async def _set_status(conversation_id: int, status: ConversationStatus, now: datetime) -> None:
    await _update(conversation_id, now, status=status, snoozed_until=None)


async def _update(conversation_id: int, now: datetime, **columns: object) -> None:
    if not await update_conversation(conversation_id, now.astimezone(UTC), **columns):
        raise InboxError(f"conversation {conversation_id} does not exist")


def normalise_label(label: str) -> str:
    cleaned = " ".join(label.split()).lower()
    if not _LABEL.fullmatch(cleaned):
        raise InboxError(f"label {label!r} must be 1 to 64 characters, without commas")
    return cleaned


async def add_label(conversation_id: int, label: str, now: datetime) -> str:
    """Label a conversation; labelling twice is harmless. Returns the label as stored."""
    cleaned = normalise_label(label)
    await label_conversation(conversation_id, cleaned, now.astimezone(UTC))
    return cleaned


async def remove_label(conversation_id: int, label: str, now: datetime) -> None:
    await unlabel_conversation(conversation_id, normalise_label(label), now.astimezone(UTC))


async def mark_read(conversation_id: int, trainer_id: int, *, upto: int | None = None) -> None:
    """The trainer has seen the conversation up to message `upto` (default: everything so
    far), for them only."""
    async with in_transaction() as tx:
        await mark_read_in(tx, conversation_id, trainer_id, upto=upto)


async def mark_unread(conversation_id: int, trainer_id: int) -> None:
    """Flag the conversation unread again for this trainer (its newest learner message)."""
    await unread_again(conversation_id, trainer_id)
