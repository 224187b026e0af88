"""The mail side of `dripper demo`: a local IMAP mailbox, and the learners who write back by email.

`start_mailbox` starts the course mailbox: Dovecot when it is installed and can run here
(dripper.sandbox.dovecot), else the embedded pure-Python server (dripper.sandbox.imap);
`--imap dovecot|embedded` forces one. `Receiving` runs dripper's IMAP poller on it exactly as
`dripper run` does (IMAPClient in a thread, IDLE), with the demo's clock. `EmailLearners` read
what the SMTP sink received and answer like a mail client and an MTA would: a reply to the
signed Reply-To address with In-Reply-To and References, delivered into the mailbox. José
answers his first quizzes by number and writes back to his first questions, with a question
of his own; Ana is on holiday from the third week and her mailbox sends one out-of-office
auto-reply (Auto-Submitted: auto-replied), which dripper must keep out of the inbox.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any, Literal

from dripper.channels.email.message import ANSWER_MANY, ANSWER_ONE, reply_subject
from dripper.clock import Clock
from dripper.config import ImapSettings
from dripper.content.render import email_text
from dripper.errors import DripperError
from dripper.inbound.email.parse import dedupe_key
from dripper.inbound.email.poller import ImapPoller, PollerOptions, PollReport
from dripper.models import Channel, Delivery, InboundItem, Message
from dripper.sandbox.dovecot import PASSWORD, Dovecot, dovecot_missing
from dripper.sandbox.imap import ImapServer
from dripper.sandbox.smtp import ReceivedMessage, SmtpSink
from dripper.schedule.keys import feedback_key

ImapChoice = Literal["auto", "dovecot", "embedded"]
# IDLE wakes the poller (the embedded server says EXISTS at once, Dovecot batches changes for
# half a second); polling this often as well keeps the demo's wait for each email short.
POLL_INTERVAL = 0.2
RECEIVE_TIMEOUT = 20.0

QUIZ_ANSWERS = 2  # José answers the first quizzes by email, then only writes
EMAIL_REPLIES = (  # José's replies to the first questions, one each
    "I tried it on our pipeline sheet this morning and it worked. Does it also work when the "
    "data sits in two different workbooks?",
    "Not yet, Monday was packed. Is there a quick way to do this on a Mac?",
)
OUT_OF_OFFICE = (
    "I am on holiday with no access to email until the 4th of January.\n"
    "Your message will not be forwarded; I will read it when I am back.\n"
)


@dataclass(frozen=True)
class EmailLearner:
    first_name: str
    last_name: str
    email: str


@dataclass
class DemoMailbox:
    """The running course mailbox, whichever server holds it."""

    server: Literal["dovecot", "embedded"]
    note: str  # why this server
    settings: ImapSettings
    password: str
    _deliver: Callable[[bytes, str], object]
    _stop: Callable[[], Awaitable[None]]

    async def deliver(self, message: bytes, sender: str) -> None:
        """Into the mailbox as an MTA would (Dovecot: dovecot-lda, a child process)."""
        await asyncio.to_thread(self._deliver, message, sender)

    async def stop(self) -> None:
        await self._stop()


async def start_mailbox(choice: ImapChoice) -> DemoMailbox:
    """Dovecot when `choice` allows it and it can run here, else the embedded server."""
    missing = dovecot_missing() if choice != "embedded" else None
    if choice == "dovecot" and missing:
        raise DripperError(f"--imap dovecot: {missing}; or use --imap embedded")
    if choice != "embedded" and missing is None:
        dovecot = await asyncio.to_thread(Dovecot(users=1).start)
        user = dovecot.new_user()
        return DemoMailbox(
            "dovecot",
            "Dovecot (a child process on 127.0.0.1)",
            dovecot.settings(user),
            PASSWORD,
            lambda message, sender: dovecot.deliver(user, message, sender),
            lambda: asyncio.to_thread(dovecot.stop),
        )
    embedded = await ImapServer({"course": PASSWORD}).start()
    note = "the embedded pure-Python IMAP server (dripper.sandbox.imap)"
    if missing:
        note += f"; no Dovecot: {missing}"
    return DemoMailbox(
        "embedded",
        note,
        embedded.settings("course"),
        PASSWORD,
        lambda message, _sender: embedded.deliver("course", message),
        embedded.stop,
    )


class Receiving:
    """dripper's IMAP poller on the demo mailbox, as `dripper run` runs it, and a way to wait
    until it has stored a number of messages."""

    def __init__(self, mailbox: DemoMailbox, key: bytes, clock: Clock) -> None:
        options = PollerOptions(poll_interval=POLL_INTERVAL, timeout=10)
        self.poller = ImapPoller(
            mailbox.settings, mailbox.password, key, options, clock=clock, on_cycle=self._cycle
        )
        self.stored = 0
        self.processed = Counter[str]()
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _cycle(self, report: PollReport) -> None:
        self.stored += report.stored
        self.processed += report.processed
        self._changed.set()

    async def start(self) -> None:
        await self.poller.connect()
        self._task = asyncio.create_task(self.poller.run(self._stop))

    async def wait_stored(self, count: int) -> None:
        """Until the poller has stored `count` messages in all (and processed them)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECEIVE_TIMEOUT
        while self.stored < count:
            if self._task is not None and self._task.done():
                self._task.result()
                raise RuntimeError("the demo's IMAP poller stopped")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
            except TimeoutError:
                raise RuntimeError(
                    f"the IMAP poller stored {self.stored} of {count} learner emails within "
                    f"{RECEIVE_TIMEOUT:.0f} s"
                ) from None

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        else:
            await self.poller.close()


@dataclass
class Written:
    """One email a learner's mail client (or autoresponder) sent to the course mailbox."""

    learner: str
    kind: str  # "reply", "quiz answer" or "out-of-office"
    body: str
    answers: str  # the Message-ID of the drip email it answers
    stored_as: str  # its InboundItem.external_id


@dataclass
class EmailLearners:
    """The learners who act on their email, from what the SMTP sink received."""

    sink: SmtpSink
    mailbox: DemoMailbox
    writer: EmailLearner
    away: EmailLearner
    away_from: datetime
    written: list[Written] = field(default_factory=list)
    _read: int = 0

    async def act(self, now: datetime) -> int:
        """Answer the mail that arrived since the last call; how many emails were sent."""
        arrived = self.sink.messages[self._read :]
        self._read = len(self.sink.messages)
        sent = 0
        for received in arrived:
            if received.answered and await self._answer(received, now):
                sent += 1
        return sent

    async def _answer(self, received: ReceivedMessage, now: datetime) -> bool:
        recipient = received.rcpt_tos[0].lower()
        original = received.message
        text = _plain_text(original)
        if recipient == self.away.email and now >= self.away_from:
            if any(w.kind == "out-of-office" for w in self.written):
                return False  # once per sender, as RFC 3834 asks of autoresponders
            await self._send(self.away, original, "out-of-office", OUT_OF_OFFICE, now)
            return True
        if recipient != self.writer.email:
            return False
        if text.startswith("A gentle"):
            return False  # reminders of what he already answered, or chose not to
        kinds = Counter(w.kind for w in self.written)
        if ANSWER_ONE in text or ANSWER_MANY in text:
            if kinds["quiz answer"] >= QUIZ_ANSWERS:
                return False
            options = re.findall(r"(?m)^(\d+)\. ", text)
            pick = str(kinds["quiz answer"] % max(len(options), 1) + 1)
            await self._send(self.writer, original, "quiz answer", pick, now)
            return True
        if "?" in text and kinds["reply"] < len(EMAIL_REPLIES):
            body = EMAIL_REPLIES[kinds["reply"]]
            await self._send(self.writer, original, "reply", body, now)
            return True
        return False

    async def _send(
        self, learner: EmailLearner, original: EmailMessage, kind: str, body: str, now: datetime
    ) -> None:
        local = learner.email.partition("@")[0]
        message_id = f"<demo-{len(self.written) + 1}.{local}@example.com>"
        raw = _email(learner, original, kind, body, now, message_id)
        await self.mailbox.deliver(raw, learner.email)
        answers = str(original["Message-ID"])
        self.written.append(Written(learner.first_name, kind, body, answers, dedupe_key(raw)))


def _plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if isinstance(part, EmailMessage) else ""


def _email(
    learner: EmailLearner,
    original: EmailMessage,
    kind: str,
    body: str,
    now: datetime,
    message_id: str,
) -> bytes:
    """What a mail client writes when the learner clicks Reply (or what an autoresponder
    writes): to the Reply-To address, threaded with In-Reply-To and References."""
    mail = EmailMessage()
    mail["From"] = formataddr((f"{learner.first_name} {learner.last_name}", learner.email))
    subject = str(original["Subject"] or "")
    if kind == "out-of-office":
        # Autoresponders answer the sender, not Reply-To, and not every one of them honours
        # the Auto-Submitted and X-Auto-Response-Suppress headers of our drip mail.
        mail["To"] = str(original["From"])
        mail["Subject"] = f"Automatic reply: {subject}"
        mail["Auto-Submitted"] = "auto-replied"
    else:
        mail["To"] = str(original["Reply-To"] or original["From"])
        mail["Subject"] = reply_subject(subject)
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = message_id
    mail["In-Reply-To"] = str(original["Message-ID"])
    references = [str(original["References"] or ""), str(original["Message-ID"])]
    mail["References"] = " ".join(ref for ref in references if ref)
    if kind == "out-of-office":
        mail.set_content(OUT_OF_OFFICE)
    else:
        quoted = "\n".join(f"> {line}".rstrip() for line in _plain_text(original).splitlines())
        when = str(original["Date"] or "")
        mail.set_content(f"{body}\n\nOn {when}, {original['From']} wrote:\n{quoted}\n")
    return bytes(mail)


async def email_summary(
    mailbox: DemoMailbox, learners: EmailLearners, receiving: Receiving
) -> dict[str, Any]:
    """What the learners sent by email, what the poller made of it, where it landed."""
    replies = []
    answers = []
    out_of_office: dict[str, Any] | None = None
    for written in learners.written:
        item = await InboundItem.filter(
            channel=Channel.EMAIL, external_id=written.stored_as
        ).first()
        filed = None if item is None else await Message.filter(inbound_id=item.id).first()
        answered = await Delivery.filter(provider_message_id=written.answers).first()
        if written.kind == "out-of-office":
            out_of_office = {
                "learner": written.learner,
                "stored": item is not None,
                "verdict": None if item is None else item.error,
                "inbox_messages": await Message.filter(inbound_id=item.id).count() if item else 0,
            }
        elif written.kind == "quiz answer":
            feedback = (
                None
                if item is None
                else await Delivery.filter(business_key=feedback_key(item.id)).first()
            )
            answers.append(
                {
                    "learner": written.learner,
                    "answers_step": None if answered is None else answered.step_id,
                    "answer": written.body,
                    "in_inbox": filed is not None,
                    "feedback": None
                    if feedback is None
                    else email_text(str(feedback.payload.get("markdown", ""))).strip(),
                    "feedback_state": None if feedback is None else feedback.state.value,
                }
            )
        elif written.kind == "reply":
            replies.append(
                {
                    "learner": written.learner,
                    "answers_step": None if answered is None else answered.step_id,
                    "in_inbox": filed is not None,
                    "filed_under_step": None if filed is None else filed.step_id,
                    "body": None if filed is None else filed.body,
                }
            )
    return {
        "imap_server": mailbox.server,
        "imap_server_note": mailbox.note,
        "learner_emails": dict(Counter(w.kind for w in learners.written)),
        "stored_by_the_poller": receiving.stored,
        "classified": dict(receiving.processed),
        "replies": replies,
        "answers": answers,
        "out_of_office": out_of_office,
    }
