"""`dripper tui` and `dripper bench tui` (added to the dripper command by tui.plugin, by name),
and the `dripper.dashboard` entry point the demo opens the dashboard with."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dripper.cli.app import AppContext, pass_app
from dripper.inbox import trainer_handle
from tui.keymap import binding_ids, default_keymap_path, load_keymap
from tui.session import DashboardConfig

if TYPE_CHECKING:
    from tui.app import Background

# Textual's app is imported inside the commands: every `dripper` command loads this module.


@click.command("tui")
@click.option(
    "--trainer",
    "handle",
    help="Who sits at the keyboard (default: `trainer` in dripper.toml, DRIPPER_TRAINER, or "
    "your login name).",
)
@pass_app
def tui_cmd(app: AppContext, handle: str | None) -> None:
    """Open the trainers' dashboard: the shared inbox, learners and cohorts.

    Keyboard first, usable over SSH in an 80x24 terminal. `?` lists every key, ctrl+p opens the
    command palette. Replies go out through `dripper run` on the learner's own channel; changes
    made by `dripper run` or another trainer appear within a second or two.
    """
    from tui.app import DripperApp

    settings = app.settings
    config = DashboardConfig(
        database_url=settings.database_url,
        trainer_handle=trainer_handle(handle or settings.trainer),
        timezone=settings.timezone,
        canned_replies=settings.canned_replies,
        keymap=default_keymap_path(),
        media_folder=settings.media_folder,
    )
    dashboard = DripperApp(config, open_database=True)
    # A bad keymap is reported here, on one line, before the screen is taken over.
    load_keymap(config.keymap or default_keymap_path(), binding_ids(dashboard.binding_groups()))
    dashboard.run()


@click.command("tui")
@click.option(
    "--conversations", default=50_000, show_default=True, help="Conversations in the inbox."
)
@click.option("--repeat", default=3, show_default=True, help="Runs; medians are reported.")
def bench_tui_cmd(conversations: int, repeat: int) -> None:
    """How fast the dashboard shows a large inbox: first_paint_s (inbox shown) and filter_s
    (switching filter), medians of --repeat runs, as one JSON line. Targets: 1 s and 0.2 s."""
    from tui.bench import run_bench

    click.echo(json.dumps(run_bench(conversations, repeat)))


async def run_dashboard(
    database_url: str,
    *,
    trainer: str,
    timezone: str = "UTC",
    now: Callable[[], datetime] | None = None,
    canned_replies: Path | None = None,
    background: Background | None = None,
    media_folder: Path | None = None,
) -> None:
    """Entry point `dripper.dashboard`: open the dashboard in the running event loop, with the
    database already open (the demo calls it on the inbox it played, with its own clock)."""
    from tui.app import DripperApp

    config = DashboardConfig(
        database_url=database_url,
        trainer_handle=trainer,
        timezone=timezone,
        canned_replies=canned_replies,
        media_folder=media_folder,
    )
    if now is not None:
        config = replace(config, now=now)
    await DripperApp(config, background=background).run_async()
