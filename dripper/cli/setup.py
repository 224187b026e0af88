"""Subcommands: `dripper init` writes a commented dripper.toml, an example learners.csv and a
start for the team's canned replies."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import click

from dripper.config import CONFIG_FILE_NAME
from dripper.errors import DripperError
from dripper.inbox.canned import EXAMPLE_CANNED_REPLIES
from dripper.learners.roster import EXAMPLE_CSV
from dripper.shipped import SCHEMA_FILE_NAME, STARTER_ID, starter_curriculum

LEARNERS_FILE_NAME = "learners.csv"
CANNED_FILE_NAME = "canned-replies.yaml"
HMAC_KEY_FILE_NAME = "hmac.key"

CONFIG_TEMPLATE = """\
# dripper configuration. Every key is optional: the commented value is the default.
#
# Any key can be overridden by an environment variable: DRIPPER_<KEY> for a top-level key
# (DRIPPER_DATABASE_URL) and DRIPPER_<SECTION>_<KEY> for a key in a [section]
# (DRIPPER_SMTP_HOST, DRIPPER_TELEGRAM_MESSAGES_PER_SECOND).
#
# SECRETS never go in this file (dripper refuses to start if they do). Give each one either as
# an environment variable, or as a file holding only the secret, named with the *_file key below
# or with the variable followed by _FILE:
#   bot token      DRIPPER_TELEGRAM_TOKEN  or [telegram] token_file (DRIPPER_TELEGRAM_TOKEN_FILE)
#   SMTP password  DRIPPER_SMTP_PASSWORD   or [smtp] password_file (DRIPPER_SMTP_PASSWORD_FILE)
#   IMAP password  DRIPPER_IMAP_PASSWORD   or [imap] password_file (DRIPPER_IMAP_PASSWORD_FILE)
#   HMAC key       DRIPPER_HMAC_KEY        or [security] hmac_key_file (DRIPPER_HMAC_KEY_FILE)
#   webhook secret DRIPPER_TELEGRAM_WEBHOOK_SECRET or [telegram] webhook_secret_file
#
# Relative paths are relative to the directory of this file.

# Where dripper keeps learners, schedules and the inbox. SQLite needs no server; for a team,
# use PostgreSQL: "postgresql://dripper@db.example.com:5432/dripper" (put the password in
# DRIPPER_DATABASE_URL rather than here).
# database_url = "sqlite://dripper.sqlite3"

# The folder of curriculum YAML files.
# curricula_dir = "curricula"

# The time zone used for learners whose row in learners.csv has none (an IANA name).
# timezone = "UTC"

# Your trainer handle: who answers inbox conversations from this keyboard.
# trainer = "anna"

# The team's canned replies for the inbox (a YAML list of id, title, text), relative to this file.
# canned_replies = "canned-replies.yaml"

# With several workers (PostgreSQL): how long a worker's claim on a delivery lasts unless it is
# renewed (live workers renew theirs). A worker that dies leaves its claims to the others after
# this long; they are then sent as uncertain, retried once.
# lease_seconds = 120

# Trainers (`dripper trainers add`) hear of new learner messages in their Telegram chat with the
# bot, else by email: the first at once, then at most one notification per this many seconds.
# notify_batch_seconds = 180

# Photos, voice notes, videos and files learners send are downloaded here (default: a `media`
# folder beside the database), at most media_cap_mb per learner; the dashboard opens them (o).
# media_dir = "media"
# media_cap_mb = 100

# The public https:// address of dripper's web server: every email then carries a one-click
# unsubscribe link (RFC 8058, which Gmail and Yahoo require of bulk senders) to a page under
# it. Your reverse proxy (nginx, Caddy) forwards it to `listen`. Unset: unsubscribe by mailto.
# public_url = "https://dripper.example.com"
# Where `dripper run` serves the unsubscribe pages and the Telegram webhook (host:port).
# listen = "127.0.0.1:8443"

[telegram]
# The Bot API endpoint; point it at a local Bot API server or the sandbox for tests.
# api_url = "https://api.telegram.org/bot"
# A file holding the token @BotFather gave you (or set DRIPPER_TELEGRAM_TOKEN).
# token_file = "/run/secrets/dripper_telegram_token"
# Telegram allows about 30 messages per second per bot. Paid broadcasts (charged in Telegram
# Stars) allow up to 1000: more than 30 needs allow_paid_broadcast = true.
# allow_paid_broadcast = false
# messages_per_second = 30
# Updates come by long polling unless a webhook URL is set: Telegram then POSTs them to that
# public HTTPS address, which must reach `listen` above (e.g. through a reverse proxy). The
# secret Telegram sends along comes from DRIPPER_TELEGRAM_WEBHOOK_SECRET or this file.
# webhook_url = "https://example.com/telegram"
# webhook_secret_file = "/run/secrets/dripper_webhook_secret"

[smtp]
# Outgoing mail server for drips and trainer replies.
# host = "smtp.example.com"
# security is "starttls", "tls" (implicit TLS) or "none"; port follows it when unset:
# 587, 465 or 25.
# security = "starttls"
# port = 587
# username = "trainer@example.com"
# A file holding the password (or set DRIPPER_SMTP_PASSWORD).
# password_file = "/run/secrets/dripper_smtp_password"
# from_address = "trainer@example.com"
# from_name = "Anna from the Sales Academy"
# Stay under your provider's sending limits.
# messages_per_second = 14
# connections = 2
# Bounces come back to a signed address per message (course+bounce-...@), so a forged bounce
# is told apart. Set false if your server only accepts your own address as the sender.
# verp = true
# DKIM signature: `dripper dkim keygen --selector dripper1` writes the key and prints the DNS
# record to publish; then set both. The signing domain is from_address's (or dkim_domain).
# dkim_selector = "dripper1"
# dkim_key_file = "dkim.key"
# dkim_domain = "example.com"

[imap]
# The mailbox learner replies arrive in.
# host = "imap.example.com"
# security is "tls" or "none"; port follows it when unset: 993 or 143.
# security = "tls"
# port = 993
# username = "trainer@example.com"
# A file holding the password (or set DRIPPER_IMAP_PASSWORD).
# password_file = "/run/secrets/dripper_imap_password"
# mailbox = "INBOX"

[security]
# The file holding the key that signs reply tokens, unsubscribe links, return paths and
# Message-IDs (or set DRIPPER_HMAC_KEY instead). `dripper init` wrote a fresh one, readable by
# you alone. Keep it: a new key makes every earlier reply address and unsubscribe link invalid.
hmac_key_file = "hmac.key"
"""


@click.command("init")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Where to write dripper.toml, learners.csv, canned-replies.yaml and hmac.key "
    "(created if missing).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite the files if they exist (never hmac.key or an existing curriculum).",
)
def init_cmd(directory: Path, force: bool) -> None:
    """Write a commented dripper.toml, an example learners.csv, canned-replies.yaml (the
    inbox's reusable answers), a starter curriculum in curricula/ (with the schema editors
    use to check it as you type) and hmac.key (a fresh key, mode 0600) to start from."""
    from dripper.curriculum import json_schema

    curricula = directory / "curricula"
    starter = curricula / f"{STARTER_ID}.yaml"
    files = {
        directory / CONFIG_FILE_NAME: CONFIG_TEMPLATE,
        directory / LEARNERS_FILE_NAME: EXAMPLE_CSV,
        directory / CANNED_FILE_NAME: EXAMPLE_CANNED_REPLIES,
        curricula / SCHEMA_FILE_NAME: json.dumps(json_schema(), indent=2, ensure_ascii=False)
        + "\n",
    }
    # A curriculum is the trainer's work: never replaced, not even with --force.
    if not starter.exists():
        files[starter] = starter_curriculum()
    existing = [path for path in files if path.exists()]
    if existing and not force:
        names = " and ".join(str(path) for path in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise DripperError(f"{names} already {verb}; nothing written (use --force to overwrite)")
    try:
        curricula.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
            click.echo(f"wrote {path}")
        if starter not in files:
            click.echo(f"kept {starter}")
        key = directory / HMAC_KEY_FILE_NAME
        if key.exists():  # never replaced, not even with --force: links signed with it live on
            click.echo(f"kept {key}")
        else:
            _write_private(key, secrets.token_urlsafe(32) + "\n")
            click.echo(f"wrote {key} (the HMAC key, readable by you alone)")
    except OSError as exc:
        raise DripperError(f"cannot write {exc.filename}: {exc.strerror}") from None
    config = directory / CONFIG_FILE_NAME
    in_dir = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(
        "\nNext steps:\n"
        f"  1. edit {config}; put secrets in environment variables or *_file files\n"
        f"  2. edit {starter} (your drip), then: {in_dir}dripper check\n"
        f"  3. {in_dir}dripper learners import {LEARNERS_FILE_NAME} --dry-run, then without"
        " --dry-run\n"
        f"  4. {in_dir}dripper enroll {STARTER_ID} --cohort NAME --course-end "
        f'"YYYY-MM-DD HH:MM" --learners {LEARNERS_FILE_NAME}\n'
    )


def _write_private(path: Path, text: str) -> None:
    """Create `path` with mode 0600 from the start: the key is never readable by others."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
