"""Incoming email, pure: parse raw bytes leniently into a `ParsedMail`. No I/O.

`parse_mail` reads any bytes a mailbox can hold (broken MIME, missing or wrong charsets, HTML
only, 8-bit headers) into a `ParsedMail`: addresses, thread ids, the full text (kept as the raw
body) and the reply with quotes and signatures stripped, attachment metadata, and the delivery
report of a bounce. It never raises on bad input; what it could not read is in `defects`.
dripper.inbound.email.classify then decides what the message is.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.message
import email.parser
import email.utils
import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from mailparser_reply import EmailReplyParser  # type: ignore[import-untyped]

MAX_MESSAGE_ID = 500  # InboundItem.external_id holds 512 characters
RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs"]

_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_BARE_MESSAGE_ID = re.compile(r"[^<>\s@]+@[^<>\s@]+")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_QUOTE_LINE = re.compile(r"^\s*>")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str
    size: int  # decoded bytes (from BODYSTRUCTURE: estimated from the encoded size)

    def as_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "mime_type": self.mime_type, "size": self.size}


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient of a delivery status notification."""

    recipient: str | None  # the Final-Recipient (or Original-Recipient) address, lowercase
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # e.g. "5.1.1"; empty when the report has none
    diagnostic: str

    @property
    def hard(self) -> bool:
        """A permanent failure: the address does not work."""
        if self.status:
            return self.status.startswith("5")
        return self.action == "failed"

    @property
    def soft(self) -> bool:
        """A temporary failure (delayed, or failed with a 4.x.x status)."""
        if self.status:
            return self.status.startswith("4") and self.action in ("failed", "delayed")
        return self.action == "delayed"


@dataclass(frozen=True)
class DeliveryReport:
    recipients: tuple[BouncedRecipient, ...]
    returned_message_ids: tuple[str, ...]  # Message-IDs in the returned message or its headers


@dataclass(frozen=True)
class ParsedMail:
    """What dripper reads from one email; every text is decoded, every address lowercase."""

    headers: tuple[tuple[str, str], ...]  # (lowercase name, decoded value), in order
    message_id: str | None
    from_address: str | None
    from_name: str
    subject: str
    recipients: tuple[str, ...]  # To, Cc, Delivered-To, X-Original-To, ... addresses
    thread_ids: tuple[str, ...]  # In-Reply-To first, then References newest first
    text: str  # the whole text part (or the HTML as text): the raw body
    body: str  # the latest reply, quotes and signatures stripped
    html_only: bool
    attachments: tuple[Attachment, ...]
    report: DeliveryReport | None
    defects: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of a header (name case-insensitive), else None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


# --------------------------------------------------------------------------- decoding


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    aliases = {"utf8": "utf-8", "unicode-1-1-utf-7": "utf-7", "ks_c_5601-1987": "cp949"}
    name = aliases.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        return None


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Text from bytes whatever the label says: the declared charset when it decodes cleanly,
    else UTF-8, else Windows-1252 (which maps almost every byte), never an exception."""
    declared = _codec(charset)
    # A declared ASCII or Latin-1 label is often wrong for UTF-8 bytes (and decodes anything).
    if declared in (None, "ascii", "latin-1", "iso8859-1", "cp1252"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if declared is not None:
        try:
            return data.decode(declared)
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def decode_header_value(value: Any) -> str:
    """A header as text: RFC 2047 words decoded, raw 8-bit bytes read leniently, folds joined."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):  # raw 8-bit bytes: the charset is unknown
        try:
            pieces = email.header.decode_header(value)
        except Exception:
            return _unfold(str(value))
        return _unfold("".join(_piece_text(piece, charset) for piece, charset in pieces))
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # 8-bit bytes kept by surrogateescape
        text = decode_bytes(text.encode("ascii", "surrogateescape"))
    try:
        pieces = email.header.decode_header(text)
    except Exception:  # a malformed encoded word: keep the text as it came
        return _unfold(text)
    return _unfold("".join(_piece_text(piece, charset) for piece, charset in pieces))


def _piece_text(piece: bytes | str, charset: str | None) -> str:
    return decode_bytes(piece, charset) if isinstance(piece, bytes) else piece


def _unfold(text: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def normalise_message_id(value: str | None) -> str | None:
    """`<local@domain>` lowercase from a Message-ID header value, else None."""
    if not value:
        return None
    match = _MESSAGE_ID.search(value)
    inner = match.group(1) if match else None
    if inner is None:
        bare = _BARE_MESSAGE_ID.search(value)
        inner = bare.group(0) if bare else None
    if not inner:
        return None
    normalised = f"<{inner.lower()}>"
    if len(normalised) > MAX_MESSAGE_ID:
        return "mid-sha256:" + hashlib.sha256(normalised.encode()).hexdigest()
    return normalised


def message_ids(value: str | None) -> list[str]:
    """Every `<id>` in an In-Reply-To or References header, normalised, in order."""
    if not value:
        return []
    found = [f"<{inner.lower()}>" for inner in _MESSAGE_ID.findall(value)]
    if not found:
        single = normalise_message_id(value)
        found = [single] if single else []
    return [mid for mid in found if len(mid) <= MAX_MESSAGE_ID]


def dedupe_key(raw: bytes) -> str:
    """The InboundItem external id: the normalised Message-ID, else a hash of the bytes."""
    headers = email.parser.BytesHeaderParser().parsebytes(raw, headersonly=True)
    message_id = normalise_message_id(decode_header_value(headers.get("message-id")))
    return message_id or "sha256:" + hashlib.sha256(raw).hexdigest()


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, lowercase address) pairs from header values; junk skipped."""
    out: list[tuple[str, str]] = []
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:
        return out
    for name, address in pairs:
        address = address.strip().strip("<>").lower()
        if "@" in address and " " not in address:
            out.append((name.strip(), address))
    return out


# --------------------------------------------------------------------------- HTML to text

_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "header", "footer", "table", "tr", "ul", "ol", "pre"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "hr", "address", "center", "dl", "dt", "dd", "form"}
)
_PARAGRAPH_TAGS = frozenset({"p", "ul", "ol", "table", "pre", "h1", "h2", "h3", "h4", "h5", "h6"})
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})
_QUOTE_CLASSES = re.compile(
    r"gmail_quote|yahoo_quoted|moz-cite-prefix|protonmail_quote|divRplyFwdMsg|appendonsend"
    r"|OutlookMessageHeader|reply-quoted",
    re.IGNORECASE,
)


class _HtmlText(HTMLParser):
    """HTML to plain text: blocks become lines, quotes become `> ` lines, scripts vanish."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip = 0
        self.quote = 0
        self.stack: list[tuple[str, bool]] = []  # (tag, opened a quote)
        self._br = False

    def _flush(self, blank: bool = False) -> None:
        """End the current line; `blank` also ends a paragraph (one empty line)."""
        line = re.sub(r"[ \t\r\n\f\xa0]+", " ", "".join(self.current)).strip()
        self.current = []
        prefix = "> " * self.quote
        if line:
            self.lines.append(prefix + line)
        ends_paragraph = blank or (not line and self._br)  # <br><br> is a paragraph too
        if ends_paragraph and self.lines and self.lines[-1].strip("> "):
            self.lines.append(prefix.rstrip())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
            return
        if tag == "br":
            self._br = True
            self._flush()
            self._br = False
            return
        marker = " ".join(value or "" for name, value in attrs if name in ("class", "id"))
        quotes = tag == "blockquote" or bool(_QUOTE_CLASSES.search(marker))
        if tag in _BLOCK_TAGS or tag in ("blockquote", "li") or quotes:
            self._flush()
        if tag == "li":
            self.current.append("- ")
        if tag in ("td", "th"):
            self.current.append(" ")
        if tag in ("img",):
            alt = dict(attrs).get("alt")
            if alt:
                self.current.append(f"[{alt}]")
        if tag in ("br", "img", "hr", "meta", "link", "input", "wbr"):
            return  # void elements have no end tag
        if quotes:
            self.quote += 1
        self.stack.append((tag, quotes))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
            return
        while self.stack:
            open_tag, quoted = self.stack.pop()
            if quoted:
                self._flush()
                self.quote = max(0, self.quote - 1)
            if open_tag == tag:
                break
        if tag in _PARAGRAPH_TAGS:
            self._flush(blank=True)
        elif tag in _BLOCK_TAGS or tag in ("blockquote", "li"):
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.current.append(data)

    def text(self) -> str:
        self._flush()
        return "\n".join(self.lines).strip()


def html_to_text(markup: str) -> str:
    """Readable text from an HTML mail body; quoted blocks keep a `> ` prefix."""
    parser = _HtmlText()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # HTMLParser is lenient; this is a last resort
        return html.unescape(re.sub(r"<[^>]*>", " ", markup)).strip()
    return parser.text()


# --------------------------------------------------------------------------- quotes


_reply_parser = EmailReplyParser(languages=REPLY_LANGUAGES)


def strip_reply(text: str) -> str:
    """The newest part of a reply: quoted history, "On ... wrote:" headers and signatures removed.

    mail-parser-reply splits the text at reply headers in many languages and drops signatures;
    `>`-quoted lines that remain (bottom posting, inline quotes) are removed as well. When
    nothing is left (a reply that is only a quote), the text without quote lines is returned.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        replies = _reply_parser.read(text).replies
        latest = str(replies[0].body) if replies else text
    except Exception:  # a regex surprise in the library must not lose the message
        latest = text
    kept = "\n".join(line for line in latest.split("\n") if not _QUOTE_LINE.match(line))
    kept = _BLANK_LINES.sub("\n\n", kept).strip()
    if kept:
        return kept
    unquoted = "\n".join(line for line in text.split("\n") if not _QUOTE_LINE.match(line))
    return _BLANK_LINES.sub("\n\n", unquoted).strip()


# --------------------------------------------------------------------------- MIME


def _part_bytes(part: email.message.Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _part_text(part: email.message.Message) -> str:
    charset = None
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(_part_bytes(part), charset)


def _filename(part: email.message.Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name is None:
        name = part.get_param("name")  # type: ignore[assignment]
        if isinstance(name, tuple):
            name = email.utils.collapse_rfc2231_value(name)
    return decode_header_value(name) if name else None


def attachment_contents(raw: bytes) -> list[bytes]:
    """The bytes of each attachment, in the order `parse_mail` lists them (the same walk);
    [] when the message cannot be read."""
    try:
        message = email.message_from_bytes(raw)
        is_report = _report(message) is not None
        return [_part_bytes(p) for p in _leaf_parts(message, is_report) if _is_attachment(p)]
    except Exception:
        return []


def _leaf_parts(message: email.message.Message, is_report: bool) -> Iterator[email.message.Message]:
    """The parts that are no container, in order; of a delivery report, not the returned
    message or its headers."""
    for part in message.walk():
        if part.is_multipart():
            continue
        if is_report and part.get_content_type().startswith(("message/", "text/rfc822-header")):
            continue
        yield part


def _is_attachment(part: email.message.Message) -> bool:
    disposition = (part.get("content-disposition") or "").split(";", 1)[0].strip().lower()
    if disposition == "attachment":
        return True
    if _filename(part):
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")


def _report(message: email.message.Message) -> DeliveryReport | None:
    if message.get_content_type() != "multipart/report":
        return None
    if (message.get_param("report-type") or "").lower() != "delivery-status":  # type: ignore[union-attr]
        return None
    recipients: list[BouncedRecipient] = []
    returned: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            recipients.extend(_status_fields(part))
        elif kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
                mid = normalise_message_id(decode_header_value(inner[0].get("message-id")))
                if mid:
                    returned.append(mid)
        elif kind in ("text/rfc822-headers", "text/rfc822-header"):
            headers = email.parser.Parser().parsestr(_part_text(part), headersonly=True)
            mid = normalise_message_id(decode_header_value(headers.get("message-id")))
            if mid:
                returned.append(mid)
    return DeliveryReport(tuple(recipients), tuple(dict.fromkeys(returned)))


def _status_blocks(part: email.message.Message) -> list[email.message.Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, email.message.Message)]
    # Not parsed as blocks (e.g. base64 encoded): parse the decoded text ourselves.
    text = _part_text(part).replace("\r\n", "\n")
    return [email.parser.Parser().parsestr(block + "\n") for block in re.split(r"\n\s*\n", text)]


def _status_fields(part: email.message.Message) -> list[BouncedRecipient]:
    found: list[BouncedRecipient] = []
    for block in _status_blocks(part):
        final = decode_header_value(block.get("final-recipient"))
        original = decode_header_value(block.get("original-recipient"))
        action = decode_header_value(block.get("action")).lower().split(" ", 1)[0]
        if not (final or original) or not action:
            continue  # the per-message block, or junk
        status_match = _STATUS.search(decode_header_value(block.get("status")))
        recipient = _report_address(final) or _report_address(original)
        found.append(
            BouncedRecipient(
                recipient=recipient,
                action=action,
                status=".".join(status_match.groups()) if status_match else "",
                diagnostic=decode_header_value(block.get("diagnostic-code"))[:500],
            )
        )
    return found


def _report_address(value: str) -> str | None:
    """The address of `rfc822; user@example.com` (the type prefix is optional in practice)."""
    address = value.split(";", 1)[1] if ";" in value else value
    address = address.strip().strip("<>").lower()
    return address if "@" in address else None


def _plain_header(header: bytes) -> bytes:
    """The header block with Content-Type and Content-Disposition replaced by text/plain."""
    kept = [
        line
        for line in re.split(rb"\r?\n(?![ \t])", header)
        if not re.match(rb"(?i)content-(type|disposition)\s*:", line)
    ]
    return b"\r\n".join([*kept, b"Content-Type: text/plain; charset=utf-8"])


def parse_mail(raw: bytes) -> ParsedMail:
    """Read one message; never raises on malformed input (see `defects`)."""
    try:
        message = email.message_from_bytes(raw)
        defects = [type(defect).__name__ for part in message.walk() for defect in part.defects]
    except (TypeError, ValueError, LookupError):
        # Python's email package raises on some RFC 2231 parameters (`boundary*` beside
        # `boundary*0*`): read the headers and keep the rest as one text body.
        header, _, body = (
            raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
        )
        message = email.message_from_bytes(_plain_header(header) + b"\r\n\r\n" + body)
        defects = ["UnreadableMimeParameters"]
    headers = tuple((name.lower(), decode_header_value(value)) for name, value in message.items())

    def values(name: str) -> list[str]:
        return [value for key, value in headers if key == name]

    senders = _addresses(values("from")) or _addresses(values("sender"))
    recipients = _addresses([v for name in RECIPIENT_HEADERS for v in values(name)])
    in_reply_to = message_ids(next(iter(values("in-reply-to")), None))
    references = message_ids(" ".join(values("references")))
    thread_ids = tuple(dict.fromkeys([*in_reply_to, *reversed(references)]))

    plain: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    report = None
    try:
        report = _report(message)
        for part in _leaf_parts(message, report is not None):
            if _is_attachment(part):
                attachments.append(
                    Attachment(
                        filename=_filename(part) or "(unnamed)",
                        mime_type=part.get_content_type(),
                        size=len(_part_bytes(part)),
                    )
                )
            elif part.get_content_type() == "text/html":
                html_parts.append(_part_text(part))
            elif part.get_content_maintype() == "text":
                plain.append(_part_text(part))
    except Exception as exc:  # a structure the email package chokes on: keep what we have
        defects.append(f"{type(exc).__name__}: {exc}")
    if not plain and not html_parts and not message.is_multipart():
        plain.append(_part_text(message))  # e.g. a broken Content-Type on a single part
    html_only = not plain and bool(html_parts)
    text = "\n\n".join(plain) if plain else "\n\n".join(html_to_text(h) for h in html_parts)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
    return ParsedMail(
        headers=headers,
        message_id=normalise_message_id(next(iter(values("message-id")), None)),
        from_address=senders[0][1] if senders else None,
        from_name=senders[0][0] if senders else "",
        subject=next(iter(values("subject")), ""),
        recipients=tuple(dict.fromkeys(address for _, address in recipients)),
        thread_ids=thread_ids,
        text=text,
        body=strip_reply(text) if text else "",
        html_only=html_only,
        attachments=tuple(attachments),
        report=report,
        defects=tuple(defects),
    )


def attachments_from_bodystructure(structure: Any) -> list[Attachment]:
    """Attachment metadata from an IMAP BODYSTRUCTURE (for a message too large to download)."""
    found: list[Attachment] = []

    def text(value: Any) -> str:
        if isinstance(value, bytes):
            return decode_header_value(decode_bytes(value))
        return decode_header_value(value) if isinstance(value, str) else ""

    def params(value: Any) -> dict[str, str]:
        if not isinstance(value, tuple | list):
            return {}
        items = list(value)
        return {text(k).lower(): text(v) for k, v in zip(items[::2], items[1::2], strict=False)}

    def walk(node: Any) -> None:
        if not isinstance(node, tuple | list) or not node:
            return
        if isinstance(node[0], list | tuple):  # multipart: (parts, subtype, ...)
            children = node[0] if isinstance(node[0], list) else [node[0]]
            for child in children:
                walk(child)
            return
        main, sub = text(node[0]).lower(), text(node[1]).lower() if len(node) > 1 else ""
        name = params(node[2] if len(node) > 2 else None).get("name")
        disposition = ""
        for extra in node[7:]:
            if isinstance(extra, tuple) and extra and isinstance(extra[0], bytes):
                disposition = text(extra[0]).lower()
                name = params(extra[1] if len(extra) > 1 else None).get("filename") or name
                if disposition in ("attachment", "inline"):
                    break
        encoding = text(node[5]).lower() if len(node) > 5 else ""
        size = node[6] if len(node) > 6 and isinstance(node[6], int) else 0
        if encoding == "base64":  # 4 characters per 3 bytes, lines of 76 and a CRLF
            size = (size - 2 * (size // 78)) * 3 // 4
        if disposition == "attachment" or name or main not in ("text", "multipart", "message"):
            found.append(Attachment(name or "(unnamed)", f"{main}/{sub}", size))

    walk(structure)
    return found


# --------------------------------------------------------------------------- classification
