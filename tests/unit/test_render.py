"""Markdown to Telegram HTML: supported tags only, text escaped, lengths as Telegram counts."""

from __future__ import annotations

import pytest

from dripper.content.render import escape_markdown, plain_text, telegram_html, visible_length

CASES = [
    ("**bold** and _it_ and ~~gone~~", "<b>bold</b> and <i>it</i> and <s>gone</s>"),
    ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("`x<y`", "<code>x&lt;y</code>"),
    ('[site](https://e.org/?a=1&b="2")', '<a href="https://e.org/?a=1&amp;b=%222%22">site</a>'),
    ("# Title\n\nBody", "<b>Title</b>\n\nBody"),
    ("- one\n- two\n\n1. first\n2. second", "• one\n• two\n\n1. first\n2. second"),
    ("> quoted", "<blockquote>quoted</blockquote>"),
    ("```\nif a < b:\n```", "<pre>if a &lt; b:</pre>"),
    ("line one\nline two", "line one\nline two"),
    ("Hi 👋 مرحبا", "Hi 👋 مرحبا"),
]


@pytest.mark.parametrize(("markdown", "expected"), CASES)
def test_telegram_html(markdown: str, expected: str) -> None:
    assert telegram_html(markdown) == expected


def test_visible_length_counts_utf16_units_without_tags() -> None:
    assert visible_length("<b>a&amp;b</b>") == 3
    assert visible_length("👋") == 2  # one emoji is a surrogate pair, as Telegram counts it


@pytest.mark.parametrize(
    "value", ["*Bob*", "_x_", "[a](http://evil)", "<b>", "1. not a list", "# no"]
)
def test_escaped_values_render_literally(value: str) -> None:
    assert plain_text(escape_markdown(value)) == value
