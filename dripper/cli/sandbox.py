"""Subcommands: sandbox (`dripper sandbox telegram`), local stand-ins for outside services."""

from __future__ import annotations

import click

from dripper.cli.sandbox_smtp import smtp_cmd

DEFAULT_TOKEN = "1000000001:SANDBOX-dripper-demo-token"


@click.group("sandbox")
def sandbox_group() -> None:
    """Run local stand-ins for outside services, for tests, benchmarks and demos."""


@click.command("telegram")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8081,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The port to serve the Bot API on.",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    metavar="TOKEN",
    help=f"A bot token to accept (repeatable). Default: {DEFAULT_TOKEN}",
)
@click.option(
    "--rate-limit/--no-rate-limit",
    default=False,
    show_default=True,
    help="Answer 429 like Telegram above --global-rate msg/s per bot or 1 msg/s per chat.",
)
@click.option(
    "--global-rate",
    type=click.IntRange(1, 100_000),
    default=30,
    show_default=True,
    help="With --rate-limit: messages per second per bot (Telegram: 30, paid broadcasts 1000).",
)
def telegram_cmd(
    host: str, port: int, tokens: tuple[str, ...], rate_limit: bool, global_rate: int
) -> None:
    """Serve a local Telegram Bot API emulator until Ctrl-C.

    Point dripper (or any Bot API client) at the printed api_url. Play learners and inject
    faults with POST <url>/_control/<method> and a JSON object of arguments, e.g.
    /_control/create_user {"user_id": 42, "first_name": "Ada"} then
    /_control/start {"token": "...", "user_id": 42, "payload": "cohort-1"}.
    """
    from dripper.sandbox.server import serve
    from dripper.sandbox.telegram.emulator import TelegramEmulator

    try:
        emulator = TelegramEmulator(
            list(tokens or (DEFAULT_TOKEN,)), rate_limit=rate_limit, global_rate=global_rate
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--token") from exc
    base = f"http://{host}:{port}"
    click.echo(f"Telegram Bot API sandbox on {base}")
    click.echo(f"api_url: {base}/bot")
    for token in tokens or (DEFAULT_TOKEN,):
        click.echo(f"token:   {token}")
    click.echo(f"control: {base}/_control/<method>  (JSON arguments)")
    click.echo("Press Ctrl-C to stop.")
    serve(emulator, host, port)


sandbox_group.add_command(telegram_cmd)


sandbox_group.add_command(smtp_cmd)


if __name__ == "__main__":
    sandbox_group()
