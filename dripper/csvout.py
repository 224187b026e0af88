"""Every CSV dripper writes (reports, invite links): cells a spreadsheet shows as text.

A learner named `=HYPERLINK("http://evil/", "click")` must not become a live formula when a
trainer opens the file: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is
prefixed with `'` (OWASP's advice), and control characters other than line breaks and tabs
are dropped.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """Text cells without control characters other than line breaks, and never a formula."""
    if not isinstance(value, str):
        return value
    text = "".join(char for char in value if char in "\n\t" or unicodedata.category(char) != "Cc")
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def write_csv(handle: TextIO, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    writer = csv.writer(handle)
    writer.writerow(header)
    writer.writerows([safe_cell(value) for value in row] for row in rows)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    write_csv(buffer, header, rows)
    return buffer.getvalue()
