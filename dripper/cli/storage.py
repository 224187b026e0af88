"""Subcommands: storage (`dripper migrate`)."""

from __future__ import annotations

import asyncio

import click

from dripper import db
from dripper.cli.app import AppContext, pass_app


@click.command("migrate")
@pass_app
def migrate_cmd(app: AppContext) -> None:
    """Bring the database schema up to date with this version of dripper.

    An empty database is migrated on first use anyway; run this after upgrading dripper, once the
    database is backed up.
    """
    url: str = app.settings.database_url
    applied = asyncio.run(db.migrate(url))
    where = db.redact_url(url)
    if not applied:
        click.echo(f"{where}: database is up to date")
        return
    for name in applied:
        click.echo(f"applied {name}")
    click.echo(f"{where}: {len(applied)} migration(s) applied, database is up to date")
