"""In-memory state of the Bot API emulator: bots, users, chats, updates, faults, send log."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dripper.sandbox.telegram.http import ApiError

JSONDict = dict[str, Any]

# getUpdates delivers every kind of update except these unless allowed_updates names them.
NOT_DELIVERED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class FaultKind(StrEnum):
    """What an injected fault does to the call it hits."""

    FORBIDDEN = "forbidden"  # 403, default "Forbidden: bot was blocked by the user"
    BAD_REQUEST = "bad_request"  # 400, default "Bad Request: chat not found"
    FLOOD = "flood"  # 429 "Too Many Requests: retry after N" with parameters.retry_after
    SERVER_ERROR = "server_error"  # 500 "Internal Server Error"
    BAD_GATEWAY = "bad_gateway"  # 502 with an HTML body, as a proxy in front of the API sends
    SLOW = "slow"  # wait `delay` seconds, then handle the call normally
    TIMEOUT_AFTER_WRITE = "timeout_after_write"  # handle and record, then wait `delay` to answer


_DEFAULT_DESCRIPTIONS = {
    FaultKind.FORBIDDEN: (403, "Forbidden: bot was blocked by the user"),
    FaultKind.BAD_REQUEST: (400, "Bad Request: chat not found"),
    FaultKind.SERVER_ERROR: (500, "Internal Server Error"),
    FaultKind.BAD_GATEWAY: (502, "Bad Gateway"),
}


class GatewayError(ApiError):
    """An error answered with an HTML page instead of Bot API JSON."""


@dataclass(slots=True)
class Fault:
    """A fault armed for the next `remaining` matching calls."""

    kind: FaultKind
    method: str | None = None
    chat_id: int | None = None
    remaining: int = 1
    description: str | None = None
    retry_after: int = 5
    delay: float = 10.0

    def matches(self, method: str, chat_id: int | None) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.chat_id is None or self.chat_id == chat_id

    def error(self) -> ApiError:
        if self.kind is FaultKind.FLOOD:
            return ApiError(
                429,
                self.description or f"Too Many Requests: retry after {self.retry_after}",
                retry_after=self.retry_after,
            )
        code, default = _DEFAULT_DESCRIPTIONS[self.kind]
        if self.kind is FaultKind.BAD_GATEWAY:
            return GatewayError(code, self.description or default)
        return ApiError(code, self.description or default)

    def to_json(self) -> JSONDict:
        return {
            "kind": self.kind.value,
            "method": self.method,
            "chat_id": self.chat_id,
            "remaining": self.remaining,
            "description": self.description,
            "retry_after": self.retry_after,
            "delay": self.delay,
        }


@dataclass(slots=True)
class SandboxUser:
    """A Telegram user who can talk to any emulated bot."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    deactivated: bool = False

    def to_json(self) -> JSONDict:
        user: JSONDict = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def chat_json(self) -> JSONDict:
        chat: JSONDict = {"id": self.id, "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        chat["type"] = "private"
        return chat


@dataclass(slots=True)
class StoredMessage:
    """One message of a chat as the Bot API last returned it, with its earlier versions."""

    message: JSONDict
    from_bot: bool
    parse_mode: str | None = None
    source: str | None = None  # text or caption as the bot sent it, before entity parsing
    edits: list[JSONDict] = field(default_factory=list)

    def to_json(self) -> JSONDict:
        message = self.message
        return {
            "message_id": message["message_id"],
            "from_bot": self.from_bot,
            "date": message["date"],
            "text": message.get("text"),
            "caption": message.get("caption"),
            "entities": message.get("entities") or message.get("caption_entities") or [],
            "parse_mode": self.parse_mode,
            "source": self.source,
            "reply_markup": message.get("reply_markup"),
            "photo": message.get("photo"),
            "edit_date": message.get("edit_date"),
            "edits": list(self.edits),
            "message": message,
        }


@dataclass(slots=True)
class ChatState:
    """A private chat between one bot and one user."""

    user: SandboxUser
    next_message_id: int = 1
    blocked: bool = False
    messages: dict[int, StoredMessage] = field(default_factory=dict)

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One accepted send: monotonic time, chat and Bot API method."""

    at: float
    chat_id: int
    method: str

    def to_json(self) -> JSONDict:
        return {"at": self.at, "chat_id": self.chat_id, "method": self.method}


@dataclass(slots=True)
class CallbackQueryState:
    query_id: str
    chat_id: int
    message_id: int
    data: str
    created: float
    answer: JSONDict | None = None


@dataclass(slots=True)
class LongPoll:
    """A getUpdates call waiting for updates; `conflict` is set when another call ends it."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    conflict: str | None = None


@dataclass(slots=True)
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    last_error_date: int | None = None
    last_error_message: str | None = None
    delivered: int = 0
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class StoredFile:
    """A file a user sent, as getFile and the file download serve it. `content` None: made up
    on download, `size` bytes derived from the id (a voice note in a test needs no real audio)."""

    file_id: str
    file_unique_id: str
    size: int
    content: bytes | None
    extension: str  # of the file_path getFile gives, e.g. "jpg"
    folder: str  # of the file_path: photos, voice, videos, documents
    path: str | None = None  # given by the first getFile, like Telegram's

    def data(self) -> bytes:
        if self.content is not None:
            return self.content
        seed = hashlib.sha256(self.file_unique_id.encode()).digest()
        return (seed * (self.size // len(seed) + 1))[: self.size]


@dataclass(slots=True)
class BotState:
    """Everything one bot token owns."""

    token: str
    user_id: int
    username: str
    first_name: str
    chats: dict[int, ChatState] = field(default_factory=dict)
    updates: list[JSONDict] = field(default_factory=list)
    next_update_id: int = 1
    allowed_updates: list[str] | None = None
    poll: LongPoll | None = None
    next_conflict_time: float = 0.0
    webhook: Webhook | None = None
    files: dict[str, list[JSONDict]] = field(default_factory=dict)
    stored_files: dict[str, StoredFile] = field(default_factory=dict)  # by file_id
    next_file_number: int = 1
    callback_queries: dict[str, CallbackQueryState] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    send_log: list[SendRecord] = field(default_factory=list)
    last_send_per_chat: dict[int, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def user_json(self) -> JSONDict:
        return {
            "id": self.user_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def wake(self) -> None:
        """Tell every waiter (long poll, webhook sender, test helpers) that something changed."""
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()
        if self.poll is not None:
            self.poll.event.set()

    def push_update(self, kind: str, payload: JSONDict) -> JSONDict:
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        self.updates.append(update)
        self.wake()
        return update

    def confirm(self, offset: int) -> None:
        """getUpdates' offset: forget what came before it; -N keeps only the last N updates."""
        if offset > 0:
            self.updates = [update for update in self.updates if update["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    def deliverable(self, limit: int, allowed: list[str] | None) -> list[JSONDict]:
        result: list[JSONDict] = []
        for update in self.updates:
            if len(result) >= limit:
                break
            kind = next(key for key in update if key != "update_id")
            if allowed:
                if kind not in allowed:
                    continue
            elif kind in NOT_DELIVERED_BY_DEFAULT:
                continue
            result.append(update)
        return result


def webhook_info(bot: BotState) -> JSONDict:
    """getWebhookInfo's WebhookInfo object."""
    hook = bot.webhook
    info: JSONDict = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(bot.updates),
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        info["ip_address"] = "127.0.0.1"
        if hook.allowed_updates:
            info["allowed_updates"] = hook.allowed_updates
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    return info


def new_file_ids() -> tuple[str, str]:
    """A (file_id, file_unique_id) pair shaped like Telegram's."""
    return "AgACAgIAAxkBAA" + secrets.token_urlsafe(36), "AQAD" + secrets.token_urlsafe(9)


def photo_sizes(
    sizes: list[tuple[int, int]] | None = None,
    file_id: str | None = None,
    file_unique_id: str | None = None,
) -> list[JSONDict]:
    """PhotoSize objects from small to large; the given ids go to the largest size."""
    dimensions = sizes or [(90, 68), (320, 240), (800, 600), (1280, 960)]
    result: list[JSONDict] = []
    for index, (width, height) in enumerate(dimensions):
        generated_id, generated_unique = new_file_ids()
        last = index == len(dimensions) - 1
        result.append(
            {
                "file_id": (file_id if last and file_id else generated_id),
                "file_unique_id": (file_unique_id if last and file_unique_id else generated_unique),
                "file_size": width * height // 8,
                "width": width,
                "height": height,
            }
        )
    return result


def now() -> int:
    return int(time.time())
