"""Live refresh for screens whose figures are dear to compute.

The app posts `DataChanged` whenever the database changes (a reply filed by `dripper run`, another
trainer's work). Counting every delivery of a large cohort takes about a second, so such a screen
reloads at most once per a few times its last load took (never more often than every
`least` seconds), and not at all while another screen covers it: it catches up when it is
shown again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.screen import Screen
from textual.timer import Timer


class RefreshGate:
    """When to reload a screen after `DataChanged`; the screen calls `started`/`finished` around
    every load, `changed` on `DataChanged` and `resumed` on `ScreenResume`."""

    def __init__(
        self,
        screen: Screen[Any],
        reload: Callable[[], object],
        *,
        least: float = 1.0,
        most: float = 10.0,
        factor: float = 4.0,
    ) -> None:
        self._screen = screen
        self._reload = reload
        self._least = least
        self._most = most
        self._factor = factor
        self._started = 0.0
        self._took = 0.0
        self._timer: Timer | None = None
        self._missed = False
        self.loads = 0  # loads started, for tests and benchmarks

    @property
    def gap(self) -> float:
        """Seconds between the start of one load and the next refresh."""
        return min(self._most, max(self._least, self._factor * self._took))

    @property
    def waiting(self) -> bool:
        """A refresh is due and waits for its time or for the screen to be shown."""
        return self._timer is not None or self._missed

    def started(self) -> None:
        self._started = time.monotonic()
        self.loads += 1

    def finished(self) -> None:
        self._took = time.monotonic() - self._started

    def changed(self) -> None:
        if not self._shown():
            self._missed = True
            return
        if self._timer is not None:
            return  # the refresh already planned will see this change too
        wait = self._started + self.gap - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._timer = self._screen.set_timer(wait, self._fire)

    def resumed(self) -> None:
        if self._missed:
            self._missed = False
            self.changed()

    def _shown(self) -> bool:
        # Not `Screen.is_current`: that also holds for the screen just beneath the front one.
        return self._screen.app.screen is self._screen

    def _fire(self) -> None:
        self._timer = None
        if not self._shown():
            self._missed = True
            return
        self._reload()
