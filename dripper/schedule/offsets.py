"""Time values of the curriculum language (durations, step offsets, send windows) and their parsers.

Pure: no I/O, no clock. The curriculum loader turns YAML strings into these values;
dripper.schedule.slots turns them into UTC due times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta

_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60}
_PART = re.compile(r"(\d+)\s*([wdhm])")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
# The longest duration dripper plans with: a drip ten years after the course end (leap days
# included) is far past any course, and keeps every due time inside datetime's range.
MAX_DURATION = timedelta(days=3653)


def parse_duration(text: str) -> timedelta:
    """Parse "2w", "3d", "1w 2d", "12h", "90m" (weeks, days, hours, minutes) into a timedelta.

    Raises ValueError with a message fit for a user.
    """
    cleaned = text.strip().lower()
    if not cleaned:
        raise ValueError("empty duration; write e.g. 3d, 2w, 12h or 1w 2d")
    total = 0
    pos = 0
    seen: set[str] = set()
    for match in _PART.finditer(cleaned):
        if cleaned[pos : match.start()].strip():
            break
        unit = match.group(2)
        if unit in seen:
            raise ValueError(f"unit {unit!r} given twice in duration {text!r}")
        seen.add(unit)
        digits = match.group(1).lstrip("0") or "0"
        if len(digits) > 9:
            raise ValueError(f"duration {text!r:.40} is longer than ten years")
        total += int(digits) * _UNIT_SECONDS[unit]
        pos = match.end()
    if not seen or cleaned[pos:].strip():
        raise ValueError(f"cannot read duration {text!r:.40}; write e.g. 3d, 2w, 12h, 90m or 1w 2d")
    if total > MAX_DURATION.total_seconds():
        raise ValueError(
            f"duration {text!r:.40} is longer than ten years: dripper plans at most ten years ahead"
        )
    return timedelta(seconds=total)


def parse_clock(text: str) -> time:
    """Parse a 24-hour "HH:MM" local time."""
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f"cannot read time of day {text!r}; write HH:MM, e.g. 09:30")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"time of day {text!r} is out of range 00:00-23:59")
    return time(hour, minute)


@dataclass(frozen=True)
class Offset:
    """When a step falls relative to the anchor.

    `delta` whole days/weeks/hours after the anchor; with `at`, the step is due at that local
    time of day on the resulting date (e.g. "3d 14:00"), otherwise at the next slot of the send
    window.
    """

    delta: timedelta
    at: time | None = None

    def __str__(self) -> str:
        parts = []
        seconds = int(self.delta.total_seconds())
        for unit, size in _UNIT_SECONDS.items():
            if seconds >= size:
                parts.append(f"{seconds // size}{unit}")
                seconds %= size
        text = " ".join(parts) or "0d"
        return f"{text} {self.at:%H:%M}" if self.at else text


def parse_offset(text: str) -> Offset:
    """Parse a step offset: a duration, optionally followed by a local time, e.g. "3d 14:00"."""
    cleaned = text.strip()
    clock_match = re.search(r"\s*(\d{1,2}:\d{2})$", cleaned)
    at: time | None = None
    if clock_match:
        at = parse_clock(clock_match.group(1))
        cleaned = cleaned[: clock_match.start()]
        if not cleaned.strip():
            return Offset(timedelta(0), at)
    delta = parse_duration(cleaned)
    if at is not None and delta % timedelta(days=1):
        raise ValueError(
            f"offset {text!r} mixes hours or minutes with a time of day; "
            "use whole days, e.g. 3d 14:00"
        )
    return Offset(delta, at)


@dataclass(frozen=True)
class QuietHours:
    """A local daily span in which nothing is sent; may wrap midnight (20:00-08:00)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(text: str) -> QuietHours:
    """Parse "HH:MM-HH:MM"."""
    pieces = text.split("-")
    if len(pieces) != 2:
        raise ValueError(f"cannot read quiet hours {text!r}; write HH:MM-HH:MM, e.g. 20:00-08:00")
    start, end = parse_clock(pieces[0]), parse_clock(pieces[1])
    if start == end:
        raise ValueError(f"quiet hours {text!r} start and end at the same time")
    return QuietHours(start, end)


@dataclass(frozen=True)
class SendWindow:
    """When, in the learner's local time, a drip may be sent.

    `send_at` is a five-field cron expression whose firings are the allowed send slots (minute
    precision); each enrollment is spread deterministically over `spread` after a slot so that a
    large cohort is not due in one second; quiet hours and skip dates remove slots; `expire_after`
    bounds how late a delivery may still go out (None: never expires).
    """

    send_at: str = "0 9 * * 1-5"
    spread: timedelta = timedelta(minutes=30)
    quiet_hours: tuple[QuietHours, ...] = ()
    skip_dates: frozenset[date] = field(default_factory=frozenset)
    expire_after: timedelta | None = None

    def allows(self, local_date: date, local_time: time) -> bool:
        """Whether quiet hours and skip dates leave this local moment open (cron aside)."""
        if local_date in self.skip_dates:
            return False
        return not any(quiet.contains(local_time) for quiet in self.quiet_hours)
