"""What the emulated Bot API checks in a call's content: texts, limits, markup, error wording."""

from __future__ import annotations

import math
from typing import Any

from dripper.sandbox.telegram.html import EntityParseError, parse_html
from dripper.sandbox.telegram.http import ApiError, Params, bad_request
from dripper.sandbox.telegram.state import JSONDict

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
BOT_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile: larger files are "too big" for a bot
CALLBACK_DATA_LIMIT = 64
CONFLICT_GET_UPDATES = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_SET_WEBHOOK = "Conflict: terminated by setWebhook request"
CONFLICT_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
_BUTTON_KINDS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def flood(wait: float) -> None:
    retry_after = max(1, math.ceil(wait))
    raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def json_argument(params: Params, name: str) -> Any:
    try:
        return params.json(name)
    except ValueError:
        raise bad_request(f"can't parse {name} JSON object") from None


def formatted(
    params: Params, field: str, entities_field: str
) -> tuple[str, list[JSONDict], str | None]:
    """Text after entity parsing, its entities, and the parse mode as sent."""
    source = params.text(field) or ""
    parse_mode = params.text("parse_mode") or None
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            parsed = parse_html(source)
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        return parsed.text, parsed.entities, parse_mode
    if mode in ("", "markdown", "markdownv2"):
        entities = json_argument(params, entities_field) if params.has(entities_field) else []
        return source, list(entities or []), parse_mode
    raise bad_request("unsupported parse_mode")


def reply_markup(params: Params) -> JSONDict | None:
    if not params.has("reply_markup"):
        return None
    try:
        markup = params.json("reply_markup")
    except ValueError:
        raise bad_request("can't parse reply keyboard markup JSON object") from None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array'
            )
        for button in (button for row in rows for button in row):
            _check_inline_button(button)
    return markup


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    if not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT:
            raise bad_request("BUTTON_DATA_INVALID")
    elif not any(kind in button for kind in _BUTTON_KINDS):
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )


def inline_only(markup: JSONDict | None) -> JSONDict | None:
    """Messages carry reply_markup only for inline keyboards."""
    if markup and markup.get("inline_keyboard"):
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None
