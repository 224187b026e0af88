"""IMAP servers for the email tests (Dovecot and the embedded one), and the .eml samples.

`dovecot` (session scope) starts one Dovecot child process with its own configuration in a
temporary directory (dripper.sandbox.dovecot: 127.0.0.1 on a free port, no TLS, passwd-file
users, maildirs as nobody). Without Dovecot (or without root) the tests that use it are skipped
with the reason.

`mailbox` gives each test an IMAP user of its own, so tests never see each other's mail. It is
parametrized over two servers: every test using it runs against real Dovecot and against
dripper.sandbox.imap's embedded server (started in the test's event loop), which keeps the
embedded one honest and the email tests running where Dovecot cannot.

`eml(name, **values)` reads a sample and fills its `{{NAME}}` placeholders (addresses carrying
tokens, Message-IDs of our sent mail), so one sample serves any learner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dripper.config import ImapSettings
from dripper.sandbox.dovecot import PASSWORD, Dovecot, dovecot_missing
from dripper.sandbox.imap import ImapServer

MAIL_DIR = Path(__file__).parent / "data" / "mail"


def eml(name: str, **values: str) -> bytes:
    """The bytes of tests/data/mail/<name>.eml with {{KEY}} replaced by values[KEY.lower()]."""
    raw = (MAIL_DIR / f"{name}.eml").read_bytes()
    for key, value in values.items():
        raw = raw.replace(b"{{" + key.upper().encode() + b"}}", value.encode())
    assert b"{{" not in raw, f"{name}.eml has placeholders left: {raw[:300]!r}"
    return raw


@dataclass
class Mailbox:
    server: Dovecot | ImapServer
    user: str
    settings: ImapSettings
    password: str = PASSWORD

    def deliver(self, message: bytes, sender: str = "someone@example.org") -> None:
        if isinstance(self.server, Dovecot):
            self.server.deliver(self.user, message, sender)
        else:
            self.server.deliver(self.user, message)

    def reset_uidvalidity(self) -> None:
        self.server.reset_uidvalidity(self.user)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    missing = dovecot_missing()
    if missing:
        print(f"SKIP: {missing}")
        pytest.skip(missing)
    server = Dovecot().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["dovecot", "embedded"])
async def mailbox(request: pytest.FixtureRequest) -> AsyncIterator[Mailbox]:
    if request.param == "dovecot":
        server: Dovecot = request.getfixturevalue("dovecot")
        user = server.new_user()
        yield Mailbox(server, user, server.settings(user))
        return
    embedded = await ImapServer({"course": PASSWORD}).start()
    try:
        yield Mailbox(embedded, "course", embedded.settings("course"))
    finally:
        await embedded.stop()
