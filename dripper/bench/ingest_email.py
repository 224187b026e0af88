"""`dripper bench ingest-email`: N learner replies in a real Dovecot, received into the inbox.

Also home of `seed_course`, learners with sent drip emails to reply to (the email tests use
it). The Dovecot server itself is dripper.sandbox.dovecot.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from dripper.channels.email.message import message_id_for
from dripper.config import ImapSettings
from dripper.curriculum.checks import CheckResult, check_source
from dripper.curriculum.source import parse_source
from dripper.enrollments.enroll import enroll
from dripper.models import Channel, Delivery, DeliveryKind, DeliveryState, Enrollment, Learner
from dripper.sandbox.dovecot import PASSWORD, Dovecot, dovecot_missing
from dripper.tokens import reply_address, reply_token, unsubscribe_address, unsubscribe_token

COURSE_ADDRESS = "course@example.com"
COURSE_DOMAIN = "example.com"
BENCH_KEY = b"bench-hmac-key-0123456789abcdef"


# --------------------------------------------------------------------------- a course to reply to

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
    count: int, *, sent: Sequence[str] = ("hello", "reflect", "quiz"), prefix: str = "learner"
) -> list[SeededLearner]:
    """`count` learners enrolled in COURSE, each with the steps `sent` already emailed
    (deliveries SENT an hour apart, with the Message-IDs the email channel gives them)."""
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
            key = f"{enrollment.id}:{step}:0"
            seed.message_ids[step] = message_id_for(key, COURSE_DOMAIN)
            when = COURSE_END + timedelta(days=1, hours=index)
            deliveries.append(
                Delivery(
                    business_key=key,
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
            seed.delivery_ids[step] = by_key[f"{seed.enrollment_id}:{step}:0"]
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


# --------------------------------------------------------------------------- the benchmark

_BODY = """\
I rebuilt the monthly report as a table, reply number {n}.
It took ten minutes instead of an hour.

Best regards,
Learner {n}

On Sat, 5 Dec 2026 at 09:00, Replies course <course@example.com> wrote:
> What did you try?
>
> --
> Reply to this email to reach your trainer.
"""


async def _ingest_once(n: int, learners: int) -> dict[str, Any]:
    from dripper.db import open_db
    from dripper.inbound.email.poller import ImapPoller, PollerOptions
    from dripper.models import InboundItem, Message

    server = Dovecot().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with open_db(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"):
                seeded = await seed_course(min(n, learners))
                imap = server.settings(server.new_user())
                messages = []
                for index in range(n):
                    seed = seeded[index % len(seeded)]
                    messages.append(
                        reply_message(
                            seed.email,
                            seed.reply_to(BENCH_KEY),
                            _BODY.format(n=index),
                            in_reply_to=seed.message_ids["reflect"],
                            message_id=f"<bench-{index}@example.net>",
                        )
                    )
                _append(imap, messages)
                poller = ImapPoller(imap, PASSWORD, BENCH_KEY, PollerOptions(batch_size=200))
                started = time.perf_counter()
                await poller.connect()
                report = await poller.poll_once()
                elapsed = time.perf_counter() - started
                again = await poller.poll_once()  # nothing new: must store nothing
                await poller.close()
                stored = await InboundItem.all().count()
                filed = await Message.all().count()
                distinct = len(set(await Message.all().values_list("inbound_id", flat=True)))
    finally:
        server.stop()
    return {
        "seconds": round(elapsed, 3),
        "messages_per_s": round(n / elapsed, 1),
        "stored": stored,
        "filed": filed,
        "duplicates": (filed - distinct) + report.duplicates + again.stored,
        "processed": dict(report.processed),
    }


def _append(imap: ImapSettings, messages: Sequence[bytes]) -> None:
    from imapclient import IMAPClient  # type: ignore[import-untyped]

    client = IMAPClient(imap.host, port=imap.port, ssl=False)
    client.login(imap.username, PASSWORD)
    for start in range(0, len(messages), 200):
        client.multiappend(imap.mailbox, list(messages[start : start + 200]))
    client.logout()


async def run_ingest_email(n: int, runs: int = 3, learners: int = 200) -> dict[str, Any]:
    """N replies APPENDed to a fresh Dovecot mailbox, then one poller cycle stores, classifies
    and files them; median of `runs` runs. One JSON-ready dict."""
    missing = dovecot_missing()
    if missing:
        raise SystemExit(missing)
    results = [await _ingest_once(n, learners) for _ in range(runs)]
    rates = [r["messages_per_s"] for r in results]
    median = statistics.median(rates)
    chosen = min(results, key=lambda r: abs(r["messages_per_s"] - median))
    return {
        "bench": "ingest-email",
        "n": n,
        "runs": runs,
        "messages_per_s": median,
        "messages_per_s_runs": rates,
        "stored": chosen["stored"],
        "filed": chosen["filed"],
        "duplicates": max(r["duplicates"] for r in results),
        "seconds": chosen["seconds"],
        "processed": chosen["processed"],
    }


if __name__ == "__main__":
    import asyncio
    import sys

    print(
        json.dumps(asyncio.run(run_ingest_email(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)))
    )
