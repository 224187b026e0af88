"""Column widths for a DataTable that fills the terminal: narrow columns at 80x24, and what is
left goes to the columns that can use it (names, texts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from textual.widgets import DataTable

CELL_PADDING = 2  # DataTable's default cell_padding of 1 on each side
SCROLLBAR = 2


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # the least it needs
    grow: int = 0  # its share of the room left over
    most: int | None = None  # it never needs more than this


def fit(columns: Sequence[Column], width: int) -> dict[str, int]:
    """Width of each column (by key) for a table `width` cells wide."""
    room = width - SCROLLBAR - CELL_PADDING * len(columns)
    widths = {column.key: column.width for column in columns}
    spare = room - sum(widths.values())
    growing = [column for column in columns if column.grow]
    while spare > 0 and growing:
        shares = sum(column.grow for column in growing)
        handed = 0
        for column in growing:
            extra = max(1, spare * column.grow // shares)
            if column.most is not None:
                extra = min(extra, column.most - widths[column.key])
            extra = min(extra, spare - handed)
            widths[column.key] += extra
            handed += extra
        spare -= handed
        growing = [
            column for column in growing if column.most is None or widths[column.key] < column.most
        ]
        if handed == 0:
            break
    return widths


def set_columns(table: DataTable[Any], columns: Sequence[Column], width: int) -> dict[str, int]:
    """Replace the table's columns (and rows) with `columns` fitted to `width`."""
    widths = fit(columns, width)
    table.clear(columns=True)
    for column in columns:
        table.add_column(column.label, width=widths[column.key], key=column.key)
    return widths
