"""What the table screens (learners, cohorts, a cohort's steps) have in common.

A status line, one row-cursor table, a detail line about the highlighted row, the footer. The
columns fit the width (`tui.widgets.tables.columns`) and are laid out again on resize with the
cursor kept on its row; a change in the database reloads the rows through a `RefreshGate`.
A subclass says which rows it shows and how: `columns`, `cells`, `key`, `reload`,
`show_status`, `show_detail` and `choose` (Enter on a row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.messages import DataChanged
from tui.widgets.tables import Column, RefreshGate, set_columns

RowT = TypeVar("RowT")


class FocusedWhileLoading(DataTable[Text | str]):
    """A table that takes the focus while it shows its loading indicator: Textual passes a
    loading widget over, so the screen opened with nothing focused, its keys and footer hints
    missing until a click or tab, whenever the rows came after the screen's first frame."""

    @property
    def focusable(self) -> bool:
        return self.allow_focus() and self.visible and not self._self_or_ancestors_disabled


class TableScreen(Screen[None], Generic[RowT]):
    TABLE: ClassVar[str]  # the id of the table; the status and detail lines derive theirs
    STATUS: ClassVar[str]
    DETAIL: ClassVar[str]
    WIDE: ClassVar[int] = 110  # from this width on, the cells say more
    REFRESH_LEAST: ClassVar[float] = 1.0  # seconds between two reloads at least

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RowT] = []
        self.loaded = False
        self.refresh_gate = RefreshGate(self, self.reload, least=self.REFRESH_LEAST)
        self.wide = False
        self.widths: dict[str, int] = {}

    # ------------------------------------------------------------------ for subclasses

    def reload(self) -> object:
        """Read the rows again (a Textual worker): set `rows` and `loaded`, then `fill`."""
        raise NotImplementedError

    def columns(self, width: int) -> Sequence[Column]:
        raise NotImplementedError

    def cells(self, row: RowT) -> Sequence[Text | str]:
        """One cell per column, fitted to `widths`."""
        raise NotImplementedError

    def key(self, row: RowT) -> str:
        raise NotImplementedError

    def show_status(self) -> None:
        raise NotImplementedError

    def show_detail(self) -> None:
        raise NotImplementedError

    def choose(self) -> None:
        """Enter on the highlighted row."""
        raise NotImplementedError

    def compose_hints(self) -> ComposeResult:
        """Lines between the detail and the footer."""
        yield from ()

    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def filled(self) -> None:
        """After the rows are in the table."""
        self.show_detail()

    # ------------------------------------------------------------------ the scaffolding

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one(f"#{self.TABLE}", DataTable)

    def compose(self) -> ComposeResult:
        yield Static(id=self.STATUS, classes="status-line")
        table: DataTable[Text | str] = FocusedWhileLoading(
            id=self.TABLE, cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static(id=self.DETAIL, classes="table-detail")
        yield from self.compose_hints()
        yield Footer()

    def on_mount(self) -> None:
        self.set_columns()
        self.table.loading = True
        self.show_status()
        self.reload()

    def on_resize(self) -> None:
        selected = self.selected()
        self.set_columns()
        self.fill(selected)

    def on_data_changed(self, _: DataChanged) -> None:
        self.refresh_gate.changed()

    def on_screen_resume(self) -> None:
        self.refresh_gate.resumed()
        if self.focused is None:  # opened or come back to: the keys go to the table
            self.table.focus()

    def set_columns(self) -> None:
        width = max(60, self.size.width or 80)
        self.wide = width >= self.WIDE
        self.widths = set_columns(self.table, list(self.columns(width)), width)

    def fill(self, selected: RowT | None = None) -> None:
        """Put `rows` in the table, the cursor on `selected` if it is still there."""
        table = self.table
        if not table.columns:
            return
        table.clear()
        for row in self.rows:
            table.add_row(*self.cells(row), key=self.key(row))
        if selected is not None and (key := self.key(selected)) in table.rows:
            table.move_cursor(row=table.get_row_index(key))
        if self.focused is None:
            table.focus()
        # The footer read the keys while the table was still loading (its Enter is checked
        # against the rows): read them again now there are rows.
        self.refresh_bindings()
        self.filled()

    def selected(self) -> RowT | None:
        table = self.table
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == self.TABLE:
            self.highlighted(event)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter reaches the screen through the table's RowSelected, in order with the keys
        # typed before it (a priority binding would jump ahead of them).
        if event.data_table.id == self.TABLE:
            self.choose()

    def action_cursor_down(self) -> None:
        self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.table.action_cursor_up()

    def action_cursor_first(self) -> None:
        self.table.action_scroll_top()

    def action_cursor_last(self) -> None:
        self.table.action_scroll_bottom()
