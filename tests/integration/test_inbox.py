"""The inbox domain: folders, assignment, unread per trainer, notes, labels, search, canned replies.

Against a real database (SQLite, and PostgreSQL where the SQL differs), through the same
functions the dashboard calls.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from tortoise.transactions import in_transaction

from dripper.errors import DripperError
from dripper.inbox import (
    CannedRepliesError,
    EmptyMessageError,
    EntryKind,
    Folder,
    InboxError,
    InboxQuery,
    add_label,
    add_note,
    assign,
    change_stamp,
    close,
    count_conversations,
    ensure_trainer,
    learner_panel,
    list_conversations,
    load_canned_replies,
    mark_read,
    mark_unread,
    remove_label,
    reply_to_learner,
    snooze,
    thread,
    trainer_handle,
    unread_count,
)
from dripper.inbox.canned import context_for
from dripper.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Enrollment,
    Learner,
    Message,
    QuizAnswer,
    Trainer,
)
from dripper.store.conversations import touch_conversation
from tests.fixtures.inbox_data import NOW, course, writes


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> str:
    fixture = "db" if request.param == "sqlite" else "pg_db"
    url: str = request.getfixturevalue(fixture)
    return url


async def _ids(folder: Folder, trainer: Trainer | None = None, **filters: str) -> list[int]:
    query = InboxQuery(folder=folder, **filters)  # type: ignore[arg-type]
    rows = await list_conversations(query, trainer.id if trainer else None, NOW)
    count = await count_conversations(query, trainer.id if trainer else None, NOW)
    assert count == len(rows)
    return [row.id for row in rows]


async def test_folders_follow_status_and_assignment(any_db: str) -> None:
    ada, bea, cem, dan = await course("Ada", "Bea", "Cem", "Dan")
    anna = await ensure_trainer("anna")
    mine = await writes(ada, "Question one", NOW - timedelta(minutes=4))
    nobody = await writes(bea, "Question two", NOW - timedelta(minutes=3))
    answered = await writes(cem, "Question three", NOW - timedelta(minutes=2))
    closed = await writes(dan, "Thanks!", NOW - timedelta(minutes=1))
    await assign(mine.id, anna.id, NOW)
    await reply_to_learner(answered.id, "Like this.", NOW - timedelta(minutes=2), author_id=anna.id)
    await close(closed.id, NOW)

    assert await _ids(Folder.OPEN) == [nobody.id, mine.id]
    assert await _ids(Folder.MINE, anna) == [mine.id]
    assert await _ids(Folder.UNASSIGNED) == [nobody.id]
    assert await _ids(Folder.WAITING) == [answered.id]
    assert await _ids(Folder.CLOSED) == [closed.id]
    assert await _ids(Folder.ALL) == [closed.id, answered.id, nobody.id, mine.id]
    assert await _ids(Folder.OPEN, cohort="dec") == [nobody.id, mine.id]
    assert await _ids(Folder.OPEN, cohort="other") == []


async def test_a_snooze_hides_until_its_time_and_a_learner_message_reopens(db: str) -> None:
    [ada] = await course("Ada")
    conversation = await writes(ada, "Can we talk next week?")
    await snooze(conversation.id, NOW + timedelta(hours=2), NOW)
    assert await _ids(Folder.OPEN) == []
    assert await _ids(Folder.SNOOZED) == [conversation.id]
    later = InboxQuery(folder=Folder.OPEN)
    rows = await list_conversations(later, None, NOW + timedelta(hours=3))
    assert [row.id for row in rows] == [conversation.id]  # the snooze ran out
    with pytest.raises(InboxError, match="future"):
        await snooze(conversation.id, NOW - timedelta(minutes=1), NOW)

    await close(conversation.id, NOW)
    await writes(ada, "One more thing", NOW + timedelta(minutes=1))
    reopened = await Conversation.get(id=conversation.id)
    assert reopened.status is ConversationStatus.OPEN
    assert reopened.snoozed_until is None


async def test_unread_is_per_trainer_and_returns_with_a_new_learner_message(any_db: str) -> None:
    [ada] = await course("Ada")
    anna, ben = await ensure_trainer("anna"), await ensure_trainer("ben")
    conversation = await writes(ada, "Hello?")

    async def unread(trainer: Trainer) -> bool:
        [row] = await list_conversations(InboxQuery(folder=Folder.ALL), trainer.id, NOW)
        return row.unread

    assert (await unread(anna), await unread(ben)) == (True, True)
    await mark_read(conversation.id, anna.id)
    assert (await unread(anna), await unread(ben)) == (False, True)
    assert (await unread_count(anna.id), await unread_count(ben.id)) == (0, 1)
    await writes(ada, "Anyone there?", NOW + timedelta(minutes=1))
    assert await unread(anna)
    await mark_read(conversation.id, anna.id)
    await mark_unread(conversation.id, anna.id)
    assert await unread(anna)


async def test_a_reply_marks_the_conversation_read_for_its_author_and_waits(db: str) -> None:
    [ada] = await course("Ada")
    anna = await ensure_trainer("anna")
    conversation = await writes(ada, "How do pivots work?")
    reply = await reply_to_learner(conversation.id, "Drag a field.", NOW, author_id=anna.id)
    [row] = await list_conversations(InboxQuery(folder=Folder.ALL), anna.id, NOW)
    assert not row.unread
    assert row.status is ConversationStatus.WAITING
    assert (row.preview, row.preview_direction) == ("Drag a field.", "out")
    delivery = await Delivery.get(id=reply.delivery_id)  # type: ignore[attr-defined]
    assert (delivery.kind, delivery.state) == (DeliveryKind.REPLY, DeliveryState.PENDING)
    with pytest.raises(EmptyMessageError):
        await reply_to_learner(conversation.id, " \n ", NOW, author_id=anna.id)


async def test_two_trainers_replying_at_once_both_keep_their_reply(any_db: str) -> None:
    [ada] = await course("Ada")
    anna, ben = await ensure_trainer("anna"), await ensure_trainer("ben")
    conversation = await writes(ada, "Which chart should I use?")
    await asyncio.gather(
        reply_to_learner(conversation.id, "A bar chart.", NOW, author_id=anna.id),
        reply_to_learner(conversation.id, "A line chart for trends.", NOW, author_id=ben.id),
    )
    replies = [entry for entry in await thread(conversation.id) if entry.kind is EntryKind.TRAINER]
    assert sorted((entry.author, entry.body) for entry in replies) == [
        ("anna", "A bar chart."),
        ("ben", "A line chart for trends."),
    ]
    assert all(entry.delivery_state == "queued" for entry in replies)
    assert await Delivery.filter(kind=DeliveryKind.REPLY).count() == 2


async def test_the_thread_shows_the_drip_the_learner_reply_with_its_step_and_notes(
    db: str,
) -> None:
    [ada] = await course("Ada")
    anna = await ensure_trainer("anna")
    conversation = await writes(ada, "I tried [bold]pivots[/bold]", NOW + timedelta(minutes=5))
    await add_note(
        conversation.id, "She is keen; follow up.", NOW + timedelta(minutes=6), author_id=anna.id
    )
    entries = await thread(conversation.id)
    assert [entry.kind for entry in entries] == [
        EntryKind.DRIP,
        EntryKind.DRIP,
        EntryKind.LEARNER,
        EntryKind.NOTE,
    ]
    hello, reflect, wrote, note = entries
    assert hello.body == "Welcome, Ada!"
    assert (reflect.step_id, reflect.delivery_state, reflect.channel) == (
        "reflect",
        "sent",
        "email",
    )
    assert wrote.body == "I tried [bold]pivots[/bold]"  # stored literally
    assert (wrote.step_id, wrote.step_title) == ("reflect", "0d · question reflect")
    assert (note.author, note.delivery_state) == ("anna", None)
    assert await Delivery.filter(kind=DeliveryKind.REPLY).count() == 0  # a note is never sent
    with pytest.raises(EmptyMessageError):
        await add_note(conversation.id, "", NOW, author_id=anna.id)


async def test_labels_filter_the_inbox_and_are_normalised(any_db: str) -> None:
    ada, bea = await course("Ada", "Bea")
    first = await writes(ada, "Question")
    await writes(bea, "Another", NOW + timedelta(minutes=1))
    assert await add_label(first.id, "  Follow   Up ", NOW) == "follow up"
    await add_label(first.id, "follow up", NOW)  # twice is harmless
    assert await _ids(Folder.ALL, label="Follow Up") == [first.id]
    [row] = await list_conversations(InboxQuery(folder=Folder.ALL, label="follow up"), None, NOW)
    assert row.labels == ("follow up",)
    await remove_label(first.id, "follow up", NOW)
    assert await _ids(Folder.ALL, label="follow up") == []
    with pytest.raises(InboxError, match="without commas"):
        await add_label(first.id, "a,b", NOW)


async def test_search_needs_every_word_in_a_message_or_the_name(any_db: str) -> None:
    ada, bea = await course("Ada", "Bea")
    first = await writes(ada, "Pivot tables lose 100% of my FORMATTING")
    second = await writes(bea, "Charts are fine", NOW + timedelta(minutes=1))
    assert await _ids(Folder.ALL, search="formatting pivot") == [first.id]
    assert await _ids(Folder.ALL, search="100%") == [first.id]
    assert await _ids(Folder.ALL, search="10_%") == []  # wildcards are literal
    assert await _ids(Folder.ALL, search="bea") == [second.id]
    assert await _ids(Folder.ALL, search="pivot charts") == []


async def test_the_learner_panel_shows_channels_local_time_and_progress(db: str) -> None:
    [ada] = await course("Ada")
    await Learner.filter(id=ada.id).update(timezone="Asia/Tokyo", telegram_username="ada_t")
    conversation = await writes(ada, "Hi")
    panel = await learner_panel(conversation.id, NOW)
    assert panel.name == "Ada"
    assert (panel.email, panel.email_status) == ("ada@example.com", "unknown")
    assert (panel.telegram_username, panel.telegram_linked) == ("ada_t", False)
    assert panel.local_now.isoformat() == "2026-12-07T19:00:00+09:00"
    assert (panel.cohort, panel.curriculum) == ("dec", "Inbox course")
    assert (panel.steps_sent, panel.steps_total) == (2, 2)


async def test_an_assignment_moves_the_change_stamp(db: str) -> None:
    [ada] = await course("Ada")
    anna = await ensure_trainer("anna")
    conversation = await writes(ada, "Hi")
    before = await change_stamp()
    await assign(conversation.id, anna.id, NOW + timedelta(seconds=1))
    assert await change_stamp() != before
    with pytest.raises(InboxError, match="does not exist"):
        await assign(999_999, anna.id, NOW)


def test_the_trainer_handle_comes_from_config_and_must_be_usable() -> None:
    assert trainer_handle("anna.k") == "anna.k"
    with pytest.raises(InboxError, match="DRIPPER_TRAINER"):
        trainer_handle("anna k")


async def test_canned_replies_render_for_the_learner_and_trainer(db: str, tmp_path: Path) -> None:
    path = tmp_path / "canned-replies.yaml"
    path.write_text(
        "- id: thanks\n"
        "  title: Thanks\n"
        "  text: |\n"
        "    Thanks, {{ learner.first_name }}! See you in {{ course.title }}.\n"
        "    {{ trainer.name }}\n"
    )
    [thanks] = load_canned_replies(path)
    [ada] = await course("Ada_*")
    conversation = await writes(ada, "Done!")
    trainer = await ensure_trainer("anna")
    text = thanks.render(await context_for(conversation.id, trainer))
    assert (
        text == "Thanks, Ada\\_\\*! See you in Inbox course.\nanna"
    )  # values are Markdown-escaped
    assert load_canned_replies(tmp_path / "missing.yaml") == []


def test_canned_reply_problems_point_at_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "canned-replies.yaml"
    path.write_text(
        "- id: a\n  title: A\n  text: Hi {{ learnr.first_name }}\n"
        "- id: a\n  title: B\n  text: Hello\n  colour: red\n"
        "- id: c\n  text: No title\n"
    )
    with pytest.raises(CannedRepliesError) as excinfo:
        load_canned_replies(path)
    lines = str(excinfo.value).splitlines()
    assert lines == [
        f"{path}:3:9: unknown template variable 'learnr' (canned replies know learner, course "
        "and trainer)",
        f"{path}:4:7: id 'a' is used twice",
        f"{path}:7:3: unknown key 'colour': use id, title, text",
        f"{path}:8:3: 'title' must be non-empty text",
    ]
    path.write_text("- id: [unclosed\n")
    with pytest.raises(DripperError, match=r"canned-replies.yaml:\d+:\d+: invalid YAML"):
        load_canned_replies(path)


async def test_a_reply_racing_a_newer_learner_message_leaves_it_open_and_newest(
    any_db: str,
) -> None:
    """On PostgreSQL a reply (message id R) can commit after a learner's message with a higher
    id L: the reply must not put the conversation back to waiting, nor its preview back to R."""
    [ada] = await course("Ada")
    conversation = await writes(ada, "Second question")
    learner_id = (await Conversation.get(id=conversation.id)).last_inbound_id
    assert learner_id is not None
    async with in_transaction() as tx:  # the reply's update, written as if it came late
        await touch_conversation(
            tx, conversation.id, learner_id - 1, NOW, ConversationStatus.WAITING
        )
    late = await Conversation.get(id=conversation.id)
    assert (late.status, late.last_message_id) == (ConversationStatus.OPEN, learner_id)
    async with in_transaction() as tx:  # a reply newer than every learner message
        await touch_conversation(
            tx, conversation.id, learner_id + 1, NOW, ConversationStatus.WAITING
        )
    answered = await Conversation.get(id=conversation.id)
    assert (answered.status, answered.last_message_id) == (
        ConversationStatus.WAITING,
        learner_id + 1,
    )


async def test_a_reply_marks_read_only_up_to_the_message_it_answers(db: str) -> None:
    [ada] = await course("Ada")
    anna = await ensure_trainer("anna")
    conversation = await writes(ada, "Seen question")
    [seen] = await Message.filter(conversation_id=conversation.id)
    await writes(ada, "Unseen follow-up", NOW + timedelta(seconds=30))
    await reply_to_learner(
        conversation.id, "Answer", NOW + timedelta(minutes=1), author_id=anna.id, answering=seen.id
    )
    [row] = await list_conversations(InboxQuery(folder=Folder.ALL), anna.id, NOW)
    assert row.unread  # the follow-up arrived while she typed: still unread for her
    assert row.status is ConversationStatus.OPEN


async def test_the_change_stamp_sees_delivery_states_and_quiz_taps(db: str) -> None:
    [ada] = await course("Ada")
    before = await change_stamp()
    await (
        Delivery.filter(learner_id=ada.id)
        .limit(1)
        .update(state=DeliveryState.FAILED, updated_at=NOW + timedelta(minutes=1))
    )
    after_delivery = await change_stamp()
    assert after_delivery != before
    enrollment = await Enrollment.get(learner_id=ada.id)
    await QuizAnswer.create(
        enrollment_id=enrollment.id, step_id="reflect", choices=[0], channel=Channel.EMAIL
    )
    assert await change_stamp() != after_delivery
