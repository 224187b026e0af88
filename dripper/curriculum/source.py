"""YAML source files with positions: load with line/column marks, find where a value came from.

Pure apart from reading the file. Errors carry 1-based line and column, as editors show them.

Any input gives a result or a `SourceError` within moments: files are at most `MAX_BYTES`, a
document at most `MAX_VALUES` values once aliases are expanded (a "billion laughs" alias bomb is
450 bytes), collections nest at most `MAX_DEPTH` deep, and control characters are reported
where they are.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from dripper.errors import DripperError


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a file, printable as `path:line:col: message`."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class SourceError(DripperError):
    """The file cannot be read as YAML at all."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class Source:
    """A parsed YAML document: `tree` keeps ruamel's marks, `data` is plain Python."""

    path: str
    text: str
    tree: Any
    data: Any

    def locate(self, loc: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the value at `loc`, or of its key when `key` is true.

        When `loc` goes further than the tree (a missing key), the position of the deepest node
        that exists is returned: the mapping that lacks the key.
        """
        node = self.tree
        position = (1, 1)
        for depth, part in enumerate(loc):
            last = depth == len(loc) - 1
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.key(part) if (last and key) else node.lc.value(part)
                position = (line + 1, col + 1)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line, col = node.lc.item(part)
                position = (line + 1, col + 1)
                node = node[part]
            else:
                if isinstance(node, CommentedMap | CommentedSeq):
                    position = (node.lc.line + 1, node.lc.col + 1)
                break
        return position

    def problem(self, loc: Sequence[str | int], message: str, *, key: bool = False) -> Problem:
        line, col = self.locate(loc, key=key)
        return Problem(self.path, line, col, message)


def _timestamp_as_text(constructor: Any, node: Any) -> str:
    # YAML's implicit timestamps would raise a bare ValueError on 2026-13-01 with no position;
    # as text, the date is parsed (and reported with its position) by the model instead.
    return str(constructor.construct_scalar(node))


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.constructor.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
    return yaml


MAX_BYTES = 1_000_000
MAX_VALUES = 100_000
MAX_DEPTH = 64
# YAML allows tab, line feed and carriage return among the C0 controls, and no DEL or C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
_ALIAS = re.compile(r"(?<![\w&*])\*[^\s,\[\]{}]+")


class _TooLarge(Exception):
    pass


def to_plain(node: Any, budget: list[int] | None = None) -> Any:
    """Strip ruamel's wrapper types so pydantic sees dict, list, str, int, float, bool, date.

    Aliases are expanded here: `budget` ([values left]) stops an alias bomb."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLarge
    if isinstance(node, dict):
        return {to_plain(k, budget): to_plain(v, budget) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(item, budget) for item in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.datetime):
        return dt.datetime.fromisoformat(node.isoformat())
    if isinstance(node, dt.date):
        return dt.date(node.year, node.month, node.day)
    return node


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _too_deep(text: str) -> int | None:
    """The offset where flow brackets or block indentation nest deeper than MAX_DEPTH."""
    depth = 0
    quote = ""
    for offset, char in enumerate(text):
        if quote:
            if char == quote or (char == "\n" and quote == "#"):
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#" and (offset == 0 or text[offset - 1] in " \t\n"):
            quote = "#"
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return offset
        elif char in "]}":
            depth = max(0, depth - 1)
    indents = [0]
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip(" -")
        if stripped.strip() and not stripped.startswith("#"):
            indent = len(line) - len(stripped)
            while indent < indents[-1]:
                indents.pop()
            if indent > indents[-1]:
                indents.append(indent)
                if len(indents) > MAX_DEPTH:
                    return offset + indent
        offset += len(line)
    return None


def parse_source(text: str, path: str) -> Source:
    """Parse YAML text; a syntax error becomes a SourceError pointing at the offending mark."""
    if len(text) > MAX_BYTES:
        raise SourceError(
            Problem(
                path,
                1,
                1,
                f"file of {len(text):,} characters; a curriculum has at most {MAX_BYTES:,}",
            )
        )
    control = _CONTROL.search(text)
    if control is not None:
        line, col = _position(text, control.start())
        raise SourceError(
            Problem(
                path,
                line,
                col,
                f"control character U+{ord(control.group()):04X} is not allowed in YAML; delete it",
            )
        )
    deep = _too_deep(text)
    if deep is not None:
        line, col = _position(text, deep)
        raise SourceError(Problem(path, line, col, f"nested more than {MAX_DEPTH} levels deep"))
    try:
        tree = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise SourceError(Problem(path, line, col, f"invalid YAML: {what}")) from exc
    except (YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise SourceError(Problem(path, 1, 1, f"invalid YAML: {exc}")) from exc
    try:
        data = to_plain(tree, [MAX_VALUES])
    except (_TooLarge, RecursionError):
        alias = _ALIAS.search(text)
        line, col = _position(text, alias.start()) if alias else (1, 1)
        raise SourceError(
            Problem(
                path,
                line,
                col,
                f"the document expands to more than {MAX_VALUES:,} values "
                "(aliases repeating aliases?)",
            )
        ) from None
    return Source(path=path, text=text, tree=tree, data=data)


def read_source(path: Path) -> Source:
    """Read and parse a YAML file; unreadable or non-UTF-8 files become a SourceError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            Problem(str(path), 1, 1, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")
        ) from exc
    except OSError as exc:
        raise SourceError(Problem(str(path), 1, 1, f"cannot read file: {exc.strerror}")) from exc
    return parse_source(text, str(path))
