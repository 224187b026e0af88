"""Parts shared by the learners and cohorts tables: bar charts in cells, fitted columns and a
throttled live refresh."""

from tui.widgets.tables.bars import bar, bar_cell, percent
from tui.widgets.tables.columns import Column, fit, set_columns
from tui.widgets.tables.refresh import RefreshGate

__all__ = ["Column", "RefreshGate", "bar", "bar_cell", "fit", "percent", "set_columns"]
