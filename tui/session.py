"""What every screen needs to know: the database, the trainer at the keyboard, their zone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from dripper.engine.wake import INBOUND, notify_wake_async
from dripper.inbox import CannedReply, load_canned_replies
from dripper.models import Trainer

if TYPE_CHECKING:
    from textual.dom import DOMNode


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DashboardConfig:
    """How to start the dashboard; `dripper tui` builds it from the settings."""

    database_url: str
    trainer_handle: str
    timezone: str = "UTC"  # the trainer's zone: every time on screen is shown in it
    canned_replies: Path | None = None
    keymap: Path | None = None
    media_folder: Path | None = None  # where `dripper run` keeps the files learners send
    saves_to: Path | None = None  # where `o` saves a copy when no viewer can open it
    now: Callable[[], datetime] = field(default=_utc_now)
    live_interval: float = 1.0  # seconds between looks for changes made elsewhere


@dataclass
class Session:
    config: DashboardConfig
    trainer: Trainer

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.config.timezone)

    def now(self) -> datetime:
        return self.config.now().astimezone(UTC)

    def local(self, moment: datetime | None, fmt: str = "%a %d %b %H:%M") -> str:
        """A time in the trainer's zone, as the dashboard prints it."""
        return moment.astimezone(self.zone).strftime(fmt) if moment else ""

    async def wake_dispatcher(self) -> None:
        """Tell `dripper run` that a reply is waiting, so it leaves now, not at the next poll."""
        await notify_wake_async(self.config.database_url)

    async def wake_receivers(self) -> None:
        """Tell `dripper run` that received items wait to be processed again (a retry)."""
        await notify_wake_async(self.config.database_url, INBOUND)

    def canned_replies(self) -> list[CannedReply]:
        """The team's canned replies, read again (the file may have changed since the start);
        none when no file is configured. Raises CannedRepliesError, which says where."""
        path = self.config.canned_replies
        return [] if path is None else load_canned_replies(path)


@runtime_checkable
class HasSession(Protocol):
    """What a screen needs of the app it runs in: `tui.app.DripperApp` is one."""

    session: Session


def session_of(node: DOMNode) -> Session:
    """The session of the dashboard `node` is shown in."""
    app = node.app
    if not isinstance(app, HasSession):
        raise TypeError(f"{type(app).__name__} runs no dripper dashboard session")
    return app.session


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago, in the largest sensible unit: 45s, 12m, 3h, 5d, 8w."""
    if moment is None:
        return ""
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
