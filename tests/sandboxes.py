"""The sandboxes most tests need: the Bot API emulator on a loopback port with a started
Telegram channel (real python-telegram-bot) pointed at it, and an SMTP sink with a started
email channel (real aiosmtplib)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from dripper.channels.email import EmailChannel
from dripper.channels.telegram import TelegramChannel
from dripper.config import SmtpSettings
from dripper.ratelimit import TokenBucket
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.smtp import SmtpSink


@dataclass(frozen=True)
class TelegramSandbox:
    emulator: TelegramEmulator
    channel: TelegramChannel
    api_url: str


@contextlib.asynccontextmanager
async def telegram_sandbox(
    token: str, emulator: TelegramEmulator | None = None, **channel_options: Any
) -> AsyncIterator[TelegramSandbox]:
    emulator = emulator or TelegramEmulator(tokens=[token])
    server = await start_server(emulator, port=0)
    channel = TelegramChannel(token, server.api_url, **channel_options)
    await channel.start()
    try:
        yield TelegramSandbox(emulator, channel, server.api_url)
    finally:
        await channel.close()
        await server.aclose()


@contextlib.asynccontextmanager
async def smtp_sandbox(from_address: str) -> AsyncIterator[tuple[SmtpSink, EmailChannel]]:
    """An SMTP sink on a loopback port and an email channel sending to it, without limits."""
    sink = SmtpSink("127.0.0.1")
    await sink.start()
    settings = SmtpSettings(
        host="127.0.0.1", port=sink.port, security="none", from_address=from_address
    )
    channel = EmailChannel(settings, limiter=TokenBucket(None))
    await channel.start()
    try:
        yield sink, channel
    finally:
        await channel.close()
        await sink.stop()
