"""Webhook mode end to end: the emulator on loopback posts to our aiohttp server, real SQLite."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import ManualClock
from dripper.errors import DripperError
from dripper.inbound.telegram.poller import TelegramPoller
from dripper.inbound.telegram.webhook import SECRET_HEADER, TelegramWebhook
from dripper.learners.invites import invite_token, invites_for
from dripper.models import InboundItem, InboundState, Learner, Message, Reachability
from dripper.sandbox import TelegramEmulator
from tests.fixtures.sandboxes import telegram_sandbox
from tests.fixtures.telegram_data import ANN, COURSE_END, KEY, TOKEN
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.filterwarnings("ignore:Please use 'Bot.getUpdates")
os.environ["PTB_TIMEDELTA"] = "1"

SECRET = "wh-secret_0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Hook:
    emulator: TelegramEmulator
    channel: TelegramChannel
    webhook: TelegramWebhook
    url: str
    stop: asyncio.Event


@pytest.fixture
async def hook(db: str) -> AsyncIterator[Hook]:
    async with telegram_sandbox(TOKEN) as sandbox:
        clock = ManualClock(COURSE_END)
        port = free_port()
        url = f"http://127.0.0.1:{port}/telegram/hook"
        poller = TelegramPoller(sandbox.channel.bot, signing_key=KEY, now=clock.now)
        webhook = TelegramWebhook(poller, url=url, secret=SECRET, port=port)
        stop = asyncio.Event()
        task = asyncio.create_task(webhook.run(stop))
        try:
            await eventually(lambda: sandbox.emulator.webhook_info(TOKEN).get("url") == url)
            yield Hook(sandbox.emulator, sandbox.channel, webhook, url, stop)
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await task


async def test_a_learners_text_is_filed_via_the_webhook(hook: Hook) -> None:
    await Learner.create(first_name="Ann", telegram_chat_id=ANN, timezone="UTC")
    hook.emulator.create_user(ANN, "Ann")
    hook.emulator.send_text(TOKEN, ANN, "hello from the webhook")
    await eventually(Message.filter(body="hello from the webhook").exists)
    [item] = await InboundItem.all()
    await eventually(lambda: InboundItem.filter(id=item.id, state=InboundState.PROCESSED).exists())
    assert json.loads(item.payload)["message"]["text"] == "hello from the webhook"
    info = hook.emulator.webhook_info(TOKEN)
    assert info["pending_update_count"] == 0
    assert "allowed_updates" not in info or "message" in info["allowed_updates"]


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_stored(hook: Hook) -> None:
    update = {"update_id": 99, "message": {"message_id": 1, "date": 1, "text": "forged"}}
    async with httpx.AsyncClient() as client:
        wrong = await client.post(hook.url, json=update, headers={SECRET_HEADER: "nope"})
        missing = await client.post(hook.url, json=update)
        right_prefix = await client.post(
            hook.url, json=update, headers={SECRET_HEADER: SECRET[:-1]}
        )
    assert [wrong.status_code, missing.status_code, right_prefix.status_code] == [401] * 3
    assert await InboundItem.all().count() == 0


async def test_the_same_update_twice_is_stored_once(hook: Hook) -> None:
    await Learner.create(first_name="Ann", telegram_chat_id=ANN, timezone="UTC")
    update = {
        "update_id": 500,
        "message": {
            "message_id": 3,
            "date": 1,
            "chat": {"id": ANN, "type": "private"},
            "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
            "text": "only once",
        },
    }
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            answer = await client.post(hook.url, json=update, headers={SECRET_HEADER: SECRET})
            assert answer.status_code == 200
    await eventually(Message.filter(body="only once").exists)
    await asyncio.sleep(0.1)
    assert await InboundItem.all().count() == 1
    assert await Message.filter(body="only once").count() == 1


async def test_start_with_an_invite_binds_the_chat_like_polling(hook: Hook) -> None:
    learner = await Learner.create(first_name="Ann", email="ann@example.com")
    invite = (await invites_for([learner]))[learner.id]
    hook.emulator.create_user(ANN, "Ann")
    hook.emulator.start(TOKEN, ANN, invite_token(KEY, invite.id))

    async def bound() -> bool:
        await learner.refresh_from_db()
        return bool(learner.telegram_chat_id == ANN)

    await eventually(bound)
    assert learner.telegram_status == Reachability.OK
    await eventually(lambda: hook.emulator.messages(TOKEN, ANN))
    assert str(hook.emulator.messages(TOKEN, ANN)[-1]["text"]).startswith(
        "Hi Ann! You're connected"
    )


async def test_the_webhook_stays_set_and_polling_is_told_to_switch(hook: Hook) -> None:
    hook.stop.set()
    await asyncio.sleep(0.1)
    assert hook.emulator.webhook_info(TOKEN)["url"] == hook.url  # not deleted on stop
    poller = TelegramPoller(hook.channel.bot)
    with pytest.raises(DripperError, match="webhook_url"):
        async with asyncio.timeout(10):
            await poller.run(asyncio.Event())
