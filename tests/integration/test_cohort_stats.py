"""Cohort, learner and step figures for the dashboard and `dripper report`, on real databases.

One scene (tests/fixtures/cohort_scene.py), built with the engine's own functions (enroll, the
planner, claim and record, quiz answers, learner messages): a cohort of four learners after the
first week of a five-step drip, and a one-step cohort one of them has finished. Every figure is
asserted exactly, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripper.cli import main
from dripper.db import open_db
from dripper.enrollments.apply import apply_changes, pending_changes
from dripper.errors import DripperError
from dripper.models import (
    Channel,
    EnrollmentState,
    Learner,
    Reachability,
)
from dripper.reports.cohorts import CohortRow, cohort_rows
from dripper.reports.learners import LearnerRow, learner_count, learner_rows
from dripper.reports.steps import OptionCount, step_answers, step_figures
from tests.fixtures.cohort_scene import (
    BLOCKED,
    NOW,
    STATS_END,
    TIMED_OUT,
    TINY,
    Scene,
    build_scene,
)

TINY_EDITED = TINY.replace("id: hello", "id: hello-again")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database of either backend, not yet open."""
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def scene(migrated_url: str) -> AsyncIterator[Scene]:
    """The scene in a fresh database of either backend, open for the test."""
    async with open_db(migrated_url):
        yield await build_scene()


async def test_cohort_rows_count_learners_progress_and_failures(scene: Scene) -> None:
    tiny, stats = await cohort_rows(NOW)
    assert stats == CohortRow(
        name="Stats Dec",
        curriculum_key="stats-course",
        curriculum_title="Stats course",
        course_end=STATS_END,
        paused=False,
        learners=4,
        learners_active=3,
        learners_paused=1,
        learners_completed=0,
        learners_cancelled=0,
        steps_sent=10,  # Ana 4, Ben 3, Cleo 3, Dan none (paused)
        steps_due=16,  # four due steps for each of the four, held and failed ones too
        steps_total=20,
        progress=10 / 16,
        overall=0.5,
        failed=1,
        uncertain=1,
    )
    # Every step of Tiny is sent: Ana has finished it.
    assert (tiny.name, tiny.learners, tiny.learners_active, tiny.learners_completed) == (
        "Tiny Dec",
        1,
        0,
        1,
    )
    assert (tiny.steps_sent, tiny.steps_due, tiny.steps_total) == (1, 1, 1)
    assert (tiny.progress, tiny.overall, tiny.failed, tiny.uncertain) == (1.0, 1.0, 0, 0)


async def test_cohort_rows_see_a_paused_cohort_and_nothing_due_yet(scene: Scene) -> None:
    earlier = STATS_END - timedelta(days=1)
    stats = (await cohort_rows(earlier))[1]
    assert stats.steps_due == 10  # only what was sent counts as due before its time
    assert stats.progress == 1.0


async def test_learner_rows_show_channels_enrollments_progress_and_failures(
    scene: Scene,
) -> None:
    ana, ben, cleo, dan = await learner_rows(NOW)
    assert (ana.name, ana.email, ana.telegram, ana.telegram_connected) == (
        "Ana Silva",
        "ana@example.com",
        None,
        False,
    )
    assert (ana.email_status, ana.telegram_status) == (Reachability.OK, Reachability.UNKNOWN)
    assert ana.cohorts == ("Tiny Dec", "Stats Dec")  # by course end
    assert ana.enrollment_ids[1] == scene.enrollments["Ana"]
    assert ana.state is EnrollmentState.ACTIVE  # active in Stats, completed Tiny
    assert (ana.steps_sent, ana.steps_due, ana.steps_total) == (5, 5, 6)
    assert ana.progress == 5 / 6
    assert (ana.failures, ana.last_failure, ana.last_failure_at) == (0, None, None)
    assert ana.last_reply_at == NOW + timedelta(minutes=120)

    assert (ben.telegram, ben.telegram_connected, ben.email) == ("@ben_b", True, None)
    assert ben.telegram_status is Reachability.UNREACHABLE
    assert (ben.failures, ben.last_failure, ben.last_failure_at) == (1, BLOCKED, NOW)
    assert (ben.steps_sent, ben.steps_due, ben.steps_total) == (3, 4, 5)
    assert ben.last_reply_at == NOW + timedelta(minutes=30)

    assert (cleo.failures, cleo.last_failure, cleo.timezone) == (1, TIMED_OUT, "UTC")
    assert cleo.last_reply_at is None

    assert dan.state is EnrollmentState.PAUSED
    assert dan.paused_until == NOW + timedelta(days=7)
    assert (dan.steps_sent, dan.steps_due, dan.steps_total, dan.progress) == (0, 4, 5, 0.0)
    assert dan.email_status is Reachability.UNKNOWN


async def test_learner_rows_filter_by_cohort_search_and_page(scene: Scene) -> None:
    [ana] = await learner_rows(NOW, cohort="Tiny Dec")
    assert (ana.cohorts, ana.steps_sent, ana.steps_total, ana.state) == (
        ("Tiny Dec",),
        1,
        1,
        EnrollmentState.COMPLETED,
    )
    assert ana.last_reply_at is None  # her replies are in the Stats conversation

    def names(rows: list[LearnerRow]) -> list[str]:
        return [row.name for row in rows]

    assert names(await learner_rows(NOW, search="BEN")) == ["Ben Okafor"]
    assert names(await learner_rows(NOW, search="@ben_")) == ["Ben Okafor"]
    assert names(await learner_rows(NOW, search="ana silva")) == ["Ana Silva"]
    assert names(await learner_rows(NOW, search="example.com")) == [
        "Ana Silva",
        "Cleo Martin",
        "Dan Wu",
    ]
    assert names(await learner_rows(NOW, search="_wu")) == ["Dan Wu"]  # _ is not a wildcard
    assert names(await learner_rows(NOW, search="%")) == []
    assert names(await learner_rows(NOW, limit=2, offset=1)) == ["Ben Okafor", "Cleo Martin"]
    assert names(await learner_rows(NOW, cohort="Stats Dec", search="I", limit=2)) == [
        "Ana Silva",
        "Cleo Martin",
    ]
    assert await learner_count() == 4
    assert await learner_count(search="example.com") == 3
    assert await learner_count(cohort="Tiny Dec") == 1


async def test_step_figures_of_every_step_in_curriculum_order(scene: Scene) -> None:
    welcome, reflect, quiz, checkin, wrap_up = await step_figures("Stats Dec")

    assert (welcome.step_id, welcome.kind, welcome.when, welcome.summary) == (
        "welcome",
        "tip",
        "0d",
        "Welcome, {{ learner.first_name }}!",
    )
    assert (welcome.planned, welcome.delivered, welcome.delivered_rate) == (4, 3, 0.75)
    assert (welcome.replied, welcome.reply_rate, welcome.answered) == (0, 0.0, 0)
    assert (welcome.answer_rate, welcome.correct, welcome.correct_rate) == (None, None, None)
    assert welcome.options == ()
    assert welcome.in_curriculum

    assert (reflect.kind, reflect.when, reflect.summary) == (
        "question",
        "1d",
        "Which report could you rebuild?",
    )
    assert (reflect.delivered, reflect.replied, reflect.reply_rate) == (3, 2, 2 / 3)

    assert (quiz.kind, quiz.planned, quiz.delivered, quiz.failed, quiz.uncertain) == (
        "quiz",
        4,
        2,
        0,
        1,
    )
    assert (quiz.answered, quiz.answer_rate, quiz.correct, quiz.correct_rate) == (2, 1.0, 1, 0.5)
    assert quiz.options == (
        OptionCount("=XLOOKUP(...)", 1, True),
        OptionCount("=VLOOKUP(..., TRUE)", 1, False),
        OptionCount("=SUM(...)", 0, False),
    )

    assert (checkin.delivered, checkin.failed, checkin.answered, checkin.answer_rate) == (
        2,
        1,
        2,
        1.0,
    )
    assert (checkin.correct, checkin.correct_rate) == (None, None)
    assert checkin.options == (
        OptionCount("Yes", 1, None),
        OptionCount("Once", 0, None),
        OptionCount("Not yet", 1, None),
    )

    assert (wrap_up.when, wrap_up.planned, wrap_up.delivered) == ("2w", 4, 0)
    assert (wrap_up.delivered_rate, wrap_up.reply_rate) == (0.0, None)


async def test_step_answers_put_every_learners_answer_side_by_side(scene: Scene) -> None:
    ben, ana = await step_answers("Stats Dec", "reflect")
    assert (ben.learner_name, ben.channel, ben.answered_at) == (
        "Ben Okafor",
        Channel.TELEGRAM,
        NOW + timedelta(minutes=30),
    )
    assert ben.text == "Pivot of\nsupport tickets"
    assert (ben.choices, ben.correct) == ((), None)
    assert ana.messages == ("The monthly sales report.", "Also the =SUM(budget).")
    assert ana.text == "The monthly sales report.\n\nAlso the =SUM(budget)."
    assert (ana.answered_at, ana.channel) == (NOW + timedelta(minutes=60), Channel.EMAIL)
    assert ana.learner_id == scene.ana.id
    assert ana.enrollment_id == scene.enrollments["Ana"]
    assert ana.conversation_id is not None

    quiz = await step_answers("Stats Dec", "lookup-quiz")
    assert [(a.learner_name, a.choices, a.correct, a.channel, a.messages) for a in quiz] == [
        ("Ana Silva", ("=XLOOKUP(...)",), True, Channel.EMAIL, ()),
        ("Ben Okafor", ("=VLOOKUP(..., TRUE)",), False, Channel.TELEGRAM, ()),
    ]
    checkin = await step_answers("Stats Dec", "pivot-checkin")
    assert [(a.learner_name, a.choices, a.correct) for a in checkin] == [
        ("Ana Silva", ("Yes",), None),
        ("Cleo Martin", ("Not yet",), None),
    ]
    assert await step_answers("Stats Dec", "wrap-up") == []


async def test_unknown_cohort_and_step_are_errors_naming_the_known_ones(db: str) -> None:
    with pytest.raises(DripperError, match="there are no cohorts yet"):
        await step_figures("Stats Dec")
    await build_scene()
    with pytest.raises(DripperError) as error:
        await step_figures("Stats Deck")
    assert str(error.value) == (
        "no cohort named 'Stats Deck' (did you mean \"Stats Dec\"?); "
        "known cohorts: 'Stats Dec', 'Tiny Dec'"
    )
    with pytest.raises(DripperError, match="known cohorts: 'Stats Dec', 'Tiny Dec'"):
        await learner_rows(NOW, cohort="Nope")
    with pytest.raises(DripperError) as step_error:
        await step_answers("Stats Dec", "reflection")
    assert "has no step 'reflection' (did you mean \"reflect\"?)" in str(step_error.value)
    assert "welcome, reflect, lookup-quiz, pivot-checkin, wrap-up" in str(step_error.value)


async def test_a_step_removed_by_apply_keeps_its_history(db: str, tmp_path: Path) -> None:
    await build_scene()
    curricula = tmp_path / "curricula"
    curricula.mkdir()
    (curricula / "tiny.yaml").write_text(TINY_EDITED, encoding="utf-8")
    await apply_changes(await pending_changes(curricula), NOW)

    new, old = await step_figures("Tiny Dec")
    assert (new.step_id, new.in_curriculum, new.planned, new.delivered) == (
        "hello-again",
        True,
        1,
        0,
    )
    assert (new.skipped, new.delivered_rate) == (1, 0.0)  # added after its time: skipped
    assert (old.step_id, old.in_curriculum, old.planned, old.delivered) == ("hello", False, 0, 1)
    assert (old.kind, old.when, old.summary) == ("tip", "0d", "Hello!")
    assert await step_answers("Tiny Dec", "hello") == []


async def test_learner_rows_need_few_queries_for_many_learners(db: str) -> None:
    await build_scene()
    many = [Learner(first_name=f"Learner {n:04d}", email=f"l{n}@example.org") for n in range(300)]
    await Learner.bulk_create(many)
    page = await learner_rows(NOW, limit=50, offset=100)
    assert len(page) == 50
    assert await learner_count() == 304


# --------------------------------------------------------------------------- command line


def _report(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["report", *args], env={"DRIPPER_DATABASE_URL": url, "DRIPPER_CONFIG": None}
    )
    return result.exit_code, result.output


@pytest.fixture
def scene_file(migrated_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)

    async def build() -> None:
        async with open_db(migrated_sqlite_url):
            await build_scene()

    asyncio.run(build())
    return migrated_sqlite_url


def test_report_csv_has_a_header_and_rates_with_three_decimals(scene_file: str) -> None:
    code, output = _report(scene_file, "--cohort", "Stats Dec", "--csv")
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [row["step"] for row in rows] == [
        "welcome",
        "reflect",
        "lookup-quiz",
        "pivot-checkin",
        "wrap-up",
    ]
    reflect, quiz = rows[1], rows[2]
    assert reflect["reply_rate"] == "0.667"
    assert (reflect["planned"], reflect["delivered"], reflect["replied"]) == ("4", "3", "2")
    assert (reflect["answer_rate"], reflect["correct"], reflect["correct_rate"]) == ("", "", "")
    assert (quiz["answered"], quiz["correct"], quiz["correct_rate"]) == ("2", "1", "0.500")
    assert (quiz["delivered_rate"], quiz["uncertain"]) == ("0.500", "1")
    # A spreadsheet would run "=XLOOKUP(...)=1" as a formula.
    assert quiz["options"] == "'=XLOOKUP(...)=1; =VLOOKUP(..., TRUE)=1; =SUM(...)=0"
    assert rows[3]["options"] == "Yes=1; Once=0; Not yet=1"


def test_report_csv_of_one_steps_answers(scene_file: str) -> None:
    code, output = _report(scene_file, "--cohort", "Stats Dec", "--step", "reflect", "--csv")
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [(r["learner"], r["channel"], r["answered_at"], r["text"]) for r in rows] == [
        ("Ben Okafor", "telegram", "2026-12-10T12:30:00+00:00", "Pivot of\nsupport tickets"),
        (
            "Ana Silva",
            "email",
            "2026-12-10T13:00:00+00:00",
            "The monthly sales report.\n\nAlso the =SUM(budget).",
        ),
    ]


def test_report_table_and_answers(scene_file: str) -> None:
    code, output = _report(scene_file, "--cohort", "Stats Dec", "--step", "lookup-quiz")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].split() == [
        "step",
        "kind",
        "when",
        "planned",
        "delivered",
        "failed",
        "uncertain",
        "skipped",
        "replied",
        "reply",
        "answered",
        "correct",
    ]
    quiz = next(line for line in lines if line.startswith("lookup-quiz"))
    assert quiz.split() == [
        "lookup-quiz",
        "quiz",
        "2d",
        "4",
        "2",
        "0",
        "1",
        "0",
        "0",
        "0.0%",
        "2",
        "50.0%",
    ]
    wrap_up = next(line for line in lines if line.startswith("wrap-up"))
    assert wrap_up.split()[-3:] == ["-", "-", "-"]
    assert "    =XLOOKUP(...) (right): 1, =VLOOKUP(..., TRUE): 1, =SUM(...): 0" in lines
    assert "answers to lookup-quiz (quiz, 2d): 2 of 2 delivered" in lines
    assert "Ana Silva · email · 2026-12-10 12:00 UTC · =XLOOKUP(...) (right)" in lines
    assert "Ben Okafor · telegram · 2026-12-10 12:00 UTC · =VLOOKUP(..., TRUE) (wrong)" in lines


def test_report_unknown_cohort_fails_naming_the_known_ones(scene_file: str) -> None:
    code, output = _report(scene_file, "--cohort", "Stats", "--csv")
    assert code == 1
    assert "Error: no cohort named 'Stats'" in output
    assert "known cohorts: 'Stats Dec', 'Tiny Dec'" in output
    code, output = _report(scene_file, "--cohort", "Stats Dec", "--step", "nope")
    assert code == 1
    assert "has no step 'nope'" in output
