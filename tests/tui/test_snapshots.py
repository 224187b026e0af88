"""Snapshots of the dashboard's main screens (pytest-textual-snapshot), at 80x24 and 120x40.

Each snapshot runs the real app over a SQLite file filled beforehand, with a fixed clock so that
ages and times are stable. `pytest --snapshot-update` rewrites them after an intended change.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from dripper.db import open_db
from dripper.inbox import add_label, assign, ensure_trainer, reply_to_learner
from tests.fixtures.inbox_data import NOW, course, writes
from tests.fixtures.waiting import until_shown
from tui.app import DripperApp
from tui.screens.inbox import InboxScreen
from tui.session import DashboardConfig

LATER = NOW + timedelta(hours=3)


async def _fill(url: str) -> None:
    async with open_db(url):
        learners = await course("Ada", "Bea", "Cem", "Dan", "Eva[bold]")
        anna = await ensure_trainer("anna")
        texts = [
            "How do I group dates by month in a pivot table?",
            "Thanks, the shortcut saved me an hour today!",
            "I tried XLOOKUP but it returns #N/A for every row, what am I missing?",
            "Can we move the next session?",
            "Ignore [red]this[/red]\x1b[31m please",
        ]
        ids = []
        for minutes, (learner, text) in enumerate(zip(learners, texts, strict=True)):
            conversation = await writes(learner, text, NOW + timedelta(minutes=10 * minutes))
            ids.append(conversation.id)
        await assign(ids[0], anna.id, NOW)
        await add_label(ids[2], "xlookup", NOW)
        await reply_to_learner(
            ids[1], "Glad it helped!", NOW + timedelta(hours=1), author_id=anna.id
        )


@pytest.fixture(scope="module")
def inbox_url(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_file: Path) -> str:
    path: Path = tmp_path_factory.mktemp("snapshots") / "dripper.sqlite3"
    shutil.copyfile(migrated_sqlite_file, path)
    url = f"sqlite:///{path}"
    asyncio.run(_fill(url))
    return url


def _app(url: str) -> DripperApp:
    # A keymap path of its own: the help screen prints it, and the default is per machine.
    config = DashboardConfig(
        url, "anna", now=lambda: LATER, live_interval=3600, keymap=Path("keymap.toml")
    )
    return DripperApp(config, open_database=True)


async def _inbox_shown(pilot: Pilot[None]) -> None:
    await until_shown(
        pilot,
        lambda: isinstance(pilot.app.screen, InboxScreen) and pilot.app.screen.fills > 0,
        message="the inbox",
    )
    screen = pilot.app.screen
    await until_shown(
        pilot,
        lambda: "unread" in str(screen.query_one("#inbox-status").render()),
        message="the inbox status line",
    )


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_inbox_snapshot(snap_compare: Any, inbox_url: str, size: tuple[int, int]) -> None:
    assert snap_compare(_app(inbox_url), terminal_size=size, run_before=_inbox_shown)


def test_all_folder_snapshot(snap_compare: Any, inbox_url: str) -> None:
    async def all_folder(pilot: Pilot[None]) -> None:
        await _inbox_shown(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, InboxScreen)
        fills = screen.fills
        await pilot.press("7")
        await until_shown(
            pilot,
            lambda: (
                screen.fills != fills and "All" in str(screen.query_one("#inbox-status").render())
            ),
            message="the All folder",
        )

    assert snap_compare(_app(inbox_url), terminal_size=(80, 24), run_before=all_folder)


def test_help_snapshot(snap_compare: Any, inbox_url: str) -> None:
    async def help_open(pilot: Pilot[None]) -> None:
        await _inbox_shown(pilot)
        await pilot.press("question_mark")

    assert snap_compare(_app(inbox_url), terminal_size=(100, 40), run_before=help_open)
