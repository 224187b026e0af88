"""The command palette (ctrl+p): every action of the screen in front, and every screen.

Commands are made from the bindings themselves, so a new binding is in the palette without
being listed twice.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Provider
from textual.screen import Screen


def palette_actions(screen: Screen[object]) -> list[tuple[str, str, Binding, bool]]:
    """(title, help, binding, on_app) for every described binding of the screen and the app."""
    found: list[tuple[str, str, Binding, bool]] = []
    seen: set[str] = set()
    for on_app, bindings in ((False, screen.BINDINGS), (True, screen.app.BINDINGS)):
        for binding in bindings:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            if binding.action in seen or binding.action.startswith("app.quit"):
                continue
            seen.add(binding.action)
            keys = screen.app.get_key_display(binding)
            found.append((binding.description, f"key: {keys}", binding, on_app))
    return found


class ActionCommands(Provider):
    """Actions of the current screen and of the dashboard."""

    def _screen(self) -> Screen[object]:
        stack = self.app.screen_stack
        # The palette itself is a screen on top: act on the one beneath it.
        return stack[-2] if len(stack) > 1 else stack[-1]

    async def _run(self, screen: Screen[object], binding: Binding, on_app: bool) -> None:
        target = self.app if on_app else screen
        await target.run_action(binding.action)

    async def discover(self) -> AsyncGenerator[DiscoveryHit, None]:
        screen = self._screen()
        for title, text, binding, on_app in palette_actions(screen):
            yield DiscoveryHit(title, partial(self._run, screen, binding, on_app), help=text)

    async def search(self, query: str) -> AsyncGenerator[Hit, None]:
        matcher = self.matcher(query)
        screen = self._screen()
        for title, text, binding, on_app in palette_actions(screen):
            score = matcher.match(title)
            if score > 0:
                run = partial(self._run, screen, binding, on_app)
                yield Hit(score, matcher.highlight(title), run, help=text)
