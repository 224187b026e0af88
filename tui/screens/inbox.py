"""The inbox: conversations with unread marker, learner, channel, preview, age and assignee.

Folders Open / Mine / Unassigned / Waiting / Snoozed / Closed / All on the number keys, cohort
and label filters, `/` to search. The list is paged: it loads 200 conversations and more as the
cursor reaches the end, so it opens at once whatever the size of the inbox.
"""

from __future__ import annotations

import time
from dataclasses import replace

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from dripper.inbox import (
    ConversationRow,
    Folder,
    InboxQuery,
    cohort_names,
    count_conversations,
    known_labels,
    list_conversations,
    unread_count,
)
from dripper.inbox.problems import count_problems
from tui.messages import DataChanged, OpenConversation
from tui.screens.pickers import Ask, Choose
from tui.session import age, session_of
from tui.text import literal, shorten
from tui.widgets.tables import show_more_line

PAGE = 200
ALL = ""  # the "All cohorts" / "All labels" choice; a picker gives None for Escape
FOLDER_KEYS = {
    Folder.OPEN: "1",
    Folder.MINE: "2",
    Folder.UNASSIGNED: "3",
    Folder.WAITING: "4",
    Folder.SNOOZED: "5",
    Folder.CLOSED: "6",
    Folder.ALL: "7",
}
CHANNEL_MARK = {"telegram": "TG", "email": "@"}


def _folder_binding(folder: Folder, show: bool = True) -> Binding:
    return Binding(
        FOLDER_KEYS[folder],
        f"folder('{folder.value}')",
        folder.value.capitalize(),
        show=show,
        id=f"inbox.folder.{folder.value}",
    )


class InboxScreen(Screen[None]):
    """The shared inbox; the screen the dashboard opens on."""

    BINDINGS = [
        _folder_binding(Folder.OPEN),
        _folder_binding(Folder.MINE),
        _folder_binding(Folder.UNASSIGNED),
        _folder_binding(Folder.WAITING),
        _folder_binding(Folder.SNOOZED, show=False),
        _folder_binding(Folder.CLOSED, show=False),
        _folder_binding(Folder.ALL),
        Binding("slash", "search", "Search", id="inbox.search"),
        Binding("c", "filter_cohort", "Cohort", id="inbox.cohort"),
        Binding("l", "filter_label", "Label", id="inbox.label"),
        Binding("escape", "clear_filters", "Clear filters", show=False, id="inbox.clear"),
        Binding("j", "cursor_down", "Down", show=False, id="inbox.down"),
        Binding("k", "cursor_up", "Up", show=False, id="inbox.up"),
        Binding("g", "cursor_first", "First", show=False, id="inbox.first"),
        Binding("G", "cursor_last", "Last (loads more)", show=False, id="inbox.last"),
        Binding("enter", "open_conversation", "Open", id="inbox.open"),
        Binding("q", "app.quit", "Quit", id="inbox.quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_state = InboxQuery(folder=Folder.OPEN, limit=PAGE)
        self.rows: list[ConversationRow] = []
        self.total = 0
        self.total_known = False  # `total` is counted for the current filters
        self.fills = 0  # how many times the list was filled from the database (for benchmarks)
        self.filled_at = 0.0  # perf_counter() of the last fill
        self._with_cohort = False
        self._preview_width = 40

    def compose(self) -> ComposeResult:
        yield Static(id="inbox-status", classes="status-line")
        table: DataTable[Text | str] = DataTable(
            id="conversations", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static(id="inbox-more", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self._set_columns()
        self.reload()

    def on_resize(self) -> None:
        selected = self.selected_id()
        self._set_columns()
        self._fill(selected)

    # ------------------------------------------------------------------ data

    @work(exclusive=True, exit_on_error=False, group="inbox-load")
    async def reload(self) -> None:
        """Read the current page again (filters changed, or the data did)."""
        session = session_of(self)
        now = session.now()
        trainer_id = session.trainer.id
        rows = await list_conversations(self.query_state, trainer_id, now)
        if not self.is_attached:  # the app is closing
            return
        selected = self.selected_id()  # before the rows change: the cursor stays on it
        self.rows = rows
        self.total = max(self.total, len(self.rows)) if self.total_known else len(self.rows)
        self._fill(selected)
        self.fills += 1
        self.filled_at = time.perf_counter()
        # The counts come second: the list is what the trainer waits for.
        total = await count_conversations(self.query_state, trainer_id, now)
        unread = await unread_count(trainer_id)
        problems = await count_problems()
        if not self.is_attached:
            return
        self.total, self.total_known = total, True
        self._show_more()
        self._show_status(unread, problems)

    def on_data_changed(self, _: DataChanged) -> None:
        if self.app.screen is self:  # covered by a conversation: it reloads on resume
            self.reload()

    def on_screen_resume(self) -> None:
        """Back from a conversation (by any key): unread dots and statuses may have changed."""
        if self.fills:
            self.reload()

    def _set_columns(self) -> None:
        """Fixed columns, and the preview takes what is left; a cohort column from 100 wide."""
        table = self.query_one("#conversations", DataTable)
        width = max(60, self.size.width or 80)
        self._with_cohort = width >= 100
        fixed = 1 + 18 + 2 + 4 + 8 + (14 if self._with_cohort else 0)
        self._preview_width = max(16, width - fixed - 2 * (6 if self._with_cohort else 5) - 2)
        table.clear(columns=True)
        table.add_column(" ", width=1, key="unread")
        table.add_column("Learner", width=18, key="learner")
        table.add_column("Ch", width=2, key="channel")
        table.add_column("Last message", width=self._preview_width, key="preview")
        if self._with_cohort:
            table.add_column("Cohort", width=14, key="cohort")
        table.add_column("Age", width=4, key="age")
        table.add_column("Assignee", width=8, key="assignee")

    def _fill(self, selected: int | None = None) -> None:
        table = self.query_one("#conversations", DataTable)
        if not table.columns:
            return
        table.clear()
        now = session_of(self).now()
        for row in self.rows:
            marker = Text("●", style="bold dodger_blue1") if row.unread else Text(" ")
            tags = " ".join(f"#{label}" for label in row.labels)
            prefix = {"out": "↳ ", "note": "✎ ", "system": "⚙ "}.get(
                row.preview_direction or "", ""
            )
            room = self._preview_width - (len(tags) + 1 if tags else 0)
            preview = literal(shorten(prefix + row.preview, max(8, room)), one_line=True)
            if tags:
                preview = Text.assemble(literal(tags, "italic dim", one_line=True), " ", preview)
            cells: list[Text | str] = [
                marker,
                literal(shorten(row.learner_name, 18), "bold" if row.unread else ""),
                CHANNEL_MARK.get(row.channel, row.channel[:2]),
                preview,
            ]
            if self._with_cohort:
                cells.append(literal(shorten(row.cohort or "", 14)))
            cells += [age(row.last_message_at, now), literal(shorten(row.assignee or "—", 8))]
            table.add_row(*cells, key=str(row.id))
        if selected is not None and str(selected) in table.rows:
            table.move_cursor(row=table.get_row_index(str(selected)))
        self._show_more()

    def _show_more(self) -> None:
        more = self.query_one("#inbox-more", Static)
        show_more_line(more, shown=len(self.rows), total=self.total, empty=self._empty_text())

    def _empty_text(self) -> str:
        if self.query_state.search:
            return "Nothing matches the search. Esc clears it."
        if self.query_state.folder is Folder.OPEN:
            return "Inbox zero: nothing is waiting for a trainer."
        return "No conversations here."

    def _show_status(self, unread: int, problems: int = 0) -> None:
        query = self.query_state
        status = Text.assemble((query.folder.value.capitalize(), "bold"), f" {self.total:,}")
        extras = []
        if query.cohort:
            extras.append(f"cohort {query.cohort}")
        if query.label:
            extras.append(f"#{query.label}")
        if query.search:
            extras.append(f"search “{shorten(query.search, 30)}”")
        extras.append(f"{unread:,} unread for {session_of(self).trainer.handle} in all folders")
        for extra in extras:
            status.append(" · ")
            status.append_text(literal(extra, one_line=True))
        if problems:
            status.append(" · ")
            status.append(f"{problems:,} problem{'s' if problems != 1 else ''} (F4)", "yellow")
        self.query_one("#inbox-status", Static).update(status)

    def selected_id(self) -> int | None:
        table = self.query_one("#conversations", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row].id

    @on(DataTable.RowHighlighted, "#conversations")
    def _maybe_load_more(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row == len(self.rows) - 1 and self.total > len(self.rows):
            self.query_state = replace(self.query_state, limit=len(self.rows) + PAGE)
            self.reload()

    @on(DataTable.RowSelected, "#conversations")
    def _row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_open_conversation()

    # ------------------------------------------------------------------ actions

    def _requery(self, **changes: object) -> None:
        self.query_state = replace(self.query_state, limit=PAGE, offset=0, **changes)  # type: ignore[arg-type]
        self.total_known = False
        self.query_one("#conversations", DataTable).move_cursor(row=0)
        self.reload()

    def action_folder(self, folder: str) -> None:
        self._requery(folder=Folder(folder))

    def action_search(self) -> None:
        def done(text: str | None) -> None:
            if text is not None:  # None: Escape, which keeps the search as it was
                self._requery(search=text or None)

        self.app.push_screen(
            Ask(
                "Search messages, names and addresses (every word must match)",
                value=self.query_state.search or "",
            ),
            done,
        )

    @work(exit_on_error=False, group="inbox-pick")
    async def action_filter_cohort(self) -> None:
        names = await cohort_names()
        choices = [("All cohorts", ALL)] + [(name, name) for name in names]
        picked = await self.app.push_screen_wait(Choose[str]("Show the cohort", choices))
        if picked is not None:  # None: Escape, which keeps the filter as it was
            self._requery(cohort=picked or None)

    @work(exit_on_error=False, group="inbox-pick")
    async def action_filter_label(self) -> None:
        labels = await known_labels()
        choices = [("All labels", ALL)] + [(f"#{label}", label) for label in labels]
        picked = await self.app.push_screen_wait(Choose[str]("Show the label", choices))
        if picked is not None:
            self._requery(label=picked or None)

    def action_clear_filters(self) -> None:
        self._requery(cohort=None, label=None, search=None)

    def action_cursor_down(self) -> None:
        self.query_one("#conversations", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#conversations", DataTable).action_cursor_up()

    def action_cursor_first(self) -> None:
        self.query_one("#conversations", DataTable).action_scroll_top()

    def action_cursor_last(self) -> None:
        self.query_one("#conversations", DataTable).action_scroll_bottom()

    def action_open_conversation(self) -> None:
        conversation_id = self.selected_id()
        if conversation_id is None:
            return
        self.post_message(OpenConversation(conversation_id))
