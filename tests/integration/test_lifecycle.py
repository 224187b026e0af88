"""An enrollment's life after enrolling: completed after its last step (and active again when a
late answer plans a re-ask), unenrolled with everything unsent cancelled, and a learner's data
exported and erased with the anonymous counts kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripper.cli import main
from dripper.config import ImapSettings
from dripper.curriculum.checks import check_source
from dripper.curriculum.source import parse_source
from dripper.engine.planner import plan_due
from dripper.enrollments.answers import record_quiz_answer
from dripper.enrollments.enroll import enroll
from dripper.inbound.email.poller import ImapPoller
from dripper.learners.privacy import ERASED, erase_learner, export_learner
from dripper.models import (
    Channel,
    Conversation,
    Delivery,
    DeliveryState,
    Enrollment,
    EnrollmentState,
    InboundItem,
    Learner,
    Message,
    QuizAnswer,
)
from dripper.reports.steps import step_figures
from dripper.sandbox.imap import ImapServer
from dripper.sandbox.seed import COURSE_ADDRESS, reply_message, seed_course
from dripper.store.enrollments import complete_finished

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
KEY = b"lifecycle-test-hmac-key-0123456789"
TWO_STEPS = """\
id: short
title: Short course
send_window:
  send_at: "* * * * *"
  spread: 0m
steps:
  - id: tip
    after: 1m
    kind: tip
    text: A tip
  - id: check
    after: 2m
    kind: quiz
    text: Which one?
    options: [right, wrong]
    correct: right
    reask_after: 1d
"""


def short_course():  # type: ignore[no-untyped-def]
    result = check_source(parse_source(TWO_STEPS, "short.yaml"))
    assert result.curriculum is not None, result.problems
    return result


async def _send_everything() -> None:
    await Delivery.filter(state=DeliveryState.PENDING).update(state=DeliveryState.SENT, sent_at=NOW)


async def test_an_enrollment_completes_after_its_last_step_and_a_late_reask_reopens_it(
    db: str,
) -> None:
    learner = await Learner.create(first_name="Ada", email="ada@example.org")
    await enroll(short_course(), "dec", NOW - timedelta(hours=1), [learner], NOW)
    enrollment = await Enrollment.get(learner_id=learner.id)
    assert await complete_finished(NOW) == 0  # nothing planned yet
    await plan_due(NOW, timedelta(minutes=10))
    assert await complete_finished(NOW) == 0  # two deliveries waiting
    await _send_everything()
    assert await complete_finished(NOW) == 1
    await enrollment.refresh_from_db()
    assert enrollment.state is EnrollmentState.COMPLETED
    assert await complete_finished(NOW) == 0  # once

    # The learner answers the last quiz after the drip ended, wrongly: the re-ask is planned
    # and the enrollment is active again until it is sent.
    result = await record_quiz_answer(enrollment.id, "check", 0, [1], Channel.EMAIL, NOW)
    assert result.reask_at is not None
    await enrollment.refresh_from_db()
    assert enrollment.state is EnrollmentState.ACTIVE
    await _send_everything()
    assert await complete_finished(NOW) == 1


async def test_an_undismissed_failed_step_keeps_the_enrollment_active_for_a_resend(
    db: str,
) -> None:
    learner = await Learner.create(first_name="Gil")
    await enroll(short_course(), "dec", NOW - timedelta(hours=1), [learner], NOW)
    await plan_due(NOW, timedelta(minutes=10))
    await _send_everything()
    await Delivery.filter(step_id="check").update(state=DeliveryState.FAILED)
    assert await complete_finished(NOW) == 0
    await Delivery.filter(step_id="check").update(dismissed_at=NOW)  # the trainer let it go
    assert await complete_finished(NOW) == 1


async def test_a_paused_or_unplannable_enrollment_never_completes(db: str) -> None:
    learners = [await Learner.create(first_name=f"L{i}") for i in range(2)]
    await enroll(short_course(), "dec", NOW - timedelta(hours=1), learners, NOW)
    await plan_due(NOW, timedelta(minutes=10))
    await _send_everything()
    first, second = await Enrollment.all().order_by("id")
    await Enrollment.filter(id=first.id).update(state=EnrollmentState.PAUSED)
    await Enrollment.filter(id=second.id).update(plan_error="cannot plan: x")
    assert await complete_finished(NOW) == 0


def _cli(*args: str, url: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner(env={"DRIPPER_DATABASE_URL": url}).invoke(main, list(args), input=input)


async def test_unenroll_cancels_what_is_unsent_and_keeps_what_was_sent(
    db: str,
) -> None:
    learner = await Learner.create(first_name="Ben", email="ben@example.org")
    other = await Learner.create(first_name="Cleo", email="cleo@example.org")
    await enroll(short_course(), "dec", NOW - timedelta(hours=1), [learner, other], NOW)
    await plan_due(NOW, timedelta(minutes=10))
    tip = await Delivery.get(learner_id=learner.id, step_id="tip")
    await Delivery.filter(id=tip.id).update(state=DeliveryState.SENT, sent_at=NOW)

    import asyncio

    result = await asyncio.to_thread(_cli, "unenroll", "BEN@example.org", url=db)
    assert result.exit_code == 0, result.output
    assert "ben@example.org" in result.output.lower()
    assert "unenrolled from dec (short); 1 unsent message cancelled" in result.output
    enrollment = await Enrollment.get(learner_id=learner.id)
    assert enrollment.state is EnrollmentState.CANCELLED and enrollment.plan_due_at is None
    states = {d.step_id: d.state for d in await Delivery.filter(learner_id=learner.id)}
    assert states == {"tip": DeliveryState.SENT, "check": DeliveryState.CANCELLED}
    # Cleo is untouched.
    assert {d.state for d in await Delivery.filter(learner_id=other.id)} == {DeliveryState.PENDING}
    again = await asyncio.to_thread(_cli, "unenroll", "ben@example.org", url=db)
    assert again.exit_code == 1 and "no active or paused enrollment" in again.output


async def test_unenroll_asks_which_when_there_are_several(db: str) -> None:
    import asyncio

    learner = await Learner.create(first_name="Dan", email="dan@example.org")
    await enroll(short_course(), "dec", NOW, [learner], NOW)
    await enroll(short_course(), "jan", NOW, [learner], NOW)
    result = await asyncio.to_thread(_cli, "unenroll", "dan@example.org", url=db)
    assert result.exit_code == 1
    assert "dec (short), jan (short): say which with --cohort or --curriculum" in result.output
    result = await asyncio.to_thread(_cli, "unenroll", "dan@example.org", "--cohort", "jan", url=db)
    assert result.exit_code == 0, result.output
    by_cohort = {
        e.cohort.name: e.state
        for e in await Enrollment.filter(learner_id=learner.id).prefetch_related("cohort")
    }
    assert by_cohort == {"dec": EnrollmentState.ACTIVE, "jan": EnrollmentState.CANCELLED}


@pytest.fixture
async def mailbox() -> ImapServer:  # type: ignore[misc]
    server = await ImapServer({"course": "pw"}).start()
    yield server
    await server.stop()


async def _ingest(settings: ImapSettings) -> None:
    poller = ImapPoller(settings, "pw", KEY)
    await poller.connect()
    try:
        await poller.poll_once()
    finally:
        await poller.close()


async def test_export_has_everything_and_erase_keeps_only_anonymous_counts(
    db: str, mailbox: ImapServer
) -> None:
    zoe, kim = await seed_course(2, sent=("hello", "reflect", "quiz"), key=KEY)
    settings = mailbox.settings("course")
    mailbox.deliver(
        "course",
        reply_message(
            zoe.email,
            zoe.reply_to(KEY),
            "My manager is the problem, honestly.",
            in_reply_to=zoe.message_ids["reflect"],
        ),
    )
    mailbox.deliver(
        "course",
        reply_message(zoe.email, zoe.reply_to(KEY), "2", in_reply_to=zoe.message_ids["quiz"]),
    )
    mailbox.deliver(
        "course",
        reply_message(
            kim.email, kim.reply_to(KEY), "Kim's own words", in_reply_to=kim.message_ids["reflect"]
        ),
    )
    # A stranger whose address contains Zoë's, and Kim copying Zoë: not hers, never erased
    # or exported with hers.
    mailbox.deliver(
        "course",
        reply_message(f"x{zoe.email}", COURSE_ADDRESS, "Not Zoë", in_reply_to=None),
    )
    copied = reply_message(kim.email, COURSE_ADDRESS, "Kim copying", in_reply_to=None)
    newline = b"\r\n" if b"\r\n" in copied else b"\n"
    copied = copied.replace(
        newline + b"Subject:", newline + f"Cc: {zoe.email}".encode() + newline + b"Subject:", 1
    )
    assert f"Cc: {zoe.email}".encode() in copied
    mailbox.deliver("course", copied)
    await _ingest(settings)
    before = await step_figures("cohort-learner")

    exported = await export_learner(zoe.id)
    json.dumps(exported)  # JSON-ready
    assert exported["learner"]["email"] == zoe.email
    assert [e["cohort"] for e in exported["enrollments"]] == ["cohort-learner"]
    assert {d["step"] for d in exported["deliveries"]} >= {"hello", "reflect", "quiz"}
    assert [(a["step"], a["choices"]) for a in exported["answers"]] == [("quiz", [1])]
    bodies = [m["body"] for c in exported["conversations"] for m in c["messages"]]
    assert bodies == ["My manager is the problem, honestly."]
    received = " ".join(item.get("text", "") for item in exported["received"])
    assert len(exported["received"]) == 2  # the reply and the bare answer, not Kim's
    assert "My manager is the problem" in received and "Kim's own words" not in received

    erasure = await erase_learner(zoe.id, NOW)
    assert erasure.messages_erased == 1 and erasure.raw_items_erased == 2
    learner = await Learner.get(id=zoe.id)
    assert (learner.first_name, learner.email, learner.telegram_chat_id) == (ERASED, None, None)
    assert learner.erased_at is not None and learner.opted_out_at is not None
    assert learner.attributes == {}
    (message,) = await Message.filter(conversation__learner_id=zoe.id)
    assert (message.body, message.raw_body, message.attachments) == (ERASED, None, [])
    assert {c.status.value for c in await Conversation.filter(learner_id=zoe.id)} == {"closed"}
    raw = [bytes(i.payload) for i in await InboundItem.all().order_by("id")]
    assert raw[0] == b"" and raw[1] == b"" and b"Kim's own words" in raw[2]
    assert b"Not Zo" in raw[3] and b"Kim copying" in raw[4]
    # What is left of her: the anonymous rows, none of her words or addresses.
    left = await export_learner(zoe.id)
    assert left["learner"]["email"] is None and left["learner"]["first_name"] == ERASED
    assert [m["body"] for c in left["conversations"] for m in c["messages"]] == [ERASED]
    assert left["received"] and all(item["text"] == "" for item in left["received"])
    assert "manager" not in json.dumps(left) and zoe.email not in json.dumps(left)
    # The reports count what they counted before for every step that reached her; the steps
    # still to come are no longer planned for her.
    after = {f.step_id: f for f in await step_figures("cohort-learner")}
    for figures in before:
        if figures.step_id in ("hello", "reflect", "quiz"):
            assert after[figures.step_id] == figures
        else:
            assert after[figures.step_id].planned == figures.planned - 1
    assert await QuizAnswer.filter(enrollment__learner_id=zoe.id).count() == 1
    # Kim is untouched.
    kim_row = await Learner.get(id=kim.id)
    assert kim_row.email == kim.email and kim_row.erased_at is None
    kim_bodies = [m.body for m in await Message.filter(conversation__learner_id=kim.id)]
    assert "Kim's own words" in kim_bodies and ERASED not in kim_bodies


async def test_the_dispatcher_marks_a_finished_drip_completed(db: str) -> None:
    from dripper.clock import ManualClock
    from dripper.engine.dispatcher import Dispatcher
    from dripper.models import Channel as ChannelName
    from tests.fixtures.sandboxes import telegram_sandbox

    token = "7171:LIFE"
    async with telegram_sandbox(token) as sandbox:
        sandbox.emulator.create_user(42, "Eve")
        sandbox.emulator.start(token, 42)
        learner = await Learner.create(first_name="Eve", telegram_chat_id=42)
        await enroll(short_course(), "dec", NOW - timedelta(hours=1), [learner], NOW)
        clock = ManualClock(NOW)
        dispatcher = Dispatcher({ChannelName.TELEGRAM: sandbox.channel}, clock, "life")
        await dispatcher.run_until_idle()  # both steps are due: sent
        enrollment = await Enrollment.get(learner_id=learner.id)
        assert enrollment.state is EnrollmentState.ACTIVE  # marked on the next look
        await clock.advance(timedelta(minutes=2))
        await dispatcher.run_until_idle()
        await enrollment.refresh_from_db()
    assert enrollment.state is EnrollmentState.COMPLETED
    assert len(sandbox.emulator.messages(token, 42)) == 2


async def test_the_export_and_erase_commands(db: str, tmp_path: Path) -> None:
    import asyncio
    import stat

    learner = await Learner.create(first_name="Fay", email="fay@example.org")
    await enroll(short_course(), "dec", NOW, [learner], NOW)
    out = tmp_path / "fay.json"
    done = await asyncio.to_thread(
        _cli, "learners", "export", "fay@example.org", "--out", str(out), url=db
    )
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["learner"]["email"] == "fay@example.org"
    refused = await asyncio.to_thread(
        _cli, "learners", "erase", "fay@example.org", url=db, input="n\n"
    )
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert (await Learner.get(id=learner.id)).erased_at is None
    done = await asyncio.to_thread(_cli, "learners", "erase", "fay@example.org", "--yes", url=db)
    assert done.exit_code == 0, done.output
    assert "fay@example.org: erased" in done.output and "IMAP mailbox" in done.output
    assert (await Learner.get(id=learner.id)).erased_at is not None
    again = await asyncio.to_thread(_cli, "learners", "erase", "fay@example.org", "--yes", url=db)
    assert again.exit_code == 1 and "no learner fay@example.org" in again.output
