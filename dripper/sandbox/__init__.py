"""Local stand-ins for the outside world (Telegram's Bot API) for tests, benchmarks and the demo."""

from dripper.sandbox.server import RunningServer, serve, start_server
from dripper.sandbox.telegram.emulator import FaultKind, SendRecord, TelegramEmulator

__all__ = ["FaultKind", "RunningServer", "SendRecord", "TelegramEmulator", "serve", "start_server"]
