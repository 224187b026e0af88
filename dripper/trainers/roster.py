"""The trainers: who they are, what they follow, when they are quiet, and their own chat.

A trainer's Telegram chat is bound like a learner's, by a single-use signed start link
(`dripper trainers invite HANDLE`), with its own token purpose, so a learner's link can never
bind a trainer and the other way round. The token carries the trainer's id and invite serial;
using it bumps the serial, so a link works once, and a new link (a new phone) moves the
trainer to the new chat. A chat that belongs to a learner is refused, and a trainer's chat is
never taken for a learner's (`dripper.inbound.telegram.actions`).

A trainer hears of learners' messages from every cohort unless `follows` names some; an
assigned conversation is announced to its assignee only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from enum import StrEnum

from tortoise.transactions import in_transaction

from dripper.config import canonical_timezone
from dripper.errors import DripperError
from dripper.hints import did_you_mean
from dripper.inbox.workflow import trainer_handle
from dripper.models import Cohort, Learner, Trainer
from dripper.store.notices import bind_trainer_chat, newest_message_id
from dripper.tokens import sign, verify

TRAINER_INVITE = "trainer"
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class TrainerError(DripperError):
    """A trainer setting that cannot be used as given; the message says why."""


@dataclass(frozen=True)
class QuietHours:
    """Local times between which a trainer gets no notifications (may span midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """ "20:00-08:00" -> QuietHours(20:00, 08:00)."""
        start, sep, end = text.replace(" ", "").partition("-")
        if not sep:
            raise TrainerError(f"quiet hours {text!r}: write them as 20:00-08:00")
        return cls(_clock(start), _clock(end))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def covers(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def _clock(text: str) -> time:
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise TrainerError(f"{text!r} is not a time of day such as 08:00")
    return time(int(match.group(1)), int(match.group(2)))


def quiet_hours(trainer: Trainer) -> QuietHours | None:
    if trainer.quiet_start is None or trainer.quiet_end is None:
        return None
    return QuietHours(_clock(trainer.quiet_start), _clock(trainer.quiet_end))


def digest_time(trainer: Trainer) -> time:
    """When the trainer's digest goes out, their local time (08:00 if unreadable)."""
    try:
        return _clock(trainer.digest_at or "")
    except TrainerError:
        return time(8, 0)


async def cohort_ids(names: list[str]) -> list[int]:
    """The ids of the named cohorts; an error naming any unknown one."""
    cohorts = {cohort.name: cohort.id for cohort in await Cohort.all()}
    ids = []
    for name in names:
        if name not in cohorts:
            hint = did_you_mean(name, list(cohorts))
            raise TrainerError(f"no cohort named '{name}'{hint} (see `dripper cohort list`)")
        ids.append(cohorts[name])
    return ids


async def add_trainer(
    handle: str,
    *,
    name: str | None = None,
    email: str | None = None,
    timezone: str | None = None,
    quiet: QuietHours | None = None,
    follows: list[str] | None = None,
    digest_at: str | None = None,
    no_digest: bool = False,
) -> tuple[Trainer, bool]:
    """Create the trainer, or update the given fields of an existing one (the dashboard creates
    trainers by handle on first use). Returns (trainer, created). A new trainer hears only of
    messages that arrive from now on."""
    handle = trainer_handle(handle)
    zone = canonical_timezone(timezone) if timezone else None
    ids = await cohort_ids(follows) if follows is not None else None
    trainer = await Trainer.get_or_none(handle=handle)
    created = trainer is None
    if trainer is None:
        trainer = Trainer(handle=handle, name=name or handle, timezone=zone or "UTC")
        trainer.notified_upto = await newest_message_id()
    if name:
        trainer.name = name
    if email is not None:
        trainer.email = email.strip() or None
    if zone:
        trainer.timezone = zone
    if quiet is not None:
        trainer.quiet_start, trainer.quiet_end = f"{quiet.start:%H:%M}", f"{quiet.end:%H:%M}"
    if ids is not None:
        trainer.follows = ids
    if no_digest:
        trainer.digest_at = None
    elif digest_at is not None:
        trainer.digest_at = f"{_clock(digest_at.strip()):%H:%M}"
    await trainer.save()
    return trainer, created


async def get_trainer(handle: str) -> Trainer:
    trainer = await Trainer.get_or_none(handle=handle)
    if trainer is None:
        handles = [t.handle for t in await Trainer.all()]
        hint = did_you_mean(handle, handles)
        raise TrainerError(f"no trainer '{handle}'{hint} (add one: dripper trainers add HANDLE)")
    return trainer


def invite_token(key: bytes, trainer: Trainer) -> str:
    return sign(key, TRAINER_INVITE, trainer.id, trainer.invite_serial)


class Bound(StrEnum):
    BOUND = "bound"  # the chat is now the trainer's
    AGAIN = "again"  # the trainer's own chat opened the link again: nothing changed
    USED = "used"  # the link was used already (or a newer one was made): ask for a new one
    LEARNER_CHAT = "learner_chat"  # this chat belongs to a learner
    OTHER_TRAINER = "other_trainer"  # this chat belongs to another trainer
    INVALID = "invalid"  # not a trainer link, or its trainer is gone


@dataclass(frozen=True)
class Binding:
    outcome: Bound
    trainer: Trainer | None = None


def is_trainer_token(key: bytes, token: str) -> bool:
    return verify(key, TRAINER_INVITE, token) is not None


async def bind_chat(key: bytes, token: str, chat_id: int) -> Binding:
    """Open a trainer's invite from `chat_id`: bind the chat to the trainer, once."""
    ids = verify(key, TRAINER_INVITE, token)
    if ids is None or len(ids) != 2:
        return Binding(Bound.INVALID)
    trainer_id, serial = ids
    async with in_transaction() as tx:
        trainer = await Trainer.get_or_none(id=trainer_id, using_db=tx)
        if trainer is None:
            return Binding(Bound.INVALID)
        if trainer.telegram_chat_id == chat_id:
            return Binding(Bound.AGAIN, trainer)
        if serial != trainer.invite_serial:
            return Binding(Bound.USED, trainer)
        if await Learner.exists(telegram_chat_id=chat_id, using_db=tx):
            return Binding(Bound.LEARNER_CHAT, trainer)
        holder = await Trainer.get_or_none(telegram_chat_id=chat_id, using_db=tx)
        if holder is not None:
            return Binding(Bound.OTHER_TRAINER, holder)
        if not await bind_trainer_chat(tx, trainer.id, serial, chat_id):
            return Binding(Bound.USED, trainer)
    return Binding(Bound.BOUND, await Trainer.get(id=trainer_id))


async def trainer_of_chat(chat_id: int) -> Trainer | None:
    return await Trainer.get_or_none(telegram_chat_id=chat_id)


async def trainer_chat_ids(chat_ids: list[int]) -> dict[int, Trainer]:
    """The trainers among these chats, by chat id."""
    if not chat_ids:
        return {}
    found = await Trainer.filter(telegram_chat_id__in=chat_ids)
    return {int(trainer.telegram_chat_id or 0): trainer for trainer in found}


def describe(trainer: Trainer, cohorts: dict[int, str]) -> dict[str, object]:
    """One trainer as `dripper trainers list` shows it."""
    quiet = quiet_hours(trainer)
    return {
        "handle": trainer.handle,
        "name": trainer.name,
        "email": trainer.email,
        "timezone": trainer.timezone,
        "telegram": "connected" if trainer.telegram_chat_id is not None else "not connected",
        "quiet": str(quiet) if quiet else None,
        "follows": [cohorts.get(i, f"#{i}") for i in trainer.follows],  # []: every cohort
        "notify": trainer.notify,
        "digest_at": trainer.digest_at,
    }
