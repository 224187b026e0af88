"""Signed compact tokens for addresses (Reply-To, List-Unsubscribe, the VERP return path) and
keyed digests (our Message-IDs): HMAC-SHA256, base32. Pure.

A token carries a few non-negative integers (a learner id, a conversation id, a delivery id)
and a MAC over them and a purpose ("reply", "unsub", "bounce"); the purpose is not in the token,
the verifier names it, so a token signed for one purpose never verifies for another. The
alphabet is lowercase RFC 4648 base32 without padding, safe in an email local part and in a
URL, and verified case-insensitively because some MTAs fold local parts to one case. The MAC
is truncated to 80 bits (16 characters): forging one means guessing 2^80 values against a
mailbox.

Layout: base32(varint(id) ... || mac[:10]). Two ids below 2^21 make a 26-character token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

REPLY = "reply"
UNSUBSCRIBE = "unsub"
BOUNCE = "bounce"

MAC_BYTES = 10
MAX_TOKEN_LENGTH = 64  # refuse longer input before decoding: a token is short
_UNSUBSCRIBE_TAG = "unsub-"
_BOUNCE_TAG = "bounce-"
_PAD = {0: "", 2: "======", 4: "====", 5: "===", 7: "="}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _encode_ids(ids: tuple[int, ...]) -> bytes:
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"token ids must be non-negative integers, got {value!r}")
    return b"".join(_varint(value) for value in ids)


def _decode_ids(payload: bytes) -> tuple[int, ...] | None:
    ids: list[int] = []
    value = shift = 0
    for byte in payload:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
        else:
            ids.append(value)
            value = shift = 0
    if shift:
        return None  # a truncated varint
    return tuple(ids)


def _mac(key: bytes, purpose: str, payload: bytes) -> bytes:
    if not purpose or "\0" in purpose:
        raise ValueError("a token purpose is a non-empty string without NUL")
    message = b"dripper-token\0" + purpose.encode() + b"\0" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def _b32encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def sign(key: bytes, purpose: str, *ids: int) -> str:
    """A token for `ids` under `purpose`, e.g. sign(key, REPLY, learner_id, conversation_id)."""
    if not key:
        raise ValueError("the HMAC key is empty")
    payload = _encode_ids(ids)
    return _b32encode(payload + _mac(key, purpose, payload))


def verify(key: bytes, purpose: str, token: str) -> tuple[int, ...] | None:
    """The ids a genuine token for `purpose` carries, else None (tampered, wrong purpose or key).

    Case-insensitive; only the canonical spelling verifies, so changing any character fails.
    """
    if not key or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None
    text = token.lower()
    try:
        raw = base64.b32decode(text.upper() + _PAD.get(len(text) % 8, "!"))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < MAC_BYTES or _b32encode(raw) != text:
        return None
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(key, purpose, payload)):
        return None
    ids = _decode_ids(payload)
    if ids is None or _encode_ids(ids) != payload:
        return None
    return ids


def reply_token(key: bytes, learner_id: int, conversation_id: int) -> str:
    """The token for a learner's Reply-To address in one conversation."""
    return sign(key, REPLY, learner_id, conversation_id)


def unsubscribe_token(key: bytes, learner_id: int) -> str:
    """The token for a learner's List-Unsubscribe address."""
    return sign(key, UNSUBSCRIBE, learner_id)


def bounce_token(key: bytes, delivery_id: int) -> str:
    """The token for one delivery's envelope sender (VERP): its bounce names the delivery."""
    return sign(key, BOUNCE, delivery_id)


def keyed_digest(key: bytes, purpose: str, text: str) -> str:
    """A 128-bit base32 digest of `text` that only the key's holder can compute (for a
    Message-ID: stable per text, unguessable without the key)."""
    if not key:
        raise ValueError("the HMAC key is empty")
    message = b"dripper-digest\0" + purpose.encode() + b"\0" + text.encode("utf-8")
    return _b32encode(hmac.new(key, message, hashlib.sha256).digest()[:16])


def _split(address: str) -> tuple[str, str]:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {address!r}")
    return local, domain


def reply_address(from_address: str, token: str) -> str:
    """`local+<token>@domain` for `local@domain`: replies land in the course mailbox."""
    local, domain = _split(from_address)
    return f"{local}+{token}@{domain}"


def unsubscribe_address(from_address: str, token: str) -> str:
    """`local+unsub-<token>@domain`: a mailto target that needs no web server."""
    local, domain = _split(from_address)
    return f"{local}+{_UNSUBSCRIBE_TAG}{token}@{domain}"


def bounce_address(from_address: str, token: str) -> str:
    """`local+bounce-<token>@domain`: the envelope sender, where a bounce of one delivery lands."""
    local, domain = _split(from_address)
    return f"{local}+{_BOUNCE_TAG}{token}@{domain}"


def address_token(address: str) -> tuple[str, str] | None:
    """(purpose, token) from an address made by reply_address, unsubscribe_address or
    bounce_address, else None.

    The purpose is only a routing hint: verify() with it decides whether the token is genuine.
    """
    try:
        local, _ = _split(address.strip())
    except ValueError:
        return None
    _, plus, detail = local.rpartition("+")
    if not plus or not detail:
        return None
    if detail.lower().startswith(_UNSUBSCRIBE_TAG):
        return UNSUBSCRIBE, detail[len(_UNSUBSCRIBE_TAG) :]
    if detail.lower().startswith(_BOUNCE_TAG):
        return BOUNCE, detail[len(_BOUNCE_TAG) :]
    return REPLY, detail


UNSUBSCRIBE_PATH = "/u/"


def unsubscribe_url(public_url: str, token: str) -> str:
    """The one-click unsubscribe page of a learner (RFC 8058), under dripper's `public_url`."""
    return f"{public_url.rstrip('/')}{UNSUBSCRIBE_PATH}{token}"
