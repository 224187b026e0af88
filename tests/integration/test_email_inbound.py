"""Receiving email end to end: a real Dovecot, the IMAP poller, the database and the inbox."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from dripper import oplog
from dripper.config import ImapSettings, Settings
from dripper.content.render import email_text
from dripper.errors import DripperError
from dripper.inbound.email.ingest import (
    Cursor,
    Fetched,
    StoreReport,
    load_cursor,
)
from dripper.inbound.email.parse import parse_mail
from dripper.inbound.email.poller import ImapPoller, PollerOptions, PollReport
from dripper.models import (
    Conversation,
    Delivery,
    DeliveryKind,
    InboundItem,
    InboundState,
    Learner,
    Message,
    MessageDirection,
    QuizAnswer,
    Reachability,
)
from dripper.sandbox.seed import COURSE_ADDRESS, SeededLearner, reply_message, seed_course
from dripper.schedule.keys import step_key
from dripper.tokens import bounce_address, bounce_token
from tests.fixtures.mail import Mailbox, eml

KEY = b"inbound-test-hmac-key-0123456789"
STRANGER = "mallory@evil.example"


@dataclass
class Env:
    mailbox: Mailbox
    learners: list[SeededLearner]

    def poller(self, **options: object) -> ImapPoller:
        return ImapPoller(
            self.mailbox.settings,
            self.mailbox.password,
            KEY,
            PollerOptions(**options),  # type: ignore[arg-type]
        )

    async def ingest(self, **options: object) -> PollReport:
        poller = self.poller(**options)
        await poller.connect()
        try:
            return await poller.poll_once()
        finally:
            await poller.close()

    def deliver(self, name: str, learner: SeededLearner | None = None, **values: str) -> None:
        learner = learner or self.learners[0]
        defaults = {
            "from": learner.email,
            "to": learner.reply_to(KEY),
            "in_reply_to": learner.message_ids["reflect"],
            "recipient": learner.email,
            "original_id": learner.message_ids["reflect"],
        }
        self.mailbox.deliver(eml(name, **{**defaults, **values}))


@pytest.fixture
async def env(db: str, mailbox: Mailbox) -> AsyncIterator[Env]:
    learners = await seed_course(3, sent=("hello", "reflect", "quiz", "many", "used"), key=KEY)
    yield Env(mailbox, learners)


async def messages_of(learner: SeededLearner) -> list[Message]:
    return await Message.filter(conversation__learner_id=learner.id).order_by("id")


async def items(state: InboundState | None = None) -> list[InboundItem]:
    query = InboundItem.all() if state is None else InboundItem.filter(state=state)
    return await query.order_by("id")


# --------------------------------------------------------------------------- matching


async def test_reply_threaded_by_token_is_stripped_and_kept_raw(env: Env) -> None:
    env.deliver("reply_gmail")
    report = await env.ingest()
    assert (report.fetched, report.stored, report.processed["reply"]) == (1, 1, 1)
    (message,) = await messages_of(env.learners[0])
    assert message.body.startswith("I rebuilt the monthly sales report as a table")
    assert "Best regards" not in message.body and "wrote:" not in message.body
    assert message.raw_body is not None and "> What did you try?" in message.raw_body
    assert message.step_id == "reflect" and message.flags == []
    conversation = await Conversation.get(id=message.conversation_id)  # type: ignore[attr-defined]
    assert conversation.enrollment_id == env.learners[0].enrollment_id  # type: ignore[attr-defined]
    (item,) = await items()
    assert item.state is InboundState.PROCESSED and message.inbound_id == item.id  # type: ignore[attr-defined]
    assert item.external_id == "<caf=+reply1.gmail@mail.gmail.com>"
    assert "matched by token" in (item.error or "")


async def test_each_email_gets_one_log_line_without_its_text(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.deliver("reply_gmail")
    with caplog.at_level(logging.INFO, logger="dripper"):
        await env.ingest()
    (line,) = [r for r in caplog.records if r.getMessage() == "inbound"]
    fields = line.__dict__[oplog.FIELDS]
    assert fields["channel"] == "email" and fields["kind"] == "reply"
    assert fields["learner"] == env.learners[0].id and fields["state"] == "processed"
    assert isinstance(fields["latency_ms"], int)
    assert not any(
        "monthly sales report" in r.getMessage() + str(r.__dict__.get(oplog.FIELDS))
        for r in caplog.records
    )


async def test_token_without_thread_goes_to_the_latest_prompt_of_its_enrollment(
    env: Env,
) -> None:
    env.deliver("reply_gmail", in_reply_to="<not-ours@example.org>")
    await env.ingest()
    (message,) = await messages_of(env.learners[0])
    assert message.step_id == "used"  # the check-in was the last prompt sent


async def test_reply_matched_by_in_reply_to_when_the_token_is_missing(env: Env) -> None:
    learner = env.learners[1]
    env.deliver("reply_outlook_html", learner, to=COURSE_ADDRESS)
    await env.ingest()
    (message,) = await messages_of(learner)
    assert message.step_id == "reflect" and message.flags == []
    assert message.body == "Ich habe die Pivot-Tabelle für die Kostenstellen gebaut."
    assert "thread" in ((await items())[0].error or "")


async def test_reply_matched_by_from_as_last_resort(env: Env) -> None:
    learner = env.learners[2]
    env.deliver("reply_latin1_no_charset", learner, to=COURSE_ADDRESS)
    await env.ingest()
    (message,) = await messages_of(learner)
    assert message.body == "Das Diagramm war schön, danke für den Kurs!"
    assert "matched by from" in ((await items())[0].error or "")


async def test_token_from_another_address_is_flagged_and_not_trusted(env: Env) -> None:
    learner = env.learners[0]
    env.deliver("reply_gmail", learner, **{"from": STRANGER})
    env.deliver("stop", learner, **{"from": STRANGER})
    env.deliver(
        "quiz_answer", learner, **{"from": STRANGER}, in_reply_to=learner.message_ids["quiz"]
    )
    env.deliver("unsubscribe_mailto", learner, **{"from": STRANGER}, to=learner.unsubscribe_to(KEY))
    report = await env.ingest()
    assert report.processed["unverified"] == 4
    filed = await messages_of(learner)
    assert len(filed) == 4 and all(m.flags == ["unverified-sender"] for m in filed)
    assert (await Learner.get(id=learner.id)).opted_out_at is None
    assert await QuizAnswer.all().count() == 0
    assert all("unverified-sender" in (item.error or "") for item in await items())


async def test_reply_to_a_computed_message_id_is_not_filed_for_the_learner(env: Env) -> None:
    """A stranger who knows the business key (enrollment and step) computes the Message-ID the
    old unkeyed scheme gave (still stored for mail sent before ids were keyed) and replies "in
    thread": it matches no learner."""
    learner = env.learners[0]
    computed = await _stored_as_before_keyed_ids(learner, "reflect")
    env.deliver(
        "reply_gmail", learner, **{"from": STRANGER, "to": COURSE_ADDRESS}, in_reply_to=computed
    )
    # With the learner's own address as From (no DMARC verdict), the thread still proves
    # nothing: the reply is filed by its From, but answers no quiz.
    quiz = await _stored_as_before_keyed_ids(learner, "quiz")
    env.deliver("quiz_answer", learner, to=COURSE_ADDRESS, in_reply_to=quiz)
    report = await env.ingest()
    assert report.processed["unknown-sender"] == 1
    assert await QuizAnswer.all().count() == 0
    [filed] = await messages_of(learner)
    assert filed.body == "2" and "matched by from" in ((await items())[-1].error or "")


async def test_dmarc_failure_makes_the_learners_own_address_unverified(env: Env) -> None:
    """A spoofed From with a genuine thread (a forwarded mail, say): the receiving server's
    Authentication-Results says DMARC failed, so the quiz answer is not recorded."""
    learner = env.learners[0]
    results = (
        f"Authentication-Results: mx.example.com; spf=fail smtp.mailfrom={STRANGER};\n"
        " dkim=none; dmarc=fail (p=none dis=none) header.from=example.net\n"
    )
    quiz = eml(
        "quiz_answer",
        **{"from": learner.email, "to": COURSE_ADDRESS},
        in_reply_to=learner.message_ids["quiz"],
    )
    env.mailbox.deliver(results.encode() + quiz)
    # Microsoft 365 writes the header without an authserv-id.
    stop = eml("stop", **{"from": learner.email, "to": learner.unsubscribe_to(KEY)})
    microsoft = (
        "Authentication-Results: spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=evil.example;"
        " dkim=none (message not signed) header.d=none;dmarc=fail action=none"
        " header.from=example.net;compauth=fail reason=001\n"
    )
    env.mailbox.deliver(microsoft.encode() + stop)
    report = await env.ingest()
    assert report.processed["unverified"] == 2
    assert await QuizAnswer.all().count() == 0
    assert (await Learner.get(id=learner.id)).opted_out_at is None
    filed = await messages_of(learner)
    assert len(filed) == 2 and all(m.flags == ["unverified-sender"] for m in filed)
    assert all("DMARC failed" in (item.error or "") for item in await items())


async def test_unknown_sender_is_kept_raw_and_flagged(env: Env) -> None:
    env.deliver(
        "reply_gmail", None, **{"from": STRANGER, "to": COURSE_ADDRESS}, in_reply_to="<x@y.z>"
    )
    report = await env.ingest()
    assert report.processed["unknown-sender"] == 1
    (item,) = await items()
    assert item.state is InboundState.FLAGGED and item.error == f"unknown sender: {STRANGER}"
    assert await Message.all().count() == 0
    kept = parse_mail(bytes(item.payload))
    assert (kept.from_address, kept.subject) == (STRANGER, "Re: What did you try?")
    assert kept.body.startswith("I rebuilt the monthly")


# --------------------------------------------------------------------------- machine mail


async def test_hard_bounce_makes_the_address_unreachable(env: Env) -> None:
    first, second = env.learners[0], env.learners[1]
    env.deliver("dsn_hard_postfix", first)
    # Our mail to the second learner, forwarded to an address that failed: that is not the
    # address we sent to, so it counts for nobody (shown to the trainers, flagged).
    env.deliver("dsn_hard_by_message_id", second)
    report = await env.ingest()
    assert (report.processed["bounce"], report.processed["unverified-bounce"]) == (1, 1)
    assert (await Learner.get(id=first.id)).email_status is Reachability.UNREACHABLE
    assert (await Learner.get(id=second.id)).email_status is Reachability.UNKNOWN
    assert (await Learner.get(id=env.learners[2].id)).email_status is Reachability.UNKNOWN
    # Not a learner message: only the system line saying the address bounced.
    [line] = await Message.all()
    assert line.direction is MessageDirection.SYSTEM and line.flags == ["bounced"]
    assert line.body.startswith("Email bounced on ") and "(5.1.1)" in line.body, line.body
    assert [item.state for item in await items()] == [InboundState.PROCESSED, InboundState.FLAGGED]


async def test_soft_bounce_is_counted_once(env: Env) -> None:
    env.deliver("dsn_soft_delayed")
    env.deliver("dsn_soft_delayed")  # the same report twice: one Message-ID, stored once
    report = await env.ingest()
    assert (report.stored, report.duplicates) == (1, 1)
    learner = await Learner.get(id=env.learners[0].id)
    assert (learner.soft_bounces, learner.email_status) == (1, Reachability.UNKNOWN)
    assert await Message.all().count() == 0


async def test_forged_bounce_is_flagged_and_changes_nothing(env: Env) -> None:
    """Anyone can mail a multipart/report naming a learner's address; without our Message-ID
    (here: the one the old unkeyed scheme gave, which a stranger could compute) or a signed
    return path, it counts for nobody."""
    learner = env.learners[0]
    computed = await _stored_as_before_keyed_ids(learner, "reflect")
    env.deliver("dsn_hard_postfix", learner, original_id=computed)
    env.deliver("dsn_soft_delayed", learner, original_id="<made-up@example.com>")
    # A report naming our genuine mail, but with a second, unknown recipient beside the learner:
    # all or nothing, so a retry after a fix can never count anything twice.
    both = (
        eml("dsn_hard_postfix", recipient=learner.email, original_id=learner.message_ids["hello"])
        .replace(b"Message-Id: <2026", b"Message-Id: <both-2026", 1)
        .replace(
            b"Action: failed\n",
            b"Action: failed\n\nFinal-Recipient: rfc822; x@y.example\nAction: failed\n"
            b"Status: 5.1.1\n",
            1,
        )
    )
    env.mailbox.deliver(both)
    report = await env.ingest()
    assert report.processed["unverified-bounce"] == 3
    kept = await Learner.get(id=learner.id)
    assert (kept.email_status, kept.soft_bounces) == (Reachability.UNKNOWN, 0)
    for item in await items():
        assert item.state is InboundState.FLAGGED
        assert (item.error or "").startswith("unverified bounce, nothing counted")
    assert "x@y.example 5.1.1: names no message we sent" in ((await items())[-1].error or "")


async def _stored_as_before_keyed_ids(learner: SeededLearner, step: str) -> str:
    """The Message-ID dripper gave that step before ids were keyed (an unkeyed hash of its
    business key, which anyone can compute), stored as a database from then holds it."""
    business_key = step_key(learner.enrollment_id, step)
    digest = hashlib.sha256(business_key.encode()).digest()[:16]
    computed = f"<{base64.b32encode(digest).decode().rstrip('=').lower()}@example.com>"
    await Delivery.filter(business_key=business_key).update(provider_message_id=computed)
    return computed


async def test_bounce_to_a_signed_return_path_counts_for_that_delivery(env: Env) -> None:
    first, second, third = env.learners
    verp = bounce_address(COURSE_ADDRESS, bounce_token(KEY, first.delivery_ids["hello"]))
    env.deliver("dsn_verp_only", first, to=verp, tag="1")
    # The return path of the first learner's mail, reporting the second learner's address.
    env.deliver("dsn_verp_only", second, to=verp, tag="2")
    # A return path signed with another key proves nothing.
    forged = bounce_address(
        COURSE_ADDRESS, bounce_token(b"not our key", third.delivery_ids["hello"])
    )
    env.deliver("dsn_verp_only", third, to=forged, tag="3")
    report = await env.ingest()
    assert (report.processed["bounce"], report.processed["unverified-bounce"]) == (1, 2)
    states = {
        learner.id: (await Learner.get(id=learner.id)).email_status for learner in env.learners
    }
    assert states == {
        first.id: Reachability.UNREACHABLE,
        second.id: Reachability.UNKNOWN,
        third.id: Reachability.UNKNOWN,
    }


@pytest.mark.parametrize(
    "name",
    [
        "ooo_exchange",
        "ooo_gmail_vacation",
        "ooo_german_subject",
        "ooo_french_subject",
        "ooo_x_autoreply",
        "precedence_bulk",
    ],
)
async def test_auto_replies_are_kept_but_hidden(env: Env, name: str) -> None:
    env.deliver(name)
    report = await env.ingest()
    assert report.processed["auto-reply"] == 1
    (item,) = await items()
    assert item.state is InboundState.PROCESSED
    assert (item.error or "").startswith("auto-reply, hidden: ")
    assert await Message.all().count() == 0


async def test_stop_and_the_unsubscribe_address_opt_out(env: Env) -> None:
    first, second, third = env.learners
    env.deliver("stop", first, to=COURSE_ADDRESS)
    env.deliver("unsubscribe_mailto", second, to=second.unsubscribe_to(KEY))
    report = await env.ingest()
    assert report.processed["unsubscribe"] == 2
    assert (await Learner.get(id=first.id)).opted_out_at is not None
    assert (await Learner.get(id=second.id)).opted_out_at is not None
    assert (await Learner.get(id=third.id)).opted_out_at is None
    assert await Message.all().count() == 0


# --------------------------------------------------------------------------- quiz answers


async def test_quiz_reply_records_the_answer_and_plans_the_reask(env: Env) -> None:
    learner = env.learners[0]
    env.deliver("quiz_answer", learner, in_reply_to=learner.message_ids["quiz"])
    report = await env.ingest()
    assert report.processed["answer"] == 1
    (answer,) = await QuizAnswer.all()
    assert (answer.step_id, answer.occurrence, answer.choices, answer.correct) == (
        "quiz",
        0,
        [1],
        False,
    )
    reask = await Delivery.get(business_key=f"{learner.enrollment_id}:quiz:1")
    assert (reask.kind, reask.occurrence, reask.step_id) == (DeliveryKind.REASK, 1, "quiz")
    # Only the answer ("2", the iPhone signature and the quote stripped): recorded and
    # answered, no conversation for the trainers.
    assert await messages_of(learner) == []
    assert await Conversation.filter(learner_id=learner.id).count() == 0
    (feedback,) = await Delivery.filter(kind=DeliveryKind.FEEDBACK)
    (item,) = await items()
    assert feedback.business_key == f"feedback:{item.id}"
    assert (feedback.step_id, feedback.channel_preference) == ("quiz", "email")
    assert feedback.payload["inbound_id"] == item.id
    assert email_text(feedback.payload["markdown"]).strip() == (
        "❌ Not quite. Your answer: =VLOOKUP(..., TRUE)\n\n"
        "Right answer: =XLOOKUP(...)\n\n"
        "XLOOKUP matches exactly unless told otherwise, "
        f"{(await Learner.get(id=learner.id)).first_name}."
    )
    assert "feedback queued" in (item.error or "")

    # A second answer to the same asking: the first one stands, and the feedback says so.
    second = reply_message(
        learner.email, learner.reply_to(KEY), "1", in_reply_to=learner.message_ids["quiz"]
    )
    env.mailbox.deliver(second)
    await env.ingest()
    assert [a.choices for a in await QuizAnswer.all()] == [[1]]
    assert await messages_of(learner) == []
    assert "already-answered" in ((await items())[-1].error or "")
    again = await Delivery.filter(kind=DeliveryKind.FEEDBACK).order_by("id")
    assert len(again) == 2
    assert (
        again[1].payload["markdown"].startswith("You already answered this one. ❌ **Not quite.**")
    )


async def test_an_answer_with_more_words_is_recorded_answered_and_filed(env: Env) -> None:
    learner = env.learners[0]
    env.mailbox.deliver(
        reply_message(
            learner.email,
            learner.reply_to(KEY),
            "1\n\nI was not sure: does XLOOKUP also work in Excel 2016?",
            in_reply_to=learner.message_ids["quiz"],
        )
    )
    report = await env.ingest()
    assert report.processed["answer"] == 1
    (answer,) = await QuizAnswer.all()
    assert (answer.choices, answer.correct) == ([0], True)
    (feedback,) = await Delivery.filter(kind=DeliveryKind.FEEDBACK)
    assert feedback.payload["markdown"].startswith("✅ **Right!** Your answer: =XLOOKUP")
    (message,) = await messages_of(learner)  # the question is for a trainer
    assert "Excel 2016" in message.body and message.step_id == "quiz"


async def test_a_checkin_answered_by_email_is_thanked_not_filed(env: Env) -> None:
    learner = env.learners[2]
    env.mailbox.deliver(
        reply_message(
            learner.email, learner.reply_to(KEY), "Once", in_reply_to=learner.message_ids["used"]
        )
    )
    await env.ingest()
    (answer,) = await QuizAnswer.all()
    assert (answer.step_id, answer.choices) == ("used", [1])
    (feedback,) = await Delivery.filter(kind=DeliveryKind.FEEDBACK)
    assert feedback.payload["markdown"] == "Thanks! Your answer: **Once**"
    assert await messages_of(learner) == []


async def test_a_number_that_fits_no_option_is_filed_for_a_trainer_without_feedback(
    env: Env,
) -> None:
    learner = env.learners[0]
    env.mailbox.deliver(
        reply_message(
            learner.email, learner.reply_to(KEY), "7", in_reply_to=learner.message_ids["quiz"]
        )
    )
    await env.ingest()
    assert await QuizAnswer.all() == []
    assert await Delivery.filter(kind=DeliveryKind.FEEDBACK).count() == 0
    (message,) = await messages_of(learner)
    assert message.body == "7"


async def test_multiple_choice_and_checkin_answers(env: Env) -> None:
    learner = env.learners[1]
    env.deliver("quiz_answer_multi", learner, in_reply_to=learner.message_ids["many"])
    env.mailbox.deliver(
        reply_message(
            learner.email, COURSE_ADDRESS, "Once\n", in_reply_to=learner.message_ids["used"]
        )
    )
    await env.ingest()
    answers = {a.step_id: a for a in await QuizAnswer.all()}
    assert (answers["many"].choices, answers["many"].correct) == ([0, 1], True)
    assert (answers["used"].choices, answers["used"].correct) == ([1], None)
    # Right on the first asking with retire_after 1 (the default): no re-ask.
    assert not await Delivery.exists(business_key=f"{learner.enrollment_id}:many:1")


async def test_an_answer_out_of_range_is_filed_as_a_message(env: Env) -> None:
    learner = env.learners[2]
    env.mailbox.deliver(
        reply_message(
            learner.email, learner.reply_to(KEY), "7", in_reply_to=learner.message_ids["quiz"]
        )
    )
    await env.ingest()
    assert await QuizAnswer.all().count() == 0
    (message,) = await messages_of(learner)
    assert message.body == "7"
    assert "invalid" in ((await items())[0].error or "")


# --------------------------------------------------------------------------- hard mail


async def test_odd_mail_is_handled_and_nothing_is_lost(env: Env) -> None:
    learner = env.learners[0]
    for name in (
        "malformed_mime",
        "reply_wrong_charset",
        "reply_bogus_charset",
        "reply_outlook_html",
        "reply_with_attachment",
    ):
        env.deliver(name, learner)
    attachment = b"x" * 400_000
    huge = reply_message(
        learner.email,
        learner.reply_to(KEY),
        "See the attached scan.",
        message_id="<huge@example.net>",
    )
    from email import message_from_bytes, policy

    big = message_from_bytes(huge, policy=policy.default)
    big.add_attachment(attachment, maintype="application", subtype="pdf", filename="scan.pdf")
    env.mailbox.deliver(bytes(big))

    report = await env.ingest(max_message_bytes=200_000)
    assert report.stored == 6
    stored = await items()
    assert len(stored) == 6
    filed = await messages_of(learner)
    assert len(filed) == 6  # every one reached the inbox, the huge one as a notice
    by_body = {m.body: m for m in filed}
    assert "Hello, this is broken base64" in by_body
    assert "Très utile, merci ! Les tableaux croisés marchent." in by_body
    assert "Grüße, it worked \u2013 mostly." in by_body
    with_png = next(
        m for m in filed if m.attachments and m.attachments[0]["mime_type"] == "image/png"
    )
    assert with_png.attachments == [
        {"filename": "Tabelle übersicht.png", "mime_type": "image/png", "size": 70}
    ]
    huge_message = next(m for m in filed if "too-large" in m.flags)
    assert huge_message.body.startswith("[This email was too large to download")
    (scan,) = huge_message.attachments
    assert scan["filename"] == "scan.pdf" and scan["mime_type"] == "application/pdf"
    assert 399_000 <= int(scan["size"]) <= 401_000  # type: ignore[call-overload]
    huge_item = next(item for item in stored if item.external_id == "<huge@example.net>")
    assert huge_item.state is InboundState.FLAGGED
    assert (huge_item.error or "").startswith("too large: ")
    assert bytes(huge_item.payload).startswith(b"From:") and len(huge_item.payload) < 2000
    assert all(item.state is InboundState.PROCESSED for item in stored if item != huge_item)


async def test_a_failing_item_is_flagged_and_the_others_go_on(env: Env) -> None:
    from dripper.models import CurriculumVersion
    from dripper.store.curricula import _parsed

    env.deliver("reply_gmail", env.learners[0])  # filing it needs the curriculum
    env.deliver("ooo_exchange", env.learners[1])  # hiding it does not
    await CurriculumVersion.all().update(source="id: [broken")
    _parsed.clear()
    try:
        report = await env.ingest()
    finally:
        _parsed.clear()
    assert report.processed["failed"] == 1 and report.processed["auto-reply"] == 1
    failed, ok = await items()
    assert failed.state is InboundState.FLAGGED
    assert (failed.error or "").startswith("processing failed: ")
    assert "invalid YAML" in (failed.error or "")
    assert ok.state is InboundState.PROCESSED
    assert await Message.all().count() == 0  # the failed item's partial work was rolled back


# --------------------------------------------------------------------------- crashes, resets


class CrashAfterFirstBatch(ImapPoller):
    """Dies after fetching the second batch, before storing it (the thread is gone)."""

    batches = 0

    async def _store(self, cursor: Cursor, fetched: Sequence[Fetched]) -> StoreReport:
        self.batches += 1
        if self.batches == 2:
            raise ConnectionResetError("killed between fetch and commit")
        return await super()._store(cursor, fetched)


def replies(env: Env, count: int, prefix: str = "r") -> None:
    for index in range(count):
        learner = env.learners[index % len(env.learners)]
        env.mailbox.deliver(
            reply_message(
                learner.email,
                learner.reply_to(KEY),
                f"Reply {prefix}{index}",
                message_id=f"<{prefix}{index}@example.net>",
            )
        )


async def test_crash_between_fetch_and_commit_loses_and_duplicates_nothing(env: Env) -> None:
    replies(env, 5)
    crashing = CrashAfterFirstBatch(
        env.mailbox.settings, env.mailbox.password, KEY, PollerOptions(batch_size=2)
    )
    await crashing.connect()
    with pytest.raises(ConnectionResetError):
        await crashing.poll_once()
    await crashing.close()
    cursor = await load_cursor(crashing.account)
    assert cursor is not None and cursor.last_uid == 2
    assert await InboundItem.all().count() == 2

    report = await env.ingest(batch_size=2)
    assert (report.fetched, report.stored, report.duplicates) == (3, 3, 0)
    bodies = sorted(message.body for message in await Message.all())
    assert bodies == [f"Reply r{i}" for i in range(5)]


async def test_crash_after_storing_before_processing(env: Env) -> None:
    replies(env, 4)
    poller = env.poller()
    await poller.connect()
    stored = await poller.fetch_and_store()  # stored and committed, then the process dies
    await poller.close()
    assert stored.stored == 4
    assert [item.state for item in await items()] == [InboundState.PENDING] * 4

    report = await env.ingest()
    assert (report.fetched, report.stored, sum(report.processed.values())) == (0, 0, 4)
    assert await Message.all().count() == 4
    assert (await env.ingest()).processed == {}


async def test_uidvalidity_reset_rescans_without_duplicates(env: Env) -> None:
    replies(env, 3)
    first = await env.ingest()
    env.mailbox.reset_uidvalidity()
    replies(env, 1, prefix="new")
    second = await env.ingest()
    assert second.uidvalidity != first.uidvalidity and second.rescanned
    assert (second.fetched, second.stored, second.duplicates) == (4, 1, 3)
    assert await InboundItem.all().count() == 4
    assert await Message.all().count() == 4
    third = await env.ingest()
    assert (third.fetched, third.rescanned) == (0, False)


async def test_messages_without_message_id_dedupe_by_content(env: Env) -> None:
    learner = env.learners[0]
    raw = reply_message(learner.email, learner.reply_to(KEY), "No id here")
    env.mailbox.deliver(raw)
    await env.ingest()
    (item,) = await items()
    assert item.external_id.startswith("sha256:")
    env.mailbox.reset_uidvalidity()
    assert (await env.ingest()).duplicates == 1


# --------------------------------------------------------------------------- the loop


async def test_run_wakes_on_new_mail_with_idle_and_stops(env: Env) -> None:
    cycles: asyncio.Queue[PollReport] = asyncio.Queue()
    poller = ImapPoller(
        env.mailbox.settings,
        env.mailbox.password,
        KEY,
        PollerOptions(poll_interval=60),
        on_cycle=cycles.put_nowait,
    )
    await poller.connect()
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    first = await asyncio.wait_for(cycles.get(), 10)
    assert first.fetched == 0
    replies(env, 1)  # IDLE reports it long before the 60 s poll interval
    second = await asyncio.wait_for(cycles.get(), 10)
    assert second.stored == 1 and second.processed["reply"] == 1
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_run_reconnects_after_the_connection_drops(env: Env) -> None:
    cycles: asyncio.Queue[PollReport] = asyncio.Queue()
    poller = ImapPoller(
        env.mailbox.settings,
        env.mailbox.password,
        KEY,
        PollerOptions(poll_interval=60, backoff_initial=0.01),
        on_cycle=cycles.put_nowait,
    )
    await poller.connect()
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    await asyncio.wait_for(cycles.get(), 10)
    poller.client.socket().shutdown(2)  # the server or the network goes away mid-IDLE
    replies(env, 1)
    report = await asyncio.wait_for(cycles.get(), 10)
    while report.stored == 0:  # the reconnect cycle may run before the delivery lands
        report = await asyncio.wait_for(cycles.get(), 70)
    assert report.stored == 1
    stop.set()
    await asyncio.wait_for(task, 5)


# --------------------------------------------------------------------------- start problems


async def test_wrong_password_names_the_settings(mailbox: Mailbox) -> None:
    poller = ImapPoller(mailbox.settings, "wrong", KEY)
    with pytest.raises(DripperError, match="DRIPPER_IMAP_PASSWORD"):
        await poller.connect()


async def test_unreachable_server_names_the_host_setting(mailbox: Mailbox) -> None:
    settings = ImapSettings(host="127.0.0.1", port=1, security="none", username="x")
    with pytest.raises(DripperError, match=r"DRIPPER_IMAP_HOST"):
        await ImapPoller(settings, "x", KEY).connect()


async def test_tls_against_a_plain_server_names_the_security_setting(mailbox: Mailbox) -> None:
    settings = mailbox.settings.model_copy(update={"security": "tls"})
    with pytest.raises(DripperError, match=r"DRIPPER_IMAP_SECURITY"):
        await ImapPoller(settings, mailbox.password, KEY).connect()


async def test_missing_mailbox_names_the_mailbox_setting(mailbox: Mailbox) -> None:
    settings = mailbox.settings.model_copy(update={"mailbox": "Nope"})
    with pytest.raises(DripperError, match=r"DRIPPER_IMAP_MAILBOX"):
        await ImapPoller(settings, mailbox.password, KEY).connect()


async def test_the_imap_poller_needs_host_and_password() -> None:
    with pytest.raises(DripperError, match="DRIPPER_IMAP_PASSWORD"):
        ImapPoller.from_settings(Settings())
    settings = Settings.model_validate({"imap": {"password": "x"}})
    with pytest.raises(DripperError, match="DRIPPER_IMAP_HOST"):
        await ImapPoller.from_settings(settings).connect()


async def test_the_feedback_goes_out_in_the_learners_thread(env: Env) -> None:
    from dripper.clock import SystemClock
    from dripper.engine.dispatcher import Dispatcher
    from dripper.models import Channel as ChannelName
    from tests.fixtures.sandboxes import smtp_sandbox

    learner = env.learners[0]
    env.deliver("quiz_answer", learner, in_reply_to=learner.message_ids["quiz"])
    await env.ingest()
    async with smtp_sandbox(COURSE_ADDRESS) as (sink, channel):
        dispatcher = Dispatcher(
            {ChannelName.EMAIL: channel}, SystemClock(), "feedback-test", signing_key=KEY
        )
        await dispatcher.run_until_idle()
        (sent,) = [m for m in sink.messages if m.message["In-Reply-To"]]
    (feedback,) = await Delivery.filter(kind=DeliveryKind.FEEDBACK)
    assert feedback.state == "sent"
    message = sent.message
    assert sent.rcpt_tos == (learner.email,)
    assert message["In-Reply-To"] == "<quiz-answer@example.net>"
    assert "<quiz-answer@example.net>" in message["References"]
    assert message["Subject"] == "Re: Which formula finds an exact match?"
    assert message["Auto-Submitted"] == "auto-replied"  # dripper's, not a person's (RFC 3834)
    text = message.get_body(("plain",)).get_content()
    assert "Not quite. Your answer: =VLOOKUP(..., TRUE)" in text
    assert "Right answer: =XLOOKUP(...)" in text
    assert "XLOOKUP matches exactly unless told otherwise" in text
    # Replying to the feedback reaches the inbox like any reply: it carries the reply token.
    assert "+" in message["Reply-To"].addresses[0].addr_spec


async def test_a_bare_answer_with_an_attachment_is_filed_so_a_trainer_sees_it(env: Env) -> None:
    from email.message import EmailMessage

    learner = env.learners[0]
    mail = EmailMessage()
    mail["From"] = learner.email
    mail["To"] = learner.reply_to(KEY)
    mail["Subject"] = "Re: Which formula finds an exact match?"
    mail["Message-ID"] = "<answer-with-photo@example.net>"
    mail["In-Reply-To"] = learner.message_ids["quiz"]
    mail.set_content("2")
    mail.add_attachment(b"\x89PNG fake", maintype="image", subtype="png", filename="sheet.png")
    env.mailbox.deliver(bytes(mail))
    await env.ingest()
    assert await QuizAnswer.filter(step_id="quiz").count() == 1
    assert await Delivery.filter(kind=DeliveryKind.FEEDBACK).count() == 1
    (message,) = await messages_of(learner)
    assert [a["filename"] for a in message.attachments] == ["sheet.png"]
