"""HTTP plumbing of the Bot API emulator: request bodies in, Telegram-shaped JSON responses out.

The Bot API accepts the query string, application/x-www-form-urlencoded, application/json and
multipart/form-data. python-telegram-bot 22 sends form-urlencoded bodies (every value JSON-encoded
as a string, so `reply_markup` arrives as a JSON string) and multipart when a file is uploaded.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

JSONDict = dict[str, Any]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]


class ApiError(Exception):
    """A Bot API error answer: HTTP status == error_code, Telegram's description."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def to_json(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    content: bytes


class Params:
    """The arguments of one Bot API call, whatever encoding they arrived in."""

    __slots__ = ("files", "values")

    def __init__(self, values: JSONDict, files: dict[str, UploadedFile] | None = None) -> None:
        self.values = values
        self.files = files or {}

    def has(self, name: str) -> bool:
        return name in self.values or name in self.files

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            try:
                return int(float(str(value)))
            except ValueError:
                return default

    def boolean(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, bool):
            return value
        if value is None:
            return False
        return str(value).strip().lower() in {"true", "1"}

    def json(self, name: str) -> Any:
        """A structured argument: sent as a JSON string (form, multipart) or inline (JSON body)."""
        value = self.values.get(name)
        if isinstance(value, str):
            return json.loads(value)
        return value


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _content_type(scope: Scope) -> tuple[str, dict[str, str]]:
    raw = header(scope, b"content-type")
    kind, _, rest = raw.partition(";")
    options: dict[str, str] = {}
    for part in rest.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            options[key.lower()] = value.strip().strip('"')
    return kind.strip().lower(), options


def _parse_multipart(body: bytes, boundary: str) -> tuple[JSONDict, dict[str, UploadedFile]]:
    values: JSONDict = {}
    files: dict[str, UploadedFile] = {}
    delimiter = b"--" + boundary.encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        disposition: dict[str, str] = {}
        content_type = "application/octet-stream"
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                for item in value.split(";")[1:]:
                    option, _, option_value = item.strip().partition("=")
                    disposition[option.lower()] = option_value.strip().strip('"')
            elif key.strip().lower() == "content-type":
                content_type = value.strip()
        name = disposition.get("name")
        if name is None:
            continue
        if "filename" in disposition:
            files[name] = UploadedFile(disposition["filename"], content_type, content)
        else:
            values[name] = content.decode("utf-8", "replace")
    return values, files


def parse_params(scope: Scope, body: bytes) -> Params:
    """The call's arguments from query string and body, as the Bot API reads them."""
    values: JSONDict = {}
    query = scope.get("query_string", b"")
    if query:
        values.update(parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True))
    if not body:
        return Params(values)
    kind, options = _content_type(scope)
    if kind == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            raise bad_request("can't parse JSON object") from exc
        if not isinstance(decoded, dict):
            raise bad_request("can't parse JSON object")
        values.update(decoded)
        return Params(values)
    if kind == "multipart/form-data":
        form, files = _parse_multipart(body, options.get("boundary", ""))
        values.update(form)
        return Params(values, files)
    values.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return Params(values)


async def send_json(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    await send_bytes(send, status, body, _JSON_HEADERS)


async def send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
