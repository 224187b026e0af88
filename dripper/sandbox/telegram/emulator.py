"""A local Telegram Bot API emulator, as an ASGI application, with a control API for tests.

The Bot API part answers like api.telegram.org: the same paths (`/bot<TOKEN>/<method>`, method
names case-insensitive), the same JSON envelopes, HTTP status == error_code, Telegram's own error
descriptions and limits, long polling with 409 conflicts, and webhooks with the secret-token header.
The control part lets a test or the demo play the learners (start, write, press buttons, block the
bot), read what each chat received, and inject faults. It exists twice with the same names and
arguments: as methods of `TelegramEmulator` (in-process, same event loop) and as JSON over HTTP at
`POST /_control/<name>` (out of process).

Files users send are served by getFile and `/file/bot<TOKEN>/<file_path>` (20 MB at most, as for
a real bot). Known simplifications: only private chats; Markdown parse modes are accepted but not
parsed; photo URLs are not fetched; plain-http webhook URLs are accepted (Telegram demands HTTPS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from dripper.sandbox.telegram.content import (
    BOT_DOWNLOAD_LIMIT,
    CAPTION_LIMIT,
    CONFLICT_GET_UPDATES,
    CONFLICT_SET_WEBHOOK,
    CONFLICT_WEBHOOK_ACTIVE,
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    TEXT_LIMIT,
    flood,
    formatted,
    inline_only,
    json_argument,
    reply_markup,
)
from dripper.sandbox.telegram.control import CONTROL_METHODS, TOKEN_PATTERN, ControlApi
from dripper.sandbox.telegram.html import utf16_len
from dripper.sandbox.telegram.http import (
    ApiError,
    Params,
    Receive,
    Scope,
    Send,
    bad_request,
    parse_params,
    read_body,
    send_bytes,
    send_json,
)
from dripper.sandbox.telegram.state import (
    BotState,
    ChatState,
    FaultKind,
    GatewayError,
    JSONDict,
    LongPoll,
    SandboxUser,
    SendRecord,
    StoredMessage,
    Webhook,
    now,
    photo_sizes,
    webhook_info,
)

__all__ = ["FaultKind", "SandboxUser", "SendRecord", "TelegramEmulator"]

LONG_POLL_MAX_TIMEOUT = 50
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_BAD_GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

Handler = Callable[[BotState, Params], Awaitable[Any]]


class _Described:
    """A successful result that Telegram answers with a `description` too (setWebhook)."""

    def __init__(self, result: Any, description: str) -> None:
        self.result = result
        self.description = description


class TelegramEmulator(ControlApi):
    """The Bot API of any number of bots, plus the users and chats they talk to (an ASGI app).

    Control methods (see `ControlApi`) are synchronous and must run on the serving event loop.
    """

    def __init__(
        self,
        tokens: list[str] | None = None,
        *,
        rate_limit: bool = False,
        global_rate: int = 30,
        per_chat_interval: float = 1.0,
        conflict_throttle: float = 3.0,
        callback_answer_timeout: float = 15.0,
        webhook_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.rate_limit = rate_limit
        self.global_rate = global_rate
        self.per_chat_interval = per_chat_interval
        self.conflict_throttle = conflict_throttle
        self.callback_answer_timeout = callback_answer_timeout
        self.webhook_timeout = webhook_timeout
        self._closing = asyncio.Event()
        self._webhook_client: httpx.AsyncClient | None = None
        self._handlers: dict[str, Handler] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "answercallbackquery": self._answer_callback_query,
            "getfile": self._get_file,
        }
        for token in tokens or []:
            self.create_bot(token)

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """End long polls and delays, stop webhook senders, close the webhook client."""
        self._closing.set()
        tasks = []
        for bot in self._bots.values():
            bot.wake()
            if bot.webhook is not None and bot.webhook.task is not None:
                bot.webhook.task.cancel()
                tasks.append(bot.webhook.task)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._webhook_client is not None:
            await self._webhook_client.aclose()
            self._webhook_client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/file/bot"):
            await self._serve_file(send, path[len("/file/bot") :])
        elif path.startswith("/bot"):
            await self._serve_api(scope, receive, send, path[4:])
        elif path.startswith("/_control/"):
            await self._serve_control(scope, receive, send, path[len("/_control/") :])
        else:
            await send_json(send, 404, ApiError(404, "Not Found").to_json())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ HTTP: Bot API

    async def _serve_api(self, scope: Scope, receive: Receive, send: Send, rest: str) -> None:
        token, _, method = rest.partition("/")
        method = method.lower()
        try:
            if not TOKEN_PATTERN.fullmatch(token) or not method or "/" in method:
                raise ApiError(404, "Not Found")
            bot = self._bots.get(token)
            if bot is None:
                raise ApiError(401, "Unauthorized")
            handler = self._handlers.get(method)
            if handler is None:
                raise ApiError(404, "Not Found")
            params = parse_params(scope, await read_body(receive))
            answer_delay = await self._apply_fault(bot, method, params)
            result = await handler(bot, params)
            if answer_delay:
                await self._sleep(answer_delay)
        except GatewayError as exc:
            await send_bytes(send, exc.code, _BAD_GATEWAY_PAGE, [(b"content-type", b"text/html")])
            return
        except ApiError as exc:
            await send_json(send, exc.code, exc.to_json())
            return
        if isinstance(result, _Described):
            body = {"ok": True, "result": result.result, "description": result.description}
        else:
            body = {"ok": True, "result": result}
        await send_json(send, 200, body)

    async def _apply_fault(self, bot: BotState, method: str, params: Params) -> float:
        """Fire the first armed fault matching this call; returns a delay for the answer."""
        if not bot.faults:
            return 0.0
        chat_id = params.integer("chat_id")
        fault = next((f for f in bot.faults if f.matches(method, chat_id)), None)
        if fault is None:
            return 0.0
        fault.remaining -= 1
        if fault.remaining <= 0:
            bot.faults.remove(fault)
        if fault.kind is FaultKind.SLOW:
            await self._sleep(fault.delay)
            return 0.0
        if fault.kind is FaultKind.TIMEOUT_AFTER_WRITE:
            return fault.delay
        raise fault.error()

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    async def _serve_file(self, send: Send, rest: str) -> None:
        """GET /file/bot<token>/<file_path>: the bytes of a file getFile gave the path of."""
        token, _, file_path = rest.partition("/")
        bot = self._bots.get(token)
        stored = None
        if bot is not None:
            stored = next((f for f in bot.stored_files.values() if f.path == file_path), None)
        if stored is None:
            await send_json(send, 404, ApiError(404, "Not Found").to_json())
            return
        await send_bytes(send, 200, stored.data(), [(b"content-type", b"application/octet-stream")])

    # ------------------------------------------------------------------ HTTP: control API

    async def _serve_control(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        body = await read_body(receive)
        if name not in CONTROL_METHODS:
            await send_json(send, 404, {"ok": False, "description": f"no control method {name!r}"})
            return
        try:
            arguments = json.loads(body) if body else {}
            if not isinstance(arguments, dict):
                raise ValueError("the body must be a JSON object of arguments")
            result = getattr(self, name)(**arguments)
        except (TypeError, ValueError, KeyError) as exc:
            await send_json(send, 400, {"ok": False, "description": str(exc)})
            return
        if isinstance(result, list):
            result = [item.to_json() if isinstance(item, SendRecord) else item for item in result]
        await send_json(send, 200, {"ok": True, "result": result})

    # ------------------------------------------------------------------ Bot API methods

    async def _get_me(self, bot: BotState, params: Params) -> JSONDict:
        return {
            **bot.user_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_file(self, bot: BotState, params: Params) -> JSONDict:
        """A file a user sent, up to the 20 MB a bot may download; the path stays the same."""
        file_id = params.text("file_id") or ""
        stored = bot.stored_files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > BOT_DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        if stored.path is None:
            stored.path = f"{stored.folder}/file_{bot.next_file_number}.{stored.extension}"
            bot.next_file_number += 1
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    async def _get_updates(self, bot: BotState, params: Params) -> list[JSONDict]:
        if bot.webhook is not None:
            await self._conflict(bot, CONFLICT_WEBHOOK_ACTIVE)
        offset = params.integer("offset", 0) or 0
        limit = min(max(params.integer("limit", 100) or 100, 1), 100)
        timeout = min(max(params.integer("timeout", 0) or 0, 0), LONG_POLL_MAX_TIMEOUT)
        if params.has("allowed_updates"):
            bot.allowed_updates = json_argument(params, "allowed_updates") or None
        bot.confirm(offset)
        updates = bot.deliverable(limit, bot.allowed_updates)
        if updates or timeout == 0 or self._closing.is_set():
            return updates
        if bot.poll is not None:
            self._abort_poll(bot, CONFLICT_GET_UPDATES)
        poll = LongPoll()
        bot.poll = poll
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while not (updates or poll.conflict or self._closing.is_set()):
                        await poll.event.wait()
                        poll.event.clear()
                        updates = bot.deliverable(limit, bot.allowed_updates)
        finally:
            if bot.poll is poll:
                bot.poll = None
        if poll.conflict:
            await self._conflict(bot, poll.conflict)
        return bot.deliverable(limit, bot.allowed_updates)

    def _abort_poll(self, bot: BotState, message: str) -> None:
        if bot.poll is not None:
            bot.poll.conflict = message
            bot.poll.event.set()
            bot.poll = None

    async def _conflict(self, bot: BotState, message: str) -> None:
        """Answer 409 at once at most every `conflict_throttle` seconds, later ones after it."""
        moment = time.monotonic()
        if moment >= bot.next_conflict_time:
            bot.next_conflict_time = moment + self.conflict_throttle
        else:
            await self._sleep(self.conflict_throttle)
        raise ApiError(409, message)

    async def _set_webhook(self, bot: BotState, params: Params) -> _Described:
        url = params.text("url") or ""
        if not url:
            return await self._delete_webhook(bot, params)
        if not url.startswith(("https://", "http://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.text("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        allowed = (
            json_argument(params, "allowed_updates") if params.has("allowed_updates") else None
        )
        if params.boolean("drop_pending_updates"):
            bot.updates.clear()
        self._abort_poll(bot, CONFLICT_SET_WEBHOOK)
        self._stop_webhook(bot)
        hook = Webhook(url, secret, params.integer("max_connections", 40) or 40, allowed or None)
        bot.webhook = hook
        hook.task = asyncio.get_running_loop().create_task(self._deliver_webhook(bot, hook))
        return _Described(True, "Webhook was set")

    async def _delete_webhook(self, bot: BotState, params: Params) -> _Described:
        if params.boolean("drop_pending_updates"):
            bot.updates.clear()
        if bot.webhook is None:
            return _Described(True, "Webhook is already deleted")
        self._stop_webhook(bot)
        return _Described(True, "Webhook was deleted")

    def _stop_webhook(self, bot: BotState) -> None:
        if bot.webhook is not None and bot.webhook.task is not None:
            bot.webhook.task.cancel()
        bot.webhook = None

    async def _get_webhook_info(self, bot: BotState, params: Params) -> JSONDict:
        return webhook_info(bot)

    async def _deliver_webhook(self, bot: BotState, hook: Webhook) -> None:
        """POST pending updates one by one to the webhook until it is removed."""
        if self._webhook_client is None:
            self._webhook_client = httpx.AsyncClient()
        client = self._webhook_client
        failures = 0
        while bot.webhook is hook and not self._closing.is_set():
            changed = bot.changed
            pending = bot.deliverable(1, hook.allowed_updates)
            if not pending:
                await changed.wait()
                continue
            update = pending[0]
            headers = {"content-type": "application/json"}
            if hook.secret_token:
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
            error: str | None = None
            try:
                response = await client.post(
                    hook.url,
                    content=json.dumps(update, ensure_ascii=False).encode(),
                    headers=headers,
                    timeout=self.webhook_timeout,
                )
                if not 200 <= response.status_code < 300:
                    error = (
                        f"Wrong response from the webhook: {response.status_code} "
                        f"{response.reason_phrase}"
                    )
            except httpx.ConnectError:
                error = "Connection refused"
            except httpx.TimeoutException:
                error = "Read timeout expired"
            except httpx.HTTPError as exc:
                error = f"Failed to deliver the update: {exc}"
            if error is None:
                failures = 0
                hook.delivered += 1
                bot.updates = [item for item in bot.updates if item is not update]
                bot.wake()
                continue
            failures += 1
            hook.last_error_date = now()
            hook.last_error_message = error
            await self._sleep(min(0.05 * 2**failures, 5.0))

    async def _send_message(self, bot: BotState, params: Params) -> JSONDict:
        chat = self._target_chat(bot, params)
        text, entities, parse_mode = formatted(params, "text", "entities")
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        markup = reply_markup(params)
        self._check_deliverable(chat)
        self._admit_send(bot, chat)
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._bot_message(bot, chat, "sendmessage", content, markup, parse_mode, params)

    async def _send_photo(self, bot: BotState, params: Params) -> JSONDict:
        chat = self._target_chat(bot, params)
        photo = self._photo_argument(bot, params)
        caption, entities, parse_mode = formatted(params, "caption", "caption_entities")
        if utf16_len(caption) > CAPTION_LIMIT:
            raise bad_request("message caption is too long")
        markup = reply_markup(params)
        self._check_deliverable(chat)
        self._admit_send(bot, chat)
        content: JSONDict = {"photo": photo}
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        message = self._bot_message(bot, chat, "sendphoto", content, markup, parse_mode, params)
        chat.messages[message["message_id"]].source = params.text("caption")
        return message

    def _photo_argument(self, bot: BotState, params: Params) -> list[JSONDict]:
        uploaded = params.files.get("photo")
        reference = params.text("photo")
        if uploaded is None and reference and reference.startswith("attach://"):
            uploaded = params.files.get(reference[len("attach://") :])
        if uploaded is not None:
            if not uploaded.content:
                raise bad_request("file must be non-empty")
            photo = photo_sizes()
        elif not reference:
            raise bad_request("there is no photo in the request")
        elif reference.startswith(("http://", "https://")):
            photo = photo_sizes()
        elif reference in bot.files:
            return bot.files[reference]
        else:
            raise bad_request("wrong file identifier/HTTP URL specified")
        for size in photo:
            bot.files[size["file_id"]] = photo
        return photo

    async def _edit_message_text(self, bot: BotState, params: Params) -> JSONDict:
        chat, stored = self._editable_message(bot, params)
        if "text" not in stored.message:
            raise bad_request("there is no text in the message to edit")
        text, entities, parse_mode = formatted(params, "text", "entities")
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        markup = inline_only(reply_markup(params))
        current = stored.message
        if (
            current["text"] == text
            and current.get("entities", []) == entities
            and current.get("reply_markup") == markup
        ):
            raise bad_request(NOT_MODIFIED)
        self._check_deliverable(chat)
        edited = {key: value for key, value in current.items() if key not in ("entities",)}
        edited.pop("reply_markup", None)
        edited["text"] = text
        if entities:
            edited["entities"] = entities
        if markup:
            edited["reply_markup"] = markup
        edited["edit_date"] = now()
        stored.edits.append(current)
        stored.message = edited
        stored.parse_mode = parse_mode
        stored.source = params.text("text")
        bot.wake()
        return edited

    async def _edit_message_reply_markup(self, bot: BotState, params: Params) -> JSONDict:
        chat, stored = self._editable_message(bot, params)
        markup = inline_only(reply_markup(params))
        current = stored.message
        if current.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        self._check_deliverable(chat)
        edited = {key: value for key, value in current.items() if key != "reply_markup"}
        if markup:
            edited["reply_markup"] = markup
        edited["edit_date"] = now()
        stored.edits.append(current)
        stored.message = edited
        bot.wake()
        return edited

    def _editable_message(self, bot: BotState, params: Params) -> tuple[ChatState, StoredMessage]:
        if params.has("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._target_chat(bot, params)
        message_id = params.integer("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        stored = chat.messages.get(message_id)
        if stored is None:
            raise bad_request("message to edit not found")
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return chat, stored

    async def _answer_callback_query(self, bot: BotState, params: Params) -> bool:
        query_id = params.text("callback_query_id") or ""
        query = bot.callback_queries.get(query_id)
        if (
            query is None
            or query.answer is not None
            or time.monotonic() - query.created > self.callback_answer_timeout
        ):
            raise bad_request(QUERY_TOO_OLD)
        query.answer = {
            "text": params.text("text"),
            "show_alert": params.boolean("show_alert"),
            "url": params.text("url"),
            "cache_time": params.integer("cache_time", 0),
        }
        bot.wake()
        return True

    # ------------------------------------------------------------------ helpers

    def _target_chat(self, bot: BotState, params: Params) -> ChatState:
        raw = params.text("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        try:
            chat_id = int(raw)
        except ValueError:
            raise bad_request("chat not found") from None
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    @staticmethod
    def _check_deliverable(chat: ChatState) -> None:
        if chat.user.deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _admit_send(self, bot: BotState, chat: ChatState) -> None:
        """Telegram's flood control, when enabled: `global_rate`/s per bot, 1 per chat interval."""
        if not self.rate_limit:
            return
        moment = time.monotonic()
        log = bot.send_log
        recent = 0
        for record in reversed(log):
            if moment - record.at >= 1.0:
                break
            recent += 1
        if recent >= self.global_rate:
            oldest = log[-recent].at
            flood(oldest + 1.0 - moment)
        last = bot.last_send_per_chat.get(chat.user.id)
        if last is not None and moment - last < self.per_chat_interval:
            flood(last + self.per_chat_interval - moment)

    def _bot_message(
        self,
        bot: BotState,
        chat: ChatState,
        method: str,
        content: JSONDict,
        markup: JSONDict | None,
        parse_mode: str | None,
        params: Params,
    ) -> JSONDict:
        message: JSONDict = {
            "message_id": chat.take_message_id(),
            "from": bot.user_json(),
            "chat": chat.user.chat_json(),
            "date": now(),
            **content,
        }
        reply_to = params.integer("reply_to_message_id")
        if reply_to is not None and reply_to in chat.messages:
            message["reply_to_message"] = chat.messages[reply_to].message
        inline = inline_only(markup)
        if inline:
            message["reply_markup"] = inline
        chat.messages[message["message_id"]] = StoredMessage(
            message, from_bot=True, parse_mode=parse_mode, source=params.text("text")
        )
        moment = time.monotonic()
        bot.send_log.append(SendRecord(moment, chat.user.id, method))
        bot.last_send_per_chat[chat.user.id] = moment
        bot.wake()
        return message
