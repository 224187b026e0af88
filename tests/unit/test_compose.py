"""Composing a step for a learner: the cached HTML fast path equals the full rendering."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.content.compose import _prerendered
from dripper.content.render import telegram_html
from dripper.curriculum.templates import render

TEMPLATES = [
    "Hi **{{ learner.first_name }}** from {{ learner.department }} in _{{ course.title }}_!",
    "{{ learner.first_name }}",
    "# {{ course.title }}\n\n- {{ learner.first_name }}\n- b\n\n> {{ learner.department }}",
    "Text with `code` and [a link](<https://example.org/?a=1&b=2>) for {{ learner.first_name }}.",
]


@settings(max_examples=300, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    first_name=st.text(max_size=12),
    department=st.text(alphabet=st.sampled_from(list("ab *_`[]()<>&#!-+.1\\\n \t|~")), max_size=10),
    title=st.text(max_size=8),
)
def test_fast_path_equals_full_rendering(
    template: str, first_name: str, department: str, title: str
) -> None:
    context = {
        "learner": {"first_name": first_name, "department": department},
        "course": {"title": title},
    }
    prerendered = _prerendered(template)
    assert prerendered is not None
    fast = prerendered.for_context(context)
    if fast is not None:
        assert fast == telegram_html(render(template, context))


def test_templates_with_logic_are_rendered_in_full() -> None:
    assert _prerendered("{% if learner.first_name %}Hi{% endif %}") is None
    assert _prerendered("{{ learner.first_name | upper }}") is None
    assert _prerendered("[x](https://a.example/{{ learner.first_name }})") is None
