"""An embedded IMAP4rev1 server on asyncio: in-memory mailboxes for tests and `dripper demo`.

Pure Python and the standard library, written for dripper (no code taken from other servers).
It speaks what dripper's IMAP poller (IMAPClient, in a thread) uses, on a loopback port:

- CAPABILITY, NOOP, LOGOUT, LOGIN;
- SELECT and EXAMINE of INBOX, answered with FLAGS, EXISTS, RECENT, UIDVALIDITY and UIDNEXT;
- SEARCH and UID SEARCH with ALL, UID <set> and sequence sets (`n:*` as RFC 3501 says: it
  matches the highest message even when n is above it);
- FETCH and UID FETCH of UID, FLAGS, INTERNALDATE, RFC822.SIZE, RFC822, BODYSTRUCTURE, and
  BODY[] / BODY[HEADER] / BODY[TEXT], also as BODY.PEEK[...];
- IDLE (RFC 2177): `* N EXISTS` is pushed the moment `deliver` appends a message (or, for
  mail that came before, IDLE_REPORT_DELAY after "+ idling": see _Session.idle);
- literals from the client, synchronising and LITERAL+.

Anything else is answered BAD saying what is not supported; a malformed line never stops the
server. Each user has one mailbox, INBOX, which only grows (no APPEND, STORE or EXPUNGE; no
flags are ever set), so sequence numbers never change. `deliver` is what an MTA does: line ends
become CRLF, the message is otherwise kept as it is (as dovecot-lda does). `reset_uidvalidity`
is what a server rebuilding its index does: a new UIDVALIDITY, new UIDs, and the sessions on
the mailbox are disconnected. BODYSTRUCTURE describes a message/rfc822 part as a leaf (no
nested ENVELOPE): enough for attachment lists, not for a full mail client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from typing import TypeVar

from dripper.config import ImapSettings

log = logging.getLogger("dripper.sandbox.imap")

CAPABILITIES = "IMAP4rev1 IDLE LITERAL+"
MAX_LINE = 64 * 1024
MAX_LITERAL = 64 * 1024  # only LOGIN takes literals here (there is no APPEND)
IDLE_REPORT_DELAY = 0.05  # seconds; see _Session.idle
_LITERAL_AT_END = re.compile(rb"\{(\d+)(\+?)\}\r?\n$")
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n")
_SEQUENCE_SET = re.compile(r"(\d+|\*)(:(\d+|\*))?(,(\d+|\*)(:(\d+|\*))?)*")
_BODY_SECTION = re.compile(r"BODY(?:\.PEEK)?\[(HEADER|TEXT|)\]")
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_TAG = re.compile(rb"[!#$&'*+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Arg = str | list["Arg"]
T = TypeVar("T")


class _Bad(Exception):
    """The command is malformed or not supported: answered BAD with this text."""


@dataclass
class StoredMail:
    uid: int
    data: bytes  # CRLF line ends, as IMAP presents messages
    received: datetime


@dataclass
class _Mailbox:
    uidvalidity: int
    messages: list[StoredMail] = field(default_factory=list)
    uidnext: int = 1


# --------------------------------------------------------------------------- wire format


def _parse(data: bytes, pos: int = 0, depth: int = 0) -> tuple[list[Arg], int]:
    """Atoms, quoted strings, literals and parenthesised lists; "[...]" stays in its atom."""
    args: list[Arg] = []
    while pos < len(data):
        char = data[pos : pos + 1]
        if char == b" ":
            pos += 1
        elif char == b"(":
            inner, pos = _parse(data, pos + 1, depth + 1)
            args.append(inner)
        elif char == b")":
            if depth == 0:
                raise _Bad("unbalanced ')'")
            return args, pos + 1
        elif char == b'"':
            end, out = pos + 1, bytearray()
            while end < len(data) and data[end] != ord('"'):
                end += 1 if data[end] == ord("\\") else 0  # take the escaped character
                out += data[end : end + 1]
                end += 1
            if end >= len(data):
                raise _Bad("unterminated quoted string")
            args.append(out.decode("utf-8", "replace"))
            pos = end + 1
        elif literal := _LITERAL.match(data, pos):
            start, size = literal.end(), int(literal[1])
            args.append(data[start : start + size].decode("utf-8", "replace"))
            pos = start + size
        else:
            end, brackets = pos, 0
            while end < len(data) and (brackets or data[end : end + 1] not in b" ()"):
                brackets += {b"[": 1, b"]": -1}.get(data[end : end + 1], 0)
                end += 1
            args.append(data[pos:end].decode("utf-8", "replace"))
            pos = end
    if depth:
        raise _Bad("missing ')'")
    return args, pos


def _literal(value: bytes) -> bytes:
    return b"{%d}\r\n" % len(value) + value


def _string(value: str | None) -> bytes:
    """NIL, a quoted string, or a literal when the value needs one."""
    if value is None:
        return b"NIL"
    # IMAP has no NUL in strings or literals (RFC 3501 CHAR8): a header's NUL is replaced.
    raw = value.replace("\x00", "\ufffd").encode("utf-8", "surrogateescape")
    if re.fullmatch(rb"[\x20-\x7e]*", raw) and b'"' not in raw and b"\\" not in raw:
        return b'"' + raw + b'"'
    return _literal(raw)


def _set_ranges(spec: Arg, largest: int) -> list[tuple[int, int]]:
    if not isinstance(spec, str) or not _SEQUENCE_SET.fullmatch(spec):
        raise _Bad(f"invalid sequence set {spec!r}")
    ranges = []
    for part in spec.split(","):
        low, _, high = part.partition(":")
        first = largest if low == "*" else int(low)
        last = first if not high else largest if high == "*" else int(high)
        ranges.append((min(first, last), max(first, last)))
    return ranges


def _split(data: bytes) -> tuple[bytes, bytes]:
    """The header block (with its blank line) and the text of a message."""
    end = data.find(b"\r\n\r\n")
    return (data, b"") if end < 0 else (data[: end + 4], data[end + 4 :])


def _params(header: str | None) -> bytes:
    """The parameters of a Content-Type or Content-Disposition as written (RFC 2231 encoded
    ones too: decoding them is the client's work, as with other servers)."""
    pairs = _PARAM.findall(re.sub(r"\r?\n[ \t]", " ", header or ""))
    if not pairs:
        return b"NIL"
    values = [(name, value[1:-1] if value[:1] == '"' else value) for name, value in pairs]
    return b"(" + b" ".join(_string(k.upper()) + b" " + _string(v) for k, v in values) + b")"


def _parts(body: bytes, boundary: str) -> list[bytes]:
    """The bodies between the delimiters of a multipart body (RFC 2046); a missing close
    delimiter ends the last part at the end of the body."""
    delimiter = rb"(?:\A|\r\n)--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?:\r\n|\Z)"
    parts: list[bytes] = []
    start: int | None = None
    for match in re.finditer(delimiter, body):
        if start is not None:
            parts.append(body[start : match.start()])
        start = None if match[1] else match.end()
        if start is None:
            break
    return parts if start is None else [*parts, body[start:]]


_EMPTY_TEXT_PART = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)'


def _content_type(part: Message) -> tuple[str, str, str | None]:
    """(main type, subtype, boundary). Python's email package raises on some RFC 2231
    parameters (`name*` beside `name*0*`): then the part is what RFC 2045 makes of a header it
    cannot read, text/plain."""
    try:
        main, sub = part.get_content_maintype().upper(), part.get_content_subtype().upper()
        return main, sub, part.get_boundary()
    except (TypeError, ValueError, LookupError):
        return "TEXT", "PLAIN", None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except (TypeError, ValueError, LookupError):
        return "attachment"


def _structure(data: bytes) -> bytes:
    """The BODYSTRUCTURE, with extension data, of a message or MIME part, recursively."""
    header, body = (b"", data[2:]) if data.startswith(b"\r\n") else _split(data)
    part = BytesHeaderParser(policy=policy.compat32).parsebytes(header)

    def field(name: str) -> str | None:
        value = part.get(name)  # a Header object when it holds undecodable bytes
        return None if value is None else str(value)

    main, sub, boundary = _content_type(part)
    params = _params(field("Content-Type"))
    if main == "TEXT" and params == b"NIL":
        params = b'("CHARSET" "us-ascii")'  # the RFC 2045 default, as servers report it
    if main == "MULTIPART":
        # A boundary that does not split the body (missing, or RFC 2231 encoded so that it
        # decodes to something else) still gives one part: RFC 3501 has no empty multipart.
        found = _parts(body, boundary) if boundary else []
        children = b"".join(_structure(child) for child in found) or _EMPTY_TEXT_PART
        return b"(" + children + b" " + _string(sub) + b" " + params + b" NIL NIL NIL)"
    fields = [_string(main), _string(sub), params, _string(field("Content-ID"))]
    fields.append(_string(field("Content-Description")))
    fields.append(_string((field("Content-Transfer-Encoding") or "7BIT").strip().upper()))
    fields.append(b"%d" % len(body))
    if main == "TEXT":
        fields.append(b"%d" % body.count(b"\n"))
    disposition = b"NIL"
    if kind := _disposition(part):
        extra = _params(field("Content-Disposition"))
        disposition = b"(" + _string(kind.upper()) + b" " + extra + b")"
    fields += [b"NIL", disposition, b"NIL", b"NIL"]  # MD5, disposition, language, location
    return b"(" + b" ".join(fields) + b")"


def _internal_date(when: datetime) -> bytes:
    month = _MONTHS[when.month - 1]
    return f'"{when.day:02d}-{month}-{when.year} {when:%H:%M:%S} +0000"'.encode()


_FETCH_ITEMS: dict[str, Callable[[StoredMail], bytes]] = {
    "UID": lambda mail: b"%d" % mail.uid,
    "FLAGS": lambda mail: b"()",
    "INTERNALDATE": lambda mail: _internal_date(mail.received),
    "RFC822.SIZE": lambda mail: b"%d" % len(mail.data),
    "RFC822": lambda mail: _literal(mail.data),
    "BODYSTRUCTURE": lambda mail: _structure(mail.data),
    "BODY[]": lambda mail: _literal(mail.data),
    "BODY[HEADER]": lambda mail: _literal(_split(mail.data)[0]),
    "BODY[TEXT]": lambda mail: _literal(_split(mail.data)[1]),
}


# --------------------------------------------------------------------------- one connection


class _Session:
    """One client connection: its login, its selected mailbox, its IDLE."""

    def __init__(
        self, server: ImapServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.user: str | None = None
        self.mailbox: _Mailbox | None = None
        self.known = 0  # how many messages the client was told exist
        self.idling = False
        self.done = False

    def send(self, line: bytes | str) -> None:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")

    def close(self, reason: str) -> None:
        if not self.writer.is_closing():
            self.send(f"* BYE {reason}")
            self.writer.close()

    def start_reporting(self) -> None:
        self.idling = True
        self.report_exists()

    def report_exists(self) -> None:
        if self.mailbox is not None and len(self.mailbox.messages) != self.known:
            self.known = len(self.mailbox.messages)
            self.send(f"* {self.known} EXISTS")

    async def serve(self) -> None:
        self.send(f"* OK [CAPABILITY {CAPABILITIES}] dripper sandbox IMAP server ready")
        try:
            while not self.done:
                data = await self.read_command()
                if data is None:
                    break
                await self.handle(data)
                await self.writer.drain()
        except (ValueError, asyncio.LimitOverrunError):  # a line or literal over the limit
            self.close("command too long")
        except (ConnectionError, asyncio.IncompleteReadError):  # gone, maybe mid-literal
            pass
        finally:
            self.writer.close()

    async def readline(self) -> bytes:
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return b""  # the client went away

    async def read_command(self) -> bytes | None:
        """One command with its literals, as sent; None at the end of the connection."""
        data = b""
        while True:
            line = await self.readline()
            if not line:
                return None
            data += line
            literal = _LITERAL_AT_END.search(line)
            if literal is None:
                return data
            if int(literal[1]) > MAX_LITERAL:
                raise ValueError("literal too large")
            if not literal[2]:
                self.send("+ go ahead")
                await self.writer.drain()
            data += await self.reader.readexactly(int(literal[1]))

    async def handle(self, data: bytes) -> None:
        tag_bytes, _, rest = data.removesuffix(b"\n").removesuffix(b"\r").partition(b" ")
        if not _TAG.fullmatch(tag_bytes) or tag_bytes in (b"*", b"+"):
            self.send("* BAD expected a tag, then a command")
            return
        tag, command = tag_bytes.decode(), "?"
        try:
            args = _parse(rest)[0]
            if not args or not isinstance(args[0], str):
                raise _Bad("expected a command after the tag")
            command = args[0].upper()
            result = await self.run(command, args[1:])
        except _Bad as exc:
            result = f"BAD {exc}"
        except ConnectionError:
            raise
        except Exception as exc:  # a server bug must not end the session: say so instead
            log.exception("IMAP sandbox: %s failed", command)
            result = f"BAD server error: {type(exc).__name__}"
        self.send(f"{tag} {result}")

    async def run(self, name: str, args: list[Arg]) -> str:
        uid = name == "UID"
        if uid:
            name = args[0].upper() if args and isinstance(args[0], str) else "(nothing)"
            args = args[1:]
            if name not in ("FETCH", "SEARCH"):
                raise _Bad(f"UID {name} is not supported here (only UID FETCH and UID SEARCH)")
        if name == "CAPABILITY":
            self.send(f"* CAPABILITY {CAPABILITIES}")
            return "OK CAPABILITY completed"
        if name == "NOOP":
            self.report_exists()
            return "OK NOOP completed"
        if name == "LOGOUT":
            self.done = True
            self.send("* BYE logging out")
            return "OK LOGOUT completed"
        if name == "LOGIN":
            return self.login(args)
        if name not in ("SELECT", "EXAMINE", "SEARCH", "FETCH", "IDLE"):
            raise _Bad(f"unknown or unsupported command {name}")
        if self.user is None:
            raise _Bad(f"{name} needs LOGIN first")
        if name in ("SELECT", "EXAMINE"):
            return self.select(name, args)
        if name == "IDLE":
            return await self.idle()
        if self.mailbox is None:
            raise _Bad(f"{name} needs SELECT or EXAMINE first")
        return self.search(args, uid) if name == "SEARCH" else self.fetch(args, uid)

    def login(self, args: list[Arg]) -> str:
        if self.user is not None:
            raise _Bad("already logged in")
        if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
            raise _Bad("LOGIN needs a user name and a password")
        if not self.server.check_password(args[0], args[1]):
            return "NO [AUTHENTICATIONFAILED] Authentication failed."
        self.user = args[0]
        # As Dovecot does: IMAPClient then knows the capabilities without asking again.
        return f"OK [CAPABILITY {CAPABILITIES}] LOGIN completed"

    def select(self, name: str, args: list[Arg]) -> str:
        self.mailbox = None  # a failed SELECT leaves no mailbox selected (RFC 3501)
        if len(args) != 1 or not isinstance(args[0], str):
            raise _Bad(f"{name} needs one mailbox name")
        if args[0].upper() != "INBOX" or self.user is None:
            return f"NO [NONEXISTENT] Mailbox doesn't exist: {args[0]} (only INBOX here)"
        box = self.server.mailbox(self.user)
        self.mailbox, self.known = box, len(box.messages)
        self.send(r"* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)")
        self.send(f"* {self.known} EXISTS")
        self.send("* 0 RECENT")
        self.send("* OK [PERMANENTFLAGS ()] No flags can be changed")
        self.send(f"* OK [UIDVALIDITY {box.uidvalidity}] UIDs valid")
        self.send(f"* OK [UIDNEXT {box.uidnext}] Predicted next UID")
        mode = "READ-ONLY" if name == "EXAMINE" else "READ-WRITE"  # though nothing can change
        return f"OK [{mode}] {name} completed"

    async def idle(self) -> str:
        self.send("+ idling")
        await self.writer.drain()
        # News (also of mail that came since the last command) only from a moment after
        # "+ idling": imaplib reads that line through a buffer, which would swallow an EXISTS
        # arriving with it, and IMAPClient's idle_check only watches the socket.
        start = asyncio.get_running_loop().call_later(IDLE_REPORT_DELAY, self.start_reporting)
        try:
            line = await self.readline()
        finally:
            self.idling = False
            start.cancel()
        if not line:
            raise ConnectionResetError("the client went away during IDLE")
        return "OK IDLE terminated" if line.strip().upper() == b"DONE" else "BAD expected DONE"

    def numbered(self, spec: Arg, uid: bool) -> dict[int, StoredMail]:
        """The messages in a sequence set (of UIDs when `uid`), by sequence number."""
        assert self.mailbox is not None
        messages = self.mailbox.messages
        largest = (messages[-1].uid if uid else len(messages)) if messages else 0
        ranges = _set_ranges(spec, largest)
        return {
            seq: mail
            for seq, mail in enumerate(messages, 1)
            if any(low <= (mail.uid if uid else seq) <= high for low, high in ranges)
        }

    def search(self, args: list[Arg], uid: bool) -> str:
        assert self.mailbox is not None
        found = dict(enumerate(self.mailbox.messages, 1))
        keys = list(args)
        while keys:
            key = keys.pop(0)
            word = key.upper() if isinstance(key, str) else ""
            if word == "UID" and keys:
                keep = self.numbered(keys.pop(0), True)
            elif word == "ALL" or _SEQUENCE_SET.fullmatch(word):
                keep = found if word == "ALL" else self.numbered(word, False)
            else:
                raise _Bad(f"SEARCH key {key!r} is not supported here (only ALL, UID, sets)")
            found = {seq: mail for seq, mail in found.items() if seq in keep}
        self.send("* SEARCH" + "".join(f" {m.uid if uid else n}" for n, m in found.items()))
        return "OK SEARCH completed"

    def fetch(self, args: list[Arg], uid: bool) -> str:
        if len(args) != 2:
            raise _Bad("FETCH needs a sequence set and data items (no modifiers)")
        wanted = args[1] if isinstance(args[1], list) else [args[1]]
        items = []
        for item in wanted:
            name = item.upper() if isinstance(item, str) else ""
            if section := _BODY_SECTION.fullmatch(name):
                name = f"BODY[{section[1]}]"  # the answer to BODY.PEEK[x] is named BODY[x]
            if name not in _FETCH_ITEMS:
                raise _Bad(f"FETCH {item!r} is not supported here")
            items.append(name)
        if uid and "UID" not in items:
            items.insert(0, "UID")  # UID FETCH answers always carry the UID (RFC 3501)
        for seq, mail in self.numbered(args[0], uid).items():
            parts = [name.encode() + b" " + _FETCH_ITEMS[name](mail) for name in items]
            self.send(b"* %d FETCH (" % seq + b" ".join(parts) + b")")
        return "OK FETCH completed"


# --------------------------------------------------------------------------- the server


class ImapServer:
    """Users, their mailboxes, the listening socket and the open sessions.

    `start` and `stop` run in the event loop that serves; `deliver` and `reset_uidvalidity`
    may be called from that loop or from any other thread.
    """

    def __init__(self, users: Mapping[str, str] | None = None) -> None:
        self._passwords: dict[str, str] = {}
        self._boxes: dict[str, _Mailbox] = {}
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self.host = "127.0.0.1"
        self.port = 0
        for user, password in (users or {}).items():
            self.add_user(user, password)

    def add_user(self, user: str, password: str) -> None:
        self._passwords[user] = password
        self._boxes.setdefault(user, _Mailbox(int(time.time())))

    def check_password(self, user: str, password: str) -> bool:
        expected = self._passwords.get(user)
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    def mailbox(self, user: str) -> _Mailbox:
        return self._boxes[user]

    def settings(self, user: str) -> ImapSettings:
        """The [imap] settings that reach `user`'s INBOX here."""
        return ImapSettings(host=self.host, port=self.port, security="none", username=user)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> ImapServer:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE)
        self.host, self.port = host, int(self._server.sockets[0].getsockname()[1])
        self._loop, self._thread = asyncio.get_running_loop(), threading.get_ident()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.close("server shutting down")
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session, task = _Session(self, reader, writer), asyncio.current_task()
        assert task is not None
        self._sessions.add(session)
        self._tasks.add(task)
        try:
            await session.serve()
        finally:
            self._sessions.discard(session)
            self._tasks.discard(task)

    def _in_loop(self, function: Callable[[], T]) -> T:
        """Run `function` in the server's loop: directly when already there, else handed over."""
        if self._loop is None or threading.get_ident() == self._thread:
            return function()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(function())
            except Exception as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return future.result(timeout=10)

    def deliver(self, user: str, message: bytes) -> int:
        """Append `message` to the user's INBOX as an MTA would; returns its UID. Sessions
        idling on the mailbox hear of it at once."""
        if user not in self._boxes:
            raise KeyError(f"no IMAP user {user!r} in the sandbox: add_user() first")
        data = re.sub(rb"\r?\n", b"\r\n", message)

        def append() -> int:
            box = self._boxes[user]
            box.messages.append(StoredMail(box.uidnext, data, datetime.now(UTC)))
            box.uidnext += 1
            for session in self._sessions:
                if session.mailbox is box and session.idling:
                    session.report_exists()
            return box.uidnext - 1

        return self._in_loop(append)

    def reset_uidvalidity(self, user: str) -> None:
        """A rebuilt index: a new UIDVALIDITY, UIDs from 1 again, sessions on it disconnected."""

        def reset() -> None:
            box = self._boxes[user]
            box.uidvalidity = max(int(time.time()), box.uidvalidity + 1)
            for uid, mail in enumerate(box.messages, 1):
                mail.uid = uid
            box.uidnext = len(box.messages) + 1
            for session in list(self._sessions):
                if session.mailbox is box:
                    session.close("mailbox index rebuilt, UIDVALIDITY changed")

        self._in_loop(reset)

    def idling(self, user: str) -> int:
        """How many sessions wait in IDLE on the user's INBOX, ready to hear of new mail."""
        return self._in_loop(
            lambda: sum(s.idling and s.mailbox is self._boxes[user] for s in self._sessions)
        )
