"""The key-binding help screen: every key of the screen beneath and of the dashboard, with ids."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Label, Static

from tui.keymap import default_keymap_path, keys_for
from tui.session import session_of


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, beneath: Screen[object]) -> None:
        super().__init__(classes="picker")
        self._beneath = beneath

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Keys", classes="dialog-title")
            table: DataTable[Text] = DataTable(id="help-keys", cursor_type="row")
            yield table
            yield Static(
                Text(
                    f"Change keys in {self._keymap_path()} (ids on the right), for example:\n"
                    '"conversation.send" = "ctrl+s,f5"'
                ),
                classes="hint",
            )

    def _keymap_path(self) -> str:
        return str(session_of(self).config.keymap or default_keymap_path())

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Key", "Action", "Binding id")
        seen: set[str] = set()
        for bindings in (self._beneath.BINDINGS, self.app.BINDINGS):
            for binding in bindings:
                if not isinstance(binding, Binding) or not binding.id or binding.id in seen:
                    continue
                seen.add(binding.id)
                keys = keys_for(self.app, binding)
                table.add_row(Text(keys), Text(binding.description), Text(binding.id, "dim"))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
