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

from tortoise.transactions import in_transaction

from dripper.models import (
    Channel,
    Message,
    MessageDirection,
)
from dripper.store.conversations import conversation_ids, insert_message, reopen_with_messages
from dripper.store.curricula import curriculum_of
from dripper.store.enrollments import latest_enrollments
from dripper.store.outbox import SentStep, cancel_nudges, sent_steps

PROMPT_KINDS = ("question", "quiz", "checkin")


@dataclass(frozen=True)
class AnsweredPrompt:
    enrollment_id: int
    step_id: str
    occurrence: int
    delivery_id: int


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
    prompts = await latest_prompts({i.learner_id for i in items if i.answers is None})
    fallback = await latest_enrollments(
        sorted({i.learner_id for i in items if i.answers is None and i.learner_id not in prompts})
    )
    ids: list[int] = []
    placed = []
    for item in items:
        prompt = item.answers or prompts.get(item.learner_id)
        enrollment_id = prompt.enrollment_id if prompt else fallback.get(item.learner_id)
        placed.append((item, prompt, enrollment_id))
    async with in_transaction() as tx:
        conversations = await conversation_ids(
            tx, {(item.learner_id, enrollment_id) for item, _, enrollment_id in placed}
        )
        touched: dict[int, int] = {}  # conversation -> its newest new message
        nudged: dict[tuple[int, str], None] = {}
        for item, prompt, enrollment_id in placed:
            conversation_id = conversations[(item.learner_id, enrollment_id)]
            message_id = await insert_message(
                tx,
                conversation_id,
                MessageDirection.INBOUND,
                item.channel,
                item.body,
                now,
                raw_body=item.raw_body,
                attachments=item.attachments,
                step_id=prompt.step_id if prompt else None,
                inbound_id=item.inbound_id,
                flags=item.flags,
            )
            ids.append(message_id)
            touched[conversation_id] = ids[-1]
            if prompt is not None:
                nudged[(prompt.enrollment_id, prompt.step_id)] = None
        await reopen_with_messages(tx, touched, now)
        for enrollment_id, step_id in nudged:
            await cancel_nudges(enrollment_id, step_id, now, tx)
    return ids


async def latest_prompts(learner_ids: set[int]) -> dict[int, AnsweredPrompt]:
    """The latest delivered prompt of each learner, with one query for all of them."""
    if not learner_ids:
        return {}
    return await _prompts(await sent_steps(learner_ids=sorted(learner_ids)))


async def latest_prompt_in(enrollment_id: int) -> AnsweredPrompt | None:
    """The prompt most recently sent in an enrollment, else its latest sent step (an email
    reply's token names the enrollment, not the step)."""
    sent = await sent_steps(enrollment_id=enrollment_id, limit=20)
    found = await _prompts(sent)
    if found:
        return next(iter(found.values()))
    return _answered(sent[0]) if sent else None


async def _prompts(sent: Sequence[SentStep]) -> dict[int, AnsweredPrompt]:
    """Per learner, the newest of `sent` (each learner's newest first) that is a prompt."""
    found: dict[int, AnsweredPrompt] = {}
    for step in sent:
        if step.learner_id in found:
            continue
        curriculum = await curriculum_of(step.curriculum_id)
        try:
            kind = getattr(curriculum.step(step.step_id), "kind", "")
        except KeyError:
            continue
        if kind in PROMPT_KINDS:
            found[step.learner_id] = _answered(step)
    return found


def _answered(step: SentStep) -> AnsweredPrompt:
    return AnsweredPrompt(step.enrollment_id, step.step_id, step.occurrence, step.id)
