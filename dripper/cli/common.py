"""Helpers shared by subcommands: running a coroutine with the database open, parsing times."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import click

from dripper import aio
from dripper.errors import DripperError
from dripper.schedule.offsets import parse_duration

T = TypeVar("T")


def with_db(url: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work()` in a fresh event loop with the database open (Tortoise's context needs the
    database opened in the same task that uses it). The ORM is imported here, not with the
    command line: `dripper CMD --help` never loads it."""
    from dripper.db import open_db

    async def main() -> T:
        async with open_db(url):
            return await work()

    return aio.run(main())


def parse_local_time(text: str, zone: ZoneInfo) -> datetime:
    """ "2026-12-04 17:00" in `zone` (or with an explicit offset) as an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DripperError(
            f'cannot read the time {text!r}; write it as "2026-12-04 17:00" (local time of the '
            'curriculum\'s zone) or with an offset, "2026-12-04 17:00+01:00"'
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


class DurationType(click.ParamType[timedelta]):
    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()
