"""The emulator's control API: play users, read what chats received, inject faults.

Every method takes and returns JSON-compatible values, so `POST /_control/<name>` with a JSON
object of the same arguments reaches the same code from another process.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import time

from dripper.sandbox.telegram.html import utf16_len
from dripper.sandbox.telegram.state import (
    BotState,
    CallbackQueryState,
    ChatState,
    Fault,
    FaultKind,
    JSONDict,
    SandboxUser,
    SendRecord,
    StoredFile,
    StoredMessage,
    new_file_ids,
    now,
    photo_sizes,
    webhook_info,
)

TOKEN_PATTERN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_START_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
CONTROL_METHODS = (
    "create_bot",
    "create_user",
    "populate",
    "start",
    "send_text",
    "send_photo",
    "send_voice",
    "send_video",
    "send_document",
    "press_button",
    "queue_texts",
    "push_update",
    "block",
    "unblock",
    "deactivate",
    "messages",
    "callback_answers",
    "pending_updates",
    "is_polling",
    "webhook_info",
    "inject_fault",
    "armed_faults",
    "clear_faults",
    "send_log",
    "send_counts",
    "max_sends_in_window",
)


class ControlApi:
    """Control methods; synchronous, to be called on the event loop that serves the emulator."""

    def __init__(self) -> None:
        self._bots: dict[str, BotState] = {}
        self._users: dict[int, SandboxUser] = {}
        self._query_ids = itertools.count(secrets.randbelow(2**40) * 1000 + 1)

    # ------------------------------------------------------------------ control: bots and users

    def create_bot(
        self, token: str, username: str | None = None, first_name: str | None = None
    ) -> JSONDict:
        """Register a bot token; returns the bot's User object."""
        if not TOKEN_PATTERN.fullmatch(token):
            raise ValueError(f"not a bot token (digits ':' letters): {token!r}")
        user_id = int(token.split(":", 1)[0])
        bot = BotState(
            token=token,
            user_id=user_id,
            username=username or f"sandbox_{user_id}_bot",
            first_name=first_name or "Sandbox Bot",
        )
        self._bots[token] = bot
        return bot.user_json()

    def create_user(
        self,
        user_id: int,
        first_name: str,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> JSONDict:
        """Create (or replace) a user; the chat with a bot exists once the user writes to it."""
        user = SandboxUser(user_id, first_name, last_name, username, language_code)
        self._users[user_id] = user
        return user.to_json()

    def populate(self, token: str, first_user_id: int, count: int, first_name: str = "User") -> int:
        """Create `count` users who have already started the bot (no updates are queued):
        a large audience for benchmarks and the demo in one call."""
        bot = self._bot(token)
        for user_id in range(first_user_id, first_user_id + count):
            user = SandboxUser(user_id, f"{first_name} {user_id}", None, None, None)
            self._users[user_id] = user
            bot.chats[user_id] = ChatState(user)
        return count

    def send_counts(self, token: str) -> dict[str, int]:
        """How many messages each chat was sent (chat id as a JSON key), from the send log."""
        counts: dict[str, int] = {}
        for record in self._bot(token).send_log:
            key = str(record.chat_id)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def deactivate(self, user_id: int) -> None:
        """The user deleted their account: sends to them get 403 "user is deactivated"."""
        self._user(user_id).deactivated = True

    # ------------------------------------------------------------------ control: acting as a user

    def start(self, token: str, user_id: int, payload: str | None = None) -> JSONDict:
        """The user opens t.me/<bot>?start=<payload>: a "/start payload" message update."""
        if payload is not None and not _START_PAYLOAD.fullmatch(payload):
            raise ValueError("a start payload is 1-64 characters of A-Z a-z 0-9 _ -")
        text = "/start" if payload is None else f"/start {payload}"
        return self.send_text(token, user_id, text)

    def send_text(
        self, token: str, user_id: int, text: str, reply_to_message_id: int | None = None
    ) -> JSONDict:
        """The user writes `text` to the bot; returns the update."""
        content: JSONDict = {"text": text}
        command = re.match(r"/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]+)?", text)
        if command:
            content["entities"] = [
                {"offset": 0, "length": utf16_len(command.group()), "type": "bot_command"}
            ]
        return self._user_message(token, user_id, content, reply_to_message_id)

    def send_photo(
        self,
        token: str,
        user_id: int,
        caption: str | None = None,
        file_id: str | None = None,
        file_unique_id: str | None = None,
        sizes: list[tuple[int, int]] | None = None,
        content_b64: str | None = None,
    ) -> JSONDict:
        """The user sends a photo; `sizes` are (width, height) pairs, small to large; the
        largest size's bytes are `content_b64` (base64), else made up."""
        dimensions = [(int(width), int(height)) for width, height in sizes] if sizes else None
        photo = photo_sizes(dimensions, file_id, file_unique_id)
        bot = self._bot(token)
        bot.files[photo[-1]["file_id"]] = photo
        largest = photo[-1]
        largest["file_size"] = self._keep_file(
            bot, largest, content_b64, largest["file_size"], "jpg", "photos"
        )
        content: JSONDict = {"photo": photo}
        if caption is not None:
            content["caption"] = caption
        return self._user_message(token, user_id, content)

    def send_voice(
        self,
        token: str,
        user_id: int,
        duration: int = 3,
        mime_type: str = "audio/ogg",
        file_size: int = 12_000,
        file_id: str | None = None,
        content_b64: str | None = None,
    ) -> JSONDict:
        """The user records a voice note (`content_b64`: its bytes, else made up)."""
        voice = self._file(token, file_id, content_b64, file_size, "oga", "voice")
        voice.update(duration=duration, mime_type=mime_type)
        return self._user_message(token, user_id, {"voice": voice})

    def send_video(
        self,
        token: str,
        user_id: int,
        duration: int = 5,
        mime_type: str = "video/mp4",
        file_size: int = 250_000,
        caption: str | None = None,
        file_id: str | None = None,
        content_b64: str | None = None,
    ) -> JSONDict:
        """The user sends a video (`content_b64`: its bytes, else made up)."""
        video = self._file(token, file_id, content_b64, file_size, "mp4", "videos")
        video.update(duration=duration, width=640, height=360, mime_type=mime_type)
        content: JSONDict = {"video": video}
        if caption is not None:
            content["caption"] = caption
        return self._user_message(token, user_id, content)

    def send_document(
        self,
        token: str,
        user_id: int,
        file_name: str = "notes.pdf",
        mime_type: str = "application/pdf",
        file_size: int = 48_000,
        caption: str | None = None,
        file_id: str | None = None,
        content_b64: str | None = None,
    ) -> JSONDict:
        """The user sends a file (`content_b64`: its bytes, else made up)."""
        extension = file_name.rpartition(".")[2] if "." in file_name else "bin"
        document = self._file(token, file_id, content_b64, file_size, extension, "documents")
        document.update(file_name=file_name, mime_type=mime_type)
        content: JSONDict = {"document": document}
        if caption is not None:
            content["caption"] = caption
        return self._user_message(token, user_id, content)

    def _file(
        self,
        token: str,
        file_id: str | None,
        content_b64: str | None,
        file_size: int,
        extension: str,
        folder: str,
    ) -> JSONDict:
        generated_id, unique_id = new_file_ids()
        described: JSONDict = {"file_id": file_id or generated_id, "file_unique_id": unique_id}
        described["file_size"] = self._keep_file(
            self._bot(token), described, content_b64, file_size, extension, folder
        )
        return described

    @staticmethod
    def _keep_file(
        bot: BotState,
        described: JSONDict,
        content_b64: str | None,
        file_size: int,
        extension: str,
        folder: str,
    ) -> int:
        """Keep the file for getFile and the download; its size (that of the content given)."""
        content = base64.b64decode(content_b64) if content_b64 is not None else None
        size = len(content) if content is not None else int(file_size)
        bot.stored_files[described["file_id"]] = StoredFile(
            described["file_id"], described["file_unique_id"], size, content, extension, folder
        )
        return size

    def press_button(
        self, token: str, user_id: int, message_id: int, callback_data: str
    ) -> JSONDict:
        """The user presses the inline button carrying `callback_data` under a bot message."""
        bot = self._bot(token)
        chat = self._chat_for_user(bot, user_id)
        stored = chat.messages.get(message_id)
        if stored is None or not stored.from_bot:
            raise ValueError(f"chat {user_id} has no bot message {message_id}")
        markup = stored.message.get("reply_markup") or {}
        buttons = [button for row in markup.get("inline_keyboard", []) for button in row]
        if not any(button.get("callback_data") == callback_data for button in buttons):
            raise ValueError(f"message {message_id} has no button with data {callback_data!r}")
        query_id = str(next(self._query_ids))
        bot.callback_queries[query_id] = CallbackQueryState(
            query_id, user_id, message_id, callback_data, time.monotonic()
        )
        query = {
            "id": query_id,
            "from": chat.user.to_json(),
            "message": stored.message,
            "chat_instance": str(abs(hash((bot.token, user_id))) % 10**18),
            "data": callback_data,
        }
        return bot.push_update("callback_query", query)

    def queue_texts(
        self, token: str, first_user_id: int, count: int, text: str = "Message {user_id}"
    ) -> int:
        """Users `first_user_id`..+count-1 (see `populate`) each write `text` (with `{user_id}`
        replaced) to the bot: `count` updates queued in one call, for benchmarks."""
        for user_id in range(first_user_id, first_user_id + count):
            self.send_text(token, user_id, text.replace("{user_id}", str(user_id)))
        return count

    def push_update(self, token: str, kind: str, payload: JSONDict) -> JSONDict:
        """Queue an update of any type with any content, as Telegram could send (or a newer Bot
        API, or a broken proxy): for testing receivers against the unexpected."""
        return self._bot(token).push_update(kind, payload)

    def block(self, token: str, user_id: int) -> JSONDict:
        """The user blocks the bot: sends fail with 403; a my_chat_member update says so."""
        return self._set_blocked(token, user_id, blocked=True)

    def unblock(self, token: str, user_id: int) -> JSONDict:
        """The user unblocks the bot (Telegram's "Restart")."""
        return self._set_blocked(token, user_id, blocked=False)

    # ------------------------------------------------------------------ control: observing

    def messages(self, token: str, chat_id: int, from_bot: bool | None = True) -> list[JSONDict]:
        """What the chat shows: the bot's messages (or the user's, or all with from_bot=None)."""
        chat = self._bot(token).chats.get(chat_id)
        if chat is None:
            return []
        return [
            stored.to_json()
            for stored in chat.messages.values()
            if from_bot is None or stored.from_bot == from_bot
        ]

    def callback_answers(self, token: str) -> list[JSONDict]:
        """Every answered callback query with the answer's parameters."""
        return [
            {"id": query.query_id, "data": query.data, "chat_id": query.chat_id, **query.answer}
            for query in self._bot(token).callback_queries.values()
            if query.answer is not None
        ]

    def pending_updates(self, token: str) -> list[JSONDict]:
        """Updates not yet confirmed (getUpdates) or delivered (webhook)."""
        return list(self._bot(token).updates)

    def is_polling(self, token: str) -> bool:
        """Whether a getUpdates long poll of the bot is waiting right now."""
        return self._bot(token).poll is not None

    def webhook_info(self, token: str) -> JSONDict:
        return webhook_info(self._bot(token))

    def send_log(self, token: str) -> list[SendRecord]:
        """Every accepted send of the bot, in order, with its monotonic timestamp."""
        return list(self._bot(token).send_log)

    def max_sends_in_window(
        self, token: str, window: float = 1.0, chat_id: int | None = None
    ) -> int:
        """The most accepted sends inside any half-open window of `window` seconds."""
        times = [
            record.at
            for record in self._bot(token).send_log
            if chat_id is None or record.chat_id == chat_id
        ]
        best = 0
        first = 0
        for last, at in enumerate(times):
            while at - times[first] >= window:
                first += 1
            best = max(best, last - first + 1)
        return best

    async def wait_for_messages(self, token: str, chat_id: int, count: int) -> list[JSONDict]:
        """Wait until the chat holds `count` bot messages (wrap in asyncio.timeout)."""
        bot = self._bot(token)
        while True:
            changed = bot.changed
            received = self.messages(token, chat_id)
            if len(received) >= count:
                return received
            await changed.wait()

    # ------------------------------------------------------------------ control: faults

    def inject_fault(
        self,
        token: str,
        kind: FaultKind | str,
        method: str | None = None,
        chat_id: int | None = None,
        times: int = 1,
        description: str | None = None,
        retry_after: int = 5,
        delay: float = 10.0,
    ) -> JSONDict:
        """Make the next `times` calls (of `method`, to `chat_id`, if given) fail or stall."""
        fault = Fault(
            FaultKind(kind),
            method.lower() if method else None,
            chat_id,
            times,
            description,
            retry_after,
            delay,
        )
        self._bot(token).faults.append(fault)
        return fault.to_json()

    def armed_faults(self, token: str) -> list[JSONDict]:
        """Faults still waiting for a matching call."""
        return [fault.to_json() for fault in self._bot(token).faults]

    def clear_faults(self, token: str) -> None:
        self._bot(token).faults.clear()

    def _bot(self, token: str) -> BotState:
        bot = self._bots.get(token)
        if bot is None:
            raise ValueError(f"no bot with token {token!r}; call create_bot first")
        return bot

    def _user(self, user_id: int) -> SandboxUser:
        user = self._users.get(user_id)
        if user is None:
            raise ValueError(f"no user {user_id}; call create_user first")
        return user

    def _chat_for_user(self, bot: BotState, user_id: int) -> ChatState:
        user = self._user(user_id)
        chat = bot.chats.get(user_id)
        if chat is None:
            chat = ChatState(user)
            bot.chats[user_id] = chat
        if chat.blocked:
            raise ValueError(f"user {user_id} blocked the bot; unblock first")
        if user.deactivated:
            raise ValueError(f"user {user_id} is deactivated")
        return chat

    def _user_message(
        self,
        token: str,
        user_id: int,
        content: JSONDict,
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        bot = self._bot(token)
        chat = self._chat_for_user(bot, user_id)
        message: JSONDict = {
            "message_id": chat.take_message_id(),
            "from": chat.user.to_json(),
            "chat": chat.user.chat_json(),
            "date": now(),
        }
        if reply_to_message_id is not None:
            replied = chat.messages.get(reply_to_message_id)
            if replied is None:
                raise ValueError(f"chat {user_id} has no message {reply_to_message_id}")
            message["reply_to_message"] = replied.message
        message.update(content)
        chat.messages[message["message_id"]] = StoredMessage(message, from_bot=False)
        return bot.push_update("message", message)

    def _set_blocked(self, token: str, user_id: int, *, blocked: bool) -> JSONDict:
        bot = self._bot(token)
        user = self._user(user_id)
        chat = bot.chats.setdefault(user_id, ChatState(user))
        chat.blocked = blocked
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        new_member: JSONDict = {"user": bot.user_json(), "status": new}
        old_member: JSONDict = {"user": bot.user_json(), "status": old}
        for member in (new_member, old_member):
            if member["status"] == "kicked":
                member["until_date"] = 0
        return bot.push_update(
            "my_chat_member",
            {
                "chat": user.chat_json(),
                "from": user.to_json(),
                "date": now(),
                "old_chat_member": old_member,
                "new_chat_member": new_member,
            },
        )
