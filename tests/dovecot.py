"""A real Dovecot IMAP server for the email tests, and the .eml samples under tests/data/mail.

`dovecot` (session scope) starts one Dovecot child process with its own configuration in a
temporary directory (see dripper.bench.ingest_email.Dovecot: 127.0.0.1 on a free port, no TLS,
passwd-file users, maildirs as nobody). Without Dovecot (or without root) the tests that use it
are skipped with the reason. `mailbox` gives each test an IMAP user of its own, so tests never
see each other's mail.

`eml(name, **values)` reads a sample and fills its `{{NAME}}` placeholders (addresses carrying
tokens, Message-IDs of our sent mail), so one sample serves any learner.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dripper.bench.ingest_email import PASSWORD, Dovecot, dovecot_missing
from dripper.config import ImapSettings

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
    server: Dovecot
    user: str
    settings: ImapSettings
    password: str = PASSWORD

    def deliver(self, message: bytes, sender: str = "someone@example.org") -> None:
        self.server.deliver(self.user, message, sender)

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


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Mailbox:
    user = dovecot.new_user()
    return Mailbox(dovecot, user, dovecot.settings(user))
