"""Splitting long Telegram HTML into messages: tables, a property, and one send end to end."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.channels.base import Outbound, Outcome
from dripper.channels.telegram.channel import TelegramChannel
from dripper.content.compose import Button, Content
from dripper.content.render import telegram_html, visible_length
from dripper.content.split import split_html
from dripper.sandbox import TelegramEmulator
from dripper.sandbox.telegram.html import parse_html, utf16_len
from tests.fixtures.sandboxes import telegram_sandbox

os.environ["PTB_TIMEDELTA"] = "1"

TOKEN = "4343:SPLIT-test"
CHAT = 1001


def visible(markup: str) -> str:
    return parse_html(markup).text


@pytest.mark.parametrize(
    ("markup", "limit", "expected"),
    [
        ("short", 10, ["short"]),
        ("", 10, [""]),
        ("aaaa\n\nbbbb\n\ncccc", 10, ["aaaa\n\nbbbb", "cccc"]),
        ("aaaa\nbbbb\ncccc", 10, ["aaaa\nbbbb", "cccc"]),  # lines of one paragraph
        ("aa\nbb\n\ncccc dddd", 10, ["aa\nbb", "cccc dddd"]),  # a blank line before a line break
        ("one two three four", 10, ["one two ", "three four"]),  # after the last space
        ("abcdefghijklmno", 10, ["abcdefghij", "klmno"]),  # hard cut
        ("<b>aaaa\nbbbb\ncccc</b>", 10, ["<b>aaaa\nbbbb</b>", "<b>cccc</b>"]),
        ("<pre>x = 1\n\ny = 2\nz = 3</pre>", 11, ["<pre>x = 1</pre>", "<pre>y = 2\nz = 3</pre>"]),
        ("&lt;&gt;&amp;&lt;&gt;&amp;", 3, ["&lt;&gt;&amp;", "&lt;&gt;&amp;"]),  # entities whole
        ("😀😀😀😀😀😀", 4, ["😀😀", "😀😀", "😀😀"]),  # UTF-16: 2 units each, none lost
        ('<a href="https://e.x/?a=1&amp;b=2">link text</a> end', 9, None),
    ],
)
def test_split_table(markup: str, limit: int, expected: list[str] | None) -> None:
    chunks = split_html(markup, limit)
    if expected is not None:
        assert chunks == expected
    for chunk in chunks:
        assert visible_length(chunk) <= limit or not markup
        parse_html(chunk)


def test_a_code_block_with_a_blank_line_is_never_cut_into_invalid_html() -> None:
    # The blank line inside <pre> is not a paragraph boundary of the message.
    markup = "intro " * 10 + "\n\n<pre>" + "a = 1\n" * 5 + "\n" + "b = 2\n" * 5 + "</pre>"
    for limit in range(8, 80):
        for chunk in split_html(markup, limit):
            parse_html(chunk)
            assert visible_length(chunk) <= limit


_WORD = st.lists(st.sampled_from([*"abcxyz<>&\"'é😀", "long" * 5]), min_size=1, max_size=12).map(
    "".join
)
_INLINE = st.lists(
    st.one_of(
        _WORD,
        _WORD.map(lambda w: f"**{w}**"),
        _WORD.map(lambda w: f"_{w}_"),
        _WORD.map(lambda w: f"[{w}](https://example.com/{len(w)}?a=1&b=2)"),
    ),
    min_size=1,
    max_size=12,
).map(" ".join)
_BLOCK = st.one_of(
    st.lists(_INLINE, min_size=1, max_size=4).map("\n".join),  # a paragraph with line breaks
    st.lists(_INLINE, min_size=1, max_size=4).map(lambda items: "\n".join(f"- {i}" for i in items)),
    st.lists(_WORD, min_size=1, max_size=6).map(
        lambda lines: "```\n" + "\n\n".join(lines) + "\n```"
    ),
    _INLINE.map(lambda text: f"> {text}"),
    _INLINE.map(lambda text: f"## {text}"),
)
_MARKDOWN = st.lists(_BLOCK, min_size=1, max_size=8).map("\n\n".join)


@settings(max_examples=100, deadline=None)
@given(markdown=_MARKDOWN, limit=st.integers(min_value=2, max_value=200))
def test_split_property(markdown: str, limit: int) -> None:
    markup = telegram_html(markdown)
    chunks = split_html(markup, limit)
    for chunk in chunks:
        parsed = parse_html(chunk)  # valid for Telegram's parser
        assert visible_length(chunk) <= limit
        assert utf16_len(parsed.text) <= limit
    # Nothing lost, nothing added: only the newlines at the cuts are dropped.
    assert "".join(visible(c) for c in chunks).replace("\n", "") == visible(markup).replace(
        "\n", ""
    )
    if visible_length(markup) <= limit:
        assert chunks == [markup]


# ---- end to end ---------------------------------------------------------------------------


@pytest.fixture
async def channel() -> AsyncIterator[tuple[TelegramEmulator, TelegramChannel]]:
    async with telegram_sandbox(TOKEN) as sandbox:
        yield sandbox.emulator, sandbox.channel


async def test_a_long_tip_arrives_as_three_messages_with_the_keyboard_on_the_last(
    channel: tuple[TelegramEmulator, TelegramChannel],
) -> None:
    emulator, telegram = channel
    emulator.create_user(CHAT, "Ann")
    emulator.start(TOKEN, CHAT)
    paragraph = "Pivot tables **summarise** data & <filter> it. " * 6
    markdown = "\n\n".join(f"{n}. {paragraph.strip()}" for n in range(1, 33))
    assert 8_500 < len(markdown) < 9_500
    content = Content(
        markdown=markdown,
        subject="tip",
        buttons=((Button("Got it", "t:1"), Button("More", "t:2")),),
    )
    outbound = Outbound(1, "e1:tip:0", content, CHAT, None, "Ann")
    result = await telegram.send(outbound)
    assert result.outcome is Outcome.SENT, result.error
    messages = emulator.messages(TOKEN, CHAT)[1:]  # after the /start greeting, if any
    messages = [m for m in emulator.messages(TOKEN, CHAT) if "Pivot" in str(m.get("text"))]
    assert len(messages) == 3
    assert [bool(m.get("reply_markup")) for m in messages] == [False, False, True]
    assert result.provider_message_id == f"{CHAT}:{messages[-1]['message_id']}"
    received = "".join(str(m["text"]) for m in messages).replace("\n", "")
    assert received == visible(telegram_html(markdown)).replace("\n", "")
    assert all(m["entities"] for m in messages)  # the bold survived in every part
