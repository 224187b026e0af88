"""The conversation screen: thread, learner panel, composer and every action, under Pilot.

Each test opens a real database with one learner who took a three-step drip, answered the quiz,
wrote twice and got an answer and a note from another trainer; the dashboard runs with a fixed
clock in Europe/Berlin, so the times on screen are known. Two snapshot tests (80x24 and
120x40) show the screen as a trainer sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rich.text import Text
from textual.command import CommandList
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from dripper.curriculum.checks import check_source
from dripper.curriculum.source import parse_source
from dripper.db import open_db
from dripper.engine.planner import plan_due
from dripper.enrollments.enroll import enroll
from dripper.inbox import (
    AnsweredPrompt,
    add_note,
    ensure_trainer,
    record_learner_message,
    reply_to_learner,
    unread_count,
)
from dripper.models import (
    Channel,
    Conversation,
    ConversationLabel,
    ConversationStatus,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Learner,
    Message,
    MessageDirection,
    QuizAnswer,
)
from tests.fixtures.waiting import until_shown
from tui.app import DripperApp
from tui.screens.conversation import ConversationScreen, snooze_choices
from tui.screens.help import HelpScreen
from tui.screens.inbox import InboxScreen
from tui.screens.pickers import Ask, Choose
from tui.session import DashboardConfig
from tui.widgets.conversation import Composer, EntryView, LearnerPanelView, delivery_text

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday; 11:00 in Berlin
BERLIN = ZoneInfo("Europe/Berlin")
TRICKY = "See [bold]x[/bold] and \x1b[31mred\x1b[0m"
CURRICULUM = """\
id: followup
title: Excel follow-up
steps:
  - id: welcome
    after: 0d
    kind: tip
    text: Welcome back, {{ learner.first_name }}! Try one shortcut today.
  - id: lookup
    after: 0d
    kind: quiz
    text: Which formula finds an exact match?
    options: ["=XLOOKUP(...)", "=VLOOKUP(..., TRUE)", "=SUM(...)"]
    correct: "=XLOOKUP(...)"
  - id: reflect
    after: 0d
    kind: question
    text: What did you try first?
  - id: later
    after: 2w
    kind: tip
    text: A later tip.
"""


async def _learner_with_history() -> tuple[Learner, int]:
    """Ada: three steps sent, the quiz answered, two messages, a reply and a note from bob."""
    checked = check_source(parse_source(CURRICULUM, "followup.yaml"))
    ada = await Learner.create(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        telegram_chat_id=4242,
        telegram_username="ada_l",
        timezone="America/New_York",
    )
    await enroll(checked, "dec", NOW - timedelta(days=3), [ada], NOW - timedelta(days=3))
    await plan_due(NOW, timedelta(days=3))
    sent = {"welcome": 3, "lookup": 2, "reflect": 1}  # days ago
    for step, days in sent.items():
        await Delivery.filter(learner_id=ada.id, step_id=step).update(
            state=DeliveryState.SENT, sent_at=NOW - timedelta(days=days), channel=Channel.TELEGRAM
        )
    lookup = await Delivery.get(learner_id=ada.id, step_id="lookup")
    await QuizAnswer.create(
        enrollment_id=lookup.enrollment_id,  # type: ignore[attr-defined]
        step_id="lookup",
        choices=[0],
        correct=True,
        channel=Channel.TELEGRAM,
        answered_at=NOW - timedelta(hours=40),
    )
    reflect = await Delivery.get(learner_id=ada.id, step_id="reflect")
    first = await record_learner_message(
        ada.id,
        Channel.TELEGRAM,
        TRICKY,
        NOW - timedelta(hours=2),
        answers=AnsweredPrompt(
            reflect.enrollment_id,  # type: ignore[attr-defined]
            "reflect",
            0,
            reflect.id,
        ),
    )
    conversation_id = int(first.conversation_id)  # type: ignore[attr-defined]
    bob = await ensure_trainer("bob")
    reply = await reply_to_learner(
        conversation_id, "Nice start!", NOW - timedelta(minutes=90), author_id=bob.id
    )
    await Delivery.filter(id=reply.delivery_id).update(  # type: ignore[attr-defined]
        state=DeliveryState.FAILED, last_error="Forbidden: bot was blocked by the user"
    )
    await add_note(
        conversation_id, "She may ask about pivots.", NOW - timedelta(minutes=80), author_id=bob.id
    )
    await record_learner_message(
        ada.id, Channel.TELEGRAM, "Did my answer arrive?", NOW - timedelta(minutes=30)
    )
    return ada, conversation_id


@asynccontextmanager
async def _running(app: DripperApp, size: tuple[int, int]) -> AsyncIterator[Pilot[Any]]:
    """Run the app under Pilot; before it stops, let every screen finish reading its data."""
    async with app.run_test(size=size) as pilot:
        yield pilot
        await app.workers.wait_for_complete()
        await pilot.pause()


def _config(url: str, **overrides: Any) -> DashboardConfig:
    settings: dict[str, Any] = {
        "timezone": "Europe/Berlin",
        "now": lambda: NOW,
        "live_interval": 60.0,
    }
    settings.update(overrides)
    return DashboardConfig(url, "anna", **settings)


async def _open(pilot: Pilot[Any], conversation_id: int) -> ConversationScreen:
    """Open the conversation over the inbox (as Enter there does) and wait for its thread."""
    app = pilot.app
    await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
    screen = ConversationScreen(conversation_id)
    await app.push_screen(screen)
    await until_shown(pilot, lambda: screen.summary is not None and bool(_entries(screen)))
    return screen


def _plain(widget: EntryView) -> str:
    visual = widget.visual
    assert isinstance(visual, Content)
    return visual.plain


def _entries(screen: ConversationScreen) -> list[str]:
    return [_plain(entry) for entry in screen.query(EntryView)]


def _shown(screen: ConversationScreen, needle: str) -> bool:
    return any(needle in text for text in _entries(screen))


def _notices(app: DripperApp) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


def _title(composer: Composer) -> str:
    return Content.from_markup(composer.border_title or "").plain


async def _type(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*("space" if char == " " else char for char in text))


async def _conversation(conversation_id: int) -> Conversation:
    return await Conversation.get(id=conversation_id).prefetch_related("assignee")


# ------------------------------------------------------------------ the thread


async def test_the_thread_shows_both_directions_with_steps_states_and_local_times(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (120, 40)) as pilot:
        screen = await _open(pilot, conversation_id)
        entries = _entries(screen)
        classes = [entry.classes for entry in screen.query(EntryView)]
        assert len(entries) == 8
        drip, quiz, tap, question, learner, reply, note, latest = entries
        assert drip.startswith("dripper · Fri 04 Dec 11:00 · telegram · 0d · tip welcome")
        assert "Welcome back, Ada!" in drip
        assert "1. =XLOOKUP(...)" in quiz
        assert "tapped: =XLOOKUP(...) (correct)" in tap
        assert "What did you try first?" in question
        # The learner's message: who, when in Berlin, channel, and the step it answers.
        assert learner.startswith(
            "Ada Lovelace · Mon 07 Dec 09:00 · telegram · answers 0d · question reflect"
        )
        assert reply.startswith("bob replied · Mon 07 Dec 09:30 · telegram · failed: Forbidden")
        assert "entry-problem" in classes[5]
        assert note.startswith("✎ Internal note · bob · Mon 07 Dec 09:40 · not sent")
        assert "entry-note" in classes[6]
        assert latest.startswith("Ada Lovelace · Mon 07 Dec 10:30")
        header = screen.query_one("#conversation-header", Static).visual
        assert isinstance(header, Content)
        assert header.plain == "Ada Lovelace · open · unassigned · cohort dec"
        # Opening the conversation read it, for anna only.
        anna = await ensure_trainer("anna")
        bob = await ensure_trainer("bob")
        assert await unread_count(anna.id) == 0
        assert await unread_count(bob.id) == 1


async def test_learner_text_is_shown_literally(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        [shown] = [text for text in _entries(screen) if "[bold]x[/bold]" in text]
        assert "See [bold]x[/bold] and red" in shown
        assert "\x1b" not in shown
        for entry in screen.query(EntryView):
            assert isinstance(entry.content, Text)  # a Text is never parsed as markup


async def test_the_thread_opens_scrolled_to_its_end(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        thread = screen.thread_view
        await until_shown(pilot, lambda: 0 < thread.max_scroll_y == thread.scroll_y)
        await pilot.press("k", "k")
        assert thread.scroll_y == thread.max_scroll_y - 2
        await pilot.press("j")
        assert thread.scroll_y == thread.max_scroll_y - 1


@pytest.mark.parametrize(
    ("state", "error", "shown"),
    [
        ("queued", None, "queued"),
        ("sending", None, "sending"),
        ("sent", None, "sent"),
        ("failed", "Chat not found", "failed: Chat not found"),
        ("uncertain", None, "uncertain (may not have arrived)"),
        ("uncertain", "read timeout", "uncertain (may not have arrived): read timeout"),
        ("failed", "bad \x1b[2J[red]", "failed: bad [red]"),
    ],
)
def test_delivery_states_read_as_a_trainer_needs_them(
    state: str, error: str | None, shown: str
) -> None:
    assert delivery_text(state, error).plain == shown


# ------------------------------------------------------------------ the composer


async def test_a_reply_is_queued_on_the_learners_channel_and_shown_as_queued(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("r")
        assert screen.composer.has_focus
        await _type(pilot, "Yes, it did.")
        await pilot.press("enter")
        await _type(pilot, "Keep going!")
        await pilot.press("ctrl+s")
        await until_shown(pilot, lambda: _shown(screen, "Keep going!"))
        [mine] = [text for text in _entries(screen) if "Keep going!" in text]
        assert mine.startswith("anna replied · Mon 07 Dec 11:00 · telegram · queued")
        assert screen.composer.text == ""
        assert screen.thread_view.has_focus
    message = await Message.get(body="Yes, it did.\nKeep going!").prefetch_related("delivery")
    assert message.direction is MessageDirection.OUTBOUND
    delivery = message.delivery
    assert delivery is not None
    assert delivery.kind is DeliveryKind.REPLY
    assert delivery.state is DeliveryState.PENDING
    assert delivery.channel_preference == "telegram"
    assert (await _conversation(conversation_id)).status is ConversationStatus.WAITING


async def test_an_empty_reply_is_not_sent(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        await _open(pilot, conversation_id)
        before = await Message.all().count()
        await pilot.press("r", "space", "enter", "ctrl+s")
        await until_shown(pilot, lambda: any("the reply is empty" in n for n in _notices(app)))
        assert await Message.all().count() == before


async def test_note_mode_adds_an_internal_note_and_says_so_in_the_border(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("r")
        assert "Reply to Ada Lovelace by telegram" in _title(screen.composer)
        await pilot.press("ctrl+n")
        assert "Internal note" in _title(screen.composer)
        assert screen.composer.has_class("-note")
        await _type(pilot, "Call her Friday")
        await pilot.press("f5")
        await until_shown(pilot, lambda: _shown(screen, "Call her Friday"))
        [note] = [text for text in _entries(screen) if "Call her Friday" in text]
        assert note.startswith("✎ Internal note · anna")
        await pilot.press("n")  # from the thread: straight into note mode
        assert screen.composer.note_mode
        assert screen.composer.has_focus
    message = await Message.get(body="Call her Friday")
    assert message.direction is MessageDirection.NOTE
    assert message.delivery_id is None  # type: ignore[attr-defined]
    assert await Delivery.filter(kind=DeliveryKind.REPLY).count() == 1  # bob's only


async def test_letters_typed_in_the_composer_are_text_and_escape_leaves_it_then_the_screen(
    db: str,
) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("r")
        await _type(pilot, "close own work zap Lu")  # c, o, w, z, a, L, u are actions elsewhere
        await pilot.pause()
        assert screen.composer.text == "close own work zap Lu"
        assert app.screen is screen
        await pilot.press("escape")
        assert screen.thread_view.has_focus
        assert screen.composer.text == "close own work zap Lu"
        await pilot.press("escape")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
    conversation = await _conversation(conversation_id)
    assert conversation.status is ConversationStatus.OPEN
    assert conversation.assignee is None
    assert await ConversationLabel.all().count() == 0


async def test_a_canned_reply_is_filled_in_and_inserted_at_the_cursor(
    db: str, tmp_path: Path
) -> None:
    _, conversation_id = await _learner_with_history()
    canned = tmp_path / "canned-replies.yaml"
    canned.write_text(
        "- id: thanks\n"
        "  title: Thanks for the reflection\n"
        "  text: Thanks, {{ learner.first_name }}! {{ trainer.handle }}\n"
        "- id: later\n"
        "  title: I'll come back to you\n"
        "  text: Back soon.\n",
        encoding="utf-8",
    )
    app = DripperApp(_config(db, canned_replies=canned))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("r")
        await _type(pilot, "Hi. ")
        await pilot.press("ctrl+t")
        await until_shown(pilot, lambda: isinstance(app.screen, Choose))
        await pilot.press("enter")
        await until_shown(pilot, lambda: "Thanks, Ada!" in screen.composer.text)
        assert screen.composer.text == "Hi. Thanks, Ada! anna"
        assert screen.composer.has_focus
        await _type(pilot, " x")  # the cursor is after the inserted text
        assert screen.composer.text == "Hi. Thanks, Ada! anna x"


async def test_without_canned_replies_the_message_names_the_file_to_write(
    db: str, tmp_path: Path
) -> None:
    _, conversation_id = await _learner_with_history()
    missing = tmp_path / "canned-replies.yaml"
    app = DripperApp(_config(db, canned_replies=missing))
    async with _running(app, (80, 24)) as pilot:
        await _open(pilot, conversation_id)
        await pilot.press("r", "ctrl+t")
        await until_shown(pilot, lambda: any(str(missing) in n for n in _notices(app)))
        assert not isinstance(app.screen, Choose)


# ------------------------------------------------------------------ workflow


async def test_assign_to_another_trainer_to_me_and_to_nobody(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("a")
        await until_shown(pilot, lambda: isinstance(app.screen, Choose))
        await pilot.press("down", "down", "enter")  # me, nobody, bob
        await until_shown(pilot, lambda: "assigned to bob" in _header(screen))
        assert (await _conversation(conversation_id)).assignee.handle == "bob"  # type: ignore[union-attr]
        await pilot.press("m")
        await until_shown(pilot, lambda: "assigned to anna" in _header(screen))
        await pilot.press("a")
        await until_shown(pilot, lambda: isinstance(app.screen, Choose))
        await pilot.press("down", "enter")
        await until_shown(pilot, lambda: "unassigned" in _header(screen))
    assert (await _conversation(conversation_id)).assignee is None


def _header(screen: ConversationScreen) -> str:
    visual = screen.query_one("#conversation-header", Static).visual
    return visual.plain if isinstance(visual, Content) else ""


async def test_close_reopen_and_waiting_on_the_learner(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        for key, status in (
            ("c", ConversationStatus.CLOSED),
            ("O", ConversationStatus.OPEN),
            ("w", ConversationStatus.WAITING),
        ):
            await pilot.press(key)
            shown = f" · {status.value} · "
            await until_shown(pilot, lambda: shown in _header(screen))  # noqa: B023
            assert (await _conversation(conversation_id)).status is status


async def test_snooze_until_tomorrow_nine_in_the_trainers_zone(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("z")
        await until_shown(pilot, lambda: isinstance(app.screen, Choose))
        await pilot.press("down", "down", "enter")
        await until_shown(pilot, lambda: "snoozed until Tue 08 Dec 09:00" in _header(screen))
    conversation = await _conversation(conversation_id)
    assert conversation.status is ConversationStatus.SNOOZED
    assert conversation.snoozed_until == datetime(2026, 12, 8, 9, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("now", "monday"),
    [
        (NOW, datetime(2026, 12, 14, 9, 0, tzinfo=BERLIN)),  # on a Monday: the next one
        (datetime(2026, 3, 28, 22, 30, tzinfo=UTC), datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN)),
    ],
)
def test_snooze_choices_are_in_the_trainers_zone(now: datetime, monday: datetime) -> None:
    choices = dict((label.split(" (")[0], until) for label, until in snooze_choices(now, BERLIN))
    assert choices["1 hour"] == now + timedelta(hours=1)
    assert choices["4 hours"] == now + timedelta(hours=4)
    tomorrow = choices["Tomorrow 09:00"].astimezone(BERLIN)
    assert (tomorrow.hour, tomorrow.date()) == (9, now.astimezone(BERLIN).date() + timedelta(1))
    assert choices["Next Monday 09:00"] == monday


async def test_add_and_remove_a_label(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("l")
        await until_shown(pilot, lambda: isinstance(app.screen, Ask))
        await _type(pilot, "Follow-up")
        await pilot.press("enter")
        await until_shown(pilot, lambda: "#follow-up" in _header(screen))
        labels = await ConversationLabel.filter(conversation_id=conversation_id)
        assert [label.label for label in labels] == ["follow-up"]
        await pilot.press("L")
        await until_shown(pilot, lambda: isinstance(app.screen, Choose))
        await pilot.press("enter")
        await until_shown(pilot, lambda: "#follow-up" not in _header(screen))
    assert await ConversationLabel.filter(conversation_id=conversation_id).count() == 0


async def test_mark_unread_goes_back_to_the_inbox(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    anna = await ensure_trainer("anna")
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        await _open(pilot, conversation_id)
        assert await unread_count(anna.id) == 0
        await pilot.press("u")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.pause()
        assert await unread_count(anna.id) == 1


# ------------------------------------------------------------------ live


async def test_a_new_message_appears_and_the_composer_keeps_its_text_and_focus(db: str) -> None:
    ada, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("r")
        await _type(pilot, "Half a reply")
        await record_learner_message(ada.id, Channel.EMAIL, "One more thing!", NOW)
        app.data_changed()
        await until_shown(pilot, lambda: _shown(screen, "One more thing!"))
        assert screen.composer.text == "Half a reply"
        assert screen.composer.has_focus
        # The reply now goes to the channel of her latest message.
        assert "by email" in _title(screen.composer)


async def test_changes_made_elsewhere_arrive_within_the_live_interval(db: str) -> None:
    ada, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db, live_interval=0.1))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await record_learner_message(ada.id, Channel.TELEGRAM, "Are you there?", NOW)
        await until_shown(pilot, lambda: _shown(screen, "Are you there?"), seconds=3)


async def test_two_trainers_answering_the_same_message_both_keep_their_reply(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    bob = await ensure_trainer("bob")
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("r")
        await _type(pilot, "From anna")
        # bob, in another terminal, answers the same message first.
        await reply_to_learner(conversation_id, "From bob", NOW, author_id=bob.id)
        await pilot.press("ctrl+s")
        app.data_changed()
        await until_shown(pilot, lambda: _shown(screen, "From anna") and _shown(screen, "From bob"))
    answered = {
        message.body: message.in_reply_to_id  # type: ignore[attr-defined]
        for message in await Message.filter(direction=MessageDirection.OUTBOUND)
    }
    assert answered["From anna"] == answered["From bob"]
    assert await Delivery.filter(kind=DeliveryKind.REPLY, state=DeliveryState.PENDING).count() == 2


# ------------------------------------------------------------------ panel and keys


async def test_the_learner_panel_is_beside_the_thread_when_wide_and_toggled_when_narrow(
    db: str,
) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        panel = screen.query_one(LearnerPanelView)
        assert not panel.display
        await pilot.press("p")
        assert panel.display
        text = panel.query_one("#learner-panel-text", Static).visual
        assert isinstance(text, Content)
        for shown in (
            "ada@example.com",
            "telegram @ada_l\n  linked · not used yet",
            "Mon 05:00 America/New_York",
            "Excel follow-up",
            "cohort dec",
            "3/4 steps",
            "quizzes 1/1 correct",
        ):
            assert shown in text.plain
        await pilot.press("p")
        assert not panel.display
    wide = DripperApp(_config(db))
    async with _running(wide, (120, 40)) as pilot:
        screen = await _open(pilot, conversation_id)
        assert screen.query_one(LearnerPanelView).display


def test_every_binding_has_an_id_and_a_description() -> None:
    for binding in ConversationScreen.BINDINGS:
        assert binding.id and binding.id.startswith("conversation.")  # type: ignore[union-attr]
        assert binding.description  # type: ignore[union-attr]


async def test_the_palette_runs_the_screens_actions(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        await pilot.press("ctrl+p")
        await _type(pilot, "Assign to me")
        # The palette searches in the background; wait until it lists the hit.
        await until_shown(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
        await pilot.press("enter")
        await until_shown(pilot, lambda: "assigned to anna" in _header(screen))


async def test_the_help_screen_lists_the_keys_with_their_ids(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (120, 40)) as pilot:
        await _open(pilot, conversation_id)
        await pilot.press("question_mark")
        await until_shown(pilot, lambda: isinstance(app.screen, HelpScreen))
        table = app.screen.query_one("#help-keys", DataTable)
        rows = {
            str(table.get_row_at(i)[2]): str(table.get_row_at(i)[0]) for i in range(table.row_count)
        }
        assert rows["conversation.send"] == "^s, f5"
        assert rows["conversation.unlabel"] == "L"
        assert {binding.id for binding in ConversationScreen.BINDINGS} <= set(rows)  # type: ignore[union-attr]


async def test_a_keymap_moves_the_send_key_and_the_composer_says_so(
    db: str, tmp_path: Path
) -> None:
    _, conversation_id = await _learner_with_history()
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('"conversation.send" = "f9"\n', encoding="utf-8")
    app = DripperApp(_config(db, keymap=keymap))
    async with _running(app, (80, 24)) as pilot:
        screen = await _open(pilot, conversation_id)
        assert str(screen.composer.border_subtitle).startswith("f9 send")
        await pilot.press("r", "o", "k", "ctrl+s")
        await pilot.pause()
        assert screen.composer.text == "ok"  # ctrl+s is no longer the send key
        await pilot.press("f9")
        await until_shown(pilot, lambda: _shown(screen, "anna replied"))


async def test_going_back_refreshes_the_unread_mark_in_the_inbox(db: str) -> None:
    _, conversation_id = await _learner_with_history()
    app = DripperApp(_config(db))
    async with _running(app, (80, 24)) as pilot:
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        inbox = app.screen
        assert isinstance(inbox, InboxScreen)
        await until_shown(pilot, lambda: [row.unread for row in inbox.rows] == [True])
        await _open(pilot, conversation_id)
        await pilot.press("escape")
        await until_shown(pilot, lambda: [row.unread for row in inbox.rows] == [False])


# ------------------------------------------------------------------ snapshots


def _fill_snapshot_database(url: str) -> None:
    async def populate() -> None:
        async with open_db(url):
            await _learner_with_history()

    asyncio.run(populate())


async def _open_first_conversation(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
    await until_shown(pilot, lambda: bool(app.screen.query_one("#conversations").row_count))  # type: ignore[attr-defined]
    await pilot.press("enter")
    await until_shown(pilot, lambda: isinstance(app.screen, ConversationScreen))
    screen = app.screen
    assert isinstance(screen, ConversationScreen)
    await until_shown(pilot, lambda: screen.summary is not None and len(_entries(screen)) == 8)
    # The thread scrolls to its end once laid out: the picture is taken when it has.
    thread = screen.thread_view

    def at_its_end() -> bool:
        height, content = thread.size.height, thread.virtual_size.height
        fits = 0 < content <= height
        return height > 0 and (fits or 0 < thread.max_scroll_y == thread.scroll_y)

    await until_shown(pilot, at_its_end)
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_snapshot_of_the_conversation_screen(
    snap_compare: Any, migrated_sqlite_url: str, size: tuple[int, int]
) -> None:
    _fill_snapshot_database(migrated_sqlite_url)
    app = DripperApp(_config(migrated_sqlite_url), open_database=True)
    assert snap_compare(app, terminal_size=size, run_before=_open_first_conversation)
