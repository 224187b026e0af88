"""Mail the server cannot send, or that trips a parser: it is skipped with a flag after a few
tries, the messages after it are received, and the mailbox never stalls (real Dovecot)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dripper.inbound.email.ingest import load_cursor
from dripper.inbound.email.poller import FETCH_TRIES, ImapPoller, PollerOptions
from dripper.models import InboundItem, InboundState
from dripper.sandbox.dovecot import Dovecot
from dripper.sandbox.imap import ImapServer, _structure
from tests.fixtures.mail import PASSWORD
from tests.fixtures.waiting import eventually

KEY = b"poison-test-hmac-key-0123456789ab"


def _mail(n: int) -> bytes:
    return (
        f"From: learner{n}@example.com\r\nTo: course@example.com\r\nSubject: note {n}\r\n"
        f"Message-ID: <note-{n}@example.com>\r\n\r\nnote {n}\r\n"
    ).encode()


@pytest.fixture
async def dovecot_user(db: str, dovecot: Dovecot) -> AsyncIterator[tuple[Dovecot, str]]:
    yield dovecot, dovecot.new_user()


async def test_a_message_dovecot_cannot_send_is_flagged_and_the_rest_arrive(
    dovecot_user: tuple[Dovecot, str],
) -> None:
    server, user = dovecot_user
    for n in range(3):
        server.deliver(user, _mail(n))
    # Maildir names do not sort in delivery order (Dovecot's microseconds are not zero-padded):
    # find the middle message by its content.
    new = (server.maildir(user) / "new").iterdir()
    [unreadable] = [f for f in new if b"<note-1@example.com>" in f.read_bytes()]
    os.chmod(unreadable, 0)  # Dovecot answers FETCH of it with an internal error and hangs up
    poller = ImapPoller(server.settings(user), PASSWORD, KEY, PollerOptions(backoff_initial=0))
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:

        async def all_stored() -> bool:
            assert not task.done(), task
            return await InboundItem.all().count() == 3

        await eventually(all_stored, seconds=60)
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task
        os.chmod(unreadable, 0o600)
    items = await InboundItem.all().order_by("id")
    [skipped] = [item for item in items if item.external_id.startswith("unfetchable:")]
    assert skipped.state is InboundState.FLAGGED
    assert f"({FETCH_TRIES} tries)" in (skipped.error or "")
    received = sorted(bytes(item.payload) for item in items if item is not skipped)
    assert received == [_mail(0), _mail(2)]
    cursor = await load_cursor(poller.account)
    assert cursor is not None and cursor.last_uid == 3  # moved past it


RFC2231 = (
    b"From: learner@example.com\r\nTo: course@example.com\r\nSubject: odd\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary*0*=utf-8''%FF; boundary*1=B\r\n\r\n"
    b"--B\r\nContent-Type: text/plain; name*0*=utf-8''%FF\r\n\r\nhi\r\n--B--\r\n"
)


def test_the_embedded_server_describes_rfc_2231_parameters_validly() -> None:
    structure = _structure(RFC2231)
    assert structure.startswith(b'(("TEXT" "PLAIN"')  # a multipart has at least one part
    assert b'"BOUNDARY*0*" "utf-8\'\'%FF"' in structure


async def test_a_large_message_with_rfc_2231_parameters_is_received(
    db: str, tmp_path: Path
) -> None:
    embedded = await ImapServer({"course": PASSWORD}).start()
    try:
        embedded.deliver("course", RFC2231 + b"x" * 5000)
        poller = ImapPoller(
            embedded.settings("course"), PASSWORD, KEY, PollerOptions(max_message_bytes=1000)
        )
        await poller.connect()
        try:
            report = await poller.poll_once()  # headers and BODYSTRUCTURE only: too large
        finally:
            await poller.close()
    finally:
        await embedded.stop()
    assert report.stored == 1
    [item] = await InboundItem.all()
    assert "only the headers were stored" in (item.error or "")
