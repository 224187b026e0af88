"""Logging for `dripper run`: key=value lines on stderr, with every configured secret redacted."""

from __future__ import annotations

import logging
import sys

from dripper.config import Settings


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
