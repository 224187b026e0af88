"""Local stand-ins for the outside world (the Bot API, SMTP, IMAP) and seed data, for tests,
benchmarks and the demo."""

from dripper.sandbox.server import RunningServer, serve, start_server
from dripper.sandbox.telegram.emulator import FaultKind, SendRecord, TelegramEmulator

__all__ = ["FaultKind", "RunningServer", "SendRecord", "TelegramEmulator", "serve", "start_server"]
