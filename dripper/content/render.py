"""One Markdown source to the formats the channels send: Telegram HTML and plain text.

Pure. Raw HTML in the source is never passed through (markdown-it runs with html disabled), and
every text node is escaped, so a learner name or a curriculum text containing <, > or & cannot
break Telegram's parser or inject markup. Telegram HTML uses only the tags the Bot API supports.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024

_INLINE_TAGS = {
    "strong_open": "<b>",
    "strong_close": "</b>",
    "em_open": "<i>",
    "em_close": "</i>",
    "s_open": "<s>",
    "s_close": "</s>",
}
_TAG = re.compile(r"<[^>]+>")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("strikethrough")


@lru_cache(maxsize=256)
def _tokens(markdown: str) -> tuple[Token, ...]:
    """Parsed once per text: a message's Telegram HTML, email HTML and email text all come from
    the same parse (parsing is most of the cost of rendering). Tokens are never mutated."""
    return tuple(_parser().parse(markdown))


def escape_markdown(value: str) -> str:
    """Backslash-escape Markdown punctuation so inserted data (a learner's name) stays literal."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", value)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _inline_html(children: Sequence[Token]) -> str:
    out: list[str] = []
    for token in children:
        if token.type == "text":
            out.append(_escape(token.content))
        elif token.type in _INLINE_TAGS:
            out.append(_INLINE_TAGS[token.type])
        elif token.type == "code_inline":
            out.append(f"<code>{_escape(token.content)}</code>")
        elif token.type == "link_open":
            href = html.escape(str(token.attrs.get("href", "")), quote=True)
            out.append(f'<a href="{href}">')
        elif token.type == "link_close":
            out.append("</a>")
        elif token.type == "image":
            src = html.escape(str(token.attrs.get("src", "")), quote=True)
            out.append(f'<a href="{src}">{_escape(token.content or src)}</a>')
        elif token.type in ("softbreak", "hardbreak"):
            out.append("\n")
    return "".join(out)


def telegram_html(markdown: str) -> str:
    """Render Markdown to the HTML subset of Telegram's parse_mode=HTML.

    Paragraphs are separated by a blank line, headings become bold lines, lists become bullet or
    numbered lines, code blocks <pre>, block quotes <blockquote>.
    """
    blocks: list[tuple[str, int | None]] = []  # (markup, the top-level list it belongs to)
    list_serial = 0
    list_stack: list[list[int]] = []  # per open list: [next number] or [] for bullets
    quote_depth = 0
    in_heading = False
    prefix = ""
    for token in _tokens(markdown):
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            list_serial += not list_stack
            start = int(token.attrs.get("start", 1) or 1)
            list_stack.append([start] if kind == "ordered_list_open" else [])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_stack.pop()
        elif kind == "list_item_open":
            indent = "  " * (len(list_stack) - 1)
            counter = list_stack[-1]
            if counter:
                prefix = f"{indent}{counter[0]}. "
                counter[0] += 1
            else:
                prefix = f"{indent}• "
        elif kind == "blockquote_open":
            quote_depth += 1
        elif kind == "blockquote_close":
            quote_depth -= 1
        elif kind == "inline":
            text = _inline_html(token.children or [])
            if prefix:
                text, prefix = prefix + text, ""
            group = list_serial if list_stack else None
            blocks.append((f"<b>{text}</b>" if in_heading else text, group))
        elif kind in ("fence", "code_block"):
            group = list_serial if list_stack else None
            blocks.append((f"<pre>{_escape(token.content.rstrip(chr(10)))}</pre>", group))
        elif kind in ("heading_open", "heading_close"):
            in_heading = kind == "heading_open"
        if quote_depth and kind == "paragraph_close":
            blocks[-1] = (f"<blockquote>{blocks[-1][0]}</blockquote>", blocks[-1][1])
    return _join_blocks(blocks)


def _join_blocks(blocks: list[tuple[str, int | None]]) -> str:
    """Blank lines between blocks; items of one list stay on consecutive lines."""
    out: list[str] = []
    previous_group: int | None = None
    for markup, group in blocks:
        if out:
            out.append("\n" if group is not None and group == previous_group else "\n\n")
        out.append(markup)
        previous_group = group
    return "".join(out).strip()


def visible_length(telegram_markup: str) -> int:
    """Length of the text Telegram counts against its limits: tags removed, entities decoded,
    measured in UTF-16 code units as the Bot API does."""
    text = html.unescape(_TAG.sub("", telegram_markup))
    return len(text.encode("utf-16-le")) // 2


def plain_text(markdown: str) -> str:
    """The Telegram rendering with its tags removed: for previews and the TUI."""
    return html.unescape(_TAG.sub("", telegram_html(markdown)))


_LINK_TEXT = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.DOTALL)


def email_text(markdown: str) -> str:
    """Plain text for an email's text part: like `plain_text`, but a link keeps its address,
    "label (https://...)", since a plain-text reader cannot click the label."""

    def spell_out(match: re.Match[str]) -> str:
        href, label = html.unescape(match.group(1)), match.group(2)
        plain_label = html.unescape(_TAG.sub("", label))
        return label if plain_label == href else f"{label} ({html.escape(href, quote=False)})"

    return html.unescape(_TAG.sub("", _LINK_TEXT.sub(spell_out, telegram_html(markdown))))


def html_fragment(markdown: str) -> str:
    """Standard HTML (for email) from the same parse; raw HTML in the source stays escaped."""
    parser = _parser()
    return str(parser.renderer.render(list(_tokens(markdown)), parser.options, {}))
