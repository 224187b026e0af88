"""What `dripper run` assembles: channels from the settings, the single-runner lock, the worker.

Kept apart from the CLI so the demo and the benchmarks build the same thing in-process.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from dripper.channels.base import Channel
from dripper.channels.ratelimit import TokenBucket
from dripper.channels.telegram.budget import ChatPacer, shared_telegram_budget, telegram_budget
from dripper.channels.telegram.channel import TelegramChannel
from dripper.config import Settings
from dripper.errors import DripperError
from dripper.models import Channel as ChannelName


def signing_key(settings: Settings) -> bytes | None:
    """The HMAC key for reply and unsubscribe tokens; email needs one, Telegram does not."""
    key = settings.security.hmac_key
    return key.get_secret_value().encode() if key is not None else None


class RedactSecrets(logging.Filter):
    """Replaces every configured secret in a log line with "***", whatever logged it."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if len(secret) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            redacted = message
            for secret in self._secrets:
                redacted = redacted.replace(secret, "***")
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def configure_logging(settings: Settings, *, verbose: bool) -> None:
    """key=value lines on stderr, with every secret of `settings` redacted."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("aiosqlite", "tortoise", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    secrets = [
        value.get_secret_value()
        for value in (
            settings.telegram.token,
            settings.telegram.webhook_secret,
            settings.smtp.password,
            settings.imap.password,
            settings.security.hmac_key,
        )
        if value is not None
    ]
    redact = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def build_channels(settings: Settings, *, unlimited: bool = False) -> dict[ChannelName, Channel]:
    """Every channel the settings configure; an error saying what to set when there is none."""
    channels: dict[ChannelName, Channel] = {}
    telegram = settings.telegram
    if telegram.token is not None:
        token = telegram.token.get_secret_value()
        if unlimited:
            channel = TelegramChannel(token, telegram.api_url)
        elif settings.database_url.startswith(("postgres://", "postgresql://")):
            # PostgreSQL: several workers may send for this bot; they share one budget.
            channel = TelegramChannel(
                token,
                telegram.api_url,
                shared_budget=shared_telegram_budget(token, telegram.messages_per_second),
            )
        else:
            channel = TelegramChannel(
                token,
                telegram.api_url,
                budget=telegram_budget(telegram.messages_per_second),
                pacer=ChatPacer(),
            )
        channels[ChannelName.TELEGRAM] = channel
    if settings.smtp.host:
        from dripper.channels.email.channel import EmailChannel

        limiter = TokenBucket(None) if unlimited else None
        channels[ChannelName.EMAIL] = EmailChannel(settings.smtp, limiter=limiter)
    if not channels:
        raise DripperError(
            "no channel is configured, so nothing could be sent: set DRIPPER_TELEGRAM_TOKEN (or "
            "[telegram] token_file) for Telegram, and/or [smtp] host and from_address "
            "(DRIPPER_SMTP_HOST, DRIPPER_SMTP_FROM_ADDRESS) for email"
        )
    return channels


def sqlite_path(database_url: str) -> Path | None:
    if not database_url.startswith("sqlite://") or ":memory:" in database_url:
        return None
    return Path(database_url.removeprefix("sqlite://").split("?", 1)[0])


@contextlib.contextmanager
def single_runner(database_url: str) -> Iterator[bool]:
    """On SQLite, only one `dripper run` per database: yields True when this process holds the
    lock (so every claim in the database belongs to a dead process). PostgreSQL runs several
    workers and yields False."""
    path = sqlite_path(database_url)
    if path is None:
        yield False
        return
    lock_path = path.with_name(path.name + ".run.lock")
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DripperError(
                f"another `dripper run` ({holder}) is already using {path}; with SQLite one "
                "runner per database (use PostgreSQL to run several workers)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
