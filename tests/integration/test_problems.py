"""The Problems view's data and actions on a real database (SQLite and PostgreSQL): what is
listed, what each action does, that it applies once, and that a retried item is processed by
a running worker at once (the INBOUND wake-up through the real listener)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tortoise.transactions import in_transaction

from dripper.channels.telegram.channel import TelegramChannel
from dripper.cli.report import _show_problems, _show_retrying, status_data
from dripper.clock import SystemClock
from dripper.db import open_db
from dripper.engine.wake import INBOUND, notify_wake_async
from dripper.engine.worker import Worker
from dripper.inbound.email.ingest import Cursor as MailCursor
from dripper.inbound.email.ingest import Fetched, account_name, process_pending, store_batch
from dripper.inbound.email.poller import ImapPoller, PollerOptions
from dripper.inbox import AnsweredPrompt, record_learner_message
from dripper.inbox.problems import (
    Action,
    Problem,
    ProblemGone,
    ProblemKind,
    act,
    count_problems,
    describe_item,
    list_problems,
    problem_text,
)
from dripper.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Enrollment,
    EnrollmentState,
    InboundItem,
    InboundState,
    Learner,
    Message,
)
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.seed import COURSE_ADDRESS, SeededLearner, reply_message, seed_course
from dripper.store import inbound as inbound_store
from dripper.store.outbox import ADDED_LATE
from dripper.tokens import reply_address, reply_token
from tests.fixtures.mail import Mailbox
from tests.fixtures.waiting import eventually

KEY = b"problems-test-hmac-key-0123456789"
NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
ACCOUNT = account_name("course", "127.0.0.1", "INBOX")
STRANGER = "Mallory Stranger <mallory@evil.example>"
TOKEN = "5151:PROBLEMS-test"
ANN_CHAT = 5_151_001


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of either backend, not yet open."""
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
async def seeded(database_url: str) -> AsyncIterator[list[SeededLearner]]:
    """Two learners of the seeded email course with their first drips sent, on either backend."""
    async with open_db(database_url):
        yield await seed_course(2, sent=("hello", "reflect", "quiz"), key=KEY)


async def _delivery(learner: SeededLearner, step: str, state: DeliveryState, why: str) -> int:
    delivery_id = learner.delivery_ids[step]
    await Delivery.filter(id=delivery_id).update(
        state=state, last_error=why, attempts=8, expires_at=NOW - timedelta(days=1)
    )
    return delivery_id


async def _mail(raw: bytes, uid: int, *, error: str | None = None) -> InboundItem:
    """Store one email as the poller does, then process it as the poller does."""
    fetched = Fetched(uid, raw, len(raw), error=error)
    await store_batch(ACCOUNT, MailCursor(1, uid), [fetched], 10_000_000, NOW)
    await process_pending(ACCOUNT, KEY, NOW)
    return await InboundItem.filter(channel=Channel.EMAIL).order_by("-id").first()  # type: ignore[return-value]


def _stranger_mail(n: int = 1) -> bytes:
    return reply_message(
        STRANGER,
        COURSE_ADDRESS,
        f"Hello, can I join the course? ({n})",
        subject="Joining",
        message_id=f"<join-{n}@evil.example>",
    )


def _by_kind(problems: list[Problem], kind: ProblemKind) -> list[Problem]:
    return [problem for problem in problems if problem.kind is kind]


async def test_every_kind_is_listed_with_names_and_the_actions_that_fit(
    seeded: list[SeededLearner],
) -> None:
    ann, bob = seeded
    failed = await _delivery(ann, "hello", DeliveryState.FAILED, "550 5.1.1 user unknown")
    uncertain = await _delivery(ann, "reflect", DeliveryState.UNCERTAIN, "timed out after DATA")
    skipped = await _delivery(bob, "quiz", DeliveryState.SKIPPED, "late by 3 days")
    item = await _mail(_stranger_mail(), 1)
    await Enrollment.filter(id=bob.enrollment_id).update(plan_error="cannot plan: window closed")

    problems = await list_problems()
    deliveries = {p.id: p for p in _by_kind(problems, ProblemKind.DELIVERY)}
    assert set(deliveries) == {failed, uncertain, skipped}
    assert deliveries[failed].who == "L0" and deliveries[failed].what == "hello"
    assert deliveries[failed].cohort == "cohort-learner"
    assert deliveries[failed].actions == (Action.RESEND, Action.DISMISS)
    assert deliveries[uncertain].actions == (Action.RESEND, Action.MARK_SENT, Action.DISMISS)
    assert deliveries[skipped].reason == "late by 3 days"
    [inbound] = _by_kind(problems, ProblemKind.INBOUND)
    assert inbound.id == item.id and inbound.state == "flagged"
    assert inbound.who == "Mallory Stranger <mallory@evil.example>"
    assert inbound.what == "Joining"
    assert inbound.reason == "unknown sender: mallory@evil.example"
    assert inbound.actions == (Action.RETRY, Action.DISMISS)
    [plan] = _by_kind(problems, ProblemKind.PLAN)
    assert (plan.id, plan.who, plan.actions) == (bob.enrollment_id, "L1", (Action.RETRY,))


async def test_resend_queues_the_delivery_again_due_now_with_every_attempt(
    seeded: list[SeededLearner],
) -> None:
    failed = await _delivery(seeded[0], "hello", DeliveryState.FAILED, "550 user unknown")
    [problem] = _by_kind(await list_problems(), ProblemKind.DELIVERY)
    done = await act(problem, Action.RESEND, "Anna", NOW)
    assert not done.reprocess
    row = await Delivery.get(id=failed)
    assert (row.state, row.attempts, row.expires_at, row.available_at) == (
        DeliveryState.PENDING,
        0,
        None,
        NOW,
    )
    assert row.last_error is not None and row.last_error.startswith("resent by Anna, 10 Dec")
    assert "550 user unknown" in row.last_error
    assert _by_kind(await list_problems(), ProblemKind.DELIVERY) == []
    with pytest.raises(ProblemGone, match="changed meanwhile"):
        await act(problem, Action.RESEND, "Ben", NOW)  # the second trainer is told


async def test_status_shows_a_resent_delivery_by_learner_and_step(
    seeded: list[SeededLearner], capsys: pytest.CaptureFixture[str]
) -> None:
    await _delivery(seeded[0], "hello", DeliveryState.FAILED, "550 user unknown")
    [problem] = await list_problems()
    await act(problem, Action.RESEND, "Anna", NOW)
    data = await status_data(NOW)
    _show_retrying(data)
    _show_problems(data)
    shown = capsys.readouterr().out
    assert shown.startswith("retrying:\n  L0, cohort cohort-learner, hello: attempt 0, next ")
    assert "resent by Anna, 10 Dec 09:00 UTC (was failed: 550 user unknown)" in shown
    assert "deal with them" not in shown  # nothing left to deal with
    keys = [d.business_key for d in await Delivery.all()]
    assert not any(key in shown for key in keys)


async def test_mark_sent_records_an_uncertain_delivery_as_sent(
    seeded: list[SeededLearner],
) -> None:
    uncertain = await _delivery(seeded[0], "reflect", DeliveryState.UNCERTAIN, "timed out")
    attempted = NOW - timedelta(hours=2)
    await Delivery.filter(id=uncertain).update(attempted_at=attempted)
    [problem] = _by_kind(await list_problems(), ProblemKind.DELIVERY)
    await act(problem, Action.MARK_SENT, "Anna", NOW)
    row = await Delivery.get(id=uncertain)
    assert (row.state, row.sent_at) == (DeliveryState.SENT, attempted)
    assert row.last_error is not None and "marked sent by Anna" in row.last_error
    failed = await _delivery(seeded[1], "hello", DeliveryState.FAILED, "550")
    [other] = _by_kind(await list_problems(), ProblemKind.DELIVERY)
    assert other.id == failed
    with pytest.raises(ProblemGone, match="mark sent does not apply"):
        await act(other, Action.MARK_SENT, "Anna", NOW)  # a failed one was never sent


async def test_dismiss_keeps_everything_and_unlists_it_here_and_in_status(
    seeded: list[SeededLearner],
) -> None:
    failed = await _delivery(seeded[0], "hello", DeliveryState.FAILED, "550 user unknown")
    item = await _mail(_stranger_mail(), 1)
    for problem in await list_problems():
        await act(problem, Action.DISMISS, "Anna", NOW)
    assert await list_problems() == []
    data = await status_data(NOW)
    assert (data["problems"], data["flagged_inbound"], data["flagged_inbound_total"]) == ([], [], 0)
    row = await Delivery.get(id=failed)
    assert (row.state, row.dismissed_at, row.last_error) == (
        DeliveryState.FAILED,
        NOW,
        "550 user unknown",
    )
    kept = await InboundItem.get(id=item.id)
    assert kept.state is InboundState.DISMISSED and bytes(kept.payload) == _stranger_mail()
    assert (
        kept.error == "unknown sender: mallory@evil.example [dismissed by Anna, 10 Dec 09:00 UTC]"
    )


async def test_resend_brings_a_dismissed_delivery_back_to_life(
    seeded: list[SeededLearner],
) -> None:
    failed = await _delivery(seeded[0], "hello", DeliveryState.FAILED, "SMTP login refused")
    [problem] = await list_problems()
    await act(problem, Action.DISMISS, "Anna", NOW)
    await Delivery.filter(id=failed).update(state=DeliveryState.FAILED, dismissed_at=None)
    [again] = await list_problems()  # it failed again after the dismissal: listed again
    await act(again, Action.RESEND, "Anna", NOW)
    assert (await Delivery.get(id=failed)).dismissed_at is None


async def test_retry_files_an_unknown_senders_mail_once_they_are_a_learner(
    seeded: list[SeededLearner],
) -> None:
    item = await _mail(_stranger_mail(), 1)
    [problem] = await list_problems()
    mallory = await Learner.create(first_name="Mallory", email="mallory@evil.example")
    done = await act(problem, Action.RETRY, "Anna", NOW)
    assert done.reprocess
    assert (await InboundItem.get(id=item.id)).state is InboundState.PENDING
    await process_pending(ACCOUNT, KEY, NOW + timedelta(days=2))  # dripper run, woken later
    processed = await InboundItem.get(id=item.id)
    assert processed.state is InboundState.PROCESSED
    [filed] = await Message.filter(conversation__learner_id=mallory.id)
    assert filed.body.startswith("Hello, can I join the course?")
    assert filed.created_at == NOW  # when it arrived, not when it was retried
    assert await list_problems() == []


async def test_an_item_already_filed_or_never_fetched_can_only_be_dismissed(
    seeded: list[SeededLearner],
) -> None:
    ann = seeded[0]
    huge = reply_message(ann.email, ann.reply_to(KEY), "See the scan", message_id="<big@x.y>")
    fetched = Fetched(1, huge, 30_000_000, too_large=())
    await store_batch(ACCOUNT, MailCursor(1, 1), [fetched], 10_000_000, NOW)
    await process_pending(ACCOUNT, KEY, NOW)  # filed as a notice, and flagged
    await _mail(b"", 2, error="the server answered NO to FETCH")
    problems = {p.filed: p for p in await list_problems()}
    assert problems[True].actions == (Action.DISMISS,)
    assert problems[False].actions == (Action.DISMISS,)  # nothing stored to process
    assert "nothing was stored" in await problem_text(problems[False])
    with pytest.raises(ProblemGone):
        await act(problems[True], Action.RETRY, "Anna", NOW)
    await InboundItem.filter(id=problems[True].id).update(state=InboundState.FLAGGED)
    forced = dataclasses.replace(problems[True], actions=(Action.RETRY,))
    with pytest.raises(ProblemGone, match="filed in a conversation already"):
        await act(forced, Action.RETRY, "Anna", NOW)  # checked at the database, not the list
    assert await Message.filter(inbound_id=problems[True].id).count() == 1


async def test_retry_of_an_unplannable_enrollment_plans_it_at_the_next_pass(
    seeded: list[SeededLearner],
) -> None:
    enrollment_id = seeded[1].enrollment_id
    await Enrollment.filter(id=enrollment_id).update(
        plan_error="cannot plan: ValueError: no slot", plan_due_at=NOW + timedelta(hours=1)
    )
    [problem] = await list_problems()
    await act(problem, Action.RETRY, "Anna", NOW)
    assert (await Enrollment.get(id=enrollment_id)).plan_due_at == NOW


async def test_what_needs_nobody_is_not_listed(seeded: list[SeededLearner]) -> None:
    """Steps `dripper apply` added for learners past them, reminders of an answered prompt,
    and plan errors of enrollments that are not active are no problem of anyone's."""
    ann, bob = seeded
    await Delivery.filter(id=ann.delivery_ids["hello"]).update(
        state=DeliveryState.SKIPPED, last_error=ADDED_LATE
    )
    reminder = await Delivery.create(
        business_key=f"{ann.enrollment_id}:reflect:0:nudge:1",
        enrollment_id=ann.enrollment_id,
        learner_id=ann.id,
        kind=DeliveryKind.NUDGE,
        step_id="reflect",
        due_at=NOW,
        available_at=NOW,
        state=DeliveryState.FAILED,
        last_error="550 mailbox full",
    )
    await record_learner_message(
        ann.id,
        Channel.EMAIL,
        "I tried it",
        NOW,
        answers=AnsweredPrompt(ann.enrollment_id, "reflect", 0, ann.delivery_ids["reflect"]),
    )
    assert (await Delivery.get(id=reminder.id)).state is DeliveryState.CANCELLED
    await Enrollment.filter(id=bob.enrollment_id).update(
        plan_error="cannot plan: window closed", state=EnrollmentState.PAUSED
    )
    assert await list_problems() == []
    assert await count_problems() == 0


async def test_a_delivery_of_an_ended_enrollment_cannot_be_resent(
    seeded: list[SeededLearner],
) -> None:
    ann = seeded[0]
    await _delivery(ann, "hello", DeliveryState.FAILED, "550 user unknown")
    await Enrollment.filter(id=ann.enrollment_id).update(state=EnrollmentState.CANCELLED)
    [problem] = await list_problems()
    assert problem.actions == (Action.DISMISS,)
    assert await count_problems() == 1


async def test_sender_and_subject_are_read_past_a_long_header_block(
    seeded: list[SeededLearner],
) -> None:
    hops = "".join(
        f"Received: from relay{n}.example.net by mx.example.com; Sat, 5 Dec 2026 09:00:0{n % 10}"
        f" +0000 (a long comment to fill the line {'x' * 120})\r\n"
        for n in range(60)
    ).encode()
    assert len(hops) > 8192
    await _mail(hops + _stranger_mail(), 1)
    [problem] = await list_problems()
    assert (problem.who, problem.what) == ("Mallory Stranger <mallory@evil.example>", "Joining")


async def test_only_a_telegram_update_that_failed_can_be_retried(
    seeded: list[SeededLearner],
) -> None:
    def update(n: int) -> bytes:
        message = {"message_id": n, "chat": {"id": 99}, "text": "/start bad", "date": 0}
        return json.dumps({"update_id": n, "message": message}).encode()

    items = [
        inbound_store.RawItem("1", update(1), "invalid invite token", InboundState.FLAGGED),
        inbound_store.RawItem(
            "2", update(2), "processing failed: OperationalError: locked", InboundState.FLAGGED
        ),
    ]
    async with in_transaction() as tx:
        await inbound_store.store_items(tx, Channel.TELEGRAM, "5151", items, {"offset": 3}, NOW)
    answered, failed = sorted(await list_problems(), key=lambda p: p.id)
    assert answered.actions == (Action.DISMISS,)  # its answer went out: a retry repeats it
    assert failed.actions == (Action.RETRY, Action.DISMISS)


async def test_the_raw_item_is_shown_as_received(seeded: list[SeededLearner]) -> None:
    await _mail(_stranger_mail(), 1)
    update = {
        "update_id": 77,
        "message": {
            "message_id": 3,
            "date": 1_700_000_000,
            "chat": {"id": 99, "type": "private"},
            "from": {"id": 99, "is_bot": False, "first_name": "Zoë", "username": "zoe"},
            "text": "/start not-a-valid-token",
        },
    }
    raw = json.dumps(update).encode()
    async with in_transaction() as tx:
        await inbound_store.store_items(
            tx,
            Channel.TELEGRAM,
            "5151",
            [inbound_store.RawItem("77", raw, "invalid invite token", InboundState.FLAGGED)],
            {"offset": 78},
            NOW,
        )
    telegram, email = _by_kind(await list_problems(), ProblemKind.INBOUND)
    assert (telegram.who, telegram.what) == ("Zoë @zoe", "/start not-a-valid-token")
    shown = await problem_text(telegram)
    assert '"first_name": "Zoë"' in shown and "reason: invalid invite token" in shown
    shown = await problem_text(email)
    assert "From: Mallory Stranger <mallory@evil.example>" in shown
    assert "Hello, can I join the course? (1)" in shown


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["message", "from", "chat", "text", "first_name", "username", "data"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["email", "telegram"]))
def test_any_bytes_are_described_without_raising(raw: bytes, channel: str) -> None:
    who, what = describe_item(channel, raw)
    assert isinstance(who, str) and isinstance(what, str)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_any_json_update_is_described_without_raising(update: object) -> None:
    who, what = describe_item("telegram", json.dumps(update).encode())
    assert who and what


# --------------------------------------------------------------------------- with dripper run


async def test_a_running_worker_processes_retried_items_at_once(db: str, mailbox: Mailbox) -> None:
    """Nothing new arrives and the IMAP poll is ten minutes away: the INBOUND wake-up from the
    dashboard makes the worker process the retried Telegram update and email now."""
    [ann] = await seed_course(1, sent=("hello",), key=KEY)
    await Learner.filter(id=ann.id).update(telegram_chat_id=ANN_CHAT)
    update = {
        "update_id": 900_001,
        "message": {
            "message_id": 5,
            "date": 1_700_000_000,
            "chat": {"id": ANN_CHAT, "type": "private"},
            "from": {"id": ANN_CHAT, "is_bot": False, "first_name": "Ann"},
            "text": "Where is the template?",
        },
    }
    failure = "processing failed: OperationalError: database is locked"
    mail = reply_message(
        ann.email,
        reply_address(COURSE_ADDRESS, reply_token(KEY, ann.id, ann.enrollment_id)),
        "It worked, thanks!",
        message_id="<thanks@example.net>",
    )
    cycles: list[object] = []
    poller = ImapPoller(
        mailbox.settings,
        mailbox.password,
        KEY,
        PollerOptions(poll_interval=600),
        on_cycle=cycles.append,
    )
    async with in_transaction() as tx:
        await inbound_store.store_items(
            tx,
            Channel.TELEGRAM,
            TOKEN.split(":")[0],
            [
                inbound_store.RawItem(
                    "900001", json.dumps(update).encode(), failure, InboundState.FLAGGED
                )
            ],
            {"offset": 900_002},
            NOW,
        )
        await inbound_store.store_items(
            tx,
            Channel.EMAIL,
            poller.account,
            [inbound_store.RawItem("<thanks@example.net>", mail, failure, InboundState.FLAGGED)],
            {"uidvalidity": 0, "last_uid": 0},
            NOW,
        )
    emulator = TelegramEmulator(tokens=[TOKEN])
    server = await start_server(emulator, port=0)
    channel = TelegramChannel(TOKEN, server.api_url)
    worker = Worker({Channel.TELEGRAM: channel}, SystemClock(), db, signing_key=KEY, mail=poller)
    stop = asyncio.Event()
    try:
        async with worker:
            running = asyncio.create_task(worker.run(stop))
            # Both receivers are up and waiting: in a long poll, and in IDLE after a cycle.
            await eventually(lambda: emulator.is_polling(TOKEN) and len(cycles) == 1)
            for problem in await list_problems():
                assert (await act(problem, Action.RETRY, "Anna", datetime.now(UTC))).reprocess
            assert await notify_wake_async(db, INBOUND)

            async def filed() -> bool:
                assert not running.done(), running
                return await Message.filter(conversation__learner_id=ann.id).count() == 2

            await eventually(filed, seconds=15)
            stop.set()
            await asyncio.wait_for(running, 30)
    finally:
        stop.set()
        await server.aclose()
    bodies = sorted(m.body for m in await Message.filter(conversation__learner_id=ann.id))
    assert bodies == ["It worked, thanks!", "Where is the template?"]
    assert await list_problems() == []
