"""Subcommand: `dripper sandbox smtp`, a local SMTP sink that prints what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal

import click


@click.command("smtp")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=2525,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (printed).",
)
@click.option(
    "--security",
    type=click.Choice(["none", "starttls", "tls"]),
    default="none",
    show_default=True,
    help="Offer STARTTLS or speak implicit TLS, with a self-signed certificate.",
)
@click.option("--username", help="Require AUTH with this username (needs --password).")
@click.option("--password", help="The password --username must log in with.")
@click.option("--quiet", is_flag=True, help="Do not print a line per message (benchmarks).")
def smtp_cmd(
    host: str, port: int, security: str, username: str | None, password: str | None, quiet: bool
) -> None:
    """Run a local SMTP sink until Ctrl-C: it accepts every message and keeps none on disk.

    Point dripper at it with [smtp] host = "127.0.0.1", port = the printed port, security =
    "none" (or the --security you chose). The first line printed is
    "SMTP sandbox on HOST:PORT", for scripts.
    """
    if (username is None) != (password is None):
        raise click.BadParameter("give both --username and --password, or neither")
    credentials = (username, password) if username is not None and password is not None else None
    asyncio.run(_serve(host, port, security, credentials, quiet))


async def _serve(
    host: str, port: int, security: str, credentials: tuple[str, str] | None, quiet: bool
) -> None:
    from dripper.sandbox.smtp import ReceivedMessage, SmtpSink

    def show(received: ReceivedMessage) -> None:
        message = received.message
        click.echo(
            f"{received.mail_from} -> {', '.join(received.rcpt_tos)}: "
            f"{message.get('Subject', '')!s} {message.get('Message-ID', '')!s}"
        )

    seen: set[bytes] = set()
    duplicates = 0

    def count(received: ReceivedMessage) -> None:
        # Cheap enough for benchmarks: the Message-ID straight from the raw header block.
        nonlocal duplicates
        match = _MESSAGE_ID.search(received.data.split(b"\r\n\r\n", 1)[0])
        key = match.group(1) if match else received.data
        duplicates += key in seen
        seen.add(key)

    sink = SmtpSink(
        host,
        port,
        security=security,  # type: ignore[arg-type]  # click.Choice guarantees the literal
        credentials=credentials,
        keep_messages=False,
        on_message=count if quiet else show,
    )
    # aiosmtpd logs a deprecation warning per login and one about AUTH without STARTTLS.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    await sink.start()
    click.echo(f"SMTP sandbox on {host}:{sink.port}")
    click.echo(f"security: {security}; auth: {'required' if credentials else 'none'}")
    click.echo("Press Ctrl-C to stop.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await sink.stop()
        click.echo(f"stopped after {sink.received_count} message(s)")
        if quiet:
            summary = {"received": sink.received_count, "duplicates": duplicates}
            click.echo(json.dumps(summary))


_MESSAGE_ID = re.compile(rb"(?im)^Message-ID:\s*(<[^>]*>)")


if __name__ == "__main__":
    smtp_cmd()
