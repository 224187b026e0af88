"""Incoming email, database side: store raw messages with the IMAP cursor, then act on them.

Two steps, as for every inbound channel:

1. `store_batch` writes the raw bytes of fetched messages as InboundItem rows and advances the
   mailbox cursor (UIDVALIDITY, last UID) in the same transaction. The dedupe key is the
   normalised Message-ID (else a hash of the bytes), so a re-fetch after a crash or a
   UIDVALIDITY reset stores nothing twice.
2. `process_pending` runs after the commit and acts on each stored item: a bounce updates the
   learner's email status, an auto-reply is kept but hidden, an unsubscribe opts the learner
   out, a quiz or check-in answer is recorded and answered in the thread (right or wrong and
   the explanation, dripper.inbound.email.feedback) without a conversation for the trainers
   unless the learner wrote more than the answer, a human reply is filed in the inbox. An item whose
   processing fails is flagged with the error and skipped; it is never lost, and it never stops
   the others. An item's effects and its new state commit together, so a crash in the middle
   leaves it pending with no effect, and it is processed once on the next run.

Matching a message to a learner, in order: a signed token in a recipient address (Reply-To or
List-Unsubscribe of our mail), then In-Reply-To / References against the Message-IDs we sent,
then the From address. A token or thread match whose From is not the learner's address, and
any message whose From failed DMARC at the receiving server (Authentication-Results), is kept
with the flag "unverified-sender" and not trusted to unsubscribe or answer a quiz. Mail from
nobody we know is flagged "unknown sender" and kept, raw, for the trainers. Our Message-IDs and
tokens are keyed by the HMAC key, so nobody who did not receive our mail can reply "in thread".

A Message-ID names one of our deliveries only when the key proves it: a stored id that is not
`message_id_for(key, its business key)` (one sent before ids were keyed, which anyone could
compute) names nothing.

A bounce counts only for a message we sent to that address: the report must name one of our
deliveries, by our Message-ID in the returned headers or by the signed return path (VERP) it
was sent to, and each failed recipient must be the current address of that delivery's learner.
Otherwise nothing of it counts: it is flagged "unverified bounce" (anyone can send a
multipart/report), and a retry after a fix cannot count anything twice.

Processing uses the time the item was stored, not the time it is processed: an item processed
late (after a crash, or retried by a trainer) is filed and answers as of its arrival.

InboundItem.error holds the error of a flagged item and a short note on a processed one (why
an auto-reply was hidden, which learner a bounce was counted for). A message over the size
limit is stored as its header block, with "too large: ..." and its attachment list (JSON) in
that column, filed in the inbox as a notice, and flagged.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper import oplog
from dripper.channels.email.message import message_id_for
from dripper.curriculum import Checkin, Curriculum, Quiz
from dripper.db import connection
from dripper.enrollments.answers import AnswerStatus, record_quiz_answer
from dripper.inbound.email.classify import Classification, Kind, classify
from dripper.inbound.email.feedback import queue_feedback
from dripper.inbound.email.parse import (
    Attachment,
    BouncedRecipient,
    ParsedMail,
    dedupe_key,
    parse_mail,
)
from dripper.inbox import AnsweredPrompt, latest_prompt_in, record_learner_message
from dripper.models import (
    Channel,
    Enrollment,
    InboundItem,
    InboundState,
    Learner,
)
from dripper.store import inbound as inbound_store
from dripper.store.curricula import curriculum_of
from dripper.store.learners import count_soft_bounce
from dripper.store.outbox import SentMail, deliveries_by_id, sent_by_message_id
from dripper.store.reach import Unreachable, mark_unreachable
from dripper.tokens import BOUNCE, REPLY

log = logging.getLogger("dripper.mail")

UNVERIFIED = "unverified-sender"
TOO_LARGE = "too-large"
UNKNOWN_SENDER = "unknown sender"
UNVERIFIED_BOUNCE = "unverified bounce"
PROCESS_CHUNK = 20  # items per transaction: short, the dispatcher shares the connection
_TOO_LARGE_NOTE = "too large: "
_ATTACHMENTS_MARK = "; attachments: "
STILL_IN_MAILBOX = "the email was too large to download whole; it is still in the mailbox"


def account_name(username: str, host: str, mailbox: str) -> str:
    """The InboundItem / ChannelCursor account of one IMAP mailbox."""
    return f"imap:{username}@{host}/{mailbox}"


# --------------------------------------------------------------------------- storing


@dataclass(frozen=True)
class Fetched:
    """One message as fetched: all its bytes, or only its header block when it is too large."""

    uid: int
    raw: bytes
    size: int  # RFC822.SIZE, the size on the server
    too_large: tuple[Attachment, ...] | None = None  # attachments, when only headers were fetched
    error: str | None = None  # the server would not send it: stored flagged, with this reason


@dataclass(frozen=True)
class Cursor:
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class StoreReport:
    stored: int
    duplicates: int


async def load_cursor(account: str) -> Cursor | None:
    """Where the last stored batch of this mailbox ended, or None before the first one."""
    position = await inbound_store.load_cursor(Channel.EMAIL, account) or {}
    try:
        return Cursor(int(position["uidvalidity"]), int(position["last_uid"]))
    except (KeyError, TypeError, ValueError):
        return None


def too_large_note(size: int, limit: int, attachments: Sequence[Attachment]) -> str:
    listed = json.dumps([a.as_dict() for a in attachments], ensure_ascii=False)
    return (
        f"{_TOO_LARGE_NOTE}{size} bytes, limit {limit}; only the headers were stored, the body "
        f"is still in the mailbox{_ATTACHMENTS_MARK}{listed}"
    )


def _too_large_attachments(note: str | None) -> list[dict[str, Any]] | None:
    if not note or not note.startswith(_TOO_LARGE_NOTE) or _ATTACHMENTS_MARK not in note:
        return None
    try:
        listed = json.loads(note.rsplit(_ATTACHMENTS_MARK, 1)[1])
    except ValueError:
        return []
    return [dict(item) for item in listed if isinstance(item, dict)]


async def store_batch(
    account: str,
    cursor: Cursor,
    fetched: Sequence[Fetched],
    limit: int,
    now: datetime,
) -> StoreReport:
    """Store fetched messages and move the cursor to `cursor`, in one transaction.

    `limit` is the size cap the poller applied (for the note on a message it did not download).
    """
    items = [
        inbound_store.RawItem(
            f"unfetchable:{cursor.uidvalidity}:{item.uid}", b"", item.error, InboundState.FLAGGED
        )
        if item.error is not None
        else inbound_store.RawItem(
            dedupe_key(item.raw),
            item.raw,
            too_large_note(item.size, limit, item.too_large)
            if item.too_large is not None
            else None,
        )
        for item in fetched
    ]
    position = {"uidvalidity": cursor.uidvalidity, "last_uid": cursor.last_uid}
    async with in_transaction() as tx:
        stored = await inbound_store.store_items(tx, Channel.EMAIL, account, items, position, now)
    return StoreReport(stored, len(fetched) - stored)


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class Match:
    """Whose message it is, how we know, and whether its sender is the learner."""

    learner: Learner
    via: str  # "token", "thread" or "from"
    trusted: bool  # From is the learner's own address
    enrollment_id: int | None = None  # from a reply token
    delivery: SentMail | None = None  # the message of ours it answers (thread match)


def _same_address(learner: Learner, address: str | None) -> bool:
    return bool(learner.email and address and learner.email.lower() == address.lower())


async def our_mail(message_ids: Sequence[str], key: bytes | None) -> dict[str, SentMail]:
    """Our deliveries these Message-IDs name, by id, keeping only ids the key proves ours."""
    if not key or not message_ids:
        return {}
    known = await sent_by_message_id(message_ids)
    return {
        mid: sent
        for mid, sent in known.items()
        if message_id_for(key, sent.business_key, mid[mid.rfind("@") + 1 : -1]) == mid
    }


async def match_learner(
    mail: ParsedMail, verdict: Classification, key: bytes | None
) -> Match | None:
    """The learner a message belongs to: token, then thread ids, then From. Trusted only when
    the From is the learner's own address and did not fail DMARC."""
    authentic = verdict.dmarc_failure is None
    known = await our_mail(mail.thread_ids, key)
    for hit in verdict.learner_tokens():
        learner = await Learner.get_or_none(id=hit.ids[0])
        if learner is None:
            continue
        enrollment_id = None
        if hit.purpose == REPLY:
            enrollment = await Enrollment.get_or_none(id=hit.ids[1], learner_id=learner.id)
            enrollment_id = enrollment.id if enrollment is not None else None
        # The token names the conversation; the thread ids, when they are ours and in it,
        # name the exact mail (and step) answered.
        delivery = next(
            (
                known[mid]
                for mid in mail.thread_ids
                if mid in known
                and known[mid].learner_id == learner.id
                and known[mid].enrollment_id == enrollment_id
            ),
            None,
        )
        trusted = authentic and _same_address(learner, mail.from_address)
        return Match(learner, "token", trusted, enrollment_id, delivery)
    for message_id in mail.thread_ids:
        delivery = known.get(message_id)
        if delivery is None:
            continue
        learner = await Learner.get_or_none(id=delivery.learner_id)
        if learner is not None:
            trusted = authentic and _same_address(learner, mail.from_address)
            return Match(learner, "thread", trusted, delivery.enrollment_id, delivery)
    if mail.from_address:
        learner = await Learner.get_or_none(email=mail.from_address.lower())
        if learner is not None:
            return Match(learner, "from", authentic)
    return None


async def answered_prompt(match: Match) -> AnsweredPrompt | None:
    """What the message answers: the exact mail it replies to, else the enrollment's latest
    prompt (reply token), else None (inbox.record_learner_message guesses)."""
    delivery = match.delivery
    if delivery is not None and delivery.enrollment_id is not None:
        if delivery.step_id is not None:
            return AnsweredPrompt(
                delivery.enrollment_id, delivery.step_id, delivery.occurrence, delivery.id
            )
        return await latest_prompt_in(delivery.enrollment_id)
    if match.enrollment_id is not None:
        return await latest_prompt_in(match.enrollment_id)
    return None


@dataclass(frozen=True)
class _Question:
    """The quiz or check-in a reply answers, with what its feedback needs."""

    step: Quiz | Checkin
    curriculum: Curriculum
    enrollment: Enrollment


async def _question(prompt: AnsweredPrompt) -> _Question | None:
    enrollment = await Enrollment.get_or_none(id=prompt.enrollment_id)
    if enrollment is None:
        return None
    curriculum = await curriculum_of(enrollment.curriculum_id)  # type: ignore[attr-defined]
    try:
        step = curriculum.step(prompt.step_id)
    except KeyError:
        return None
    return _Question(step, curriculum, enrollment) if isinstance(step, Quiz | Checkin) else None


def _only_the_answer(body: str) -> bool:
    """Whether the reply is its answer line alone ("2", "b", "Yes"): nothing for a trainer."""
    lines = [line.strip() for line in body.split("\n") if line.strip()]
    return len(lines) <= 1


def _choices_by_label(step: Quiz | Checkin, body: str) -> tuple[int, ...] | None:
    """A reply that is exactly one option's text ("Yes", "Once") answers with that option."""
    first = next((line.strip() for line in body.split("\n") if line.strip()), "")
    wanted = first.rstrip(".!").strip().casefold()
    labels = step.options if isinstance(step, Quiz) else step.buttons
    for index, label in enumerate(labels):
        if label.strip().casefold() == wanted:
            return (index,)
    return None


# --------------------------------------------------------------------------- processing


@dataclass(frozen=True)
class Outcome:
    state: InboundState
    note: str | None
    kind: str  # for counting: "reply", "answer", "bounce", "auto-reply", ...
    learner_id: int | None = None  # the learner it came from, when matched


async def process_pending(
    account: str, key: bytes | None, now: datetime, limit: int = 500
) -> Counter[str]:
    """Process stored, unprocessed items of a mailbox, oldest first; counts per outcome kind.

    Items are processed PROCESS_CHUNK to a transaction (one commit, not one per item: the
    commit is most of the cost on SQLite), each in a savepoint of its own, so a failing item
    is rolled back alone and flagged while the others are kept.
    """
    counts: Counter[str] = Counter()
    while True:
        items = (
            await InboundItem.filter(
                channel=Channel.EMAIL, account=account, state=InboundState.PENDING
            )
            .order_by("id")
            .limit(limit)
        )
        for start in range(0, len(items), PROCESS_CHUNK):
            async with in_transaction():
                for item in items[start : start + PROCESS_CHUNK]:
                    counts[await process_item(item, key, now)] += 1
        if len(items) < limit:
            return counts


async def process_item(item: InboundItem, key: bytes | None, now: datetime) -> str:
    """Act on one stored email, its effects and its new state in one transaction (a savepoint
    inside `process_pending`). A failure rolls the effects back and flags the item with the
    error instead of raising."""
    # Filed and answering as of its arrival, however late it is processed.
    arrived = min(item.received_at, now) if item.received_at else now
    try:
        async with in_transaction() as tx:
            outcome = await _process(item, key, arrived)
            await _finish(tx, item.id, outcome, now)
    except Exception as exc:
        log.exception("email %d (%s) could not be processed", item.id, item.external_id)
        outcome = Outcome(
            InboundState.FLAGGED,
            inbound_store.failure_note(inbound_store.PROCESSING_FAILED, exc),
            "failed",
        )
        await _finish(connection(), item.id, outcome, now)
    received = item.received_at or now
    oplog.event(
        log,
        "inbound",
        id=item.id,
        channel="email",
        kind=outcome.kind,
        learner=outcome.learner_id,
        state=outcome.state.value,
        latency_ms=oplog.milliseconds(max(0.0, (now - received).total_seconds())),
        reason=outcome.note if outcome.state is InboundState.FLAGGED else None,
    )
    return outcome.kind


async def _finish(conn: BaseDBAsyncClient, item_id: int, outcome: Outcome, now: datetime) -> None:
    await inbound_store.finish_item(conn, item_id, outcome.state, outcome.note, now)


async def _process(item: InboundItem, key: bytes | None, now: datetime) -> Outcome:
    mail = parse_mail(bytes(item.payload))
    verdict = classify(mail, key)
    too_large = _too_large_attachments(item.error)
    if verdict.kind is Kind.BOUNCE:
        return await _bounce(mail, verdict, key, now)
    if verdict.kind is Kind.AUTO_REPLY:
        return Outcome(
            InboundState.PROCESSED, f"auto-reply, hidden: {verdict.reason}", "auto-reply"
        )
    match = await match_learner(mail, verdict, key)
    if match is None:
        sender = mail.from_address or "no From address"
        note = f"{UNKNOWN_SENDER}: {sender}"
        if too_large is not None:
            note = f"{note}; {item.error}"
        return Outcome(InboundState.FLAGGED, note, "unknown-sender")
    learner = match.learner
    flags: list[str] = [] if match.trusted else [UNVERIFIED]
    untrusted_note = (
        f"{UNVERIFIED}: {verdict.dmarc_failure} (matched by {match.via})"
        if verdict.dmarc_failure
        else f"{UNVERIFIED}: From {mail.from_address or '(none)'} is not "
        f"{learner.email or 'known'} (matched by {match.via})"
    )
    if verdict.kind is Kind.UNSUBSCRIBE:
        if match.trusted:
            await Learner.filter(id=learner.id, opted_out_at=None).update(opted_out_at=now)
            return Outcome(
                InboundState.PROCESSED,
                f"unsubscribe ({verdict.reason}): learner {learner.id} opted out",
                "unsubscribe",
                learner.id,
            )
        await _file(item, mail, match, None, flags, too_large, now)
        return Outcome(
            InboundState.PROCESSED,
            f"unsubscribe request not applied; {untrusted_note}",
            "unverified",
            learner.id,
        )
    prompt = await answered_prompt(match)
    answer_note = ""
    understood = False
    if match.trusted and prompt is not None and too_large is None:
        question = await _question(prompt)
        choices = verdict.choices if verdict.kind is Kind.ANSWER else None
        if question is not None and choices is None:
            choices = _choices_by_label(question.step, mail.body)
        if question is not None and choices is not None:
            result = await record_quiz_answer(
                prompt.enrollment_id,
                prompt.step_id,
                prompt.occurrence,
                list(choices),
                Channel.EMAIL,
                now,
            )
            answer_note = f"; answer to {prompt.step_id}#{prompt.occurrence}: {result.status}"
            if result.status is AnswerStatus.INVALID:
                answer_note += f" ({result.reason})"
            async with in_transaction() as tx:
                understood = await queue_feedback(
                    tx,
                    inbound_id=item.id,
                    learner=learner,
                    enrollment=question.enrollment,
                    curriculum=question.curriculum,
                    step=question.step,
                    occurrence=prompt.occurrence,
                    result=result,
                    now=now,
                )
            if understood:
                answer_note += "; feedback queued"
    if understood and _only_the_answer(mail.body) and not mail.attachments:
        # The answer is recorded and answered: a conversation would only be a chore for a
        # trainer. A reply with more words than the answer is filed as well, below.
        note = f"answer by learner {learner.id} (matched by {match.via}){answer_note}"
        return Outcome(InboundState.PROCESSED, note, "answer", learner.id)
    await _file(item, mail, match, prompt, flags, too_large, now)
    if too_large is not None:
        return Outcome(InboundState.FLAGGED, item.error, "too-large", learner.id)
    if not match.trusted:
        return Outcome(InboundState.PROCESSED, untrusted_note, "unverified", learner.id)
    kind = "answer" if answer_note else "reply"
    note = f"filed for learner {learner.id} (matched by {match.via}){answer_note}"
    return Outcome(InboundState.PROCESSED, note, kind, learner.id)


async def _file(
    item: InboundItem,
    mail: ParsedMail,
    match: Match,
    prompt: AnsweredPrompt | None,
    flags: list[str],
    too_large: list[dict[str, Any]] | None,
    now: datetime,
) -> None:
    """File the message in the learner's conversation (atomic with the item's new state)."""
    attachments = [a.as_dict() for a in mail.attachments]
    body = mail.body
    if too_large is not None:
        # Only the headers were stored: the files stay in the mailbox (dripper.media).
        attachments = [{**listed, "not_stored": STILL_IN_MAILBOX} for listed in too_large]
        flags = [*flags, TOO_LARGE]
        body = f"[This email was too large to download; read it in the mailbox. {mail.subject}]"
    if not body:
        body = f"[no text] {mail.subject}".strip() if mail.subject else "[empty message]"
    if prompt is None and match.enrollment_id is None and match.delivery is None:
        answers = None  # matched by From: inbox.record_learner_message picks the prompt
    else:
        answers = prompt
    await record_learner_message(
        match.learner.id,
        Channel.EMAIL,
        body,
        now,
        raw_body=mail.text or None,
        attachments=attachments,
        inbound_id=item.id,
        flags=flags,
        answers=answers,
    )


async def _bounce(
    mail: ParsedMail, verdict: Classification, key: bytes | None, now: datetime
) -> Outcome:
    """Hard bounce: the address is unreachable. Soft bounce: counted (once: process_item
    writes the count and the item's new state in one transaction). All or nothing: only when
    every failed recipient is the address of a learner the report proves we sent to."""
    report = mail.report
    named = list((await our_mail(report.returned_message_ids if report else (), key)).values())
    named += await deliveries_by_id([hit.ids[0] for hit in verdict.tokens if hit.purpose == BOUNCE])
    learners = await Learner.filter(id__in=sorted({sent.learner_id for sent in named}))
    counted: list[tuple[Learner, BouncedRecipient]] = []
    refused: list[str] = []
    for bounce in verdict.bounces:
        if not (bounce.hard or bounce.soft):
            continue
        learner = next((x for x in learners if _same_address(x, bounce.recipient)), None)
        if learner is None:
            where = " ".join(filter(None, (bounce.recipient or "unnamed recipient", bounce.status)))
            refused.append(f"{where}: names no message we sent to that address")
        else:
            counted.append((learner, bounce))
    if refused:
        note = f"{UNVERIFIED_BOUNCE}, nothing counted ({verdict.reason}): {'; '.join(refused)}"
        return Outcome(InboundState.FLAGGED, note, "unverified-bounce")
    notes: list[str] = []
    for learner, bounce in counted:
        if bounce.hard:
            event = Unreachable(learner.id, Channel.EMAIL, "bounced", bounce.status)
            await mark_unreachable(connection(), event, now)
            notes.append(f"learner {learner.id} email unreachable ({bounce.status or 'failed'})")
        else:
            await count_soft_bounce(learner.id)
            notes.append(f"learner {learner.id} soft bounce ({bounce.status or 'delayed'})")
    detail = "; ".join(notes) or "nothing to record"
    return Outcome(InboundState.PROCESSED, f"{verdict.reason} -> {detail}", "bounce")


# --------------------------------------------------------------------------- views
