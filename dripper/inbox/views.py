"""Reading the inbox: the conversation list with its folders and filters, one thread, the learner.

Read-only queries for any front end (the Textual dashboard, the demo, tests).
The list is one statement over denormalised columns (`last_message_id`, `last_inbound_id`), so
it stays fast with tens of thousands of conversations; it returns a page, never everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from dripper.content.compose import CourseView, LearnerView, compose_step
from dripper.curriculum.model import Checkin, Quiz
from dripper.models import (
    Conversation,
    ConversationLabel,
    ConversationStatus,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Enrollment,
    Learner,
    Message,
    QuizAnswer,
)
from dripper.schedule.plan import learner_zone
from dripper.store.conversations import InboxFilter, conversation_page, count_in_folder, labels_of
from dripper.store.curricula import curriculum_of
from dripper.store.sql import as_datetime


class Folder(StrEnum):
    """The inbox filters a trainer switches between."""

    OPEN = "open"  # needs a trainer: open, or snoozed until a time that has passed
    MINE = "mine"  # open and assigned to me
    UNASSIGNED = "unassigned"  # open and nobody's
    WAITING = "waiting"  # answered, waiting on the learner
    SNOOZED = "snoozed"
    CLOSED = "closed"
    ALL = "all"


@dataclass(frozen=True)
class InboxQuery:
    folder: Folder = Folder.OPEN
    cohort: str | None = None
    label: str | None = None
    search: str | None = None  # every word must appear in a message or the learner's name
    limit: int = 200
    offset: int = 0


@dataclass(frozen=True)
class ConversationRow:
    id: int
    learner_id: int
    learner_name: str
    channel: str
    status: ConversationStatus
    snoozed_until: datetime | None
    assignee: str | None
    cohort: str | None
    last_message_at: datetime | None
    preview: str
    preview_direction: str | None  # "in", "out", "note", "system"
    unread: bool
    labels: tuple[str, ...]


async def list_conversations(
    query: InboxQuery, trainer_id: int | None, now: datetime
) -> list[ConversationRow]:
    """One page of the inbox, newest activity first."""
    rows = await conversation_page(_filter(query), trainer_id, now, query.limit, query.offset)
    labels = await labels_of([int(row["id"]) for row in rows])
    found = []
    for row in rows:
        last_inbound = row["last_inbound_id"]
        read_upto = row["read_upto"] or 0
        channel = row["last_channel"] or ("telegram" if row["telegram_chat_id"] else "email")
        found.append(
            ConversationRow(
                id=int(row["id"]),
                learner_id=int(row["learner_id"]),
                learner_name=f"{row['first_name']} {row['last_name']}".strip(),
                channel=str(channel),
                status=ConversationStatus(row["status"]),
                snoozed_until=as_datetime(row["snoozed_until"]),
                assignee=row["assignee"],
                cohort=row["cohort"],
                last_message_at=as_datetime(row["last_message_at"]),
                preview=" ".join(str(row["preview"] or "").split()),
                preview_direction=row["last_direction"],
                unread=last_inbound is not None and int(last_inbound) > int(read_upto),
                labels=labels.get(int(row["id"]), ()),
            )
        )
    return found


async def count_conversations(query: InboxQuery, trainer_id: int | None, now: datetime) -> int:
    return await count_in_folder(_filter(query), trainer_id, now)


def _filter(query: InboxQuery) -> InboxFilter:
    return InboxFilter(query.folder.value, query.cohort, query.label, query.search)


class EntryKind(StrEnum):
    LEARNER = "in"  # the learner wrote
    TRAINER = "out"  # a trainer's reply
    NOTE = "note"  # internal note
    DRIP = "drip"  # a curriculum step (or reminder) sent by dripper
    ANSWER = "answer"  # a quiz or check-in tap
    SYSTEM = "system"  # an event dripper noted: "Telegram blocked on 3 Dec; continuing by email"


@dataclass(frozen=True)
class ThreadEntry:
    at: datetime
    kind: EntryKind
    body: str
    channel: str | None
    author: str | None = None
    step_id: str | None = None
    step_title: str | None = None  # e.g. "day 3 · question reflection-1"
    delivery_state: str | None = None  # queued / sending / sent / failed / uncertain / ...
    delivery_error: str | None = None
    message_id: int | None = None
    in_reply_to_id: int | None = None
    flags: tuple[str, ...] = ()
    files: tuple[dict[str, Any], ...] = ()  # the attachments as listed (dripper.media fills in)


def delivery_label(state: str) -> str:
    """The delivery state as a trainer reads it."""
    return {
        DeliveryState.PENDING.value: "queued",
        DeliveryState.CLAIMED.value: "sending",
        DeliveryState.HELD.value: "held (paused)",
    }.get(state, state)


async def thread(conversation_id: int) -> list[ThreadEntry]:
    """The whole conversation in time order: the drip steps dripper sent, the learner's messages
    and taps, the trainers' replies with their delivery state, and notes."""
    conversation = await Conversation.get(id=conversation_id).prefetch_related("learner")
    learner: Learner = conversation.learner
    messages = (
        await Message.filter(conversation_id=conversation_id)
        .prefetch_related("author", "delivery")
        .order_by("created_at", "id")
    )
    entries: list[ThreadEntry] = []
    titles: dict[str, str] = {}
    enrollment_id = conversation.enrollment_id  # type: ignore[attr-defined]
    if enrollment_id is not None:
        entries.extend(await _drip_entries(enrollment_id, learner, titles))
    for message in messages:
        delivery: Delivery | None = message.delivery
        author = message.author
        entries.append(
            ThreadEntry(
                at=message.created_at.astimezone(UTC),
                kind=EntryKind(message.direction.value),
                body=message.body,
                channel=(delivery.channel.value if delivery and delivery.channel else None)
                or (message.channel.value if message.channel else None),
                author=author.handle if author else None,
                step_id=message.step_id,
                step_title=titles.get(message.step_id or "", message.step_id),
                delivery_state=delivery_label(delivery.state.value) if delivery else None,
                delivery_error=delivery.last_error if delivery else None,
                message_id=message.id,
                in_reply_to_id=message.in_reply_to_id,  # type: ignore[attr-defined]
                flags=tuple(message.flags or ()),
                files=tuple(message.attachments or ()),
            )
        )
    entries.sort(key=lambda entry: (entry.at, entry.kind is not EntryKind.DRIP))
    return entries


_SHOWN_DRIP_STATES = (
    DeliveryState.SENT,
    DeliveryState.FAILED,
    DeliveryState.UNCERTAIN,
    DeliveryState.CLAIMED,
)


async def _drip_entries(
    enrollment_id: int, learner: Learner, titles: dict[str, str]
) -> list[ThreadEntry]:
    enrollment = await Enrollment.get(id=enrollment_id).prefetch_related("cohort")
    curriculum = await curriculum_of(enrollment.curriculum_id)  # type: ignore[attr-defined]
    for each in curriculum.steps:
        titles[each.id] = f"{each.after} · {each.kind} {each.id}"
    view = LearnerView(
        first_name=learner.first_name,
        last_name=learner.last_name,
        email=learner.email,
        timezone=learner.timezone or curriculum.timezone,
        language=learner.language,
        attributes=dict(learner.attributes or {}),
    )
    end = enrollment.anchor_at.strftime("%A %-d %B %Y")
    course = CourseView(curriculum.id, curriculum.title, enrollment.cohort.name, end)
    deliveries = await Delivery.filter(
        enrollment_id=enrollment_id,
        kind__in=[DeliveryKind.STEP, DeliveryKind.NUDGE, DeliveryKind.REASK],
        state__in=list(_SHOWN_DRIP_STATES),
    ).order_by("due_at", "id")
    entries = []
    for delivery in deliveries:
        try:
            step = curriculum.step(delivery.step_id or "")
        except KeyError:
            continue
        try:
            content = compose_step(
                curriculum,
                step,
                view,
                course,
                delivery.id,
                reminder=delivery.kind is DeliveryKind.NUDGE,
            )
            body = content.text
            if content.options:
                body += "\n" + "\n".join(
                    f"  {index}. {option}" for index, option in enumerate(content.options, 1)
                )
        except Exception:  # a template that no longer renders: show the source, never fail
            body = step.text
        entries.append(
            ThreadEntry(
                at=(delivery.sent_at or delivery.due_at).astimezone(UTC),
                kind=EntryKind.DRIP,
                body=body,
                channel=delivery.channel.value if delivery.channel else None,
                step_id=step.id,
                step_title=titles[step.id]
                + (" (reminder)" if delivery.kind is DeliveryKind.NUDGE else ""),
                delivery_state=delivery_label(delivery.state.value),
                delivery_error=delivery.last_error,
            )
        )
    for answer in await QuizAnswer.filter(enrollment_id=enrollment_id).order_by("answered_at"):
        try:
            step = curriculum.step(answer.step_id)
        except KeyError:
            continue
        options = (
            step.options
            if isinstance(step, Quiz)
            else (step.buttons if isinstance(step, Checkin) else [])
        )
        picked = ", ".join(options[i] for i in answer.choices if 0 <= i < len(options))
        verdict = {True: " (correct)", False: " (wrong)"}.get(answer.correct, "")  # type: ignore[arg-type]
        entries.append(
            ThreadEntry(
                at=answer.answered_at.astimezone(UTC),
                kind=EntryKind.ANSWER,
                body=f"tapped: {picked}{verdict}",
                channel=answer.channel.value,
                step_id=step.id,
                step_title=titles[step.id],
            )
        )
    return entries


@dataclass(frozen=True)
class LearnerPanel:
    learner_id: int
    name: str
    email: str | None
    email_status: str
    telegram_username: str | None
    telegram_linked: bool
    telegram_status: str
    timezone: str
    local_now: datetime
    cohort: str | None
    curriculum: str | None
    enrollment_state: str | None
    steps_sent: int
    steps_total: int
    quizzes_answered: int
    quizzes_correct: int
    opted_out: bool


async def learner_panel(conversation_id: int, now: datetime) -> LearnerPanel:
    """Who the learner is and where they stand: channels, local time, progress, quiz results."""
    conversation = await Conversation.get(id=conversation_id).prefetch_related("learner")
    learner: Learner = conversation.learner
    zone_name = learner.timezone or "UTC"
    cohort = curriculum_title = state = None
    sent = total = answered = correct = 0
    enrollment_id = conversation.enrollment_id  # type: ignore[attr-defined]
    if enrollment_id is not None:
        enrollment = await Enrollment.get(id=enrollment_id).prefetch_related("cohort")
        curriculum = await curriculum_of(enrollment.curriculum_id)  # type: ignore[attr-defined]
        zone_name = str(learner_zone(learner.timezone, curriculum))
        cohort, curriculum_title, state = (
            enrollment.cohort.name,
            curriculum.title,
            enrollment.state.value,
        )
        total = len(curriculum.steps)
        sent = await Delivery.filter(
            enrollment_id=enrollment_id, kind=DeliveryKind.STEP, state=DeliveryState.SENT
        ).count()
        answers = await QuizAnswer.filter(enrollment_id=enrollment_id, correct__isnull=False)
        answered = len(answers)
        correct = sum(1 for answer in answers if answer.correct)
    return LearnerPanel(
        learner_id=learner.id,
        name=f"{learner.first_name} {learner.last_name}".strip(),
        email=learner.email,
        email_status=learner.email_status.value,
        telegram_username=learner.telegram_username,
        telegram_linked=learner.telegram_chat_id is not None,
        telegram_status=learner.telegram_status.value,
        timezone=zone_name,
        local_now=now.astimezone(ZoneInfo(zone_name)),
        cohort=cohort,
        curriculum=curriculum_title,
        enrollment_state=state,
        steps_sent=sent,
        steps_total=total,
        quizzes_answered=answered,
        quizzes_correct=correct,
        opted_out=learner.opted_out_at is not None,
    )


@dataclass(frozen=True)
class ConversationSummary:
    """One conversation's heading: who, status, assignee, labels, cohort."""

    learner_name: str
    status: str
    snoozed_until: datetime | None
    assignee: str | None
    labels: tuple[str, ...]
    cohort: str | None


async def conversation_summary(conversation_id: int) -> ConversationSummary | None:
    """None when the conversation does not exist (any more)."""
    conversation = await Conversation.get_or_none(id=conversation_id).prefetch_related(
        "learner", "assignee", "enrollment__cohort"
    )
    if conversation is None:
        return None
    enrollment: Enrollment | None = conversation.enrollment
    labels = await (
        ConversationLabel.filter(conversation_id=conversation_id)
        .order_by("label")
        .values_list("label", flat=True)
    )
    learner = conversation.learner
    return ConversationSummary(
        learner_name=f"{learner.first_name} {learner.last_name}".strip(),
        status=conversation.status.value,
        snoozed_until=conversation.snoozed_until,
        assignee=conversation.assignee.handle if conversation.assignee else None,
        labels=tuple(str(label) for label in labels),
        cohort=enrollment.cohort.name if enrollment is not None else None,
    )
