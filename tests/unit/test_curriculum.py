"""The curriculum language: every error class at its file:line:col, and valid files load."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripper.cli import main
from dripper.curriculum import Quiz, check_file, load_curriculum
from dripper.curriculum.checks import CurriculumError, check_source
from dripper.curriculum.source import SourceError, parse_source

REPO = Path(__file__).resolve().parents[2]

VALID = """\
id: demo
title: Demo course
timezone: Europe/Berlin
send_window:
  send_at: "0 9 * * 1-5"
  quiet_hours: ["20:00-08:00"]
  skip_dates: [2026-12-25, "2026-12-28..2026-12-31"]
  expire_after: 2d
attributes:
  department: Finance
steps:
  - id: hello
    after: 1d
    kind: tip
    text: "Hi {{ learner.first_name }} from {{ learner.department }}!"
  - id: q1
    after: 3d 14:00
    kind: quiz
    text: Which one?
    options: [A, B, C]
    correct: B
    reask_after: 3d
    retire_after: 2
"""


def problems(text: str) -> list[str]:
    try:
        source = parse_source(textwrap.dedent(text), "c.yaml")
    except SourceError as exc:
        return [str(exc.problem)]
    return [str(p) for p in check_source(source).problems]


def test_valid_document_loads_with_typed_values() -> None:
    source = parse_source(VALID, "c.yaml")
    result = check_source(source)
    assert result.problems == []
    curriculum = result.curriculum
    assert curriculum is not None
    window = curriculum.send_window.to_window()
    assert dt.date(2026, 12, 25) in window.skip_dates
    assert dt.date(2026, 12, 30) in window.skip_dates
    assert dt.date(2026, 12, 27) not in window.skip_dates
    assert window.expire_after == dt.timedelta(days=2)
    quiz = curriculum.step("q1")
    assert isinstance(quiz, Quiz)
    assert quiz.after.delta == dt.timedelta(days=3)
    assert quiz.after.at == dt.time(14, 0)
    assert quiz.correct_options == ["B"]
    assert len(result.content_hash) == 64


ERROR_CASES = [
    pytest.param(
        "id: x\n  bad: [\n", ["c.yaml:2:6: invalid YAML: mapping values"], id="malformed-yaml"
    ),
    pytest.param(
        "a: 1\na: 2\n", ["c.yaml:2:1: invalid YAML:", 'duplicate key "a"'], id="duplicate-key"
    ),
    pytest.param("- 1\n- 2\n", ["c.yaml:1:1: a curriculum must be a mapping"], id="not-a-mapping"),
    pytest.param(
        VALID.replace("title: Demo course", "tittle: Demo course"),
        [
            "c.yaml:1:1: missing required key 'title'",
            "c.yaml:2:1: unknown key 'tittle' (did you mean \"title\"?)",
        ],
        id="unknown-key-with-hint",
    ),
    pytest.param(
        VALID.replace("    after: 1d\n", ""),
        ["c.yaml:12:5: missing required key 'after'"],
        id="missing-key",
    ),
    pytest.param(
        VALID.replace("correct: B", "correct: [B]\n    multiple: maybe"),
        ["c.yaml:22:15: 'multiple' must be true or false"],
        id="wrong-type-bool",
    ),
    pytest.param(
        VALID.replace('text: "Hi {{', 'text:\n      - "Hi {{').replace('}}!"', '}}!"'),
        ["c.yaml:16:7: 'text' must be text, not list"],
        id="wrong-type-list",
    ),
    pytest.param(
        VALID.replace("id: q1", "id: hello"),
        ["c.yaml:16:9: duplicate step id 'hello' (first used on line 12)"],
        id="duplicate-step-id",
    ),
    pytest.param(
        VALID.replace('"0 9 * * 1-5"', '"0 9 * *"'),
        ["c.yaml:5:12: send_at: cron '0 9 * *' must have 5 fields"],
        id="cron-fields",
    ),
    pytest.param(
        VALID.replace('"0 9 * * 1-5"', '"0 25 * * 1-5"'),
        ["c.yaml:5:12: send_at: invalid cron expression '0 25 * * 1-5'"],
        id="cron-range",
    ),
    pytest.param(
        VALID.replace('"0 9 * * 1-5"', '"0 22 * * *"'),
        ["c.yaml:5:12: send_at '0 22 * * *' never fires outside the quiet hours (20:00-08:00)"],
        id="window-never-opens",
    ),
    pytest.param(
        VALID.replace("Europe/Berlin", "Europe/Berln"),
        ["c.yaml:3:11: timezone: unknown time zone 'Europe/Berln'"],
        id="timezone",
    ),
    pytest.param(
        VALID.replace("after: 1d", "after: 1 fortnight"),
        ["c.yaml:13:12: after: cannot read duration '1 fortnight'"],
        id="offset-unparseable",
    ),
    pytest.param(
        VALID.replace("after: 1d", "after: 3"),
        ["c.yaml:13:12: after: a bare number is ambiguous here; write the unit, e.g. 3d"],
        id="offset-bare-number",
    ),
    pytest.param(
        VALID.replace("after: 3d 14:00", "after: 3d 24:10"),
        ["c.yaml:17:12: after: time of day '24:10' is out of range"],
        id="offset-bad-clock",
    ),
    pytest.param(
        VALID.replace('["20:00-08:00"]', '["20:00"]'),
        ["c.yaml:6:17: quiet_hours: cannot read quiet hours '20:00'"],
        id="quiet-hours",
    ),
    pytest.param(
        VALID.replace("2026-12-25,", "2026-13-01,"),
        ["c.yaml:7:16: skip_dates: cannot read '2026-13-01'"],
        id="skip-date",
    ),
    pytest.param(
        VALID.replace("correct: B", "correct: D"),
        ["c.yaml:21:14: correct answer 'D' is not one of the options"],
        id="quiz-answer-not-an-option",
    ),
    pytest.param(
        VALID.replace("correct: B", "correct: b"),
        ["c.yaml:21:14: correct answer 'b' is not one of the options (did you mean \"B\"?)"],
        id="quiz-answer-hint",
    ),
    pytest.param(
        VALID.replace("correct: B", "correct: [A, B]"),
        ["c.yaml:21:14: several correct answers need `multiple: true`"],
        id="quiz-several-answers-single-choice",
    ),
    pytest.param(
        VALID.replace("kind: quiz", "kind: quizz"),
        ["c.yaml:18:11: unknown step kind 'quizz' (did you mean \"quiz\"?)"],
        id="unknown-kind",
    ),
    pytest.param(
        VALID.replace("learner.first_name", "learner.firstname"),
        [
            "c.yaml:15:11: unknown template variable 'learner.firstname' "
            '(did you mean "first_name"?)'
        ],
        id="template-unknown-attribute",
    ),
    pytest.param(
        VALID.replace("  department: Finance\n", "  team: Finance\n"),
        ["c.yaml:15:11: unknown template variable 'learner.department'; declare custom"],
        id="template-undeclared-custom-attribute",
    ),
    pytest.param(
        VALID.replace("{{ learner.first_name }}", "{{ lerner.first_name }}"),
        ["c.yaml:15:11: unknown template variable 'lerner' (did you mean \"learner\"?)"],
        id="template-unknown-root",
    ),
    pytest.param(
        VALID.replace("{{ learner.first_name }}", "{% if x %}"),
        ["c.yaml:15:11: template syntax error"],
        id="template-syntax",
    ),
    pytest.param(
        VALID.replace("text: Which one?", "text: |\n      Which one?\n      {{ course.titel }}"),
        ["c.yaml:21:7: unknown template variable 'course.titel' (did you mean \"title\"?)"],
        id="template-line-inside-block-scalar",
    ),
    pytest.param(
        VALID.replace("text: Which one?", "text: " + "x" * 4097),
        [
            "c.yaml:19:11: text is 4097 characters after rendering; "
            "Telegram allows 4096 in a message"
        ],
        id="text-over-4096",
    ),
    pytest.param(
        VALID.replace("    kind: tip\n", "    kind: tip\n    image: https://x.org/a.png\n").replace(
            '"Hi {{ learner.first_name }} from {{ learner.department }}!"',
            '"{% for i in range(200) %}{{ learner.first_name }} {% endfor %}"',
        ),
        [
            "c.yaml:16:11: text is 2399 characters after rendering; "
            "Telegram allows 1024 in an image caption"
        ],
        id="caption-over-1024-after-rendering",
    ),
    pytest.param(
        VALID.replace("options: [A, B, C]", "options: [A, B, '{{ learner.first_name }}']"),
        ["c.yaml:20:21: option text is shown as written: templates are not allowed"],
        id="option-templates-refused",
    ),
    pytest.param(
        VALID.replace("retire_after: 2", "retire_after: 2\n    max_reminders: 3"),
        ["c.yaml:24:20: max_reminders needs remind_after"],
        id="reminders-need-remind-after",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERROR_CASES)
def test_each_error_class_is_reported_at_its_position(text: str, expected: list[str]) -> None:
    found = problems(text)
    for fragment in expected:
        assert any(fragment in line for line in found), f"{fragment!r} not in {found}"


def test_every_problem_is_reported_not_only_the_first() -> None:
    text = (
        VALID.replace("Europe/Berlin", "Mars/Olympus")
        .replace("correct: B", "correct: Z")
        .replace("after: 1d", "after: soon")
        .replace("learner.first_name", "learner.nickname")
    )
    found = problems(text)
    assert len(found) == 4, found
    assert [line.split(":")[1] for line in found] == sorted(
        (line.split(":")[1] for line in found), key=int
    )


def test_shipped_curricula_all_pass_check() -> None:
    files = sorted((REPO / "curricula").glob("*.yaml"))
    assert len(files) >= 3
    kinds: set[str] = set()
    for path in files:
        result = check_file(path)
        assert result.problems == [], [str(p) for p in result.problems]
        assert result.curriculum is not None
        kinds.update(step.kind for step in result.curriculum.steps)  # type: ignore[attr-defined]
    assert kinds == {"tip", "question", "quiz", "checkin"}


def test_load_curriculum_raises_with_all_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(VALID.replace("correct: B", "correct: D").replace("after: 1d", "after: x"))
    with pytest.raises(CurriculumError) as caught:
        load_curriculum(path)
    assert len(caught.value.problems) == 2


def test_non_utf8_file_is_a_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("title: Café".encode("latin-1"))
    result = check_file(path)
    assert [p.message for p in result.problems] == [
        "not UTF-8 text (byte 10); save the file as UTF-8"
    ]


def test_cli_check_exit_codes_and_output(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("id: demo", "id: other").replace("correct: B", "correct: Q"))
    runner = CliRunner()

    ok = runner.invoke(main, ["check", str(good)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f'{good}: ok: demo "Demo course", 2 steps')

    failed = runner.invoke(main, ["check", str(tmp_path)])
    assert failed.exit_code == 1
    assert f"{bad}:21:14: correct answer 'Q' is not one of the options" in failed.output
    assert "Traceback" not in failed.output


def test_cli_check_reports_a_curriculum_id_used_twice(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'b.yaml'}:1:5: curriculum id 'demo' is already used by" in result.output


def test_cli_check_missing_path_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no such file or folder" in result.output


def test_schema_is_json_and_describes_the_step_kinds() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert set(schema["required"]) == {"id", "title", "steps"}
    assert {"Tip", "Question", "Quiz", "Checkin"} <= set(schema["$defs"])
    assert schema["properties"]["steps"]["items"]["discriminator"]["propertyName"] == "kind"


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.text(max_size=20),
    st.sampled_from(
        ["1d", "2w", "3d 14:00", "0 9 * * 1-5", "tip", "quiz", "{{ learner.x }}", "{%"]
    ),
)
yaml_keys = st.one_of(
    st.sampled_from(
        [
            "id",
            "title",
            "steps",
            "kind",
            "text",
            "after",
            "options",
            "correct",
            "send_window",
            "send_at",
            "quiet_hours",
            "skip_dates",
            "timezone",
            "attributes",
            "link",
            "buttons",
        ]
    ),
    st.text(min_size=1, max_size=8),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(yaml_keys, children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(yaml_keys, yaml_values, max_size=8))
def test_random_structures_never_crash_the_checker(doc: dict[str, object]) -> None:
    text = json.dumps(doc)  # JSON is YAML: arbitrary shapes, exact positions
    found = problems(text)
    assert all(line.startswith("c.yaml:") for line in found)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("ab:- \n\t[]{}'\"#&*!|>%@`,?0123456789")), max_size=80
    )
)
def test_random_text_never_crashes_the_checker(text: str) -> None:
    found = problems(text)
    assert found, "random text is never a valid curriculum"
    assert all(line.startswith("c.yaml:") for line in found)


def test_shipped_schema_file_matches_the_language() -> None:
    shipped = json.loads((REPO / "curricula" / "curriculum.schema.json").read_text())
    result = CliRunner().invoke(main, ["schema"])
    assert shipped == json.loads(result.output), (
        "run: dripper schema > curricula/curriculum.schema.json"
    )
