"""The Telegram sandbox most tests need: the Bot API emulator on a loopback port and a started
Telegram channel (real python-telegram-bot) pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from dripper.channels.telegram import TelegramChannel
from dripper.sandbox import TelegramEmulator, start_server


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
