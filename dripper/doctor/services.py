"""Doctor checks that talk to something: the database, the Bot API, SMTP and IMAP.

Each reuses what `dripper run` itself does to connect (the same channel, poller and database
code), so a check passes exactly when `dripper run` would get past that step. Nothing is sent.
"""

from __future__ import annotations

import ssl

from dripper.config import Settings
from dripper.doctor.findings import Finding
from dripper.errors import DripperError

NETWORK_TIMEOUT = 10.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


async def check_database(settings: Settings) -> Finding:
    from dripper.db import redact_url, schema_status

    where = redact_url(settings.database_url)
    try:
        status = await schema_status(settings.database_url)
    except DripperError as exc:
        return Finding.problem("database", str(exc))
    if status.unknown:
        return Finding.problem(
            "database",
            f"{where} was migrated by a newer dripper (unknown migrations: "
            f"{', '.join(status.unknown)})",
            "upgrade dripper to the version that migrated it",
        )
    if not status.exists:
        return Finding.ok("database", f"{where} does not exist yet: the first command creates it")
    if status.pending and status.empty:
        return Finding.ok("database", f"{where} is empty: the first command migrates it")
    if status.pending:
        return Finding.problem(
            "database",
            f"{where} needs the migrations this dripper brings: {', '.join(status.pending)}",
            "back the database up, then run `dripper migrate`",
        )
    return Finding.ok("database", f"{where}: schema up to date ({status.applied} migrations)")


async def check_telegram(settings: Settings) -> list[Finding]:
    """getMe with the token, then getWebhookInfo against the receiving mode configured."""
    from telegram.error import TelegramError

    from dripper.channels.telegram.channel import TelegramChannel

    telegram = settings.telegram
    if telegram.token is None:
        return [Finding.info("telegram", "not configured: no bot token, nothing goes by Telegram")]
    channel = TelegramChannel(telegram.token.get_secret_value(), telegram.api_url)
    try:
        await channel.start()
    except DripperError as exc:
        await channel.close()
        return [Finding.problem("telegram", str(exc))]
    try:
        bot = channel.bot
        findings = [
            Finding.ok("telegram", f"bot @{bot.username} (id {bot.id}) at {telegram.api_url}")
        ]
        try:
            info = await bot.get_webhook_info()
        except TelegramError as exc:
            return [*findings, Finding.problem("webhook", f"getWebhookInfo failed: {exc.message}")]
        findings.append(
            _webhook_finding(settings, info.url, info.last_error_message, info.pending_update_count)
        )
        return findings
    finally:
        await channel.close()


def _webhook_finding(settings: Settings, url: str, last_error: str | None, pending: int) -> Finding:
    wanted = settings.telegram.webhook_url
    if wanted is None:
        if url:
            return Finding.problem(
                "webhook",
                f"Telegram posts this bot's updates to a webhook ({url}), so long polling "
                "cannot receive them",
                "set [telegram] webhook_url to it (and webhook_secret), or remove it: "
                "https://api.telegram.org/bot<TOKEN>/deleteWebhook",
            )
        return Finding.ok("webhook", f"long polling ({pending} updates waiting)")
    if last_error:
        return Finding.warning(
            "webhook",
            f"Telegram's last post to {url or wanted} failed: {last_error} ({pending} updates "
            "waiting)",
            f"check that {wanted} reaches listen ({settings.listen}) through the reverse proxy",
        )
    detail = f"{wanted}, served on {settings.listen}"
    if url != wanted:
        detail += f" (Telegram has {url or 'none'} now; `dripper run` sets it on start)"
    return Finding.ok("webhook", detail)


async def check_smtp(settings: Settings, tls_context: ssl.SSLContext | None = None) -> Finding:
    """Connect, EHLO, STARTTLS (when configured) and login, as the email channel does."""
    from dripper.channels.email.channel import EmailChannel

    smtp = settings.smtp
    if not smtp.host:
        return Finding.info("smtp", "not configured: no [smtp] host, nothing goes by email")
    # DKIM is checked on its own: a bad key must not hide what the server says.
    plain = smtp.model_copy(update={"dkim_selector": None, "dkim_key_file": None})
    channel = EmailChannel(
        plain, signing_key=b"doctor", tls_context=tls_context, timeout=NETWORK_TIMEOUT
    )
    try:
        await channel.start()
    except DripperError as exc:
        return Finding.problem("smtp", str(exc))
    finally:
        await channel.close()
    steps = ["connected", "EHLO"]
    if smtp.security == "starttls":
        steps.append("STARTTLS")
    elif smtp.security == "tls":
        steps[0] = "connected over TLS"
    steps.append(f"logged in as {smtp.username}" if smtp.username else "no login")
    detail = f"{smtp.host}:{smtp.port}: {', '.join(steps)}; sending as {smtp.from_address}"
    if smtp.security == "none" and smtp.username and smtp.host not in _LOOPBACK:
        return Finding.warning(
            "smtp",
            f"{detail}, but the password crosses the network unencrypted",
            'set [smtp] security = "starttls" (port 587) or "tls" (port 465)',
        )
    return Finding.ok("smtp", detail)


async def check_imap(settings: Settings) -> Finding:
    """Login and open the mailbox, as the IMAP poller does."""
    from dripper.inbound.email.poller import ImapPoller

    imap = settings.imap
    if not imap.host:
        if settings.smtp.host:
            return Finding.warning(
                "imap",
                "no [imap] host: learners' email replies and quiz answers never reach the inbox",
                "set [imap] host, username and the password (DRIPPER_IMAP_PASSWORD)",
            )
        return Finding.info("imap", "not configured")
    try:
        poller = ImapPoller.from_settings(settings)
        await poller.connect()
    except DripperError as exc:
        return Finding.problem("imap", str(exc))
    await poller.close()
    return Finding.ok(
        "imap", f"{imap.host}:{imap.port}: logged in as {imap.username}, mailbox {imap.mailbox}"
    )
