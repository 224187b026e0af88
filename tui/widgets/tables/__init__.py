"""Parts shared by the dashboard's tables: bar charts in cells, fitted columns, a throttled
live refresh and the line under a paged list."""

from tui.widgets.tables.bars import bar, bar_cell, percent
from tui.widgets.tables.columns import Column, fit, set_columns
from tui.widgets.tables.paging import show_more_line
from tui.widgets.tables.refresh import RefreshGate

__all__ = [
    "Column",
    "RefreshGate",
    "bar",
    "bar_cell",
    "fit",
    "percent",
    "set_columns",
    "show_more_line",
]
