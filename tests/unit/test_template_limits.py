"""The bounded template sandbox: what a template may do, the limits it meets, and fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.curriculum import templates
from dripper.curriculum.sandbox import MAX_LOOPS, MAX_TEXT

CONTEXT = templates.sample_context("c", "Course", {})


def render(text: str) -> tuple[str | None, str | None]:
    return templates.safe_render(text, CONTEXT)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {{ learner.first_name }}", "Hi Maximiliane"),
        ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
        ("{{ range(5) | length }} {{ range(4) | join(' ') }}", "5 0 1 2 3"),
        ("{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ 'a' ~ 'b' }}", "ababab 1024 ab"),
        ("{{ 'x y' | replace('x', 'z') | center(5) }}", " z y "),
        ("{{ learner.first_name | wordwrap(5) | length > 0 }}", "True"),
    ],
)
def test_ordinary_templates_render(text: str, expected: str) -> None:
    assert render(text) == (expected, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{% for i in range(100000) %}{% endfor %}", "range() of 100,000 numbers"),
        (
            "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}",
            f"loops more than {MAX_LOOPS:,} times",
        ),
        ("{% for c in 'ab' * 6000 %}{% for d in 'ab' * 6000 %}{% endfor %}{% endfor %}", "loops"),
        ("{{ 'x' * 10000000000 }}", "a repeated text"),
        ("{{ ['x'] * 10000000000 }}", "a repeated text"),
        ("{{ 'x' * 90000 + 'y' * 90000 }}", "a joined text"),
        ("{{ 2 ** 100000000 }}", "exponent"),
        ("{{ '%s' % 1 }}", "formatting strings with %"),
        ("{{ 'x' | center(100000000) }}", "center()"),
        ("{{ 'ab' | replace('', 'x' * 90000) }}", "replace()"),
        ("{{ 'x' | indent(100000000, first=True) }}", "indent()"),
        ("{{ ('x' * 90000) | wordwrap(1, wrapstring='yy') }}", "wordwrap()"),
        ("{{ (['x' * 90000] * 2) | join }}", "join()"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recurses too deep"),
        (
            "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}"
            "{% endmacro %}{{ f('x', 60) }}",
            "a text of",
        ),
        ("{% for i in range(9000) %}{{ 'x' * 90 }}{% endfor %}", "the rendered text"),
    ],
)
def test_templates_past_a_limit_fail_with_the_reason(text: str, reason: str) -> None:
    rendered, error = render(text)
    assert rendered is None
    assert error is not None and reason in error, error


def test_what_jinja_offers_but_no_drip_needs_is_gone() -> None:
    for name in ("lipsum", "cycler", "joiner", "namespace"):
        issues = templates.check_template(f"{{{{ {name}() }}}}", {})
        assert any(f"unknown template variable '{name}'" in i.message for i in issues), name


def test_limits_are_per_render() -> None:
    text = "{% for i in range(6000) %}{% endfor %}ok"
    assert [render(text) for _ in range(3)] == [("ok", None)] * 3
    assert MAX_TEXT >= 20_000  # an email step may be long


_FRAGMENTS = st.sampled_from(
    [
        "{{ learner.first_name }}",
        "{{ course.title }}",
        "{% for i in range(",
        "{% for c in ",
        "{% endfor %}",
        "{% macro f(x) %}",
        "{% endmacro %}",
        "{{ f(",
        "{% if ",
        "{% endif %}",
        "{% else %}",
        ") }}",
        ") %}",
        "'ab'",
        " * ",
        " ** ",
        " ~ ",
        " + ",
        " % ",
        " | join",
        " | replace('a', 'bb')",
        " | center(",
        " | length",
        "99999",
        "3",
        "learner.name",
        " ",
        "x",
        "}}",
        "{{",
    ]
)


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(_FRAGMENTS, max_size=14))
def test_any_template_is_checked_and_rendered_without_raising(parts: list[str]) -> None:
    text = "".join(parts)
    issues = templates.check_template(text, {})
    assert all(issue.line >= 1 for issue in issues)
    rendered, error = render(text)
    assert (rendered is None) != (error is None)
    if rendered is not None:
        assert len(rendered) <= MAX_TEXT
