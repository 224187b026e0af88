"""What one raw Telegram update means for dripper, as a small typed event. Pure.

`classify(update)` turns the JSON of an update into a command, a learner message, a button tap,
a change of the bot's membership in a chat, or `Ignored` with the reason it cannot be used (an
update type dripper does not ask for, a group chat, a field Telegram always sends is missing).
Nothing here touches the network or the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dripper.content.compose import CALLBACK_ANSWER, CALLBACK_SUBMIT, CALLBACK_TOGGLE

# The update types `getUpdates` is asked for; anything else is stored and flagged.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
COMMANDS = frozenset({"start", "stop", "pause", "resume", "timezone", "help"})

_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,64})(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?", re.DOTALL)
_CALLBACK = re.compile(r"([ats]):(\d{1,12})(?::(\d{1,3}))?")
# Content types filed with their file reference; the keys kept are those Telegram sends.
_FILE_KINDS = ("photo", "voice", "audio", "video", "video_note", "document", "animation", "sticker")
_FILE_KEYS = (
    "file_id",
    "file_unique_id",
    "mime_type",
    "file_name",
    "file_size",
    "duration",
    "width",
    "height",
    "emoji",
)
_PLACE_KINDS = {
    "location": ("latitude", "longitude"),
    "contact": ("phone_number", "first_name", "last_name", "user_id"),
}


@dataclass(frozen=True)
class Command:
    """`/name argument` in a private chat."""

    chat_id: int
    name: str  # lowercase, without the slash and without @botname
    argument: str
    text: str  # the whole message, for unknown commands filed as text
    reply_to: int | None = None  # the message_id of the message this one replies to


@dataclass(frozen=True)
class LearnerMessage:
    """Text, media or a file a learner sent (or edited) in a private chat."""

    chat_id: int
    body: str
    attachments: tuple[dict[str, Any], ...]
    edited: bool = False
    reply_to: int | None = None  # the message_id of the message this one replies to


@dataclass(frozen=True)
class Tap:
    """A press on one of our inline buttons: answer (`a`), toggle (`t`) or submit (`s`)."""

    query_id: str
    chat_id: int
    action: str
    delivery_id: int
    option: int | None
    message: Mapping[str, Any] | None  # the message under the button, None when inaccessible


@dataclass(frozen=True)
class BadTap:
    """A button press whose data is not ours: answered, otherwise ignored."""

    query_id: str
    chat_id: int
    data: str


@dataclass(frozen=True)
class MemberChange:
    """The learner blocked the bot (`kicked`) or started/unblocked it (`member`)."""

    chat_id: int
    status: str


@dataclass(frozen=True)
class Ignored:
    """Stored but not used; `reason` says why (kept on the flagged inbound item)."""

    reason: str


Event = Command | LearnerMessage | Tap | BadTap | MemberChange | Ignored


def update_kind(update: Mapping[str, Any]) -> str | None:
    """The update's type: its one key besides `update_id`."""
    return next((key for key in update if key != "update_id"), None)


# Telegram's ids fit in 52 bits (a double represents them exactly); anything else is not one.
MAX_ID = 2**52


def classify(update: Mapping[str, Any]) -> Event:
    """What an update means; never raises: a malformed update is `Ignored` with the reason.

    Texts come out without U+0000 (PostgreSQL cannot store it); the raw update keeps it."""
    kind = update_kind(update)
    body = update.get(kind) if kind else None
    if kind is None or not isinstance(body, Mapping):
        return Ignored(f"update without content: keys {sorted(map(str, update))}")
    try:
        if kind in ("message", "edited_message"):
            return _message(_without_nul(body), edited=kind == "edited_message")
        if kind == "callback_query":
            return _callback(_without_nul(body))
        if kind == "my_chat_member":
            return _member(_without_nul(body))
    except Exception as exc:  # whatever a malformed update trips over, it is only ignored
        return Ignored(f"malformed {kind}: {type(exc).__name__}: {exc}"[:500])
    return Ignored(f"unsupported update type {kind!r}"[:500])


def telegram_id(value: Any, what: str) -> int:
    """An id as Telegram sends it: a JSON integer within 52 bits."""
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_ID < value < MAX_ID:
        raise ValueError(f"{what} {value!r:.40} is not a Telegram id")
    return value


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _chat(message: Mapping[str, Any]) -> Mapping[str, Any]:
    chat = message["chat"]
    if not isinstance(chat, Mapping):
        raise TypeError(f"chat is {type(chat).__name__}, not an object")
    return chat


def _private_chat_id(message: Mapping[str, Any]) -> int | None:
    chat = _chat(message)
    if chat.get("type") != "private":
        return None
    return telegram_id(chat["id"], "chat id")


def _message(message: Mapping[str, Any], *, edited: bool) -> Event:
    chat_id = _private_chat_id(message)
    if chat_id is None:
        return Ignored(
            f"message in a {_chat(message).get('type')!s:.40} chat; dripper serves private chats"
        )
    reply_to = _reply_to(message)
    text = message.get("text")
    if isinstance(text, str):
        command = _COMMAND.fullmatch(text.strip()) if not edited else None
        if command:
            return Command(
                chat_id, command.group(1).lower(), (command.group(2) or "").strip(), text, reply_to
            )
        return LearnerMessage(chat_id, text, (), edited, reply_to)
    caption = message.get("caption")
    attachments = attachments_of(message)
    if not attachments:
        content = sorted(set(message) - _MESSAGE_METADATA)
        return Ignored(f"unsupported message content {content}")
    body = caption if isinstance(caption, str) else ""
    return LearnerMessage(chat_id, body, attachments, edited, reply_to)


def _reply_to(message: Mapping[str, Any]) -> int | None:
    """The message_id of the message this one replies to (Telegram's reply), if any."""
    replied = message.get("reply_to_message")
    if not isinstance(replied, Mapping):
        return None
    try:
        return telegram_id(replied.get("message_id"), "message id")
    except ValueError:
        return None


_MESSAGE_METADATA = frozenset(
    {
        "message_id",
        "from",
        "chat",
        "date",
        "edit_date",
        "reply_to_message",
        "entities",
        "caption_entities",
        "caption",
        "forward_origin",
        "message_thread_id",
        "has_protected_content",
        "media_group_id",
        "reply_markup",
    }
)


def attachments_of(message: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """File references (largest photo size only) and places, with the fields present."""
    found: list[dict[str, Any]] = []
    for kind in _FILE_KINDS:
        value = message.get(kind)
        if kind == "photo" and isinstance(value, list) and value:
            value = value[-1]  # sizes run small to large
        if isinstance(value, Mapping):
            found.append({"kind": kind, **{k: value[k] for k in _FILE_KEYS if k in value}})
    for kind, keys in _PLACE_KINDS.items():
        value = message.get(kind)
        if isinstance(value, Mapping):
            found.append({"kind": kind, **{k: value[k] for k in keys if k in value}})
    return tuple(found)


def parse_callback(data: str) -> tuple[str, int, int | None] | None:
    """("a", delivery id, option) from "a:12:1"; ("s", 12, None) from "s:12"; else None."""
    match = _CALLBACK.fullmatch(data)
    if match is None:
        return None
    action, delivery, option = match.group(1), int(match.group(2)), match.group(3)
    if (action == CALLBACK_SUBMIT) != (option is None):
        return None
    assert action in (CALLBACK_ANSWER, CALLBACK_TOGGLE, CALLBACK_SUBMIT)
    return action, delivery, int(option) if option is not None else None


def _callback(query: Mapping[str, Any]) -> Event:
    query_id = str(query["id"])
    message = query.get("message")
    accessible = isinstance(message, Mapping) and message.get("date", 0) != 0
    has_chat = isinstance(message, Mapping) and "chat" in message
    if has_chat and _chat(message).get("type", "private") != "private":  # type: ignore[arg-type]
        return Ignored("button pressed in a group chat; dripper serves private chats")
    chat_id = telegram_id(query["from"]["id"], "user id")
    data = query.get("data")
    parsed = parse_callback(data) if isinstance(data, str) else None
    if parsed is None:
        return BadTap(query_id, chat_id, str(data))
    action, delivery_id, option = parsed
    return Tap(
        query_id,
        chat_id,
        action,
        delivery_id,
        option,
        message if accessible and isinstance(message, Mapping) else None,
    )


def _member(change: Mapping[str, Any]) -> Event:
    chat_id = _private_chat_id(change)
    if chat_id is None:
        return Ignored("membership change in a group chat")
    return MemberChange(chat_id, str(change["new_chat_member"]["status"]))
