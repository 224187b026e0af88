"""Telegram HTML cut into messages of at most 4,096 visible characters, tags kept balanced. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dripper.content.render import TELEGRAM_TEXT_LIMIT, visible_length


def split_html(markup: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split rendered Telegram HTML into messages under `limit`, at paragraph boundaries.

    A chunk ends at the last blank line that fits, else at the last line break, else after the
    last space, and as a last resort is cut hard between two characters. The newlines at a cut
    are dropped. Tags open at a cut are closed at the end of the chunk and opened again at the
    start of the next one, so every chunk is valid HTML (a code block or quote split in two
    stays one on both sides).
    """
    if visible_length(markup) <= limit:
        return [markup]
    atoms = _atoms(markup)
    chunks: list[str] = []
    start = 0
    opened: list[str] = []  # the open tags at `start`
    while start < len(atoms):
        end, resume = _chunk_end(atoms, start, limit)
        body = "".join(atom.markup for atom in atoms[start:end])
        closing = list(opened)
        for atom in atoms[start:end]:
            _track(closing, atom.markup)
        chunks.append("".join(opened) + body + "".join(_close(tag) for tag in reversed(closing)))
        for atom in atoms[end:resume]:
            _track(closing, atom.markup)
        opened, start = closing, resume
    return [chunk for chunk in chunks if visible_length(chunk)] or [markup]


@dataclass(frozen=True, slots=True)
class _Atom:
    markup: str  # a tag, an entity or one character
    units: int  # UTF-16 code units Telegram counts (0 for a tag)


_ATOM = re.compile(r"<[^>]*>|&#?\w+;|.", re.DOTALL)


def _atoms(markup: str) -> list[_Atom]:
    return [
        _Atom(text, 0 if text.startswith("<") and len(text) > 1 else visible_length(text))
        for text in _ATOM.findall(markup)
    ]


def _chunk_end(atoms: list[_Atom], start: int, limit: int) -> tuple[int, int]:
    """Where the chunk starting at `start` ends, and where the next one starts."""
    used = 0
    index = start
    while index < len(atoms) and used + atoms[index].units <= limit:
        used += atoms[index].units
        index += 1
    if index == len(atoms):
        return index, index
    index = max(index, start + 1)  # a character wider than the limit still makes progress
    size = index - start
    # The newlines just past the window count too: they are dropped at a cut.
    texts = [atom.markup for atom in atoms[start : index + 2]]
    for run in (2, 1):  # a blank line, then a line break: cut there, dropping the newlines
        for cut in range(size, 0, -1):
            if all(text == "\n" for text in texts[cut : cut + run]):
                while cut > 0 and texts[cut - 1] == "\n":
                    cut -= 1
                resume = start + cut
                while resume < len(atoms) and atoms[resume].markup == "\n":
                    resume += 1
                if cut > 0:
                    return start + cut, resume
    for cut in range(size - 1, 0, -1):
        if texts[cut] == " ":
            return start + cut + 1, start + cut + 1
    return index, index


def _track(opened: list[str], markup: str) -> None:
    if not markup.startswith("<") or len(markup) == 1:
        return
    if markup.startswith("</"):
        if opened:
            opened.pop()
    else:
        opened.append(markup)


def _close(tag: str) -> str:
    name = re.match(r"<\s*([A-Za-z0-9-]+)", tag)
    return f"</{name[1] if name else ''}>"
