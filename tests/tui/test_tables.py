"""The learners and cohorts screens, per-step figures and answers side by side, under Pilot.

The scene is the one tests/fixtures/cohort_scene.py builds with the engine's own
functions (a five-step cohort after its first week, a one-step cohort one learner finished,
quiz and check-in answers, replies to the reflection step), plus Eva, whose name and answer
carry markup and terminal escapes. Keys are pressed on the real app and the database and
widgets are checked. Snapshots show the screens at 80x24 (and the learners at 120x40).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, OptionList, Static

from dripper.db import open_db
from dripper.engine.planner import plan_due
from dripper.enrollments.enroll import enroll
from dripper.enrollments.pause import pause
from dripper.inbox import AnsweredPrompt, record_learner_message
from dripper.models import (
    Channel,
    Cohort,
    Conversation,
    Delivery,
    DeliveryState,
    Enrollment,
    EnrollmentState,
    Learner,
)
from tests.fixtures.cohort_scene import NOW, STATS, STATS_END, Scene, build_scene, checked
from tests.fixtures.waiting import until_shown, until_table_focused
from tui.app import DripperApp
from tui.keymap import binding_ids
from tui.screens.cohorts import AnswerItem, CohortsScreen, StepAnswersScreen, StepFiguresScreen
from tui.screens.conversation import ConversationScreen
from tui.screens.help import HelpScreen
from tui.screens.inbox import InboxScreen
from tui.screens.learners import LearnersScreen
from tui.session import DashboardConfig
from tui.widgets.tables import Column, bar, bar_cell, fit

LATER = NOW + timedelta(hours=3)
TRICKY_NAME = "Eva[bold]"
TRICKY_ANSWER = "Rebuilt [red]x[/red] the KPI\x1b[31m sheet\x1b]0;pwned\x07"
TRICKY_SHOWN = "Rebuilt [red]x[/red] the KPI sheet"
LEARNERS = ["Ana Silva", "Ben Okafor", "Cleo Martin", "Dan Wu", "Eva[bold] Ng"]
STEPS = ["welcome", "reflect", "lookup-quiz", "pivot-checkin", "wrap-up"]

S = TypeVar("S", bound=Screen[Any])


# --------------------------------------------------------------------------- scene


async def _scene() -> Scene:
    """The cohort-stats scene, and Eva in Stats Dec: her due steps sent, one tricky reflection."""
    scene = await build_scene()
    eva = await Learner.create(first_name=TRICKY_NAME, last_name="Ng", email="eva@example.com")
    await enroll(checked(STATS, "stats.yaml"), "Stats Dec", STATS_END, [eva], STATS_END)
    enrollment = await Enrollment.get(learner_id=eva.id)
    await plan_due(NOW, timedelta(days=1))
    await Delivery.filter(enrollment_id=enrollment.id, due_at__lte=NOW).update(
        state=DeliveryState.SENT, sent_at=NOW, channel=Channel.EMAIL
    )
    reflect = await Delivery.get(enrollment_id=enrollment.id, step_id="reflect")
    prompt = AnsweredPrompt(enrollment.id, "reflect", 0, reflect.id)
    at = NOW + timedelta(minutes=90)
    await record_learner_message(eva.id, Channel.EMAIL, TRICKY_ANSWER, at, answers=prompt)
    scene.enrollments["Eva"] = enrollment.id
    return scene


def _app(url: str, **options: Any) -> DripperApp:
    settings: dict[str, Any] = {"timezone": "Europe/Berlin", "now": lambda: LATER}
    settings.update(options)
    return DripperApp(DashboardConfig(url, "anna", **settings))


@asynccontextmanager
async def _running(app: DripperApp, size: tuple[int, int] = (80, 24)) -> AsyncIterator[Pilot[Any]]:
    """Run the app on its inbox; before it stops, let every screen finish reading its data."""
    async with app.run_test(size=size) as pilot:
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        yield pilot
        await app.workers.wait_for_complete()
        await pilot.pause()


async def _shown(pilot: Pilot[Any], kind: type[S]) -> S:
    """Wait until a screen of `kind` is in front and has its data."""
    app = pilot.app

    def ready() -> bool:
        screen = app.screen
        if not isinstance(screen, kind) or not getattr(screen, "loaded", False):
            return False
        return not isinstance(screen, LearnersScreen) or screen.total_known

    await until_shown(pilot, ready)
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, kind)
    return screen


def _cells(table: DataTable[Any], column: int) -> list[str]:
    return [_plain(table.get_row_at(i)[column]) for i in range(table.row_count)]


def _plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _names(screen: LearnersScreen) -> list[str]:
    return _cells(screen.query_one("#learners", DataTable), 0)


def _notices(app: DripperApp) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


def _static(screen: Screen[Any], selector: str) -> str:
    content = screen.query_one(selector, Static).content
    return _plain(content)


async def _refilled(pilot: Pilot[Any], screen: LearnersScreen, *keys: str) -> None:
    fills = screen.fills
    await pilot.press(*keys)
    await until_shown(pilot, lambda: screen.fills > fills and screen.total_known)
    await pilot.pause()


async def _state(enrollment_id: int) -> tuple[EnrollmentState, str | None]:
    enrollment = await Enrollment.get(id=enrollment_id)
    return EnrollmentState(enrollment.state), enrollment.pause_reason


# --------------------------------------------------------------------------- navigation


async def test_f2_and_f3_open_learners_and_cohorts_from_the_inbox(db: str) -> None:
    await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await pilot.press("f2")
        learners = await _shown(pilot, LearnersScreen)
        assert _names(learners) == LEARNERS
        assert "Learners 5" in _static(learners, "#learners-status")
        await pilot.press("escape")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))

        await pilot.press("f3")
        cohorts = await _shown(pilot, CohortsScreen)
        table = cohorts.query_one("#cohorts", DataTable)
        assert _cells(table, 0) == ["Tiny Dec", "Stats Dec"]  # by course end
        assert _cells(table, 1) == ["Tiny course", "Stats course"]
        assert _cells(table, 3) == ["0/0/1", "4/1/0"]  # active/paused/completed
        assert _cells(table, 4)[1] == "████▎   70%"  # 14 of the 20 due steps sent
        assert _cells(table, 6) == ["0", "2"]  # failed + uncertain
        assert "course end Tue 01 Dec 2026 09:00" in _static(cohorts, "#cohort-detail")

        await pilot.press("l")  # the learners of the highlighted cohort
        mine = await _shown(pilot, LearnersScreen)
        assert mine.cohort == "Tiny Dec"
        assert _names(mine) == ["Ana Silva"]
        await pilot.press("escape")
        await until_shown(pilot, lambda: app.screen is cohorts)
        await pilot.press("escape")
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))


async def test_learner_columns_show_channels_state_progress_failures_and_replies(
    db: str,
) -> None:
    await _scene()
    app = _app(db)
    async with _running(app, size=(120, 40)) as pilot:
        await pilot.press("f2")
        screen = await _shown(pilot, LearnersScreen)
        table = screen.query_one("#learners", DataTable)
        ana, ben, cleo, dan, eva = (
            [_plain(cell) for cell in table.get_row_at(i)] for i in range(5)
        )
        assert ana[1:4] == ["@ ✓", "Tiny Dec, Stats Dec", "active"]
        assert ana[4].endswith("5/6") and ana[6] == "1h"  # replied at 14:00, now 15:00
        assert ben[1] == "TG ✗ blocked"
        assert ben[5].startswith("1 Forbidde")  # the line below has the whole reason
        assert cleo[5].startswith("1 read tim") and cleo[6] == "—"
        assert dan[3] == "paused until 17 Dec"
        assert dan[1] == "@ ?"  # an address never used yet
        assert eva[0] == "Eva[bold] Ng"
        detail = _static(screen, "#learner-detail")
        assert detail.startswith("Ana Silva · ana@example.com · Tiny Dec, Stats Dec")
        assert "5 of 6 steps sent, 5 due" in detail

        await pilot.press("j")
        await until_shown(
            pilot, lambda: "blocked by the user" in _static(screen, "#learner-detail")
        )
        assert "@ben_b" in _static(screen, "#learner-detail")
        await pilot.press("j", "j")
        await until_shown(pilot, lambda: "Dan Wu" in _static(screen, "#learner-detail"))
        assert "paused until Thu 17 Dec 13:00" in _static(screen, "#learner-detail")  # Berlin


async def test_search_and_cohort_filter_narrow_the_learners(db: str) -> None:
    await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await pilot.press("f2")
        screen = await _shown(pilot, LearnersScreen)

        await pilot.press("slash")
        await until_shown(pilot, lambda: isinstance(app.focused, Input))
        await _refilled(pilot, screen, *"@ben", "enter")
        assert _names(screen) == ["Ben Okafor"]
        assert "search “@ben”" in _static(screen, "#learners-status")

        await pilot.press("slash")
        await until_shown(pilot, lambda: isinstance(app.focused, Input))
        await _refilled(pilot, screen, "ctrl+u", "enter")  # an empty search: everyone
        assert _names(screen) == LEARNERS

        await pilot.press("c")
        await until_shown(pilot, lambda: isinstance(app.focused, OptionList))
        await _refilled(pilot, screen, "down", "down", "enter")  # All, Stats Dec, Tiny Dec
        assert screen.cohort == "Tiny Dec"
        assert _names(screen) == ["Ana Silva"]
        table = screen.query_one("#learners", DataTable)
        assert _cells(table, 3) == ["done"]  # her Tiny enrollment only
        assert _cells(table, 4)[0].endswith("1/1")
        await pilot.press("c")
        await until_shown(pilot, lambda: isinstance(app.focused, OptionList))
        await pilot.press("escape")  # cancelling the picker keeps the filter
        await until_shown(pilot, lambda: app.screen is screen)
        assert screen.cohort == "Tiny Dec"

        await pilot.press("slash")
        await until_shown(pilot, lambda: isinstance(app.focused, Input))
        await _refilled(pilot, screen, *"nobody", "enter")
        assert _names(screen) == []
        assert "No learner matches" in _static(screen, "#learners-more")


async def test_the_learner_list_pages_and_loads_more_at_the_end(db: str) -> None:
    await Learner.bulk_create(
        [Learner(first_name=f"L{n:03d}", email=f"l{n}@example.org") for n in range(230)]
    )
    app = _app(db)
    async with _running(app) as pilot:
        await pilot.press("f2")
        screen = await _shown(pilot, LearnersScreen)
        assert (len(screen.rows), screen.total) == (200, 230)
        assert "200 of 230 shown" in _static(screen, "#learners-more")
        await pilot.press("G")
        await until_shown(pilot, lambda: len(screen.rows) == 230)
        await pilot.press("G")
        table = screen.query_one("#learners", DataTable)
        await until_shown(pilot, lambda: table.cursor_row == 229)
        assert not screen.query_one("#learners-more", Static).display
        await pilot.press("g")
        await until_shown(pilot, lambda: table.cursor_row == 0)


# --------------------------------------------------------------------------- pause and resume


async def test_p_and_r_pause_and_resume_the_highlighted_learner(db: str) -> None:
    scene = await _scene()
    cleo = scene.enrollments["Cleo"]
    app = _app(db)
    async with _running(app) as pilot:
        await pilot.press("f2")
        screen = await _shown(pilot, LearnersScreen)
        table = screen.query_one("#learners", DataTable)
        await pilot.press("j", "j")
        assert screen.selected() is not None and screen.selected().name == "Cleo Martin"  # type: ignore[union-attr]

        await pilot.press("p")
        await until_shown(pilot, lambda: _cells(table, 3)[2] == "paused")
        assert await _state(cleo) == (EnrollmentState.PAUSED, "trainer")
        assert "Cleo Martin paused (1 enrollment)" in _notices(app)[-1]
        assert table.cursor_row == 2  # the reload kept the cursor on her

        await pilot.press("p")  # nothing active is left to pause
        await until_shown(pilot, lambda: "no active enrollment" in _notices(app)[-1])

        await pilot.press("r")
        await until_shown(pilot, lambda: _cells(table, 3)[2] == "active")
        assert await _state(cleo) == (EnrollmentState.ACTIVE, None)
        assert "Cleo Martin resumed (1 enrollment)" in _notices(app)[-1]

        await pilot.press("j")  # Dan paused himself for a week: r resumes him too
        await pilot.press("r")
        await until_shown(pilot, lambda: _cells(table, 3)[3] == "active")
        assert await _state(scene.enrollments["Dan"]) == (EnrollmentState.ACTIVE, None)


async def test_p_and_r_pause_and_resume_a_whole_cohort(db: str) -> None:
    scene = await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await pilot.press("f3")
        screen = await _shown(pilot, CohortsScreen)
        table = screen.query_one("#cohorts", DataTable)
        await pilot.press("j")
        assert screen.selected() is not None and screen.selected().name == "Stats Dec"  # type: ignore[union-attr]

        await pilot.press("p")
        await until_shown(pilot, lambda: _cells(table, 0)[1] == "‖ Stats Dec")
        assert (await Cohort.get(name="Stats Dec")).paused
        for name in ("Ana", "Ben", "Cleo", "Eva"):
            assert await _state(scene.enrollments[name]) == (EnrollmentState.PAUSED, "cohort")
        assert await _state(scene.enrollments["Dan"]) == (EnrollmentState.PAUSED, "learner")
        assert "Cohort Stats Dec paused (4 enrollments)" in _notices(app)[-1]
        assert _cells(table, 3)[1] == "0/5/0"
        assert "cohort paused: r resumes it" in _static(screen, "#cohort-detail")

        await pilot.press("p")
        await until_shown(pilot, lambda: "already paused" in _notices(app)[-1])

        await pilot.press("r")
        await until_shown(pilot, lambda: _cells(table, 0)[1] == "Stats Dec")
        assert not (await Cohort.get(name="Stats Dec")).paused
        for name in ("Ana", "Ben", "Cleo", "Eva"):
            assert await _state(scene.enrollments[name]) == (EnrollmentState.ACTIVE, None)
        # Dan paused himself: resuming the cohort leaves him paused, and says so.
        assert await _state(scene.enrollments["Dan"]) == (EnrollmentState.PAUSED, "learner")
        assert "1 learner paused on their own stay paused" in _notices(app)[-1]


# --------------------------------------------------------------------------- steps and answers


async def _steps_of_stats(pilot: Pilot[Any]) -> StepFiguresScreen:
    await pilot.press("f3")
    await _shown(pilot, CohortsScreen)
    await pilot.press("j", "enter")
    return await _shown(pilot, StepFiguresScreen)


async def test_step_figures_show_rates_with_bars_in_curriculum_order(db: str) -> None:
    await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        screen = await _steps_of_stats(pilot)
        assert screen.cohort_name == "Stats Dec"
        assert [row.step_id for row in screen.rows] == STEPS
        table = screen.query_one("#steps", DataTable)
        assert _cells(table, 0) == ["0d", "1d", "2d", "3d", "2w"]
        assert _cells(table, 1) == ["tip", "ask", "quiz", "chk", "tip"]
        assert _cells(table, 2)[1].startswith("Which report could")  # cut at 80 wide
        welcome, reflect, quiz, checkin, wrap_up = (
            [_plain(cell) for cell in table.get_row_at(i)] for i in range(5)
        )
        assert welcome[3] == "███▎   4/5"  # 4 of 5 delivered: 80% of four cells
        assert reflect[4] == "███   75%"  # Ben, Ana and Eva replied; Cleo got it too
        assert quiz[5] == "██    50%"  # Ana right, Ben wrong
        assert checkin[5] == "Yes 1·Once 0·N…"
        assert wrap_up[3].endswith("0/5")
        export = _static(screen, "#steps-export")
        assert export == "Export these figures: dripper report --cohort 'Stats Dec' --csv"

        await pilot.press("j")  # the line below tells what the columns had no room for
        await until_shown(pilot, lambda: "reflect" in _static(screen, "#step-detail"))
        detail = _static(screen, "#step-detail")
        assert detail.startswith("reflect · question · after 1d · Which report could you rebuild?")
        assert "4 of 5 delivered (80%) · 3 replied (75%)" in detail

        await pilot.press("j")  # the quiz: its options with ✓/✗ and bars
        await until_shown(pilot, lambda: "=XLOOKUP" in _static(screen, "#step-detail"))
        detail = _static(screen, "#step-detail")
        assert "2 answered (67%) · 1 right (50%)" in detail
        assert "✓ =XLOOKUP(...)" in detail and "✗ =VLOOKUP(..., TRUE)" in detail


async def test_enter_on_a_step_shows_every_answer_side_by_side(db: str) -> None:
    scene = await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await _steps_of_stats(pilot)
        await pilot.press("j", "enter")  # reflect
        screen = await _shown(pilot, StepAnswersScreen)
        assert (screen.cohort_name, screen.step_id) == ("Stats Dec", "reflect")
        items = list(screen.query(AnswerItem))
        assert [item.answer.learner_name for item in items] == [
            "Ben Okafor",
            "Ana Silva",
            "Eva[bold] Ng",
        ]
        texts = [_plain(text.content) for text in screen.query(".answer-text").results(Static)]
        assert texts == [
            "Pivot of\nsupport tickets",
            "The monthly sales report.\n\nAlso the =SUM(budget).",
            TRICKY_SHOWN,
        ]
        heads = [_plain(head.content) for head in screen.query(".answer-head").results(Static)]
        assert heads[0] == "Ben Okafor · Telegram · Thu 10 Dec 13:30"  # Berlin
        status = _static(screen, "#answers-status")
        assert status.startswith("Answers · Stats Dec · reflect (question) · 3 answers")
        assert "--step reflect --csv" in _static(screen, "#answers-export")

        await pilot.press("j", "enter")  # Ana's conversation
        await until_shown(pilot, lambda: isinstance(app.screen, ConversationScreen))
        conversation = await Conversation.get(enrollment_id=scene.enrollments["Ana"])
        assert app.screen.conversation_id == conversation.id  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until_shown(pilot, lambda: app.screen is screen)


async def test_quiz_and_checkin_answers_show_the_choices_with_marks(db: str) -> None:
    await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await _steps_of_stats(pilot)
        await pilot.press("j", "j", "enter")  # lookup-quiz
        quiz = await _shown(pilot, StepAnswersScreen)
        choices = [_plain(s.content) for s in quiz.query(".answer-choice").results(Static)]
        assert choices == ["✓ =XLOOKUP(...)", "✗ =VLOOKUP(..., TRUE)"]
        heads = [_plain(s.content) for s in quiz.query(".answer-head").results(Static)]
        assert heads[0].endswith("· right") and heads[1].endswith("· wrong")
        await pilot.press("escape")
        await _shown(pilot, StepFiguresScreen)
        await pilot.press("j", "enter")  # pivot-checkin
        checkin = await _shown(pilot, StepAnswersScreen)
        choices = [_plain(s.content) for s in checkin.query(".answer-choice").results(Static)]
        assert choices == ["• Yes", "• Not yet"]


async def test_a_step_nobody_answered_says_so(db: str) -> None:
    await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await _steps_of_stats(pilot)
        await pilot.press("G")
        await pilot.press("j", "j", "j", "j", "enter")  # wrap-up
        screen = await _shown(pilot, StepAnswersScreen)
        assert screen.step_id == "wrap-up"
        assert _static(screen, "#answers-empty") == "No answers to this step yet."
        await pilot.press("enter")  # nothing to open; nothing happens


async def test_enter_on_a_learner_opens_their_latest_conversation(db: str) -> None:
    scene = await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await pilot.press("f2")
        screen = await _shown(pilot, LearnersScreen)
        await pilot.press("enter")  # Ana
        await until_shown(pilot, lambda: isinstance(app.screen, ConversationScreen))
        conversation = await Conversation.get(enrollment_id=scene.enrollments["Ana"])
        assert app.screen.conversation_id == conversation.id  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until_shown(pilot, lambda: app.screen is screen)
        await pilot.press("j", "j", "enter")  # Cleo never wrote
        await until_shown(pilot, lambda: "Cleo Martin has no conversation yet." in _notices(app))
        assert app.screen is screen


async def test_learner_text_is_shown_literally(db: str) -> None:
    await _scene()
    app = _app(db)
    async with _running(app, size=(120, 40)) as pilot:
        await pilot.press("f2")
        learners = await _shown(pilot, LearnersScreen)
        name = learners.query_one("#learners", DataTable).get_row_at(4)[0]
        assert isinstance(name, Text)
        assert (name.plain, name.spans) == ("Eva[bold] Ng", [])
        await pilot.press("G")
        await until_shown(pilot, lambda: "Eva[bold] Ng" in _static(learners, "#learner-detail"))
        await pilot.press("escape")

        await _steps_of_stats(pilot)
        await pilot.press("j", "enter")
        answers = await _shown(pilot, StepAnswersScreen)
        text = list(answers.query(".answer-text").results(Static))[-1].content
        assert isinstance(text, Text)
        assert (text.plain, text.spans, text.style) == (TRICKY_SHOWN, [], "")
        head = list(answers.query(".answer-head").results(Static))[-1].content
        assert isinstance(head, Text) and head.plain.startswith("Eva[bold] Ng · email")
        assert head.spans[0].style == "bold"  # ours, not the learner's
        await pilot.press("G", "enter")
        await until_shown(pilot, lambda: isinstance(app.screen, ConversationScreen))


# --------------------------------------------------------------------------- live refresh


async def test_every_screen_refreshes_after_data_changed(db: str) -> None:
    scene = await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await pilot.press("f2")
        learners = await _shown(pilot, LearnersScreen)
        table = learners.query_one("#learners", DataTable)
        assert _cells(table, 6)[2] == "—"  # Cleo never replied
        await record_learner_message(scene.cleo.id, Channel.EMAIL, "Hello?", LATER)
        app.data_changed()
        await until_shown(pilot, lambda: _cells(table, 6)[2] == "0s")
        await pilot.press("escape")

        await pilot.press("f3")
        cohorts = await _shown(pilot, CohortsScreen)
        cohort_table = cohorts.query_one("#cohorts", DataTable)
        await pause([scene.enrollments["Ana"]], "trainer", NOW)
        app.data_changed()
        await until_shown(pilot, lambda: _cells(cohort_table, 3)[1] == "3/2/0")

        await pilot.press("j", "enter")
        steps = await _shown(pilot, StepFiguresScreen)
        await pilot.press("j", "enter")
        answers = await _shown(pilot, StepAnswersScreen)
        assert len(answers.query(AnswerItem)) == 3
        reflect = await Delivery.get(enrollment_id=scene.enrollments["Cleo"], step_id="reflect")
        prompt = AnsweredPrompt(scene.enrollments["Cleo"], "reflect", 0, reflect.id)
        await record_learner_message(
            scene.cleo.id, Channel.EMAIL, "The budget.", LATER, answers=prompt
        )
        loads, fills = steps.refresh_gate.loads, answers.fills
        app.data_changed()
        await until_shown(pilot, lambda: answers.fills > fills)
        items = list(answers.query(AnswerItem))
        assert [item.answer.learner_name for item in items][-1] == "Cleo Martin"
        assert items[-1].answer.text == "The budget."
        # The steps screen beneath waits until it is shown again to count again.
        assert steps.refresh_gate.waiting and steps.refresh_gate.loads == loads
        await pilot.press("escape")
        await until_shown(pilot, lambda: steps.refresh_gate.loads == loads + 1)
        await until_shown(pilot, lambda: steps.rows[1].replied == 4)


async def test_dear_screens_refresh_at_most_once_per_gap(db: str) -> None:
    await _scene()
    app = _app(db)
    async with _running(app) as pilot:
        await pilot.press("f3")
        screen = await _shown(pilot, CohortsScreen)
        gate = screen.refresh_gate
        assert gate.gap >= 1.0
        app.data_changed()
        loads = gate.loads + 1
        await until_shown(pilot, lambda: gate.loads == loads)  # a load has just started
        for _ in range(3):  # three changes within the gap: one refresh, at its end
            app.data_changed()
        await until_shown(pilot, lambda: gate.waiting)
        assert gate.loads == loads
        await until_shown(pilot, lambda: gate.loads == loads + 1 and not gate.waiting)


# --------------------------------------------------------------------------- keys


def test_every_binding_has_a_unique_id_and_a_description() -> None:
    screens: tuple[type[Screen[None]], ...] = (
        LearnersScreen,
        CohortsScreen,
        StepFiguresScreen,
        StepAnswersScreen,
    )
    bindings = [binding for screen in screens for binding in screen.BINDINGS]
    ids = binding_ids([bindings])
    assert len(ids) == len(bindings)
    assert all(binding.description for binding in ids.values())
    for prefix, screen in zip(("learners", "cohorts", "steps", "answers"), screens, strict=True):
        assert f"{prefix}.back" in binding_ids([screen.BINDINGS])
        assert all(key.startswith(f"{prefix}.") for key in binding_ids([screen.BINDINGS]))


async def test_the_help_screen_lists_the_learner_keys(db: str) -> None:
    app = _app(db)
    async with _running(app, size=(100, 40)) as pilot:
        await pilot.press("f2")
        await _shown(pilot, LearnersScreen)
        await pilot.press("question_mark")
        await until_shown(pilot, lambda: isinstance(app.screen, HelpScreen))
        table = app.screen.query_one("#help-keys", DataTable)
        rows = {
            _plain(table.get_row_at(i)[2]): _plain(table.get_row_at(i)[0])
            for i in range(table.row_count)
        }
        assert rows["learners.pause"] == "p"
        assert rows["learners.search"] == "/"


async def test_a_keymap_file_changes_a_table_key(db: str, tmp_path: Path) -> None:
    scene = await _scene()
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('"learners.pause" = "x"\n')
    app = _app(db, keymap=keymap)
    async with _running(app) as pilot:
        await pilot.press("f2")
        screen = await _shown(pilot, LearnersScreen)
        await pilot.press("x")
        await until_shown(
            pilot, lambda: _cells(screen.query_one("#learners", DataTable), 3)[0] == "paused"
        )
        assert await _state(scene.enrollments["Ana"]) == (EnrollmentState.PAUSED, "trainer")


# --------------------------------------------------------------------------- parts


def test_bars_count_eighths_and_never_hide_a_small_rate() -> None:
    assert bar(0.62, 10) == "██████▎   "  # 49.6 eighths: 6 cells and 2 eighths
    assert bar(0.0, 4) == "    "
    assert bar(1.0, 4) == "████"
    assert bar(0.001, 4) == "▏   "  # not empty
    assert bar(0.999, 4) == "███▉"  # not full
    assert bar(None, 3) == "   "
    assert bar_cell(0.5, 4).plain == "██    50%"
    assert bar_cell(None, 4).plain == "        —"
    assert bar_cell(0.5, 4, "3/6", label_width=5).plain == "██     3/6"


def test_columns_share_the_room_left() -> None:
    columns = [
        Column("a", "A", 10, grow=1),
        Column("b", "B", 5),
        Column("c", "C", 10, grow=1, most=12),
    ]
    assert fit(columns, 80) == {"a": 55, "b": 5, "c": 12}  # 80 - 2 scrollbar - 6 padding
    assert fit(columns, 20) == {"a": 10, "b": 5, "c": 10}  # never below the least


# --------------------------------------------------------------------------- snapshots


async def _fill_snapshot_db(url: str) -> None:
    async with open_db(url):
        await _scene()


@pytest.fixture(scope="module")
def scene_url(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_file: Path) -> str:
    path: Path = tmp_path_factory.mktemp("tables") / "dripper.sqlite3"
    shutil.copyfile(migrated_sqlite_file, path)
    url = f"sqlite:///{path}"
    asyncio.run(_fill_snapshot_db(url))
    return url


def _snapshot_app(url: str) -> DripperApp:
    config = DashboardConfig(
        url, "anna", timezone="Europe/Berlin", now=lambda: LATER, live_interval=3600
    )
    return DripperApp(config, open_database=True)


async def _settled(pilot: Pilot[Any], kind: type[Screen[Any]]) -> None:
    await _shown(pilot, kind)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _open_cohorts(pilot: Pilot[Any]) -> None:
    await until_shown(pilot, lambda: isinstance(pilot.app.screen, InboxScreen), seconds=10)
    await pilot.press("f3")
    await _settled(pilot, CohortsScreen)


async def _open_steps(pilot: Pilot[Any]) -> None:
    await _open_cohorts(pilot)
    await pilot.press("j", "enter")
    await _settled(pilot, StepFiguresScreen)


def test_cohorts_snapshot(snap_compare: Any, scene_url: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _open_cohorts(pilot)
        await pilot.press("j")
        await until_table_focused(pilot)

    assert snap_compare(_snapshot_app(scene_url), terminal_size=(80, 24), run_before=run_before)


def test_step_figures_snapshot(snap_compare: Any, scene_url: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _open_steps(pilot)
        await pilot.press("j", "j")  # the quiz, with its options charted below

    assert snap_compare(_snapshot_app(scene_url), terminal_size=(80, 24), run_before=run_before)


def test_step_answers_snapshot(snap_compare: Any, scene_url: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _open_steps(pilot)
        await pilot.press("j", "enter")
        await _settled(pilot, StepAnswersScreen)

    assert snap_compare(_snapshot_app(scene_url), terminal_size=(80, 24), run_before=run_before)


def test_learners_snapshot(snap_compare: Any, scene_url: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await until_shown(pilot, lambda: isinstance(pilot.app.screen, InboxScreen), seconds=10)
        await pilot.press("f2")
        await _settled(pilot, LearnersScreen)
        await until_table_focused(pilot)

    assert snap_compare(_snapshot_app(scene_url), terminal_size=(120, 40), run_before=run_before)
