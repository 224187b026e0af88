"""Our PTB transports (aiohttp, and the lean HTTP/1.1 one) against the Bot API emulator on
loopback: every behaviour is checked through both."""

from __future__ import annotations

import asyncio
import datetime as dtm
import io
import os
import socket
import time
from collections.abc import AsyncIterator

import pytest
import telegram
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)

from dripper.channels.telegram.transport import AiohttpRequest, FastRequest
from dripper.sandbox import FaultKind, RunningServer, TelegramEmulator, start_server

os.environ["PTB_TIMEDELTA"] = "1"

TOKEN = "5550001:transport-test"
_TRANSPORT: type[AiohttpRequest] = AiohttpRequest
LEARNER = 77


@pytest.fixture(params=[AiohttpRequest, FastRequest], ids=["aiohttp", "http1"])
def transport(request: pytest.FixtureRequest) -> type[AiohttpRequest]:
    cls: type[AiohttpRequest] = request.param
    return cls


@pytest.fixture
async def server(transport: type[AiohttpRequest]) -> AsyncIterator[RunningServer]:
    global _TRANSPORT
    _TRANSPORT = transport
    emulator = TelegramEmulator([TOKEN])
    emulator.create_user(LEARNER, "Grace", "Hopper")
    emulator.start(TOKEN, LEARNER)
    running = await start_server(emulator)
    yield running
    await running.aclose()


def _bot(server: RunningServer, **options: float) -> telegram.Bot:
    return telegram.Bot(
        TOKEN,
        base_url=server.api_url,
        request=_TRANSPORT(**options),  # type: ignore[arg-type]
        get_updates_request=AiohttpRequest(),
    )


async def test_sends_form_encoded_markup_and_parses_the_answer(server: RunningServer) -> None:
    markup = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("Done ✅", callback_data="step:1:done")]]
    )
    async with _bot(server) as bot:
        message = await bot.send_message(
            LEARNER, "<b>Step 1</b> &amp; more", parse_mode="HTML", reply_markup=markup
        )
    assert message.text == "Step 1 & more"
    assert message.reply_markup == markup
    shown = server.emulator.messages(TOKEN, LEARNER)[0]
    assert shown["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "step:1:done"


async def test_uploads_files_as_multipart_from_bytes_and_file_handles(
    server: RunningServer,
) -> None:
    async with _bot(server) as bot:
        from_bytes = await bot.send_photo(
            LEARNER, b"\x89PNG...", caption="<i>a</i>", parse_mode="HTML"
        )
        handle = io.BytesIO(b"\x89PNG second")
        handle.name = "slide.png"
        from_handle = await bot.send_photo(LEARNER, handle, caption="b")
    assert from_bytes.caption == "a" and from_handle.caption == "b"
    assert from_bytes.photo[-1].file_id != from_handle.photo[-1].file_id


async def test_telegram_errors_map_to_ptb_exceptions(server: RunningServer) -> None:
    emulator = server.emulator
    async with _bot(server) as bot:
        emulator.inject_fault(TOKEN, FaultKind.FLOOD, method="sendMessage", retry_after=3)
        with pytest.raises(RetryAfter) as flood:
            await bot.send_message(LEARNER, "x")
        assert flood.value.retry_after == dtm.timedelta(seconds=3)
        with pytest.raises(BadRequest, match=r"^Chat not found$"):
            await bot.send_message(123, "x")
        emulator.block(TOKEN, LEARNER)
        with pytest.raises(Forbidden):
            await bot.send_message(LEARNER, "x")
        await bot.set_webhook("http://127.0.0.1:9/unused")
        with pytest.raises(Conflict):
            await bot.get_updates()
        await bot.delete_webhook()
    with pytest.raises(InvalidToken):
        await telegram.Bot("1:bad", base_url=server.api_url, request=AiohttpRequest()).get_me()


async def test_read_timeout_is_timed_out_and_per_call_timeouts_win(server: RunningServer) -> None:
    emulator = server.emulator
    async with _bot(server, read_timeout=0.2) as bot:
        emulator.inject_fault(TOKEN, FaultKind.SLOW, method="sendMessage", delay=3)
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await bot.send_message(LEARNER, "slow")
        assert time.monotonic() - started < 2
        emulator.inject_fault(TOKEN, FaultKind.SLOW, method="sendMessage", delay=0.4)
        message = await bot.send_message(LEARNER, "patient", read_timeout=3)
    assert message.text == "patient"


async def test_long_poll_read_timeout_covers_the_poll(server: RunningServer) -> None:
    async with _bot(server, read_timeout=0.5) as bot:
        offset = server.emulator.pending_updates(TOKEN)[-1]["update_id"] + 1
        started = time.monotonic()
        assert await bot.get_updates(offset=offset, timeout=1) == ()
        assert time.monotonic() - started >= 0.9


async def test_pool_timeout_when_every_connection_is_busy(server: RunningServer) -> None:
    emulator = server.emulator
    async with _bot(server, connection_pool_size=1, pool_timeout=0.1, read_timeout=5) as bot:
        emulator.inject_fault(TOKEN, FaultKind.SLOW, method="sendMessage", delay=1)
        busy = asyncio.create_task(bot.send_message(LEARNER, "holding the only connection"))
        deadline = time.monotonic() + 5
        while emulator.armed_faults(TOKEN):  # the slow request holds the only slot now
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        with pytest.raises(TimedOut, match="Pool timeout"):
            await bot.get_me()
        await busy
        assert (await bot.get_me()).is_bot


async def test_connection_refused_is_a_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    request = AiohttpRequest(connect_timeout=1)
    bot = telegram.Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)
    with pytest.raises(NetworkError) as caught:
        await bot.get_me()
    assert not isinstance(caught.value, TimedOut)
    assert "aiohttp.Client" in str(caught.value)
    await request.shutdown()


async def test_initialize_and_shutdown_are_idempotent(server: RunningServer) -> None:
    request = AiohttpRequest()
    await request.initialize()
    await request.initialize()
    assert request.read_timeout == 5.0
    await request.shutdown()
    await request.shutdown()
    code, payload = await request.do_request(f"{server.api_url}{TOKEN}/getMe", "POST")
    assert code == 200 and b'"ok":true' in payload
    await request.shutdown()


def test_rejects_an_empty_pool() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AiohttpRequest(connection_pool_size=0)
