"""Hostile Telegram updates: each is stored, flagged and skipped; the rest of its round is filed
and the poller keeps receiving, on SQLite and on PostgreSQL (which cannot store U+0000)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.db import open_db
from dripper.errors import DripperError
from dripper.inbound.telegram.events import Ignored, classify
from dripper.inbound.telegram.poller import PollerSettings, TelegramPoller
from dripper.inbound.telegram.webhook import TelegramWebhook
from dripper.models import InboundItem, InboundState, Learner, Message
from tests.fixtures.sandboxes import TelegramSandbox, telegram_sandbox
from tests.fixtures.waiting import eventually

TOKEN = "4343:POISON-test"
ANN = 501
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _message(chat: Any, **extra: Any) -> dict[str, Any]:
    return {"message_id": 1, "date": 1, "chat": chat, "from": {"id": ANN}, **extra}


POISON: list[tuple[str, dict[str, Any], str]] = [
    ("chat null", _message(None, text="hi"), "malformed message: TypeError"),
    ("chat id 1e300", _message({"id": 1e300, "type": "private"}, text="hi"), "malformed message"),
    ("chat id 2**80", _message({"id": 2**80, "type": "private"}, text="hi"), "malformed message"),
    ("chat id true", _message({"id": True, "type": "private"}, text="hi"), "malformed message"),
    ("chat a list", _message([1, 2], text="hi"), "malformed message: TypeError"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of either backend, not yet open."""
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def sandbox(database_url: str) -> AsyncIterator[TelegramSandbox]:
    async with open_db(database_url), telegram_sandbox(TOKEN) as sandbox:
        await Learner.create(first_name="Ann", telegram_chat_id=ANN, timezone="UTC")
        sandbox.emulator.create_user(ANN, "Ann")
        yield sandbox


async def test_poison_updates_are_flagged_and_the_round_is_filed(
    sandbox: TelegramSandbox,
) -> None:
    emulator = sandbox.emulator
    for _, message, _ in POISON:
        emulator.push_update(TOKEN, "message", message)
    emulator.send_text(TOKEN, ANN, "before \x00 after")  # U+0000 in a learner's text
    emulator.send_text(TOKEN, ANN, "still here")
    poller = TelegramPoller(sandbox.channel.bot, now=lambda: NOW)
    await poller.run_until_idle()

    items = await InboundItem.all().order_by("id")
    assert [item.state for item in items] == [InboundState.FLAGGED] * len(POISON) + [
        InboundState.PROCESSED
    ] * 2
    for item, (name, _, reason) in zip(items, POISON, strict=False):
        assert (item.error or "").startswith(reason), (name, item.error)
    assert b"\\u0000" in bytes(items[-2].payload)  # the raw update keeps what Telegram sent
    bodies = [m.body for m in await Message.all().order_by("id")]
    assert bodies == ["before \ufffd after", "still here"]


def _filed_while(task: asyncio.Task[None], body: str) -> Callable[[], Awaitable[bool]]:
    """Whether a message with `body` is filed, failing at once if `task` (the receiver) died."""

    async def filed() -> bool:
        assert not task.done(), task
        return await Message.filter(body=body).exists()

    return filed


async def test_the_poller_keeps_receiving_after_poison(sandbox: TelegramSandbox) -> None:
    emulator = sandbox.emulator
    stop = asyncio.Event()
    poller = TelegramPoller(
        sandbox.channel.bot, now=lambda: NOW, settings=PollerSettings(long_poll=1)
    )
    task = asyncio.create_task(poller.run(stop))
    try:
        for _, message, _ in POISON:
            emulator.push_update(TOKEN, "message", message)
        emulator.send_text(TOKEN, ANN, "after the poison")
        await eventually(_filed_while(task, "after the poison"), seconds=20)
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task  # ends cleanly: nothing raised
    assert await InboundItem.filter(state=InboundState.FLAGGED).count() == len(POISON)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
_fields = st.sampled_from(["chat", "from", "text", "id", "type", "data", "message", "caption"])


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["message", "edited_message", "callback_query", "my_chat_member", "x"]),
    body=st.dictionaries(_fields, _json, max_size=6),
)
def test_classify_never_raises_and_yields_valid_ids(kind: str, body: dict[str, Any]) -> None:
    event = classify({"update_id": 1, kind: body})
    chat_id = getattr(event, "chat_id", None)
    if not isinstance(event, Ignored):
        assert isinstance(chat_id, int) and not isinstance(chat_id, bool)
        assert abs(chat_id) < 2**52


async def test_the_webhook_keeps_serving_after_poison(sandbox: TelegramSandbox) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}/telegram/hook"
    poller = TelegramPoller(sandbox.channel.bot, now=lambda: NOW)
    webhook = TelegramWebhook(poller, url=url, secret="poison-secret-0123", port=port)
    stop = asyncio.Event()
    task = asyncio.create_task(webhook.run(stop))
    try:
        await eventually(lambda: sandbox.emulator.webhook_info(TOKEN).get("url") == url)
        for _, message, _ in POISON:
            sandbox.emulator.push_update(TOKEN, "message", message)
        sandbox.emulator.send_text(TOKEN, ANN, "after the poison")
        await eventually(_filed_while(task, "after the poison"), seconds=20)
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task
    assert await InboundItem.filter(state=InboundState.FLAGGED).count() == len(POISON)


async def test_run_once_with_a_webhook_set_says_what_to_do(sandbox: TelegramSandbox) -> None:
    await sandbox.channel.bot.set_webhook("https://example.org/telegram/hook")
    poller = TelegramPoller(sandbox.channel.bot, now=lambda: NOW)
    with pytest.raises(DripperError, match="a webhook is set for this bot") as caught:
        await poller.run_until_idle()  # what `dripper run --once` does
    assert "409 Conflict" in str(caught.value)
