"""Seed data for the benchmarks, the tests and the demo: curricula, learners in bulk, an email
course whose drips were already sent, to reply to, and an inbox of many conversations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from dripper.channels.email.message import message_id_for
from dripper.curriculum.checks import CheckResult, check_source
from dripper.curriculum.source import parse_source
from dripper.enrollments.enroll import enroll
from dripper.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Enrollment,
    Learner,
    MessageDirection,
)
from dripper.schedule.keys import step_key
from dripper.store.conversations import SeedMessage, insert_seed_threads
from dripper.store.learners import NewLearner
from dripper.store.learners import insert_learners as store_learners
from dripper.tokens import reply_address, reply_token, unsubscribe_address, unsubscribe_token

COURSE_ADDRESS = "course@example.com"


COURSE_DOMAIN = "example.com"


SEED_KEY = b"seed-hmac-key-0123456789"  # the key the seeded Message-IDs were made with


COURSE = """\
id: replies
title: Replies course
timezone: Europe/Berlin
send_window:
  send_at: "0 9 * * 1-5"
  spread: 10m
steps:
  - id: hello
    after: 1d
    kind: tip
    text: Hello {{ learner.first_name }}
  - id: reflect
    after: 2d
    kind: question
    text: What did you try?
    remind_after: 2d
  - id: quiz
    after: 3d
    kind: quiz
    text: Which formula finds an exact match?
    options: ["=XLOOKUP(...)", "=VLOOKUP(..., TRUE)", "=SUM(...)"]
    correct: "=XLOOKUP(...)"
    explanation: "XLOOKUP matches exactly unless told otherwise, {{ learner.first_name }}."
    reask_after: 3d
  - id: many
    after: 4d
    kind: quiz
    text: Which are lookups?
    options: [XLOOKUP, VLOOKUP, SUM]
    correct: [XLOOKUP, VLOOKUP]
    multiple: true
  - id: used
    after: 5d
    kind: checkin
    text: Did you use a pivot table this week?
    buttons: ["Yes", "Once", "Not yet"]
"""


COURSE_END = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)


def course() -> CheckResult:
    result = check_source(parse_source(COURSE, "replies.yaml"))
    assert result.curriculum is not None, result.problems
    return result


@dataclass
class SeededLearner:
    id: int
    email: str
    enrollment_id: int
    message_ids: dict[str, str] = field(default_factory=dict)  # step id -> our Message-ID
    delivery_ids: dict[str, int] = field(default_factory=dict)

    def reply_to(self, key: bytes) -> str:
        return reply_address(COURSE_ADDRESS, reply_token(key, self.id, self.enrollment_id))

    def unsubscribe_to(self, key: bytes) -> str:
        return unsubscribe_address(COURSE_ADDRESS, unsubscribe_token(key, self.id))


async def seed_course(
    count: int,
    *,
    sent: Sequence[str] = ("hello", "reflect", "quiz"),
    prefix: str = "learner",
    key: bytes = SEED_KEY,
) -> list[SeededLearner]:
    """`count` learners enrolled in COURSE, each with the steps `sent` already emailed
    (deliveries SENT an hour apart, with the Message-IDs the email channel gives them under the
    HMAC `key`: give the key the receiving side checks them with)."""
    learners = [
        await Learner.create(first_name=f"L{i}", email=f"{prefix}{i}@example.net")
        for i in range(count)
    ]
    await enroll(course(), f"cohort-{prefix}", COURSE_END, learners, COURSE_END)
    seeded = []
    deliveries = []
    for learner in learners:
        enrollment = await Enrollment.get(learner_id=learner.id)
        seed = SeededLearner(learner.id, str(learner.email), enrollment.id)
        for index, step in enumerate(sent):
            business_key = step_key(enrollment.id, step)
            seed.message_ids[step] = message_id_for(key, business_key, COURSE_DOMAIN)
            when = COURSE_END + timedelta(days=1, hours=index)
            deliveries.append(
                Delivery(
                    business_key=business_key,
                    enrollment_id=enrollment.id,
                    learner_id=learner.id,
                    kind=DeliveryKind.STEP,
                    step_id=step,
                    occurrence=0,
                    channel=Channel.EMAIL,
                    due_at=when,
                    available_at=when,
                    state=DeliveryState.SENT,
                    sent_at=when,
                    provider_message_id=seed.message_ids[step],
                )
            )
        seeded.append(seed)
    await Delivery.bulk_create(deliveries, batch_size=500)
    by_key = {d.business_key: d.id for d in await Delivery.all()}
    for seed in seeded:
        for step in sent:
            seed.delivery_ids[step] = by_key[step_key(seed.enrollment_id, step)]
    return seeded


def reply_message(
    sender: str,
    to: str,
    body: str,
    *,
    subject: str = "Re: What did you try?",
    in_reply_to: str | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A plain-text reply as a mail client writes it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    if message_id:
        message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return bytes(message)


def one_step_curriculum() -> CheckResult:
    """A curriculum whose single tip is due right at the anchor, with a personalised text."""
    text = """\
id: bench
title: Benchmark
send_window:
  send_at: "* * * * *"
  spread: 0m
steps:
  - id: tip
    after: 0d
    kind: tip
    text: "Hi {{ learner.first_name }}, one **idea** for today: press `Ctrl+T`."
"""
    result = check_source(parse_source(text, "bench.yaml"))
    assert result.curriculum is not None, result.problems
    return result


def minute_steps_curriculum(steps: int, key: str = "minutes") -> CheckResult:
    """`steps` tips a minute apart, sendable any minute, each text naming its step and its
    learner ("s1 for Learner7"), so that the chats tell how often each delivery arrived."""
    body = "".join(
        f"  - id: s{n}\n    after: {n}m\n    kind: tip\n"
        f'    text: "s{n} for {{{{ learner.first_name }}}}"\n'
        for n in range(steps)
    )
    head = f'id: {key}\ntitle: {key}\nsend_window:\n  send_at: "* * * * *"\n  spread: 0m\n'
    result = check_source(parse_source(f"{head}steps:\n{body}", f"{key}.yaml"))
    assert result.curriculum is not None, result.problems
    return result


def many_step_curriculum(steps: int) -> CheckResult:
    body = "".join(
        f"""  - id: step-{n}
    after: {n + 1}d
    kind: tip
    text: "Step {n} for {{{{ learner.first_name }}}}"
"""
        for n in range(steps)
    )
    text = f"""\
id: bench-{steps}
title: Benchmark with {steps} steps
timezone: Europe/Berlin
send_window:
  send_at: "0 9 * * 1-5"
  spread: 30m
  quiet_hours: ["20:00-08:00"]
steps:
{body}"""
    result = check_source(parse_source(text, "bench.yaml"))
    assert result.curriculum is not None, result.problems
    return result


async def insert_learners(
    count: int, now: datetime, *, telegram: bool = False, email: bool = False
) -> None:
    """N learners in one batch insert; chat ids are 1..N, addresses learnerN@example.com."""
    zones = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC"]
    await store_learners(
        [
            NewLearner(
                f"Learner{n}",
                email=f"learner{n}@example.com" if email else None,
                telegram_chat_id=n if telegram else None,
                timezone=zones[n % len(zones)],
            )
            for n in range(1, count + 1)
        ],
        now,
    )


INBOUND, OUTBOUND = MessageDirection.INBOUND, MessageDirection.OUTBOUND


async def seed_inbox(count: int, now: datetime, *, cohorts: int = 5) -> None:
    """N learners in `cohorts` cohorts, one conversation each with a learner's question; a
    third of them answered by the trainer, and those wait on the learner."""
    await insert_learners(count, now - timedelta(days=30), email=True)
    learners = await Learner.all().order_by("id")
    checked = one_step_curriculum()
    size = -(-len(learners) // cohorts)
    for index in range(cohorts):
        chunk = learners[index * size : (index + 1) * size]
        await enroll(checked, f"Cohort {index + 1}", now - timedelta(days=20), chunk, now)
    enrollments = await Enrollment.all().order_by("id").values_list("learner_id", "id")
    messages: list[SeedMessage] = []
    for position in range(len(enrollments)):
        at = now - timedelta(minutes=position)
        question = f"Question {position} about pivot tables"
        messages.append(SeedMessage(position, INBOUND, Channel.EMAIL, question, at))
        if position % 3 == 0:
            answer = f"Answer {position}: try this"
            messages.append(SeedMessage(position, OUTBOUND, Channel.EMAIL, answer, at))
    answered = list(range(0, len(enrollments), 3))
    await insert_seed_threads(
        [(int(learner), int(enrollment)) for learner, enrollment in enrollments],
        messages,
        answered,
        now,
    )
