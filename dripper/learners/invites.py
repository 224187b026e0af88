"""Invite links: single-use signed start tokens that bind a learner's Telegram chat.

A trainer hands each learner `https://t.me/<bot>?start=<token>`. The token is an HMAC-signed
`Invite` id (`tokens.sign(key, "invite", id)`: 18-21 characters of lowercase base32, inside
Telegram's start payload alphabet), so it cannot be guessed or altered; the database makes it
single-use: the first chat that opens it binds the learner, the same chat opening it again is
harmless, and any other chat is refused. A learner has at most one unused invite at a time, so
printing the links twice hands out the same link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tortoise.transactions import in_transaction

from dripper.models import Invite, Learner, Reachability
from dripper.store.learners import claim_invite
from dripper.store.outbox import release_waiting_for_chat
from dripper.tokens import sign, verify

INVITE = "invite"


def invite_token(key: bytes, invite_id: int) -> str:
    return sign(key, INVITE, invite_id)


def invite_id_of(key: bytes, token: str) -> int | None:
    """The invite id a genuine token carries, else None."""
    ids = verify(key, INVITE, token)
    if ids is None or len(ids) != 1:
        return None
    return ids[0]


def start_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username.removeprefix('@')}?start={token}"


async def invites_for(learners: Sequence[Learner]) -> dict[int, Invite]:
    """Each learner's unused invite, created for those who have none; keyed by learner id."""
    ids = [learner.id for learner in learners]
    found: dict[int, Invite] = {}
    for invite in await Invite.filter(learner_id__in=ids, used_by_chat_id=None).order_by("id"):
        found.setdefault(invite.learner_id, invite)  # type: ignore[attr-defined]
    for learner_id in ids:
        if learner_id not in found:
            found[learner_id] = await Invite.create(learner_id=learner_id)
    return found


class Redeemed(StrEnum):
    BOUND = "bound"  # the chat now belongs to the learner
    AGAIN = "again"  # the same chat opened its link again: nothing changed
    USED_ELSEWHERE = "used_elsewhere"  # another chat used this link first
    CHAT_TAKEN = "chat_taken"  # this chat already belongs to another learner
    INVALID = "invalid"  # forged, altered, signed with another key, or its learner is gone


@dataclass(frozen=True)
class Redemption:
    outcome: Redeemed
    learner: Learner | None = None


async def redeem(key: bytes, token: str, chat_id: int, now: datetime) -> Redemption:
    """Open an invite from `chat_id`: bind the chat to the invite's learner, at most once.

    Binding also marks the learner reachable on Telegram, clears an earlier opt-out (opening the
    link again is asking for the messages), and makes deliveries that were waiting for the
    learner to start the bot due now.
    """
    invite_id = invite_id_of(key, token)
    if invite_id is None:
        return Redemption(Redeemed.INVALID)
    async with in_transaction() as tx:
        invite = await Invite.get_or_none(id=invite_id, using_db=tx)
        if invite is None:
            return Redemption(Redeemed.INVALID)
        learner = await Learner.get(id=invite.learner_id, using_db=tx)  # type: ignore[attr-defined]
        if invite.used_by_chat_id is not None:
            if invite.used_by_chat_id == chat_id and learner.telegram_chat_id == chat_id:
                return Redemption(Redeemed.AGAIN, learner)
            return Redemption(Redeemed.USED_ELSEWHERE, learner)
        holder = await Learner.get_or_none(telegram_chat_id=chat_id, using_db=tx)
        if holder is not None and holder.id != learner.id:
            return Redemption(Redeemed.CHAT_TAKEN, holder)
        claimed = await claim_invite(tx, invite_id, chat_id, now)
        if not claimed:
            return Redemption(Redeemed.USED_ELSEWHERE, learner)
        learner.telegram_chat_id = chat_id
        learner.telegram_status = Reachability.OK
        learner.opted_out_at = None
        await learner.save(
            using_db=tx,
            update_fields=["telegram_chat_id", "telegram_status", "opted_out_at", "updated_at"],
        )
        await release_waiting_for_chat(tx, learner.id, now)
    return Redemption(Redeemed.BOUND, learner)
