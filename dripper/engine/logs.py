"""Logging for `dripper run`: one line per event on stderr, secrets redacted, for journald/Loki.

Levels: dripper's own loggers at INFO (one line per delivery outcome and per inbound item,
dripper.oplog), DEBUG with `-v`; every other library at WARNING unless `-vv` (python-telegram-bot
logs message texts and chat ids at DEBUG, markdown_it and imapclient hundreds of lines).
Formats: `text` (`2026-12-03T09:00:00.123Z level=INFO logger=dripper.engine.dispatcher
delivery id=17 ...`) or `json` (one object per line: ts, level, logger, msg, the event's fields,
and exc for a traceback).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from dripper.config import Settings
from dripper.oplog import FIELDS

LogFormat = Literal["text", "json"]


def _redact(value: str, secrets: list[str]) -> str:
    for secret in secrets:
        value = value.replace(secret, "***")
    return value


class RedactSecrets(logging.Filter):
    """Replaces every configured secret in a log line (message and fields) with "***",
    whatever logged it."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if len(secret) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            redacted = _redact(message, self._secrets)
            if redacted != message:
                record.msg, record.args = redacted, None
            fields = getattr(record, FIELDS, None)
            if fields:
                setattr(
                    record,
                    FIELDS,
                    {
                        key: _redact(value, self._secrets) if isinstance(value, str) else value
                        for key, value in fields.items()
                    },
                )
        return True


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`ts level=INFO logger=name message key=value ...`, one line (tracebacks indented)."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_timestamp(record)} level={record.levelname} logger={record.name} "
            f"{record.getMessage()}"
        )
        fields = getattr(record, FIELDS, None)
        if fields:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the event's fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in (getattr(record, FIELDS, None) or {}).items():
            entry.setdefault(key, value if isinstance(value, int | float | bool) else str(value))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    settings: Settings, *, verbosity: int = 0, log_format: LogFormat = "text"
) -> None:
    """Lines on stderr in `log_format`, with every secret of `settings` redacted; `verbosity`
    is the number of -v (1: dripper at DEBUG, 2: every library too)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
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
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.getLogger("dripper").setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)
