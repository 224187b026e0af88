"""The dashboard's inbox, help, palette, keymap and live refresh, driven by Textual's Pilot.

Real database, real app: keys are pressed and the database and the widgets are checked.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from rich.text import Text
from textual.command import CommandList
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static

from dripper.errors import DripperError
from dripper.inbox import Folder, add_label, assign, ensure_trainer, reply_to_learner
from dripper.models import Learner
from tests.fixtures.inbox_data import NOW, course, writes
from tests.fixtures.waiting import until_shown
from tui.app import DripperApp
from tui.keymap import binding_ids, load_keymap
from tui.screens.help import HelpScreen
from tui.screens.inbox import InboxScreen
from tui.session import DashboardConfig

LATER = NOW + timedelta(hours=1)


def _app(url: str, **options: object) -> DripperApp:
    config = DashboardConfig(url, "anna", now=lambda: LATER, **options)  # type: ignore[arg-type]
    return DripperApp(config)


def _inbox(app: DripperApp) -> InboxScreen:
    """The inbox screen, wherever it is in the stack (a picker may be on top of it)."""
    return next(screen for screen in app.screen_stack if isinstance(screen, InboxScreen))


def _names(app: DripperApp) -> list[str]:
    table = _inbox(app).query_one("#conversations", DataTable)
    return [str(table.get_row_at(i)[1].plain) for i in range(table.row_count)]  # type: ignore[union-attr]


async def _shown(pilot: Pilot[None], app: DripperApp) -> None:
    await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen) and app.screen.fills > 0)
    await pilot.pause()


async def _press_and_wait(pilot: Pilot[None], app: DripperApp, *keys: str) -> None:
    screen = _inbox(app)
    fills = screen.fills
    await pilot.press(*keys)
    await until_shown(pilot, lambda: screen.fills > fills)
    await pilot.pause()


async def _inbox_of_four() -> dict[str, int]:
    ada, bea, cem, dan = await course("Ada", "Bea", "Cem", "Dan")
    anna = await ensure_trainer("anna")
    ids = {}
    for minutes, learner in enumerate((ada, bea, cem, dan)):
        conversation = await writes(
            learner, f"Question from {learner.first_name}", NOW + timedelta(minutes=minutes)
        )
        ids[learner.first_name] = conversation.id
    await assign(ids["Ada"], anna.id, NOW)
    await reply_to_learner(ids["Cem"], "Answered.", NOW + timedelta(minutes=5), author_id=anna.id)
    await add_label(ids["Bea"], "pivot", NOW)
    return ids


async def test_the_number_keys_switch_folders(db: str) -> None:
    await _inbox_of_four()
    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        assert _names(app) == ["Dan", "Bea", "Ada"]
        expected = {
            "2": ["Ada"],
            "3": ["Dan", "Bea"],
            "4": ["Cem"],
            "7": ["Cem", "Dan", "Bea", "Ada"],
        }
        for key, names in expected.items():
            await _press_and_wait(pilot, app, key)
            assert _names(app) == names, key
        status = str(app.screen.query_one("#inbox-status", Static).render())
        assert "All 4" in status
        assert "unread for anna" in status


async def test_search_cohort_and_label_filters_narrow_the_list(db: str) -> None:
    await _inbox_of_four()
    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        await pilot.press("slash")
        await until_shown(pilot, lambda: isinstance(app.focused, Input))
        await _press_and_wait(pilot, app, *"from bea", "enter")
        assert _names(app) == ["Bea"]
        await _press_and_wait(pilot, app, "escape")
        assert _names(app) == ["Dan", "Bea", "Ada"]

        await pilot.press("l")
        await until_shown(pilot, lambda: isinstance(app.focused, OptionList))
        await _press_and_wait(pilot, app, "down", "enter")  # "#pivot", below "All labels"
        assert _names(app) == ["Bea"]
        await _press_and_wait(pilot, app, "escape")

        await pilot.press("c")
        await until_shown(pilot, lambda: isinstance(app.focused, OptionList))
        await _press_and_wait(pilot, app, "down", "enter")  # "dec"
        assert _names(app) == ["Dan", "Bea", "Ada"]
        assert _inbox(app).query_state.cohort == "dec"


async def test_learner_text_is_shown_literally(db: str) -> None:
    [mallory] = await course("Mal[bold]x[/bold]")
    await writes(mallory, "Click [link=https://evil.example]here[/link]\x1b[2J\x1b]0;pwned\x07!")
    app = _app(db)
    async with app.run_test(size=(120, 30)) as pilot:
        await _shown(pilot, app)
        table = _inbox(app).query_one("#conversations", DataTable)
        _, name, _, preview, *_ = table.get_row_at(0)
        assert isinstance(name, Text) and isinstance(preview, Text)
        assert name.plain.startswith("Mal[bold]x[/bold]")
        assert preview.plain == "Click [link=https://evil.example]here[/link]!"
        assert not preview.spans  # no style came from the learner's text


async def test_the_list_pages_and_loads_more_at_the_end(db: str) -> None:
    learners = await course(*(f"L{n:03d}" for n in range(230)))
    for minutes, learner in enumerate(learners):
        await writes(learner, "hi", NOW + timedelta(seconds=minutes))
    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        screen = _inbox(app)
        await until_shown(pilot, lambda: screen.total == 230)
        assert len(screen.rows) == 200
        more = str(screen.query_one("#inbox-more", Static).render())
        assert "200 of 230 shown" in more
        fills = screen.fills
        await pilot.press("G")
        await until_shown(pilot, lambda: screen.fills > fills and len(screen.rows) == 230)


async def test_a_message_filed_by_another_process_appears_within_two_seconds(
    db: str, tmp_path: Path
) -> None:
    """`dripper run` files learner messages in its own process; the open dashboard notices."""
    [ada] = await course("Ada")
    learner_id = ada.id
    app = _app(db, live_interval=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        assert _names(app) == []
        script = (
            "import asyncio\n"
            "from datetime import UTC, datetime\n"
            "from dripper.db import open_db\n"
            "from dripper.inbox import record_learner_message\n"
            "from dripper.models import Channel\n"
            "async def main():\n"
            f"    async with open_db({db!r}):\n"
            f"        await record_learner_message({learner_id}, Channel.EMAIL, 'From afar',\n"
            "                                     datetime.now(UTC))\n"
            "asyncio.run(main())\n"
        )
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        written = time.monotonic()
        await until_shown(pilot, lambda: _names(app) == ["Ada"], seconds=5)
        assert time.monotonic() - written < 2.0


async def test_the_help_screen_lists_keys_with_their_binding_ids(db: str) -> None:
    app = _app(db)
    async with app.run_test(size=(100, 40)) as pilot:
        await _shown(pilot, app)
        await pilot.press("question_mark")
        await until_shown(pilot, lambda: isinstance(app.screen, HelpScreen))
        table = app.screen.query_one("#help-keys", DataTable)
        rows = {
            str(table.get_row_at(i)[2]): str(table.get_row_at(i)[0]) for i in range(table.row_count)
        }
        assert rows["inbox.folder.mine"] == "2"
        assert rows["inbox.search"] == "/"
        assert rows["app.keys"] == "?"
        await pilot.press("escape")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))


async def test_a_keymap_file_changes_a_key(db: str, tmp_path: Path) -> None:
    await _inbox_of_four()
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('"inbox.folder.mine" = "x"\n')
    app = _app(db, keymap=keymap)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        await _press_and_wait(pilot, app, "x")
        assert _inbox(app).query_state.folder is Folder.MINE
        assert _names(app) == ["Ada"]


def test_a_keymap_with_an_unknown_id_is_a_clear_error(tmp_path: Path) -> None:
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('"inbox.folder.mien" = "x"\n')
    known = binding_ids([InboxScreen.BINDINGS])
    with pytest.raises(DripperError, match=r"keymap.toml: unknown binding id 'inbox.folder.mien'"):
        load_keymap(keymap, known)


async def test_the_command_palette_runs_screen_actions(db: str) -> None:
    await _inbox_of_four()
    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        await pilot.press("ctrl+p")
        await until_shown(pilot, lambda: isinstance(app.focused, Input))
        await pilot.press(*"Waiting")
        # The palette searches in the background; wait until it lists the hit.
        await until_shown(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
        screen = app.screen_stack[1]
        assert isinstance(screen, InboxScreen)
        fills = screen.fills
        await pilot.press("enter")
        await until_shown(pilot, lambda: screen.fills > fills)
        assert screen.query_state.folder is Folder.WAITING


async def test_opening_a_conversation_and_coming_back(db: str) -> None:
    ids = await _inbox_of_four()
    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        assert _inbox(app).rows[0].unread
        await pilot.press("enter")
        await until_shown(pilot, lambda: type(app.screen).__name__ == "ConversationScreen")
        assert app.screen.conversation_id == ids["Dan"]  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        # Coming back reads the list again: Dan's conversation is read now.
        await until_shown(pilot, lambda: not _inbox(app).rows[0].unread)
        assert _inbox(app).selected_id() == ids["Dan"]
        await app.workers.wait_for_complete()


async def test_a_live_reload_keeps_the_cursor_on_the_same_conversation(db: str) -> None:
    ids = await _inbox_of_four()
    ada = await Learner.get(first_name="Ada")
    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        await pilot.press("j")  # Dan, Bea, Ada: on Bea
        assert _inbox(app).selected_id() == ids["Bea"]
        await writes(ada, "Me again", NOW + timedelta(minutes=30))  # Ada moves to the top
        await _press_and_wait_for_reload(pilot, app)
        assert _names(app) == ["Ada", "Dan", "Bea"]
        assert _inbox(app).selected_id() == ids["Bea"]


async def test_escape_in_search_keeps_the_search_and_an_empty_one_clears_it(db: str) -> None:
    await _inbox_of_four()
    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        await pilot.press("slash")
        await until_shown(pilot, lambda: isinstance(app.focused, Input))
        await _press_and_wait(pilot, app, *"bea", "enter")
        await pilot.press("slash")
        await until_shown(pilot, lambda: isinstance(app.focused, Input))
        await pilot.press("escape")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert _inbox(app).query_state.search == "bea"
        await pilot.press("slash")
        await until_shown(pilot, lambda: isinstance(app.focused, Input))
        await pilot.press(*["backspace"] * 3)
        await _press_and_wait(pilot, app, "enter")
        assert _inbox(app).query_state.search is None
        assert _names(app) == ["Dan", "Bea", "Ada"]


async def _press_and_wait_for_reload(pilot: Pilot[None], app: DripperApp) -> None:
    screen = _inbox(app)
    fills = screen.fills
    app.data_changed()
    await until_shown(pilot, lambda: screen.fills > fills)
    await pilot.pause()


async def test_function_keys_switch_screens_without_stacking_them(db: str) -> None:
    from tui.screens.cohorts import CohortsScreen
    from tui.screens.learners import LearnersScreen

    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        await pilot.press("f2")
        await until_shown(pilot, lambda: isinstance(app.screen, LearnersScreen))
        await pilot.press("f3", "f2", "f2")
        await until_shown(pilot, lambda: isinstance(app.screen, LearnersScreen))
        kinds = [type(screen).__name__ for screen in app.screen_stack[1:]]
        assert kinds == ["InboxScreen", "LearnersScreen"]
        await pilot.press("f3")
        await until_shown(pilot, lambda: isinstance(app.screen, CohortsScreen))
        await pilot.press("f1")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert len(app.screen_stack) == 2
        await app.workers.wait_for_complete()


async def test_escape_in_a_filter_picker_keeps_the_filter(db: str) -> None:
    await _inbox_of_four()
    app = _app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot, app)
        await pilot.press("c")
        await until_shown(pilot, lambda: isinstance(app.focused, OptionList))
        await _press_and_wait(pilot, app, "down", "enter")
        assert _inbox(app).query_state.cohort == "dec"
        await pilot.press("c")
        await until_shown(pilot, lambda: isinstance(app.focused, OptionList))
        await pilot.press("escape")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert _inbox(app).query_state.cohort == "dec"
        await pilot.press("c")
        await until_shown(pilot, lambda: isinstance(app.focused, OptionList))
        await _press_and_wait(pilot, app, "enter")  # "All cohorts"
        assert _inbox(app).query_state.cohort is None


def test_dripper_never_imports_the_dashboard() -> None:
    """The core runs without Textual's app: only `tui` imports `dripper`, never the reverse."""
    import ast

    root = Path(__file__).resolve().parents[2] / "dripper"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}: {name}" for name in names if name.split(".")[0] == "tui"]
    assert offenders == []
