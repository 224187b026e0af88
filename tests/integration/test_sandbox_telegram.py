"""The Bot API emulator, driven by the real python-telegram-bot client over loopback HTTP.

Transports: "httpx" (PTB's default HTTPXRequest over TCP), "aiohttp" (ours, over TCP) and "asgi"
(HTTPXRequest on httpx.ASGITransport, in-process, for speed where timeouts do not matter).
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import html
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
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
from telegram.request import BaseRequest, HTTPXRequest

from dripper.channels.telegram.transport import AiohttpRequest
from dripper.sandbox import FaultKind, RunningServer, TelegramEmulator, start_server
from dripper.sandbox.telegram.html import EntityParseError, parse_html, utf16_len
from tests.fixtures.waiting import eventually

os.environ["PTB_TIMEDELTA"] = "1"

TOKEN = "123456789:TEST-token_abc"
ADA = 1001
BOB = 1002
RTL_NAME = "<Ada & Bob> 🎉 שלום עליכם"

BotFactory = Callable[..., telegram.Bot]


@pytest.fixture
def emulator() -> TelegramEmulator:
    emulator = TelegramEmulator([TOKEN])
    emulator.create_user(ADA, "Ada", "Lovelace", "ada", "en")
    emulator.create_user(BOB, RTL_NAME)
    emulator.start(TOKEN, ADA, "cohort-1")
    emulator.start(TOKEN, BOB)
    return emulator


@pytest.fixture
async def server(emulator: TelegramEmulator) -> AsyncIterator[RunningServer]:
    running = await start_server(emulator)
    yield running
    await running.aclose()


def _request(kind: str, emulator: TelegramEmulator, read_timeout: float = 5.0) -> BaseRequest:
    if kind == "aiohttp":
        return AiohttpRequest(read_timeout=read_timeout)
    if kind == "asgi":
        return HTTPXRequest(httpx_kwargs={"transport": httpx.ASGITransport(app=emulator)})
    return HTTPXRequest(read_timeout=read_timeout)


@pytest.fixture
async def make_bot(emulator: TelegramEmulator, server: RunningServer) -> AsyncIterator[BotFactory]:
    bots: list[telegram.Bot] = []

    def factory(kind: str = "httpx", token: str = TOKEN, read_timeout: float = 5.0) -> telegram.Bot:
        base_url = "http://sandbox/bot" if kind == "asgi" else server.api_url
        bot = telegram.Bot(
            token,
            base_url=base_url,
            request=_request(kind, emulator, read_timeout),
            get_updates_request=_request(kind, emulator, read_timeout),
        )
        bots.append(bot)
        return bot

    yield factory
    for bot in bots:
        await bot.shutdown()


ALL = pytest.mark.parametrize("kind", ["httpx", "aiohttp", "asgi"])
TCP = pytest.mark.parametrize("kind", ["httpx", "aiohttp"])


# --------------------------------------------------------------------------- basics


@ALL
async def test_get_me_answers_the_bot_user(make_bot: BotFactory, kind: str) -> None:
    bot = make_bot(kind)
    me = await bot.get_me()
    assert me.id == 123456789
    assert me.is_bot
    assert me.username == "sandbox_123456789_bot"


@ALL
async def test_send_message_round_trip_and_what_the_chat_shows(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    first = await bot.send_message(
        ADA, "<b>Day 1</b>: recall <i>three</i> ideas", parse_mode="HTML"
    )
    second = await bot.send_message(ADA, "plain")
    assert first.text == "Day 1: recall three ideas"
    assert [(e.type, e.offset, e.length) for e in first.entities] == [
        ("bold", 0, 5),
        ("italic", 14, 5),
    ]
    assert first.chat.id == ADA and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.is_bot
    assert second.message_id == first.message_id + 1
    received = emulator.messages(TOKEN, ADA)
    assert [m["text"] for m in received] == ["Day 1: recall three ideas", "plain"]
    assert received[0]["parse_mode"] == "HTML"
    assert received[0]["source"] == "<b>Day 1</b>: recall <i>three</i> ideas"


async def test_method_names_are_case_insensitive_and_json_bodies_work(
    server: RunningServer, emulator: TelegramEmulator
) -> None:
    markup = {"inline_keyboard": [[{"text": "Got it", "callback_data": "ok"}]]}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{server.api_url}{TOKEN}/SENDMESSAGE",
            json={"chat_id": ADA, "text": "json body", "reply_markup": markup},
        )
        unknown = await client.post(f"{server.api_url}{TOKEN}/sendTelepathy")
        bad_token = await client.post(f"{server.api_url}999:nope/getMe")
        malformed = await client.post(f"{server.url}/botnot-a-token/getMe")
    assert response.status_code == 200
    assert response.json()["result"]["reply_markup"] == markup
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert bad_token.status_code == 401
    assert bad_token.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert malformed.status_code == 404


@TCP
async def test_an_unknown_token_is_invalid(make_bot: BotFactory, kind: str) -> None:
    with pytest.raises(InvalidToken):
        await make_bot(kind, token="42:unknown").get_me()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<a href=x/>y</a>", "Unexpected end of name token at byte offset 8"),
        ("é<br>", 'Unsupported start tag "br" at byte offset 2'),
    ],
)
def test_html_errors_carry_telegrams_text(source: str, message: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_html(source)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("source", "text", "entities"),
    [
        ("a &lt;b&gt; &amp; &quot;c&quot; &#128512; &#x41; &nbsp;", 'a <b> & "c" 😀 A &nbsp;', []),
        ("🎉<b>x</b>", "🎉x", [{"offset": 2, "length": 1, "type": "bold"}]),
        (
            '<a href="https://e.x/?a=1&amp;b=2">go</a>',
            "go",
            [{"offset": 0, "length": 2, "type": "text_link", "url": "https://e.x/?a=1&b=2"}],
        ),
        (
            '<pre><code class="language-python">x</code></pre>',
            "x",
            [{"offset": 0, "length": 1, "type": "pre", "language": "python"}],
        ),
        (
            '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>',
            "st",
            [
                {"offset": 0, "length": 1, "type": "spoiler"},
                {"offset": 1, "length": 1, "type": "spoiler"},
            ],
        ),
        (
            "<blockquote>q</blockquote><B>b</B>",
            "qb",
            [
                {"offset": 0, "length": 1, "type": "blockquote"},
                {"offset": 1, "length": 1, "type": "bold"},
            ],
        ),
    ],
)
def test_html_parses_like_telegram(source: str, text: str, entities: list[dict[str, Any]]) -> None:
    parsed = parse_html(source)
    assert parsed.text == text
    assert parsed.entities == entities


@ALL
async def test_invalid_html_is_a_bad_request(make_bot: BotFactory, kind: str) -> None:
    bot = make_bot(kind)
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(ADA, "Score <5 & >3", parse_mode="HTML")
    assert (
        caught.value.message == 'Can\'t parse entities: unsupported start tag "5" at byte offset 6'
    )


@ALL
async def test_text_limit_is_4096_utf16_units_after_parsing(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    await bot.send_message(ADA, "a" * 4096)
    await bot.send_message(ADA, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    await bot.send_message(ADA, "😀" * 2048)
    assert utf16_len("😀" * 2049) == 4098
    for too_long in ("a" * 4097, "😀" * 2049):
        with pytest.raises(BadRequest, match=r"^Message is too long$"):
            await bot.send_message(ADA, too_long)
    with pytest.raises(BadRequest, match=r"^Message text is empty$"):
        await bot.send_message(ADA, "<b> </b>", parse_mode="HTML")
    assert len(emulator.messages(TOKEN, ADA)) == 3


@ALL
async def test_caption_limit_is_1024_and_photos_upload(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    sent = await bot.send_photo(ADA, "https://example.invalid/tip.png", caption="😀" * 512)
    uploaded = await bot.send_photo(
        ADA, b"\x89PNG fake bytes", caption="<i>upload</i>", parse_mode="HTML"
    )
    again = await bot.send_photo(ADA, uploaded.photo[-1].file_id)
    with pytest.raises(BadRequest, match=r"^Message caption is too long$"):
        await bot.send_photo(ADA, "https://example.invalid/tip.png", caption="😀" * 513)
    with pytest.raises(BadRequest, match=r"^Wrong file identifier/http url specified$"):
        await bot.send_photo(ADA, "no-such-file-id")
    assert sent.caption == "😀" * 512
    assert uploaded.caption == "upload"
    assert again.photo[-1].file_id == uploaded.photo[-1].file_id
    assert [m["caption"] for m in emulator.messages(TOKEN, ADA)] == ["😀" * 512, "upload", None]


@ALL
async def test_callback_data_over_64_bytes_is_button_data_invalid(
    make_bot: BotFactory, kind: str
) -> None:
    bot = make_bot(kind)
    ok = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("é", callback_data="é" * 32)]]
    )
    await bot.send_message(ADA, "64 bytes", reply_markup=ok)
    too_long = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("x", callback_data="é" * 32 + "x")]]
    )
    with pytest.raises(BadRequest, match=r"^Button_data_invalid$"):
        await bot.send_message(ADA, "65 bytes", reply_markup=too_long)


@ALL
async def test_blocked_deactivated_and_unknown_chats(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    emulator.block(TOKEN, ADA)
    with pytest.raises(Forbidden, match=r"^Forbidden: bot was blocked by the user$"):
        await bot.send_message(ADA, "hello?")
    emulator.unblock(TOKEN, ADA)
    await bot.send_message(ADA, "welcome back")
    emulator.deactivate(BOB)
    with pytest.raises(Forbidden, match=r"^Forbidden: user is deactivated$"):
        await bot.send_message(BOB, "hello?")
    emulator.create_user(1003, "Never started")
    for chat_id in (1003, 999_999):
        with pytest.raises(BadRequest, match=r"^Chat not found$"):
            await bot.send_message(chat_id, "hello?")
    kinds = [next(k for k in u if k != "update_id") for u in emulator.pending_updates(TOKEN)]
    assert kinds.count("my_chat_member") == 2
    assert [m["text"] for m in emulator.messages(TOKEN, ADA)] == ["welcome back"]


# --------------------------------------------------------------------------- faults


@ALL
async def test_flood_fault_raises_retry_after(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    emulator.inject_fault(TOKEN, FaultKind.FLOOD, method="sendMessage", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ADA, "x")
    assert caught.value.retry_after == dtm.timedelta(seconds=7)
    await bot.send_message(ADA, "x")  # the fault was for one call only


@ALL
@pytest.mark.parametrize("fault", [FaultKind.SERVER_ERROR, FaultKind.BAD_GATEWAY])
async def test_server_errors_are_network_errors(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str, fault: FaultKind
) -> None:
    bot = make_bot(kind)
    emulator.inject_fault(TOKEN, fault, chat_id=ADA, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError) as caught:
            await bot.send_message(ADA, "x")
        assert not isinstance(caught.value, BadRequest | TimedOut)
    await bot.send_message(BOB, "other chats are fine")
    assert emulator.messages(TOKEN, ADA) == []


@ALL
async def test_forbidden_and_bad_request_faults(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    emulator.inject_fault(TOKEN, "forbidden")
    emulator.inject_fault(TOKEN, "bad_request", description="Bad Request: PEER_ID_INVALID")
    with pytest.raises(Forbidden):
        await bot.send_message(ADA, "x")
    with pytest.raises(BadRequest, match=r"^Peer_id_invalid$"):
        await bot.send_message(ADA, "x")


@TCP
async def test_timeout_after_write_delivers_but_the_client_times_out(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind, read_timeout=0.3)
    emulator.inject_fault(TOKEN, FaultKind.TIMEOUT_AFTER_WRITE, method="sendMessage", delay=5)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await bot.send_message(ADA, "Day 3 tip")
    assert time.monotonic() - started < 3
    assert [m["text"] for m in emulator.messages(TOKEN, ADA)] == ["Day 3 tip"]


@TCP
async def test_slow_answer_within_the_read_timeout_succeeds(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind, read_timeout=3)
    emulator.inject_fault(TOKEN, FaultKind.SLOW, method="getMe", delay=0.2)
    assert (await bot.get_me()).is_bot


# --------------------------------------------------------------------------- updates


@ALL
async def test_get_updates_offset_confirms_and_negative_offsets(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["/start cohort-1", "/start"]
    start = updates[0].message
    assert start is not None and start.entities[0].type == "bot_command"
    assert start.from_user is not None and start.from_user.language_code == "en"
    assert await bot.get_updates(limit=1) == updates[:1]
    assert await bot.get_updates(offset=updates[-1].update_id + 1) == ()
    for index in range(3):
        emulator.send_text(TOKEN, ADA, f"answer {index}")
    last = await bot.get_updates(offset=-1)
    assert [u.message.text for u in last if u.message] == ["answer 2"]
    assert len(emulator.pending_updates(TOKEN)) == 1


@ALL
async def test_long_poll_returns_as_soon_as_a_learner_writes(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    updates = await bot.get_updates()
    offset = updates[-1].update_id + 1
    poll = asyncio.create_task(bot.get_updates(offset=offset, timeout=20))
    await eventually(lambda: emulator.is_polling(TOKEN), seconds=5, interval=0.005)
    started = time.monotonic()
    emulator.send_text(TOKEN, BOB, RTL_NAME)
    received = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 1.0
    message = received[0].message
    assert message is not None and message.text == RTL_NAME
    assert message.from_user is not None and message.from_user.first_name == RTL_NAME


@TCP
async def test_a_second_poller_terminates_the_first(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    first, second = make_bot(kind), make_bot(kind)
    await first.get_updates(offset=-1)
    emulator.pending_updates(TOKEN)
    offset = emulator.pending_updates(TOKEN)[-1]["update_id"] + 1
    waiting = asyncio.create_task(first.get_updates(offset=offset, timeout=20))
    await eventually(lambda: emulator.is_polling(TOKEN), seconds=5, interval=0.005)
    newcomer = asyncio.create_task(second.get_updates(offset=offset, timeout=20))
    with pytest.raises(Conflict, match=r"terminated by other getUpdates request"):
        await asyncio.wait_for(waiting, 5)
    emulator.send_text(TOKEN, ADA, "still there?")
    assert (await asyncio.wait_for(newcomer, 5))[0].message.text == "still there?"  # type: ignore[union-attr]


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[str, Any]]]]:
    received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    failures = {"left": 1}

    async def handle(request: web.Request) -> web.Response:
        if failures["left"]:
            failures["left"] -= 1
            return web.Response(status=500)
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        await received.put((secret, await request.json()))
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook", received
    await runner.cleanup()


@TCP
async def test_webhook_delivers_with_the_secret_and_blocks_get_updates(
    make_bot: BotFactory,
    emulator: TelegramEmulator,
    kind: str,
    webhook_receiver: tuple[str, asyncio.Queue[tuple[str, Any]]],
) -> None:
    url, received = webhook_receiver
    bot = make_bot(kind)
    assert await bot.set_webhook(url, secret_token="s3cret_T0ken", drop_pending_updates=True)
    with pytest.raises(Conflict, match=r"can't use getUpdates method while webhook is active"):
        await bot.get_updates()
    emulator.send_text(TOKEN, ADA, "via webhook")
    secret, update = await asyncio.wait_for(received.get(), 5)
    assert secret == "s3cret_T0ken"
    assert update["message"]["text"] == "via webhook"
    info = await bot.get_webhook_info()
    assert info.url == url
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    await eventually(lambda: emulator.pending_updates(TOKEN) == [], seconds=5, interval=0.005)
    assert await bot.delete_webhook()
    emulator.send_text(TOKEN, ADA, "polling again")
    assert (await bot.get_updates())[0].message.text == "polling again"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- buttons and edits


@ALL
async def test_button_press_edit_and_answer(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    await bot.get_updates(offset=-1)
    await bot.get_updates(offset=emulator.pending_updates(TOKEN)[-1]["update_id"] + 1)
    keyboard = telegram.InlineKeyboardMarkup(
        [
            [telegram.InlineKeyboardButton("Yes", callback_data="q1:yes")],
            [telegram.InlineKeyboardButton("No", callback_data="q1:no")],
        ]
    )
    quiz = await bot.send_message(ADA, "Did you practise?", reply_markup=keyboard)
    with pytest.raises(ValueError, match=r"no button"):
        emulator.press_button(TOKEN, ADA, quiz.message_id, "q1:maybe")
    emulator.press_button(TOKEN, ADA, quiz.message_id, "q1:yes")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "q1:yes"
    assert query.message is not None and query.message.message_id == quiz.message_id
    assert await bot.answer_callback_query(query.id, text="Noted ✅")
    with pytest.raises(BadRequest, match=r"^Query is too old"):
        await bot.answer_callback_query(query.id)
    edited = await bot.edit_message_text(
        "Did you practise? <b>yes</b>", ADA, quiz.message_id, parse_mode="HTML"
    )
    assert isinstance(edited, telegram.Message) and edited.reply_markup is None
    with pytest.raises(BadRequest, match=r"^Message is not modified"):
        await bot.edit_message_text(
            "Did you practise? <b>yes</b>", ADA, quiz.message_id, parse_mode="HTML"
        )
    await bot.edit_message_reply_markup(ADA, quiz.message_id, reply_markup=keyboard)
    with pytest.raises(BadRequest, match=r"^Message is not modified"):
        await bot.edit_message_reply_markup(ADA, quiz.message_id, reply_markup=keyboard)
    with pytest.raises(BadRequest, match=r"^Message to edit not found$"):
        await bot.edit_message_text("x", ADA, 9999)
    [shown] = emulator.messages(TOKEN, ADA)
    assert shown["text"] == "Did you practise? yes"
    assert shown["reply_markup"]["inline_keyboard"][1][0]["callback_data"] == "q1:no"
    assert [version["text"] for version in shown["edits"]] == [
        "Did you practise?",
        "Did you practise? yes",
    ]
    assert emulator.callback_answers(TOKEN)[0]["text"] == "Noted ✅"


# --------------------------------------------------------------------------- rate limits


@TCP
async def test_rate_limit_answers_429_and_no_window_exceeds_the_budget(kind: str) -> None:
    emulator = TelegramEmulator([TOKEN], rate_limit=True)
    for user_id in range(1, 61):
        emulator.create_user(user_id, f"Learner {user_id}")
        emulator.start(TOKEN, user_id)
    running = await start_server(emulator)
    bot = telegram.Bot(TOKEN, base_url=running.api_url, request=_request(kind, emulator))
    try:
        async with bot:
            results = await asyncio.gather(
                *(bot.send_message(user_id, "tip") for user_id in range(1, 61)),
                return_exceptions=True,
            )
            limited = [r for r in results if isinstance(r, RetryAfter)]
            assert limited and len(limited) + len(emulator.send_log(TOKEN)) == 60
            assert all(r.retry_after == dtm.timedelta(seconds=1) for r in limited)
            await bot.send_message(1, "second in the same second", read_timeout=5)
    except RetryAfter:
        pass
    else:
        pytest.fail("a second message to the same chat within 1 s must be refused")
    finally:
        await running.aclose()
    assert emulator.max_sends_in_window(TOKEN) <= 30
    assert emulator.max_sends_in_window(TOKEN, chat_id=1) == 1


def test_max_sends_in_window_counts_half_open_windows() -> None:
    emulator = TelegramEmulator([TOKEN])
    emulator.create_user(1, "A")
    emulator.start(TOKEN, 1)
    assert emulator.max_sends_in_window(TOKEN) == 0


# --------------------------------------------------------------------------- learner text


@ALL
async def test_learner_text_round_trips_intact(
    make_bot: BotFactory, emulator: TelegramEmulator, kind: str
) -> None:
    bot = make_bot(kind)
    tricky = "if a < b && c > d: 🎉 — ‏שלום‎ مرحبا &amp; <script>"
    emulator.send_text(TOKEN, BOB, tricky)
    updates = await bot.get_updates(offset=-1)
    message = updates[0].message
    assert message is not None and message.text == tricky
    assert message.chat.first_name == RTL_NAME
    echoed = await bot.send_message(
        BOB, f"<i>You wrote:</i> {html.escape(tricky)}", parse_mode="HTML"
    )
    assert echoed.text == f"You wrote: {tricky}"
    assert emulator.messages(TOKEN, BOB)[-1]["text"] == f"You wrote: {tricky}"


async def test_user_media_updates(make_bot: BotFactory, emulator: TelegramEmulator) -> None:
    bot = make_bot("asgi")
    await bot.get_updates(offset=-1)
    emulator.send_photo(TOKEN, ADA, caption="my notes", file_id="PHOTO-1", file_unique_id="U1")
    emulator.send_voice(TOKEN, ADA, duration=7)
    emulator.send_document(TOKEN, ADA, file_name="reflection.pdf")
    updates = await bot.get_updates(offset=-3)
    photo, voice, document = (u.message for u in updates)
    assert photo is not None and photo.photo[-1].file_id == "PHOTO-1"
    assert photo.caption == "my notes"
    assert (
        voice is not None
        and voice.voice is not None
        and voice.voice.duration == dtm.timedelta(seconds=7)
    )
    assert document is not None and document.document is not None
    assert document.document.file_name == "reflection.pdf"
    again = await bot.send_photo(ADA, "PHOTO-1")
    assert again.photo[-1].file_unique_id == "U1"


# --------------------------------------------------------------------------- HTTP control API


async def test_http_control_api_mirrors_the_python_one(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"{server.url}/_control/") as control:
        other = "987654321:OTHER_bot"
        assert (await control.post("create_bot", json={"token": other, "username": "b2"})).json()[
            "result"
        ]["username"] == "b2"
        await control.post("create_user", json={"user_id": 7, "first_name": "Zoë"})
        start = await control.post("start", json={"token": other, "user_id": 7, "payload": "x-1"})
        assert start.json()["result"]["message"]["text"] == "/start x-1"
        bad = await control.post(
            "start", json={"token": other, "user_id": 7, "payload": "no spaces"}
        )
        assert bad.status_code == 400
        assert (await control.post("nope", json={})).status_code == 404
        await control.post(
            "inject_fault", json={"token": other, "kind": "flood", "method": "sendMessage"}
        )
        async with telegram.Bot(other, base_url=server.api_url) as bot:
            with pytest.raises(RetryAfter):
                await bot.send_message(7, "x")
            await bot.send_message(7, "<b>hi</b>", parse_mode="HTML")
        shown = await control.post("messages", json={"token": other, "chat_id": 7})
        assert [m["text"] for m in shown.json()["result"]] == ["hi"]
        log = await control.post("send_log", json={"token": other})
        assert [r["chat_id"] for r in log.json()["result"]] == [7]
