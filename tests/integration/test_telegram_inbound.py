"""Receiving on Telegram end to end: the emulator on loopback, the real PTB client, real SQLite.

Learners are played through the emulator's control API (start, write, press buttons, block);
the poller fetches, stores and processes; assertions read the database and what each chat shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import ManualClock
from dripper.engine.dispatcher import Dispatcher, DispatcherSettings
from dripper.enrollments.enroll import enroll
from dripper.errors import DripperError
from dripper.inbound.telegram.events import (
    BadTap,
    Command,
    Ignored,
    LearnerMessage,
    MemberChange,
    Tap,
    classify,
    parse_callback,
)
from dripper.inbound.telegram.poller import PollerSettings, TelegramPoller
from dripper.learners.invites import invite_token, invites_for, start_link
from dripper.models import (
    Channel,
    ChannelCursor,
    Conversation,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Enrollment,
    EnrollmentState,
    InboundItem,
    InboundState,
    Learner,
    Message,
    MessageDirection,
    QuizAnswer,
    Reachability,
)
from dripper.sandbox import TelegramEmulator
from tests.fixtures.sandboxes import telegram_sandbox
from tests.fixtures.telegram_data import ANN, COURSE_END, KEY, TOKEN, checked
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.filterwarnings("ignore:Please use 'Bot.getUpdates")
os.environ["PTB_TIMEDELTA"] = "1"


@dataclass
class Env:
    emulator: TelegramEmulator
    channel: TelegramChannel
    clock: ManualClock
    poller: TelegramPoller
    api_url: str

    def new_poller(self) -> TelegramPoller:
        return TelegramPoller(self.channel.bot, signing_key=KEY, now=self.clock.now)

    async def pump(self) -> None:
        """Fetch, store and process everything the learners did so far."""
        await self.poller.run_until_idle()

    async def run_dispatcher_at(self, moment: datetime) -> None:
        await self.clock.set(moment)
        dispatcher = Dispatcher(
            {Channel.TELEGRAM: self.channel}, self.clock, "test", DispatcherSettings()
        )
        await dispatcher.run_until_idle()

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return self.emulator.messages(TOKEN, chat_id)

    def last_text(self, chat_id: int) -> str:
        return str(self.bot_messages(chat_id)[-1]["text"])


@pytest.fixture
async def env(db: str) -> AsyncIterator[Env]:
    async with telegram_sandbox(TOKEN) as sandbox:
        clock = ManualClock(COURSE_END)
        poller = TelegramPoller(sandbox.channel.bot, signing_key=KEY, now=clock.now)
        yield Env(sandbox.emulator, sandbox.channel, clock, poller, sandbox.api_url)


async def bound_learner(env: Env, user_id: int = ANN, name: str = "Ann") -> Learner:
    """A learner whose chat is bound, enrolled in the test curriculum."""
    learner = await Learner.create(first_name=name, telegram_chat_id=user_id, timezone="UTC")
    env.emulator.create_user(user_id, name)
    env.emulator.start(TOKEN, user_id)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    await env.pump()
    return learner


def prompt_with_buttons(env: Env, chat_id: int, text: str) -> dict[str, Any]:
    [message] = [m for m in env.bot_messages(chat_id) if m["text"] == text and m["reply_markup"]]
    return message


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    rows = (message["reply_markup"] or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


def current(env: Env, chat_id: int, message_id: int) -> dict[str, Any]:
    [message] = [m for m in env.bot_messages(chat_id) if m["message_id"] == message_id]
    return message


# ---- pure classification ------------------------------------------------------------------


def _private(extra: dict[str, Any]) -> dict[str, Any]:
    base = {"message_id": 7, "date": 1, "chat": {"id": 5, "type": "private"}, "from": {"id": 5}}
    return {**base, **extra}


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ({"update_id": 1, "message": _private({"text": "/start abc"})}, Command),
        ({"update_id": 1, "message": _private({"text": "/pause@my_bot 2w"})}, Command),
        ({"update_id": 1, "message": _private({"text": "hello /start"})}, LearnerMessage),
        ({"update_id": 1, "edited_message": _private({"text": "/stop"})}, LearnerMessage),
        ({"update_id": 1, "message": _private({"voice": {"file_id": "v"}})}, LearnerMessage),
        ({"update_id": 1, "message": _private({"poll": {"id": "p"}})}, Ignored),
        ({"update_id": 1, "message": {"message_id": 1, "date": 1}}, Ignored),
        (
            {"update_id": 1, "message": _private({"chat": {"id": -5, "type": "group"}})},
            Ignored,
        ),
        ({"update_id": 1, "business_message": _private({"text": "hi"})}, Ignored),
        ({"update_id": 1}, Ignored),
        ({"update_id": 1, "callback_query": {"id": "q", "from": {"id": 5}, "data": "a:3:1"}}, Tap),
        ({"update_id": 1, "callback_query": {"id": "q", "from": {"id": 5}, "data": "zz"}}, BadTap),
        ({"update_id": 1, "callback_query": {"id": "q", "data": "a:3:1"}}, Ignored),
        (
            {
                "update_id": 1,
                "my_chat_member": {
                    "chat": {"id": 5, "type": "private"},
                    "new_chat_member": {"status": "kicked"},
                },
            },
            MemberChange,
        ),
    ],
)
def test_classify(update: dict[str, Any], expected: type) -> None:
    assert isinstance(classify(update), expected)


def test_command_parts_and_callback_data() -> None:
    event = classify({"update_id": 1, "message": _private({"text": "/Pause@my_bot  2w "})})
    assert event == Command(5, "pause", "2w", "/Pause@my_bot  2w ")
    assert parse_callback("a:12:1") == ("a", 12, 1)
    assert parse_callback("t:12:0") == ("t", 12, 0)
    assert parse_callback("s:12") == ("s", 12, None)
    assert parse_callback("s:12:1") is None
    assert parse_callback("a:12") is None
    assert parse_callback("a:x:1") is None


def test_invite_tokens_fit_telegrams_start_payload() -> None:
    import re

    for invite_id in (1, 127, 2**21, 2**40):
        token = invite_token(KEY, invite_id)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", token), token
    assert start_link("@dripbot", "abc") == "https://t.me/dripbot?start=abc"


# ---- binding chats ------------------------------------------------------------------------


async def test_invite_binds_the_chat_once_and_refuses_another_chat(env: Env) -> None:
    learner = await Learner.create(first_name="Ann", email="ann@example.com")
    invite = (await invites_for([learner]))[learner.id]
    assert (await invites_for([learner]))[learner.id].id == invite.id  # the same link twice
    token = invite_token(KEY, invite.id)
    env.emulator.create_user(ANN, "Ann")
    env.emulator.create_user(2002, "Mallory")

    env.emulator.start(TOKEN, ANN, token)
    await env.pump()
    await learner.refresh_from_db()
    assert learner.telegram_chat_id == ANN
    assert learner.telegram_status == Reachability.OK
    assert env.last_text(ANN).startswith("Hi Ann! You're connected")

    env.emulator.start(TOKEN, ANN, token)  # the same chat again: harmless
    env.emulator.start(TOKEN, 2002, token)  # someone else with the forwarded link
    env.emulator.start(TOKEN, 2002, token[:-2] + "aa")  # a tampered link
    await env.pump()
    await learner.refresh_from_db()
    assert learner.telegram_chat_id == ANN
    assert env.last_text(ANN).startswith("You're already connected")
    replies = [m["text"] for m in env.bot_messages(2002)]
    assert replies[0].startswith("This link was already used from another Telegram account")
    assert replies[1].startswith("This link doesn't work")
    flagged = await InboundItem.filter(state=InboundState.FLAGGED).order_by("id")
    assert [item.error for item in flagged] == [
        "invite link already used by another chat",
        "invalid invite token",
    ]


async def test_start_without_a_link_explains_and_unknown_chats_are_kept(env: Env) -> None:
    env.emulator.create_user(3003, "Stranger")
    env.emulator.start(TOKEN, 3003)
    env.emulator.send_text(TOKEN, 3003, "hello? <b>")
    await env.pump()
    replies = [m["text"] for m in env.bot_messages(3003)]
    assert len(replies) == 2
    assert all("personal link your trainer" in text for text in replies)
    items = await InboundItem.all().order_by("id")
    assert [item.state for item in items] == [InboundState.FLAGGED] * 2
    assert {item.error for item in items} == {"unknown chat"}
    assert json.loads(items[1].payload)["message"]["text"] == "hello? <b>"
    assert await Message.all().count() == 0


async def test_binding_releases_deliveries_waiting_for_the_learner(env: Env) -> None:
    learner = await Learner.create(first_name="Ann")
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    due = COURSE_END + timedelta(minutes=1)
    await env.run_dispatcher_at(due)
    waiting = await Delivery.get(step_id="ask")
    assert waiting.state == DeliveryState.PENDING
    assert waiting.available_at > due
    invite = (await invites_for([learner]))[learner.id]
    env.emulator.create_user(ANN, "Ann")
    env.emulator.start(TOKEN, ANN, invite_token(KEY, invite.id))
    await env.pump()
    await env.run_dispatcher_at(due)
    waiting = await Delivery.get(id=waiting.id)
    assert waiting.state == DeliveryState.SENT
    assert env.last_text(ANN) == "What did you try?"


# ---- learner commands ---------------------------------------------------------------------


async def test_stop_opts_out_and_start_opts_back_in(env: Env) -> None:
    learner = await bound_learner(env)
    assert env.bot_messages(ANN) == []  # /start in a bound chat says nothing
    env.emulator.send_text(TOKEN, ANN, "/stop")
    await env.pump()
    await learner.refresh_from_db()
    assert learner.opted_out_at == COURSE_END
    assert env.last_text(ANN).startswith("Done: you won't get more messages")
    await env.run_dispatcher_at(COURSE_END + timedelta(minutes=1))
    cancelled = await Delivery.get(step_id="ask")
    assert cancelled.state == DeliveryState.CANCELLED
    assert cancelled.last_error == "learner opted out"

    env.emulator.start(TOKEN, ANN)
    await env.pump()
    await learner.refresh_from_db()
    assert learner.opted_out_at is None
    assert env.last_text(ANN).startswith("Welcome back, Ann!")


async def test_pause_for_a_week_then_the_dispatcher_resumes(env: Env) -> None:
    learner = await bound_learner(env)
    env.emulator.send_text(TOKEN, ANN, "/pause 7d")
    await env.pump()
    enrollment = await Enrollment.get(learner_id=learner.id)
    assert enrollment.state == EnrollmentState.PAUSED
    assert enrollment.pause_reason == "learner"
    assert enrollment.resume_at == COURSE_END + timedelta(days=7)
    assert env.last_text(ANN).startswith("Paused until Friday 11 December, 16:00 (UTC)")

    await env.run_dispatcher_at(COURSE_END + timedelta(days=3))
    await enrollment.refresh_from_db()
    assert enrollment.state == EnrollmentState.PAUSED
    assert env.bot_messages(ANN)[-1]["text"].startswith("Paused")  # nothing sent meanwhile
    await env.run_dispatcher_at(COURSE_END + timedelta(days=7))
    enrollment = await Enrollment.get(id=enrollment.id)
    assert enrollment.state == EnrollmentState.ACTIVE
    assert enrollment.shift_seconds == 7 * 86400
    await env.run_dispatcher_at(COURSE_END + timedelta(days=7, minutes=1))
    assert "What did you try?" in [m["text"] for m in env.bot_messages(ANN)]  # a week later


async def test_resume_ends_only_the_learners_own_pause(env: Env) -> None:
    learner = await bound_learner(env)
    env.emulator.send_text(TOKEN, ANN, "/resume")
    await env.pump()
    assert env.last_text(ANN) == "Nothing is paused: your messages keep coming."
    env.emulator.send_text(TOKEN, ANN, "/pause")
    env.emulator.send_text(TOKEN, ANN, "/resume")
    await env.pump()
    enrollment = await Enrollment.get(learner_id=learner.id)
    assert enrollment.state == EnrollmentState.ACTIVE
    assert env.last_text(ANN) == "Welcome back! Your course messages continue."
    env.emulator.send_text(TOKEN, ANN, "/pause forever")
    await env.pump()
    assert env.last_text(ANN).startswith("Tell me for how long")
    await Enrollment.filter(id=enrollment.id).update(
        state=EnrollmentState.PAUSED, pause_reason="trainer", paused_at=COURSE_END
    )
    env.emulator.send_text(TOKEN, ANN, "/resume")
    await env.pump()
    enrollment = await Enrollment.get(id=enrollment.id)
    assert enrollment.state == EnrollmentState.PAUSED
    assert env.last_text(ANN).startswith("Your trainer has paused this course")


async def test_timezone_and_help(env: Env) -> None:
    learner = await bound_learner(env)
    env.emulator.send_text(TOKEN, ANN, "/timezone europe/berlin")
    await env.pump()
    await learner.refresh_from_db()
    assert learner.timezone == "Europe/Berlin"
    assert env.last_text(ANN) == "Time zone set to Europe/Berlin: it's 17:00 there now."
    env.emulator.send_text(TOKEN, ANN, "/timezone Europe/Berln")
    await env.pump()
    assert 'unknown time zone "Europe/Berln"' in env.last_text(ANN)
    assert "Europe/Berlin" in env.last_text(ANN)  # the did-you-mean hint
    await learner.refresh_from_db()
    assert learner.timezone == "Europe/Berlin"
    env.emulator.send_text(TOKEN, ANN, "/timezone")
    env.emulator.send_text(TOKEN, ANN, "/help")
    await env.pump()
    texts = [m["text"] for m in env.bot_messages(ANN)]
    assert texts[-2].startswith("Your time zone: Europe/Berlin.")
    assert "/pause 7d" in texts[-1] and "/stop" in texts[-1]
    assert await Message.all().count() == 0  # commands are not inbox messages


async def test_unknown_commands_are_filed_as_text(env: Env) -> None:
    await bound_learner(env)
    env.emulator.send_text(TOKEN, ANN, "/shrug that was hard")
    await env.pump()
    [message] = await Message.all()
    assert message.body == "/shrug that was hard"
    assert env.last_text(ANN).startswith("I passed your message on to your trainer")


# ---- quizzes and check-ins ----------------------------------------------------------------


async def test_single_choice_quiz_first_answer_wins_and_spaced_repetition(env: Env) -> None:
    learner = await bound_learner(env)
    await env.run_dispatcher_at(COURSE_END + timedelta(minutes=2))
    quiz = prompt_with_buttons(env, ANN, "Which formula finds an exact match?")
    quiz_delivery = await Delivery.get(step_id="quiz", kind=DeliveryKind.STEP)
    assert [data for _, data in buttons(quiz)] == [f"a:{quiz_delivery.id}:{i}" for i in range(3)]
    nudge_pending = await Delivery.get(step_id="quiz", kind=DeliveryKind.NUDGE)

    env.emulator.press_button(TOKEN, ANN, quiz["message_id"], f"a:{quiz_delivery.id}:1")  # wrong
    env.emulator.press_button(TOKEN, ANN, quiz["message_id"], f"a:{quiz_delivery.id}:0")  # late
    await env.pump()

    [answer] = await QuizAnswer.all()
    assert (answer.choices, answer.correct, answer.occurrence) == ([1], False, 0)
    answers = [a["text"] for a in env.emulator.callback_answers(TOKEN)]
    assert answers == ["❌ Not quite", "You already answered this one."]
    shown = current(env, ANN, quiz["message_id"])
    assert shown["reply_markup"] is None
    assert shown["text"] == (
        "Which formula finds an exact match?\n\n"
        "❌ Not quite. Your answer: =VLOOKUP(..., TRUE)\n"
        "Right answer: =XLOOKUP(...)\n\n"
        "XLOOKUP matches exactly by default, Ann."
    )
    assert shown["source"].startswith("Which formula finds an <b>exact</b> match?")
    await nudge_pending.refresh_from_db()
    assert nudge_pending.state == DeliveryState.CANCELLED

    reask = await Delivery.get(kind=DeliveryKind.REASK)
    enrollment = await Enrollment.get(learner_id=learner.id)
    assert reask.business_key == f"{enrollment.id}:quiz:1"
    assert reask.occurrence == 1
    assert reask.due_at == COURSE_END + timedelta(minutes=2, days=3)

    # Asked again: the re-ask's buttons carry its own delivery id. Right twice retires it.
    for occurrence, expected_next in ((1, timedelta(days=6)), (2, None)):
        asking = await Delivery.get(kind=DeliveryKind.REASK, occurrence=occurrence)
        await env.run_dispatcher_at(asking.due_at)
        message = [m for m in env.bot_messages(ANN) if m["reply_markup"]][-1]
        assert buttons(message)[0][1] == f"a:{asking.id}:0"
        env.emulator.press_button(TOKEN, ANN, message["message_id"], f"a:{asking.id}:0")
        await env.pump()
        recorded = await QuizAnswer.get(occurrence=occurrence)
        assert recorded.correct is True
        assert current(env, ANN, message["message_id"])["text"].endswith(
            "✅ Right! Your answer: =XLOOKUP(...)\n\nXLOOKUP matches exactly by default, Ann."
        )
        following = await Delivery.get_or_none(kind=DeliveryKind.REASK, occurrence=occurrence + 1)
        if expected_next is None:
            assert following is None  # retired after two right answers
        else:
            assert following is not None
            assert following.due_at == asking.due_at + expected_next


async def test_multiple_choice_toggles_then_submit(env: Env) -> None:
    await bound_learner(env)
    await env.run_dispatcher_at(COURSE_END + timedelta(minutes=3))
    quiz = prompt_with_buttons(env, ANN, "Pick the lookups")
    delivery = await Delivery.get(step_id="multi")
    message_id = quiz["message_id"]

    env.emulator.press_button(TOKEN, ANN, message_id, f"s:{delivery.id}")
    await env.pump()
    assert env.emulator.callback_answers(TOKEN)[-1]["text"] == (
        "Pick at least one option, then Submit."
    )
    for option in (0, 1, 2, 1):  # SUM picked, then unpicked
        env.emulator.press_button(TOKEN, ANN, message_id, f"t:{delivery.id}:{option}")
        await env.pump()
    shown = current(env, ANN, message_id)
    assert [label for label, _ in buttons(shown)] == [
        "☑ XLOOKUP",
        "☐ SUM",
        "☑ VLOOKUP",
        "Submit",
    ]
    await delivery.refresh_from_db()
    assert delivery.payload["selected"] == [0, 2]
    assert await QuizAnswer.all().count() == 0

    env.emulator.press_button(TOKEN, ANN, message_id, f"s:{delivery.id}")
    await env.pump()
    [answer] = await QuizAnswer.all()
    assert (answer.choices, answer.correct) == ([0, 2], True)
    shown = current(env, ANN, message_id)
    assert shown["reply_markup"] is None
    assert shown["text"] == "Pick the lookups\n\n✅ Right! Your answer: XLOOKUP, VLOOKUP"
    assert await Delivery.filter(kind=DeliveryKind.REASK).count() == 0  # no reask_after


async def test_checkin_is_an_answer_and_an_inbox_message(env: Env) -> None:
    learner = await bound_learner(env)
    await env.run_dispatcher_at(COURSE_END + timedelta(minutes=4))
    prompt = prompt_with_buttons(env, ANN, "Did you use a pivot table?")
    delivery = await Delivery.get(step_id="pulse", kind=DeliveryKind.STEP)
    nudge = await Delivery.get(step_id="pulse", kind=DeliveryKind.NUDGE)
    env.emulator.press_button(TOKEN, ANN, prompt["message_id"], f"a:{delivery.id}:1")
    await env.pump()
    [answer] = await QuizAnswer.all()
    assert (answer.step_id, answer.choices, answer.correct) == ("pulse", [1], None)
    [message] = await Message.all()
    assert message.body == "Check-in: Once"
    assert message.step_id == "pulse"
    conversation = await Conversation.get(id=message.conversation_id)  # type: ignore[attr-defined]
    enrollment = await Enrollment.get(learner_id=learner.id)
    assert conversation.enrollment_id == enrollment.id  # type: ignore[attr-defined]
    await nudge.refresh_from_db()
    assert nudge.state == DeliveryState.CANCELLED
    shown = current(env, ANN, prompt["message_id"])
    assert shown["text"] == "Did you use a pivot table?\n\nYour answer: Once"
    assert shown["reply_markup"] is None
    assert env.emulator.callback_answers(TOKEN)[-1]["text"] == "Thanks!"


async def test_a_button_of_another_learners_message_is_refused(env: Env) -> None:
    await bound_learner(env)
    await bound_learner(env, 1002, "Bob")
    await env.run_dispatcher_at(COURSE_END + timedelta(minutes=2))
    ann_quiz = await Delivery.get(step_id="quiz", kind="step", learner__telegram_chat_id=ANN)
    bob_prompt = prompt_with_buttons(env, 1002, "Which formula finds an exact match?")
    # Bob's client forges Ann's delivery id into a press (the emulator checks the data exists
    # on the message, so rewrite the stored keyboard first, as a modified client could send).
    stored = env.emulator._bots[TOKEN].chats[1002].messages[bob_prompt["message_id"]]
    stored.message["reply_markup"]["inline_keyboard"][0][0]["callback_data"] = f"a:{ann_quiz.id}:0"
    env.emulator.press_button(TOKEN, 1002, bob_prompt["message_id"], f"a:{ann_quiz.id}:0")
    await env.pump()
    assert await QuizAnswer.all().count() == 0
    assert env.emulator.callback_answers(TOKEN)[-1]["text"] == "This button is no longer active."
    flagged = await InboundItem.get(state=InboundState.FLAGGED)
    assert flagged.error == f"button of delivery {ann_quiz.id}, which is not this learner's"


# ---- learner messages ---------------------------------------------------------------------


async def test_texts_and_media_are_filed_under_the_latest_prompt(env: Env) -> None:
    learner = await bound_learner(env)
    await env.run_dispatcher_at(COURSE_END + timedelta(minutes=1))
    nudge = await Delivery.get(step_id="ask", kind=DeliveryKind.NUDGE)
    assert nudge.state == DeliveryState.PENDING
    text = "<b>Bold?</b> & 5 > 3 🎉 שלום עליכם\n\u202ertl\x07"
    env.emulator.send_text(TOKEN, ANN, text)
    env.emulator.send_photo(
        TOKEN, ANN, caption="my table", file_id="PHOTO", sizes=[(90, 60), (800, 600)]
    )
    env.emulator.send_voice(TOKEN, ANN, duration=7, file_id="VOICE")
    env.emulator.send_document(TOKEN, ANN, file_name="report.xlsx", mime_type="x/xlsx", file_id="D")
    await env.pump()

    messages = await Message.all().order_by("id")
    assert [m.body for m in messages] == [text, "my table", "", ""]
    assert {m.step_id for m in messages} == {"ask"}
    enrollment = await Enrollment.get(learner_id=learner.id)
    conversation = await Conversation.get(enrollment_id=enrollment.id)
    assert {m.conversation_id for m in messages} == {conversation.id}  # type: ignore[attr-defined]
    photo, voice, document = (m.attachments[0] for m in messages[1:])
    assert photo["kind"] == "photo"
    assert (photo["file_id"], photo["width"], photo["height"]) == ("PHOTO", 800, 600)
    assert "file_unique_id" in photo and "file_size" in photo
    assert (voice["kind"], voice["file_id"], voice["duration"]) == ("voice", "VOICE", 7)
    assert voice["mime_type"] == "audio/ogg"
    assert (document["file_name"], document["mime_type"]) == ("report.xlsx", "x/xlsx")
    inbound_ids = {m.inbound_id for m in messages}  # type: ignore[attr-defined]
    assert None not in inbound_ids and len(inbound_ids) == 4
    nudge = await Delivery.get(id=nudge.id)
    assert nudge.state == DeliveryState.CANCELLED


async def test_blocking_and_unblocking_the_bot(env: Env) -> None:
    learner = await bound_learner(env)
    env.emulator.block(TOKEN, ANN)
    await env.pump()
    await learner.refresh_from_db()
    assert learner.telegram_status == Reachability.UNREACHABLE
    env.emulator.unblock(TOKEN, ANN)
    await env.pump()
    learner = await Learner.get(id=learner.id)
    assert learner.telegram_status == Reachability.OK
    # Each change is one line in the conversation, never sent and never an open question.
    lines = await Message.filter(direction=MessageDirection.SYSTEM).order_by("id")
    day = env.clock.now().strftime("%-d %b")
    assert [m.body for m in lines] == [
        f"Telegram blocked on {day}; no other channel, so drip messages fail until the "
        "learner is reachable again",
        f"Telegram reachable again on {day}",
    ]
    assert [m.flags for m in lines] == [["blocked"], ["reachable"]]
    conversation = await Conversation.get(id=lines[0].conversation_id)  # type: ignore[attr-defined]
    # Made only for the lines: nothing waits for an answer there.
    assert conversation.status == "closed" and conversation.last_message_id == lines[1].id
    assert await Message.filter(direction=MessageDirection.INBOUND).count() == 0


# ---- durability ---------------------------------------------------------------------------


async def test_stop_after_storing_before_processing_loses_and_doubles_nothing(env: Env) -> None:
    await bound_learner(env)
    for n in range(5):
        env.emulator.send_text(TOKEN, ANN, f"note {n}")
    assert await env.poller.poll_once() == 5  # stored, cursor moved, then the process "dies"
    assert await Message.all().count() == 0
    cursor = await ChannelCursor.get(channel=Channel.TELEGRAM, account="4242")
    assert len(env.emulator.pending_updates(TOKEN)) == 5  # not confirmed yet

    restarted = env.new_poller()
    await restarted.run_until_idle()
    assert [m.body for m in await Message.all().order_by("id")] == [f"note {n}" for n in range(5)]
    assert env.emulator.pending_updates(TOKEN) == []  # confirmed by the restart's getUpdates
    await cursor.refresh_from_db()
    assert restarted.stats.fetched == 0 and restarted.stats.processed == 5

    # A crash after filing but before the items were marked: processed again, filed once.
    await InboundItem.all().update(state=InboundState.PENDING)
    await env.new_poller().run_until_idle()
    assert await Message.all().count() == 5

    # The same updates delivered again (a restored cursor): the unique key absorbs them.
    again = env.new_poller()
    items = await InboundItem.all().order_by("id")
    assert await again.store([json.loads(item.payload) for item in items]) == 0
    assert await InboundItem.all().count() == len(items)


async def test_odd_updates_are_stored_flagged_and_skipped(env: Env) -> None:
    await bound_learner(env)
    env.emulator.push_update(TOKEN, "message", {"message_id": 99, "date": 1})  # no chat
    env.emulator.push_update(
        TOKEN,
        "message",
        {"message_id": 98, "date": 1, "chat": {"id": ANN, "type": "private"}, "dice": {}},
    )
    env.emulator.push_update(TOKEN, "callback_query", {"id": "1", "data": "a:1:0"})  # no from
    env.emulator.push_update(
        TOKEN,
        "message",
        {"message_id": 97, "date": 1, "chat": {"id": -100, "type": "supergroup"}, "text": "x"},
    )
    env.emulator.send_text(TOKEN, ANN, "still here")
    await env.pump()
    flagged = await InboundItem.filter(state=InboundState.FLAGGED).order_by("id")
    reasons = [item.error or "" for item in flagged]
    assert len(reasons) == 4
    assert reasons[0].startswith("malformed message: KeyError")
    assert reasons[1] == "unsupported message content ['dice']"
    assert reasons[2].startswith("malformed callback_query: KeyError")
    assert reasons[3].startswith("message in a supergroup chat")
    [message] = await Message.all()
    assert message.body == "still here"


async def test_run_receives_until_stopped(env: Env) -> None:
    await bound_learner(env)
    stop = asyncio.Event()
    poller = TelegramPoller(
        env.channel.bot, signing_key=KEY, now=env.clock.now, settings=PollerSettings(long_poll=5)
    )
    task = asyncio.create_task(poller.run(stop))
    try:
        await eventually(lambda: env.emulator.is_polling(TOKEN))
        env.emulator.send_text(TOKEN, ANN, "live")
        await eventually(Message.filter(body="live").exists)
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task
    states = [(i.external_id, i.state, i.error) for i in await InboundItem.all()]
    assert states == [("1", InboundState.PROCESSED, None), ("2", InboundState.PROCESSED, None)]


async def test_a_second_poller_on_the_token_is_reported(env: Env) -> None:
    stop = asyncio.Event()
    first = TelegramPoller(env.channel.bot, now=env.clock.now, settings=PollerSettings(long_poll=5))
    task = asyncio.create_task(first.run(stop))
    other = TelegramChannel(TOKEN, env.api_url)
    try:
        await eventually(lambda: env.emulator.is_polling(TOKEN))
        second = TelegramPoller(other.bot, now=env.clock.now)
        polling = asyncio.create_task(second.fetch(2))
        with pytest.raises(DripperError, match="another `dripper run`") as caught:
            async with asyncio.timeout(10):
                await task
        assert "409 Conflict" in str(caught.value)
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    finally:
        stop.set()
        await other.close()


# ---- dripper invites ----------------------------------------------------------------------


def test_invites_command_prints_links_and_writes_csv(
    tmp_path: Any, migrated_sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from dripper.cli.app import AppContext
    from dripper.cli.invites import invites_cmd
    from dripper.db import open_db

    url = migrated_sqlite_url

    async def setup() -> list[Learner]:
        async with open_db(url):
            learners = [
                await Learner.create(first_name="Zoë", last_name="Fischer", email="zoe@ex.com"),
                await Learner.create(first_name="Bound", telegram_chat_id=77),
                await Learner.create(first_name="Gone", opted_out_at=COURSE_END),
                await Learner.create(first_name='=HYPERLINK("http://evil.example/","x")'),
            ]
            await enroll(checked(), "dec", COURSE_END, learners, COURSE_END)
            return learners

    asyncio.run(setup())
    monkeypatch.setenv("DRIPPER_DATABASE_URL", url)
    monkeypatch.setenv("DRIPPER_HMAC_KEY", KEY.decode())
    monkeypatch.delenv("DRIPPER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    csv_path = tmp_path / "links.csv"

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(
            invites_cmd, list(args), obj=AppContext(config_path=None), catch_exceptions=False
        )

    result = invoke("--cohort", "dec", "--bot-username", "@drip_bot", "--csv", str(csv_path))
    assert result.exit_code == 0, result.output
    line, formula_line = [row for row in result.stdout.splitlines() if row]
    who, link = line.split("\t")
    assert who == "Zoë Fischer <zoe@ex.com>"
    assert link.startswith("https://t.me/drip_bot?start=")
    assert "2 link(s); 1 learner(s) already connected; 1 opted out" in result.stderr
    formula_link = formula_line.split("\t")[1]
    assert csv_path.read_text(encoding="utf-8").splitlines() == [
        "name,email,link",
        f"Zoë Fischer,zoe@ex.com,{link}",
        # A name that is a formula stays text in a spreadsheet.
        f'"\'=HYPERLINK(""http://evil.example/"",""x"")",,{formula_link}',
    ]
    again = invoke("--cohort", "dec", "--bot-username", "drip_bot")
    assert link in again.stdout  # the same unused invite, not a new one

    unknown = CliRunner().invoke(
        invites_cmd, ["--cohort", "Dec", "--bot-username", "b"], obj=AppContext(None)
    )
    # Raised as a DripperError: the root group turns it into a message and exit status 1.
    assert isinstance(unknown.exception, DripperError)
    assert str(unknown.exception).startswith("no cohort named 'Dec' (did you mean \"dec\"?)")
    monkeypatch.delenv("DRIPPER_HMAC_KEY")
    unsigned = CliRunner().invoke(
        invites_cmd, ["--cohort", "dec", "--bot-username", "b"], obj=AppContext(None)
    )
    assert isinstance(unsigned.exception, DripperError)
    assert "DRIPPER_HMAC_KEY" in str(unsigned.exception)


async def test_the_bot_username_comes_from_get_me(env: Env) -> None:
    from pydantic import SecretStr

    from dripper.cli.invites import _bot_username
    from dripper.config import Settings, TelegramSettings

    settings = Settings(telegram=TelegramSettings(api_url=env.api_url, token=SecretStr(TOKEN)))
    assert await _bot_username(settings) == "sandbox_4242_bot"


def test_qr_codes_for_the_terminal() -> None:
    from dripper.cli.invites import _qr

    art = _qr("https://t.me/drip_bot?start=abcdefghijklmnopqrst")
    assert len(art.splitlines()) > 10
