"""The embedded IMAP server (dripper.sandbox.imap), driven by IMAPClient, dripper's own poller
and a raw socket for what a well-behaved client never sends.

The email tests in test_email_inbound.py also run against it (tests/fixtures/mail.py parametrizes
their `mailbox` over Dovecot and this server); this file covers the server itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pytest
from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import LoginError  # type: ignore[import-untyped]

from dripper.inbound.email.parse import attachments_from_bodystructure
from dripper.inbound.email.poller import ImapPoller, PollerOptions, PollReport
from dripper.models import InboundItem, Message
from dripper.sandbox.imap import ImapServer
from dripper.sandbox.seed import reply_message, seed_course
from tests.fixtures.waiting import eventually

USER, PASSWORD = "course", 'pa ss"word'  # a password that has to be quoted
KEY = b"sandbox-imap-test-key-0123456789"


@pytest.fixture
async def server() -> AsyncIterator[ImapServer]:
    running = await ImapServer({USER: PASSWORD, "other": "x"}).start()
    try:
        yield running
    finally:
        await running.stop()


def mail(n: int, body: str = "Hello") -> bytes:
    """A small message with LF line ends, as many programs write them."""
    head = f"From: l{n}@example.net\nSubject: reply {n}\nMessage-ID: <m{n}@example.net>\n"
    return f"{head}\n{body}\n".encode()


def client(server: ImapServer, *, select: bool = True) -> IMAPClient:
    imap = IMAPClient(server.host, port=server.port, ssl=False, timeout=5)
    imap.login(USER, PASSWORD)
    if select:
        imap.select_folder("INBOX", readonly=True)
    return imap


class Raw:
    """A client speaking the protocol by hand over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: ImapServer) -> Raw:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        raw = cls(reader, writer)
        assert (await raw.line()).startswith(b"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+]")
        return raw

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 5)

    async def send(self, data: bytes, tag: bytes | None = None) -> list[bytes]:
        """Send `data` (a CRLF is added); the lines answered up to `tag`'s completion."""
        self.writer.write(data + b"\r\n")
        await self.writer.drain()
        tag = tag if tag is not None else data.split(b" ", 1)[0]
        lines = [await self.line()]
        while not lines[-1].startswith(tag + b" ") and not lines[-1].startswith(b"* BAD"):
            lines.append(await self.line())
        return lines

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# --------------------------------------------------------------------------- IMAPClient


async def test_login_select_search_and_fetch_with_imapclient(server: ImapServer) -> None:
    first = server.deliver(USER, mail(1))
    second = server.deliver(USER, mail(2, "Zweite Nachricht, grüß dich"))
    server.deliver("other", mail(3))  # another user's mailbox: never seen here

    def session() -> tuple[dict[bytes, Any], list[int], list[int], dict[int, dict[bytes, Any]]]:
        imap = client(server, select=False)
        assert imap.select_folder("INBOX")[b"READ-WRITE"] is True  # IMAPClient's default
        status = imap.select_folder("INBOX", readonly=True)
        everything = imap.search(["UID", "1:*"])
        above = imap.search(["UID", f"{second + 5}:*"])  # n:* always includes the last UID
        fetched = imap.fetch(everything, [b"RFC822.SIZE", b"BODY.PEEK[]", b"INTERNALDATE"])
        imap.logout()
        return status, everything, above, fetched

    status, everything, above, fetched = await asyncio.to_thread(session)
    assert (status[b"EXISTS"], status[b"UIDNEXT"], status[b"READ-ONLY"]) == (2, 3, [b""])
    assert isinstance(status[b"UIDVALIDITY"], int)
    assert (everything, above) == ([first, second], [second])
    body = fetched[first][b"BODY[]"]
    assert body == mail(1).replace(b"\n", b"\r\n")  # stored as IMAP presents mail: CRLF
    assert fetched[first][b"RFC822.SIZE"] == len(body)
    assert "grüß dich".encode() in fetched[second][b"BODY[]"]


async def test_wrong_password_and_unknown_user_are_refused(server: ImapServer) -> None:
    def login(user: str, password: str) -> None:
        imap = IMAPClient(server.host, port=server.port, ssl=False, timeout=5)
        try:
            imap.login(user, password)
        finally:
            imap.shutdown()

    with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        await asyncio.to_thread(login, USER, "wrong")
    with pytest.raises(LoginError):
        await asyncio.to_thread(login, "nobody", PASSWORD)


async def test_idle_reports_new_mail_delivered_from_the_loop_and_from_a_thread(
    server: ImapServer,
) -> None:
    imap = await asyncio.to_thread(client, server)
    await asyncio.to_thread(imap.idle)

    async def next_responses() -> list[tuple[object, ...]]:
        """idle_check in short steps until something arrives, with a deadline."""
        responses = await eventually(
            lambda: asyncio.to_thread(imap.idle_check, 0.1),
            seconds=5,
            interval=0,  # idle_check itself waits
            message="an IDLE response",
        )
        return list(responses)

    server.deliver(USER, mail(1))
    assert await next_responses() == [(1, b"EXISTS")]
    delivered = threading.Thread(target=server.deliver, args=(USER, mail(2)))
    delivered.start()
    assert await next_responses() == [(2, b"EXISTS")]
    await asyncio.to_thread(delivered.join)
    done, _ = await asyncio.to_thread(imap.idle_done)
    assert done == b"IDLE terminated"
    # Mail that came while the client was busy is reported when it idles again.
    server.deliver(USER, mail(3))
    await asyncio.to_thread(imap.idle)
    assert await next_responses() == [(3, b"EXISTS")]
    await asyncio.to_thread(imap.idle_done)
    await asyncio.to_thread(imap.logout)


async def test_bodystructure_lists_the_attachments_of_a_large_message(server: ImapServer) -> None:
    message = EmailMessage()
    message["From"] = "ann@example.net"
    message["Subject"] = "scan"
    message.set_content("See the scan.")
    message.add_attachment(b"%PDF" * 1000, maintype="application", subtype="pdf", filename="a.pdf")
    uid = server.deliver(USER, bytes(message))

    def structure() -> object:
        imap = client(server)
        try:
            return imap.fetch([uid], [b"BODY.PEEK[HEADER]", b"BODYSTRUCTURE"])[uid]
        finally:
            imap.logout()

    data = await asyncio.to_thread(structure)
    assert isinstance(data, dict)
    header = data[b"BODY[HEADER]"]
    assert header.startswith(b"From: ann@example.net\r\n") and header.endswith(b"\r\n\r\n")
    (attachment,) = attachments_from_bodystructure(data[b"BODYSTRUCTURE"])
    assert (attachment.filename, attachment.mime_type) == ("a.pdf", "application/pdf")
    assert 3990 <= attachment.size <= 4010  # estimated from the base64 size, as for Dovecot


# --------------------------------------------------------------------------- dripper's poller


async def test_the_poller_fetches_what_is_there_then_wakes_on_delivery(
    db: str, server: ImapServer
) -> None:
    (learner,) = await seed_course(1, key=KEY)
    replies = [
        reply_message(
            learner.email, learner.reply_to(KEY), f"Tried it, take {n}!", message_id=f"<a{n}@x>"
        )
        for n in range(3)
    ]
    server.deliver(USER, replies[0])
    server.deliver(USER, replies[1])
    cycles: asyncio.Queue[PollReport] = asyncio.Queue()
    poller = ImapPoller(
        server.settings(USER),
        PASSWORD,
        KEY,
        PollerOptions(poll_interval=60),
        on_cycle=cycles.put_nowait,
    )
    await poller.connect()
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    first = await asyncio.wait_for(cycles.get(), 10)
    assert (first.fetched, first.stored, first.processed["reply"]) == (2, 2, 2)
    await eventually(lambda: server.idling(USER) == 1, seconds=5)
    server.deliver(USER, replies[2])  # IDLE wakes the poller long before the 60 s poll
    second = await asyncio.wait_for(cycles.get(), 10)
    assert (second.stored, second.processed["reply"]) == (1, 1)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sorted(m.body for m in await Message.all()) == [f"Tried it, take {n}!" for n in range(3)]


async def test_a_new_uidvalidity_makes_the_poller_rescan_without_duplicates(
    db: str, server: ImapServer
) -> None:
    (learner,) = await seed_course(1, key=KEY)
    for n in range(2):
        server.deliver(USER, reply_message(learner.email, learner.reply_to(KEY), f"R{n}"))

    async def ingest() -> PollReport:
        poller = ImapPoller(server.settings(USER), PASSWORD, KEY)
        await poller.connect()
        try:
            return await poller.poll_once()
        finally:
            await poller.close()

    first = await ingest()
    again = await ingest()
    assert (first.stored, again.fetched) == (2, 0)  # the cursor holds: nothing fetched twice
    server.reset_uidvalidity(USER)
    server.deliver(USER, reply_message(learner.email, learner.reply_to(KEY), "R2"))
    rescan = await ingest()
    assert rescan.rescanned and rescan.uidvalidity > first.uidvalidity
    assert (rescan.fetched, rescan.stored, rescan.duplicates) == (3, 1, 2)
    assert await InboundItem.all().count() == 3


async def test_reset_disconnects_the_sessions_on_the_mailbox(server: ImapServer) -> None:
    raw = await Raw.open(server)
    await raw.send(b'a1 LOGIN course "pa ss\\"word"')
    assert (await raw.send(b"a2 EXAMINE INBOX"))[-1] == b"a2 OK [READ-ONLY] EXAMINE completed\r\n"
    server.reset_uidvalidity(USER)
    assert (await raw.line()).startswith(b"* BYE mailbox index rebuilt")
    assert await raw.line() == b""  # closed
    await raw.close()


# --------------------------------------------------------------------------- the protocol, by hand


async def test_unknown_and_malformed_commands_get_bad_and_the_session_goes_on(
    server: ImapServer,
) -> None:
    raw = await Raw.open(server)
    assert await raw.send(b"a1 FROBNICATE") == [
        b"a1 BAD unknown or unsupported command FROBNICATE\r\n"
    ]
    assert (await raw.send(b"a2 SELECT INBOX"))[-1] == b"a2 BAD SELECT needs LOGIN first\r\n"
    assert (await raw.send(b"\x16\x03\x01 garbage", b"*")) == [
        b"* BAD expected a tag, then a command\r\n"
    ]
    assert (await raw.send(b"a3 LOGIN course"))[-1].startswith(b"a3 BAD LOGIN needs")
    # A password with a literal: the server asks for it, then reads exactly that many bytes.
    secret = PASSWORD.encode()
    raw.writer.write(b"a4 LOGIN course {%d}\r\n" % len(secret))
    assert await raw.line() == b"+ go ahead\r\n"
    assert await raw.send(secret, b"a4") == [
        b"a4 OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] LOGIN completed\r\n"
    ]
    assert (await raw.send(b"a5 FETCH 1 (FLAGS)"))[
        -1
    ] == b"a5 BAD FETCH needs SELECT or EXAMINE first\r\n"
    await raw.send(b"a6 SELECT Archive")
    assert (await raw.send(b"a7 SELECT INBOX"))[-1] == b"a7 OK [READ-WRITE] SELECT completed\r\n"
    server.deliver(USER, mail(1))
    bad = {
        b"b1 FETCH 1 (ENVELOPE)": b"b1 BAD FETCH 'ENVELOPE' is not supported here",
        b"b2 FETCH x:y (UID)": b"b2 BAD invalid sequence set 'x:y'",
        b"b3 UID STORE 1 +FLAGS (\\Seen)": b"b3 BAD UID STORE is not supported here",
        b"b4 SEARCH FROM ann": b"b4 BAD SEARCH key 'FROM' is not supported here",
        b"b5 FETCH 1 (UID": b"b5 BAD missing ')'",
        b'b6 LOGIN "unterminated': b"b6 BAD unterminated quoted string",
        b"b7 APPEND INBOX {3+}\r\nabc": b"b7 BAD unknown or unsupported command APPEND",
    }
    for command, answer in bad.items():
        assert (await raw.send(command))[-1].startswith(answer), command
    assert await raw.send(b"c1 NOOP") == [b"* 1 EXISTS\r\n", b"c1 OK NOOP completed\r\n"]
    assert await raw.send(b"c2 UID FETCH 1:* (FLAGS)") == [
        b"* 1 FETCH (UID 1 FLAGS ())\r\n",
        b"c2 OK FETCH completed\r\n",
    ]
    assert await raw.send(b"c3 LOGOUT") == [b"* BYE logging out\r\n", b"c3 OK LOGOUT completed\r\n"]
    assert await raw.line() == b""
    await raw.close()


async def test_an_endless_line_ends_that_connection_only(server: ImapServer) -> None:
    raw = await Raw.open(server)
    raw.writer.write(b"a1 NOOP " + b"x" * 100_000 + b"\r\n")
    assert await raw.line() == b"* BYE command too long\r\n"
    assert await raw.line() == b""
    await raw.close()
    other = await Raw.open(server)  # the server itself is fine
    assert await other.send(b"a1 NOOP") == [b"a1 OK NOOP completed\r\n"]
    await other.close()
