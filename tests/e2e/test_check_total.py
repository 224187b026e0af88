"""`dripper check` on hostile files, as a real process: an exit code of 0 or 1 within seconds
and a problem at file:line:col, never a traceback, a hang or an exhausted machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAD = 'id: t\ntitle: T\nsend_window:\n  send_at: "0 9 * * 1-5"\n'


def _step(text: str, after: str = "1d") -> str:
    return f"{HEAD}steps:\n  - id: a\n    after: {after}\n    kind: tip\n    text: {text}\n"


_LAUGHS = (
    "a: &a ["
    + ",".join(['"lol"'] * 9)
    + "]\n"
    + "".join(
        f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
)

CASES = [
    ("offset overflow", _step("hi", '"99999999999w"'), "7:12", "longer than ten years"),
    ("offset beyond ten years", _step("hi", "600000w"), "7:12", "longer than ten years"),
    (
        "skip dates close the window",
        HEAD + "  skip_dates: [2026-01-01..2029-12-31]\n" + _step("hi")[len(HEAD) :],
        "5:15",
        "closed for two years or more",
    ),
    (
        "recursive macro",
        _step('"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"'),
        "9:11",
        "recurses too deep",
    ),
    ("unknown filter", _step('"{{ 1 | nosuchfilter }}"'), "9:11", "No filter named"),
    ("lipsum", _step('"{{ lipsum(1000000) }}"'), "9:11", "unknown template variable 'lipsum'"),
    (
        "nested ranges",
        _step('"{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}"'),
        "9:11",
        "loops more than 10,000 times",
    ),
    ("huge repeat", _step("\"{{ 'x' * 10000000000 }}\""), "9:11", "a repeated text"),
    (
        "doubling macro",
        _step(
            '"{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}'
            "{% endmacro %}{{ f('x', 60) }}\""
        ),
        "9:11",
        "a text of",
    ),
    (
        "long time zone",
        HEAD.replace("title: T\n", "title: T\ntimezone: " + "A" * 300 + "\n")
        + _step("hi")[len(HEAD) :],
        "3:11",
        "unknown time zone",
    ),
    ("control character", _step('"hi\x07there"'), "9:14", "control character U+0007"),
    ("deep nesting", HEAD + "x: " + "[" * 1000 + "]" * 1000 + "\n", "5:68", "nested more than"),
    ("alias bomb", _LAUGHS, "2:8", "expands to more than 100,000 values"),
    ("only commas", ",,,\n", "1:1", ""),
    ("empty file", "", "1:1", ""),
]


@pytest.mark.parametrize(("name", "text", "where", "message"), CASES, ids=[c[0] for c in CASES])
def test_check_reports_a_problem_and_exits_1(
    tmp_path: Path, name: str, text: str, where: str, message: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "dripper", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,  # a guard against a hang, not a performance figure
        cwd=tmp_path,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    output = result.stdout + result.stderr
    assert f"hostile.yaml:{where}:" in output, output
    assert message in output, output
