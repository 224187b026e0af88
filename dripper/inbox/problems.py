"""What needs a trainer's look, and what they do about it (the dashboard's Problems view).

Three kinds of problem, each newest first:

- a **delivery** that failed, was skipped as too late, or whose outcome is unknown
  (`uncertain`: the request was written, no answer came; the learner may or may not have it);
- an **inbound** item (a Telegram update, an email) stored but not filed: unreadable, from an
  unknown sender, a bounce that names no message of ours, a processing failure;
- an enrollment the planner cannot **plan** (it tries again every hour).

The actions, each applied only while the problem is still the one the trainer saw (another
trainer or `dripper run` may have moved on; `ProblemGone` says so):

- **retry**: an inbound item is processed again by `dripper run`, as of the time it arrived
  (after the trainer added the unknown sender as a learner, say). Every email can be retried;
  a Telegram update only when its processing failed, for one that was handled (an invalid
  invite link) had its answer sent, which a retry would send again. An item already filed in a
  conversation, or never fetched, can only be dismissed. An enrollment is planned at the
  planner's next pass instead of within the hour;
- **resend**: a failed, uncertain or skipped delivery is queued again, due now, with every
  attempt and no expiry (the trainer chose to send it late); not for a cancelled or completed
  enrollment. For an uncertain one the learner may get it twice: the dashboard asks first;
- **mark sent**: an uncertain delivery the learner did get (they said so) is recorded as sent.
  No reminder is planned for it: the trainer knows because the learner showed they have it;
- **dismiss**: seen and let be. Nothing is deleted: the item or delivery stays, unlisted.

Not listed: steps `dripper apply` added for learners already past them (skipped by the
trainer's own doing), and plan errors of enrollments that are not active.

The caller wakes `dripper run` afterwards (`dripper.engine.wake`): for received items to
process when `Done.reprocess`, else for work to send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from dripper.errors import DripperError
from dripper.inbound.email.parse import decode_bytes, parse_mail
from dripper.models import Channel, DeliveryState, EnrollmentState
from dripper.store import problems as store
from dripper.store.inbound import FILING_FAILED, PROCESSING_FAILED
from dripper.store.sql import as_datetime

HEAD_BYTES = 65_536  # of an email: its header block, however many hops wrote to it
TELEGRAM_BYTES = 1_000_000  # of an update: all of it (Telegram's are a few KB)
_RETRY_TELEGRAM = (PROCESSING_FAILED, FILING_FAILED)
RAW_LIMIT = 200_000  # characters of a raw item shown at most
UNFETCHABLE = "unfetchable:"  # the external id of a message the IMAP server would not send


class ProblemKind(StrEnum):
    DELIVERY = "delivery"
    INBOUND = "inbound"
    PLAN = "plan"


class Action(StrEnum):
    RETRY = "retry"
    RESEND = "resend"
    MARK_SENT = "mark sent"
    DISMISS = "dismiss"


class ProblemGone(DripperError):
    """The action does not apply (any more): someone else acted, or it cannot be done."""


@dataclass(frozen=True)
class Problem:
    """One thing that needs a look, as the Problems view lists it."""

    kind: ProblemKind
    id: int  # the delivery, inbound item or enrollment
    at: datetime | None
    who: str  # the learner's name; for an inbound item, its sender as it says
    what: str  # the step (or kind); for an inbound item, its subject or text
    state: str  # failed, uncertain, skipped; flagged; unplannable
    reason: str
    actions: tuple[Action, ...]
    cohort: str | None = None
    channel: str | None = None
    filed: bool = False  # an inbound item already in a conversation (too large, say)
    enrollment_state: str | None = None  # of a delivery's enrollment

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.id}"


@dataclass(frozen=True)
class Done:
    """What an action did, for the trainer, and which wake-up `dripper run` needs."""

    text: str
    reprocess: bool = False  # received items to process (else: work to send)


async def count_problems() -> int:
    """How many problems `list_problems` would list without a limit."""
    return await store.count_problems()


async def list_problems(limit: int = 200) -> list[Problem]:
    """Deliveries first (the learner waits for them), then inbound items, then plans."""
    deliveries = [_delivery(row) for row in await store.problem_deliveries(limit)]
    items = await store.flagged_items(limit)
    emails = [int(row["id"]) for row in items if row["channel"] == Channel.EMAIL.value]
    others = [int(row["id"]) for row in items if row["channel"] != Channel.EMAIL.value]
    heads = await store.item_heads(emails, HEAD_BYTES)
    heads.update(await store.item_heads(others, TELEGRAM_BYTES))
    inbound = [_item(row, heads.get(int(row["id"]), b"")) for row in items]
    plans = [_plan(row) for row in await store.unplannable(limit)]
    return [*deliveries, *inbound, *plans]


def _delivery(row: dict[str, Any]) -> Problem:
    state = str(row["state"])
    # A cancelled or completed enrollment sends nothing more: resending would do nothing.
    ended = row["enrollment_state"] in (EnrollmentState.CANCELLED, EnrollmentState.COMPLETED)
    actions = [] if ended else [Action.RESEND]
    if state == DeliveryState.UNCERTAIN.value:
        actions.append(Action.MARK_SENT)
    actions.append(Action.DISMISS)
    what = str(row["step"] or row["kind"])
    if row["kind"] not in ("step", None) and row["step"]:
        what = f"{row['step']} ({row['kind']})"
    return Problem(
        ProblemKind.DELIVERY,
        int(row["id"]),
        as_datetime(row["at"]),
        str(row["learner"] or "(no name)"),
        what,
        state,
        str(row["reason"] or "no reason recorded"),
        tuple(actions),
        cohort=row["cohort"],
        channel=row["channel"],
        enrollment_state=row["enrollment_state"],
    )


def _item(row: dict[str, Any], head: bytes) -> Problem:
    channel = str(row["channel"])
    who, what = describe_item(channel, head)
    filed = bool(row["filed"])
    unfetchable = str(row["external_id"]).startswith(UNFETCHABLE)
    reason = str(row["reason"] or "")
    # Processing an email again has no effect outside the database. A Telegram update that was
    # handled (an invalid invite link, say) had its answer sent already: only a failure is
    # worth another try, or the learner would get that answer twice.
    retry = channel == Channel.EMAIL.value or reason.startswith(_RETRY_TELEGRAM)
    actions = (
        (Action.RETRY, Action.DISMISS)
        if retry and not (filed or unfetchable)
        else (Action.DISMISS,)
    )
    return Problem(
        ProblemKind.INBOUND,
        int(row["id"]),
        as_datetime(row["at"]),
        who,
        what,
        "flagged",
        str(row["reason"] or "no reason recorded"),
        actions,
        channel=channel,
        filed=filed,
    )


def _plan(row: dict[str, Any]) -> Problem:
    return Problem(
        ProblemKind.PLAN,
        int(row["id"]),
        None,
        str(row["learner"] or "(no name)"),
        "planning",
        "unplannable",
        str(row["reason"]),
        (Action.RETRY,),
        cohort=row["cohort"],
    )


def describe_item(channel: str, head: bytes) -> tuple[str, str]:
    """(sender, subject or text) of a raw inbound item as far as its first bytes tell; never
    raises, whatever the bytes."""
    if channel == Channel.EMAIL.value:
        mail = parse_mail(_header_block(head))
        sender = (
            " ".join(filter(None, (mail.from_name, f"<{mail.from_address}>")))
            if (mail.from_address)
            else mail.from_name
        )
        return sender or "(no sender)", mail.subject or "(no subject)"
    try:
        update = json.loads(head)
    except ValueError:
        return "(unreadable)", "(not JSON)"
    return _telegram_sender(update), _telegram_text(update)


def _header_block(head: bytes) -> bytes:
    """An email's header block (its body, perhaps cut off, would only be parsed for nothing)."""
    ends = [at for at in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if at >= 0]
    return head[: min(ends)] + b"\r\n\r\n" if ends else head


def _telegram_part(update: Any) -> dict[str, Any]:
    if not isinstance(update, dict):
        return {}
    for name in ("message", "edited_message", "callback_query", "my_chat_member"):
        part = update.get(name)
        if isinstance(part, dict):
            return part
    return {}


def _telegram_sender(update: Any) -> str:
    sender = _telegram_part(update).get("from")
    if not isinstance(sender, dict):
        return "(no sender)"
    name = " ".join(
        str(sender[key]) for key in ("first_name", "last_name") if isinstance(sender.get(key), str)
    )
    handle = sender.get("username")
    if isinstance(handle, str) and handle:
        name = f"{name} @{handle}".strip()
    return name or f"user {sender.get('id')}"


def _telegram_text(update: Any) -> str:
    part = _telegram_part(update)
    for key in ("text", "caption", "data"):
        value = part.get(key)
        if isinstance(value, str) and value:
            return value[:200]
    return "(no text)"


async def problem_text(problem: Problem) -> str:
    """Everything about the problem, for the trainer to read: the raw item as received
    (decoded, pretty JSON for Telegram), or the delivery's or enrollment's record."""
    lines = [
        f"{problem.kind.value} #{problem.id}: {problem.state}",
        f"who: {problem.who}",
        f"what: {problem.what}",
    ]
    if problem.cohort:
        lines.append(f"cohort: {problem.cohort}")
    if problem.channel:
        lines.append(f"channel: {problem.channel}")
    lines.append(f"reason: {problem.reason}")
    if problem.kind is not ProblemKind.INBOUND:
        return "\n".join(lines)
    raw = await store.item_payload(problem.id)
    lines.append("")
    if not raw:
        lines.append("(nothing was stored: the server would not send this message)")
    elif problem.channel == Channel.TELEGRAM.value:
        lines.append(_pretty_json(raw))
    else:
        lines.append(decode_bytes(raw))
    text = "\n".join(lines)
    if len(text) > RAW_LIMIT:
        text = text[:RAW_LIMIT] + f"\n[... {len(text) - RAW_LIMIT} more characters not shown]"
    return text


def _pretty_json(raw: bytes) -> str:
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return decode_bytes(raw)


async def act(problem: Problem, action: Action, trainer: str, now: datetime) -> Done:
    """Do `action` about `problem` as `trainer` (their name, for the record). ProblemGone when it
    does not apply (any more)."""
    if action not in problem.actions:
        raise ProblemGone(f"{action.value} does not apply to this {problem.kind.value}")
    stamp = f"{trainer}, {now:%d %b %H:%M} UTC"
    if problem.kind is ProblemKind.INBOUND:
        if action is Action.RETRY:
            applied = await store.retry_item(problem.id)  # never one already filed
            if not applied and await store.item_is_filed(problem.id):
                raise ProblemGone("it is filed in a conversation already: dismiss it instead")
            done = Done("put back to be processed: dripper run picks it up now", reprocess=True)
        else:
            applied = await store.dismiss_item(problem.id, f" [dismissed by {stamp}]", now)
            done = Done("dismissed (kept, no longer listed)")
    elif problem.kind is ProblemKind.PLAN:
        applied = await store.replan_enrollment(problem.id, now)
        done = Done("planned again at the next pass")
    elif action is Action.RESEND:
        note = f"resent by {stamp} (was {problem.state}: {problem.reason})"
        applied = await store.resend_delivery(problem.id, note[:1000], now)
        paused = problem.enrollment_state == EnrollmentState.PAUSED
        done = Done(
            "queued again: held until the learner is resumed"
            if paused
            else "queued again: it goes out now"
        )
    elif action is Action.MARK_SENT:
        note = f"marked sent by {stamp} (the outcome was unknown: {problem.reason})"
        applied = await store.mark_delivery_sent(problem.id, note[:1000], now)
        done = Done("recorded as sent")
    else:
        applied = await store.dismiss_delivery(problem.id, now)
        done = Done("dismissed (kept, no longer listed)")
    if not applied:
        raise ProblemGone(f"this {problem.kind.value} changed meanwhile; the list is read again")
    return done
