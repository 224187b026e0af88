"""Our PTB transport (aiohttp) against the Bot API emulator, and against tiny loopback servers
that misbehave on purpose: every failure must say whether the request may have reached Telegram."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import io
import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import telegram
from aiohttp import web
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)

from dripper.channels.telegram.transport import (
    AiohttpRequest,
    ConnectionLost,
    NotSent,
    TimedOutNotSent,
)
from dripper.sandbox import FaultKind, RunningServer, TelegramEmulator, start_server
from tests.fixtures.waiting import eventually

os.environ["PTB_TIMEDELTA"] = "1"

TOKEN = "5550001:transport-test"
LEARNER = 77


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
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
        request=AiohttpRequest(**options),  # type: ignore[arg-type]
        get_updates_request=AiohttpRequest(),
    )


async def test_sends_markup_and_parses_the_answer(server: RunningServer) -> None:
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
        with pytest.raises(TimedOut) as caught:
            await bot.send_message(LEARNER, "slow")
        assert time.monotonic() - started < 2
        assert not isinstance(caught.value, NotSent)  # written: it may have been delivered
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
        await eventually(  # the slow request holds the only slot now
            lambda: not emulator.armed_faults(TOKEN),
            seconds=5,
            interval=0.005,
            message="the slow request to take the only connection",
        )
        with pytest.raises(TimedOut, match="Pool timeout") as caught:
            await bot.get_me()
        assert isinstance(caught.value, TimedOutNotSent)
        await busy
        assert (await bot.get_me()).is_bot


async def test_connection_refused_is_not_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    request = AiohttpRequest(connect_timeout=1)
    bot = telegram.Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)
    with pytest.raises(NetworkError) as caught:
        await bot.get_me()
    assert not isinstance(caught.value, TimedOut)
    assert "aiohttp.Client" in str(caught.value)
    assert isinstance(caught.value, NotSent)
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


# Tiny loopback servers that read the whole request, then misbehave.

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _truncate(writer: asyncio.StreamWriter) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ok": tr')
    await writer.drain()
    writer.close()


async def _garble(writer: asyncio.StreamWriter) -> None:
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()


async def _trickle(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    with contextlib.suppress(ConnectionError):  # the client gives up first
        for _ in range(1000):  # a byte every 50 ms: each read is in time, the answer is not
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)
    writer.close()


class Misbehaving:
    """Loopback servers that read each request whole, then answer it with `answer`."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self._servers: list[asyncio.Server] = []

    async def start(self, answer: Answer) -> str:
        """Starts one; returns its Bot API base URL."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            self.requests.append(head + await reader.readexactly(length))
            await answer(writer)
            with contextlib.suppress(ConnectionError):
                await reader.read()  # until the client hangs up
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self._servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/bot"

    async def aclose(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def misbehaving() -> AsyncIterator[Misbehaving]:
    servers = Misbehaving()
    yield servers
    await servers.aclose()


@pytest.mark.parametrize(
    "answer",
    [_close, _reset, _truncate, _garble],
    ids=["closed-unanswered", "reset", "truncated-answer", "garbled-answer"],
)
async def test_a_connection_broken_after_the_request_was_written_is_connection_lost(
    misbehaving: Misbehaving, answer: Answer
) -> None:
    request = AiohttpRequest(read_timeout=5)
    bot = telegram.Bot(TOKEN, base_url=await misbehaving.start(answer), request=request)
    with pytest.raises(ConnectionLost) as caught:
        await bot.get_me()
    assert len(misbehaving.requests) == 1  # it was written, whole, and not repeated
    assert not isinstance(caught.value, NotSent | TimedOut)
    assert str(caught.value).startswith("aiohttp.")
    assert TOKEN not in str(caught.value)  # some aiohttp errors quote the URL
    await request.shutdown()


async def test_an_answer_slower_than_the_whole_budget_is_timed_out(
    misbehaving: Misbehaving,
) -> None:
    request = AiohttpRequest(read_timeout=0.3, write_timeout=0.1, connect_timeout=0.1)
    bot = telegram.Bot(TOKEN, base_url=await misbehaving.start(_trickle), request=request)
    started = time.monotonic()
    with pytest.raises(TimedOut) as caught:
        await bot.get_me()
    # Each byte came within read_timeout; the budget (connect + write + read) ran out.
    assert 0.4 <= time.monotonic() - started < 2
    assert not isinstance(caught.value, NotSent)
    assert len(misbehaving.requests) == 1
    await request.shutdown()


async def test_connect_timeout_is_timed_out_and_not_sent() -> None:
    # A listening socket whose accept queue is full: the kernel drops further SYNs, so a
    # connect hangs until the client gives up.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # it stays half-open
                filler.connect(("127.0.0.1", port))
        request = AiohttpRequest(connect_timeout=0.3)
        bot = telegram.Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)
        started = time.monotonic()
        try:
            with pytest.raises(TimedOutNotSent, match="not sent") as caught:
                await bot.get_me()
        finally:
            for filler in fillers:
                filler.close()
            await request.shutdown()
    assert time.monotonic() - started < 2
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "base_url", ["ftp://127.0.0.1/bot", "http:///bot"], ids=["not-http", "no-host"]
)
async def test_a_url_aiohttp_will_not_request_is_not_sent(base_url: str) -> None:
    request = AiohttpRequest()
    with pytest.raises(NotSent) as caught:
        await request.do_request(f"{base_url}{TOKEN}/getMe", "POST")
    assert not isinstance(caught.value, TimedOut)
    assert TOKEN not in str(caught.value)
    await request.shutdown()


@pytest.fixture
async def recording_api() -> AsyncIterator[tuple[str, list[web.Request], list[bytes]]]:
    """A Bot API stand-in that records each request; sendMessage answers with a redirect."""
    requests: list[web.Request] = []
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        requests.append(request)
        bodies.append(await request.read())
        if request.path.endswith("/getMe"):
            user = {"id": 1, "is_bot": True, "first_name": "Drip", "username": "drip_bot"}
            return web.json_response({"ok": True, "result": user})
        if request.path.endswith("/sendMessage"):
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/bot", requests, bodies
    await runner.cleanup()


async def test_calls_without_files_are_sent_as_json(
    recording_api: tuple[str, list[web.Request], list[bytes]],
) -> None:
    api_url, requests, bodies = recording_api
    async with telegram.Bot(TOKEN, base_url=api_url, request=AiohttpRequest()) as bot:
        assert await bot.send_chat_action(LEARNER, "typing", message_thread_id=3)
        assert await bot.set_my_commands([("start", "Begin the course")])
    sent: list[dict[str, Any]] = [json.loads(body) for body in bodies]
    assert [r.content_type for r in requests] == ["application/json"] * 3
    assert [r.headers["Accept-Encoding"] for r in requests] == ["identity"] * 3
    assert [r.path for r in requests] == [
        f"/bot{TOKEN}/{method}" for method in ("getMe", "sendChatAction", "setMyCommands")
    ]
    assert sent[0] == {}
    assert sent[1] == {"chat_id": str(LEARNER), "action": "typing", "message_thread_id": "3"}
    assert json.loads(sent[2]["commands"]) == [
        {"command": "start", "description": "Begin the course"}
    ]


async def test_redirects_are_not_followed(
    recording_api: tuple[str, list[web.Request], list[bytes]],
) -> None:
    api_url, requests, _ = recording_api
    request = AiohttpRequest()
    bot = telegram.Bot(TOKEN, base_url=api_url, request=request)
    with pytest.raises(NetworkError, match=r"\(307\)"):
        await bot.send_message(LEARNER, "x")
    assert [r.path for r in requests] == [f"/bot{TOKEN}/sendMessage"]
    await request.shutdown()
