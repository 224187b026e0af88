"""The Problems view (F4) under Pilot: what it lists, the raw item, and each key's action on a
real SQLite database."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Static

from dripper.db import open_db
from dripper.inbound.email.ingest import Cursor, Fetched, account_name, process_pending, store_batch
from dripper.models import Delivery, DeliveryState, InboundItem, InboundState
from dripper.sandbox.seed import COURSE_ADDRESS, SeededLearner, reply_message, seed_course
from tests.fixtures.waiting import until_shown, until_table_focused
from tui.app import DripperApp
from tui.keymap import binding_ids
from tui.screens.inbox import InboxScreen
from tui.screens.problems import ProblemsScreen, ProblemText
from tui.session import DashboardConfig

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
KEY = b"tui-problems-hmac-key-0123456789"
ACCOUNT = account_name("course", "127.0.0.1", "INBOX")
STRANGER = "Mallory <mallory@evil.example>"


async def _scene() -> tuple[list[SeededLearner], int, int, int]:
    """Ann's hello failed, Ben's reflect is uncertain, a stranger's mail is flagged."""
    ann, ben = await seed_course(2, sent=("hello", "reflect"), key=KEY)
    failed, uncertain = ann.delivery_ids["hello"], ben.delivery_ids["reflect"]
    await Delivery.filter(id=failed).update(
        state=DeliveryState.FAILED, last_error="550 5.1.1 user unknown", updated_at=NOW
    )
    await Delivery.filter(id=uncertain).update(
        state=DeliveryState.UNCERTAIN,
        last_error="timed out after the message was written",
        updated_at=NOW - timedelta(hours=1),
    )
    raw = reply_message(STRANGER, COURSE_ADDRESS, "Can I join?\n[bold]x\x1b[31m", subject="Join")
    await store_batch(ACCOUNT, Cursor(1, 1), [Fetched(1, raw, len(raw))], 10_000_000, NOW)
    await process_pending(ACCOUNT, KEY, NOW)
    item = await InboundItem.get(state=InboundState.FLAGGED)
    await InboundItem.filter(id=item.id).update(received_at=NOW - timedelta(minutes=30))
    return [ann, ben], failed, uncertain, item.id


@asynccontextmanager
async def _problems(db: str) -> AsyncIterator[tuple[Pilot[Any], ProblemsScreen]]:
    app = DripperApp(DashboardConfig(db, "anna", timezone="UTC", now=lambda: NOW))
    async with app.run_test(size=(120, 30)) as pilot:
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.press("f4")
        await until_shown(
            pilot, lambda: isinstance(app.screen, ProblemsScreen) and app.screen.loaded
        )
        assert isinstance(app.screen, ProblemsScreen)
        yield pilot, app.screen
        await app.workers.wait_for_complete()
        await pilot.pause()


def _plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _rows(screen: ProblemsScreen) -> list[list[str]]:
    table = screen.query_one("#problems", DataTable)
    return [[_plain(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def _static(screen: Any, selector: str) -> str:
    return _plain(screen.query_one(selector, Static).content)


def _notices(pilot: Pilot[Any]) -> list[str]:
    return [str(n.message) for n in pilot.app._notifications]


async def _reloaded(pilot: Pilot[Any], screen: ProblemsScreen, count: int) -> None:
    await until_shown(pilot, lambda: len(screen.rows) == count)
    await pilot.pause()


async def test_f4_lists_every_problem_with_who_what_and_why(db: str) -> None:
    await _scene()
    async with _problems(db) as (pilot, screen):
        rows = _rows(screen)
        assert [row[:4] for row in rows] == [
            ["sending", "L0", "hello", "failed"],
            ["sending", "L1", "reflect", "uncertain"],
            ["email", "Mallory <mallory@evil.exa…", "Join", "flagged"],
        ]
        assert rows[0][4] == "550 5.1.1 user unknown"
        assert [row[5] for row in rows] == ["0s", "1h", "30m"]
        assert _static(screen, "#problems-status") == "Problems 3 · 2 sending · 1 email"
        detail = _static(screen, "#problem-detail")
        assert "L0 · hello · cohort cohort-learner · email · failed" in detail
        assert detail.endswith("Enter details  s resend  d dismiss")
        await pilot.press("j")
        assert _static(screen, "#problem-detail").endswith("s resend  m mark sent  d dismiss")


async def test_enter_shows_the_raw_mail_literally_and_esc_closes(db: str) -> None:
    await _scene()
    async with _problems(db) as (pilot, screen):
        await pilot.press("G", "enter")
        await until_shown(pilot, lambda: isinstance(pilot.app.screen, ProblemText))
        body = _static(pilot.app.screen, "#problem-body")
        assert "From: Mallory <mallory@evil.example>" in body
        assert "reason: unknown sender: mallory@evil.example" in body
        assert "Can I join?\n[bold]x" in body and "\x1b" not in body  # markup and escapes inert
        await pilot.press("escape")
        await until_shown(pilot, lambda: pilot.app.screen is screen)


async def test_d_dismisses_and_the_row_goes(db: str) -> None:
    _, failed, _, _ = await _scene()
    async with _problems(db) as (pilot, screen):
        await pilot.press("d")
        await _reloaded(pilot, screen, 2)
        assert [row[2] for row in _rows(screen)] == ["reflect", "Join"]
        assert any("L0, hello: dismissed" in notice for notice in _notices(pilot))
    kept = await Delivery.get(id=failed)
    assert kept.state is DeliveryState.FAILED and kept.dismissed_at is not None


async def test_s_on_an_uncertain_delivery_asks_first_then_queues_it(db: str) -> None:
    _, _, uncertain, _ = await _scene()
    async with _problems(db) as (pilot, screen):
        await pilot.press("j", "s")
        await until_shown(pilot, lambda: pilot.app.screen.query(OptionList))
        await pilot.press("down", "enter")  # "Keep it as it is"
        await until_shown(pilot, lambda: pilot.app.screen is screen)
        await pilot.app.workers.wait_for_complete()
        assert (await Delivery.get(id=uncertain)).state is DeliveryState.UNCERTAIN
        await pilot.press("s")
        await until_shown(pilot, lambda: pilot.app.screen.query(OptionList))
        await pilot.press("enter")  # "Resend: they may get it twice"
        await _reloaded(pilot, screen, 2)
    row = await Delivery.get(id=uncertain)
    assert (row.state, row.attempts) == (DeliveryState.PENDING, 0)
    assert row.last_error is not None and row.last_error.startswith("resent by anna")


async def test_m_marks_sent_and_a_key_that_does_not_fit_says_so(db: str) -> None:
    _, failed, uncertain, _ = await _scene()
    async with _problems(db) as (pilot, screen):
        await pilot.press("m")  # on the failed one: it was never sent
        await until_shown(pilot, lambda: any("Not for this one" in n for n in _notices(pilot)))
        assert (await Delivery.get(id=failed)).state is DeliveryState.FAILED
        await pilot.press("j", "m")
        await _reloaded(pilot, screen, 2)
    assert (await Delivery.get(id=uncertain)).state is DeliveryState.SENT


async def test_r_puts_a_flagged_item_back_to_be_processed(db: str) -> None:
    *_, item_id = await _scene()
    async with _problems(db) as (pilot, screen):
        await pilot.press("G", "r")
        await _reloaded(pilot, screen, 2)
        assert any("put back to be processed" in n for n in _notices(pilot))
    assert (await InboundItem.get(id=item_id)).state is InboundState.PENDING


async def test_with_nothing_wrong_the_view_says_so(db: str) -> None:
    async with _problems(db) as (_, screen):
        assert screen.rows == []
        assert _static(screen, "#problems-empty").startswith("Nothing needs a look")


def test_every_problems_binding_has_an_id_and_a_description() -> None:
    ids = binding_ids([ProblemsScreen.BINDINGS])
    assert len(ids) == len(ProblemsScreen.BINDINGS)
    assert all(key.startswith("problems.") and b.description for key, b in ids.items())
    assert {"problems.retry", "problems.resend", "problems.mark_sent", "problems.dismiss"} <= set(
        ids
    )


# --------------------------------------------------------------------------- snapshot


@pytest.fixture(scope="module")
def problems_url(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_file: Path) -> str:
    path = tmp_path_factory.mktemp("problems") / "dripper.sqlite3"
    shutil.copyfile(migrated_sqlite_file, path)
    url = f"sqlite:///{path}"

    async def fill() -> None:
        async with open_db(url):
            await _scene()

    asyncio.run(fill())
    return url


def test_problems_snapshot(snap_compare: Any, problems_url: str) -> None:
    async def problems_open(pilot: Pilot[None]) -> None:
        await until_shown(pilot, lambda: isinstance(pilot.app.screen, InboxScreen))
        await pilot.press("f4")
        await until_shown(
            pilot,
            lambda: isinstance(pilot.app.screen, ProblemsScreen) and pilot.app.screen.loaded,
        )
        await pilot.press("j")
        await until_table_focused(pilot)

    config = DashboardConfig(
        problems_url, "anna", timezone="UTC", now=lambda: NOW, live_interval=3600
    )
    app = DripperApp(config, open_database=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=problems_open)
