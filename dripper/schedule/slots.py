"""Pure time maths of the drip: anchor + offset, snapped into the send window in the learner's zone.

No I/O, no clock: every function takes the moments it needs and returns aware UTC datetimes.

How a due time is found
-----------------------
1. The *earliest moment* of a step, from the anchor (the course end) and the step's `Offset`:

   - whole days or weeks, no time of day (`1d`, `2w`): calendar days in the learner's zone, i.e.
     local midnight of (local date of the anchor + N days). `0d` is the anchor itself. A course that
     ends Tuesday 17:00 with `after: 1d` has Wednesday 00:00 local as earliest moment, so a send
     window of "0 9 * * 1-5" makes it due Wednesday 09:00.
   - hours or minutes (`12h`, `90m`, also mixed like `1d 12h`): elapsed time, exactly anchor +
     delta.
   - a time of day (`3d 14:00`): that local time on that local date. The cron of the send window
     is not applied (the author chose the time) and no spread is added (it is honoured to the
     minute). If that moment falls in quiet hours, on a skip date, or before the anchor (`0d 09:00`
     for a course that ends at 17:00), the step moves to the next send-window slot at or after it
     (or after the anchor), and that slot is spread like any other.

   The earliest moment is never before the anchor.
2. The *next slot*: the first firing of `send_at` at or after the earliest moment whose local date
   is not a skip date and whose local time is not inside quiet hours. Cron is evaluated on the
   learner's wall clock. The search gives up after two years of slots with
   `WindowNeverOpensError` (a `ValueError`), e.g. for a cron that only fires inside quiet hours;
   `window_ever_opens` lets the curriculum check catch that before anyone enrolls.
3. The *spread*: every enrollment gets a fixed fraction of `spread` (blake2b of its spread key,
   second granularity) added to a slot, so a large cohort is not due in the same second, and one
   learner always hears from the trainer at the same minute past the slot. The spread is shrunk
   (scaled, not clipped, so learners stay evenly spread) so that no delivery lands in quiet hours,
   on the next local day or on a skip date.

DST policy
----------
Slots and `at` times are local wall-clock times. A wall time that does not exist (the spring-forward
gap) moves to the first instant after the gap: Europe/Berlin 02:30 on the spring day is 03:00 CEST,
Australia/Lord_Howe 02:15 is 02:30 (+11:00). A wall time that exists twice (the autumn overlap) is
the first occurrence (fold=0) and fires once; when the earliest moment already lies in the repeated
hour, the second pass is not a new slot. Several firings that collapse onto one instant (a cron
every 15 minutes across the gap) count as one slot.

croniter walks the learner's naive wall clock and each firing is then placed in the zone here,
rather than handing croniter a zone-aware start: with an aware start croniter 7 fires "30 2 * * *"
twice on the autumn day, so the policy would depend on croniter's DST handling. This way it is ours,
stated above and tested; it is also faster.

Cost
----
Due times are memoised per (anchor minute, offset, window, zone) and the spread is a hash and an
addition, so enrolling a cohort costs a few croniter walks, not one per learner; `step_dues` is the
batch form for one enrollment's steps.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

from dripper.errors import DripperError
from dripper.schedule.offsets import Offset, QuietHours, SendWindow

__all__ = [
    "WindowNeverOpensError",
    "closed_by_skip_dates",
    "expires_at",
    "is_allowed",
    "local_iso",
    "next_slot",
    "spread_seconds",
    "step_due",
    "step_dues",
    "window_ever_opens",
]

_DAY = timedelta(days=1)
_MINUTE = timedelta(minutes=1)
_SECOND = timedelta(seconds=1)
_SEARCH_HORIZON = timedelta(days=2 * 366)
_CACHE_SIZE = 1 << 16
# Any fixed moment works: cron and quiet hours repeat, and skip dates are left out of this check.
_EVER_OPENS_FROM = datetime(2024, 1, 1, tzinfo=UTC)
_UTC = ZoneInfo("UTC")


class WindowNeverOpensError(DripperError, ValueError):
    """No send slot outside quiet hours and skip dates within two years of the earliest moment."""


def step_due(
    anchor: datetime, offset: Offset, window: SendWindow, tz: ZoneInfo, spread_key: str
) -> datetime:
    """When a step falls due for one enrollment, in UTC (see the module docstring for the rules)."""
    slot, spread_limit = _step_slot(_anchor_key(anchor), offset, window, tz)
    if spread_limit == 0:
        return slot
    return slot + timedelta(0, _scale(spread_key, spread_limit))


def step_dues(
    anchor: datetime,
    offsets: Sequence[Offset],
    window: SendWindow,
    tz: ZoneInfo,
    spread_key: str,
) -> list[datetime]:
    """`step_due` for several steps of one enrollment that share a send window, in order.

    The fast path for enrolling a cohort: the unspread slots are computed once per (anchor minute,
    offsets, window, zone) and the spread key is hashed once per enrollment.
    """
    offsets = tuple(offsets)
    key_hash = _key_hash(spread_key)
    return [
        slot if limit == 0 else slot + timedelta(0, (key_hash * limit) >> 64)
        for slot, limit in _step_slots(_anchor_key(anchor), offsets, window, tz)
    ]


def next_slot(earliest: datetime, window: SendWindow, tz: ZoneInfo, spread_key: str) -> datetime:
    """The first allowed send slot at or after `earliest`, spread for `spread_key`, in UTC.

    For nudges and re-asks: `earliest` is the time sent or answered plus a duration.
    """
    slot, spread_limit = _open_slot(_ceil_minute(_as_utc(earliest, "earliest")), window, tz)
    if spread_limit == 0:
        return slot
    return slot + timedelta(0, _scale(spread_key, spread_limit))


def expires_at(due: datetime, window: SendWindow) -> datetime | None:
    """The moment after which a delivery due at `due` is skipped, or None if it never expires."""
    if window.expire_after is None:
        return None
    return _as_utc(due, "due") + window.expire_after


def spread_seconds(spread_key: str, spread: timedelta) -> int:
    """A stable per-key offset in whole seconds in [0, spread); 0 when spread is under a second."""
    return _scale(spread_key, int(spread.total_seconds()))


def is_allowed(moment: datetime, window: SendWindow, tz: ZoneInfo) -> bool:
    """Whether quiet hours and skip dates leave `moment` open in the learner's zone (cron aside)."""
    local = moment.astimezone(tz)
    return window.allows(local.date(), local.time())


def window_ever_opens(window: SendWindow) -> bool:
    """Whether `send_at` fires at all outside quiet hours (skip dates, being finite, are ignored).

    Raises ValueError if `send_at` is not a valid five-field cron expression.
    """
    _cron_template(window.send_at)
    open_window = dataclasses.replace(window, spread=timedelta(0), skip_dates=frozenset())
    try:
        _open_slot(_EVER_OPENS_FROM, open_window, ZoneInfo("UTC"))
    except WindowNeverOpensError:
        return False
    return True


def closed_by_skip_dates(window: SendWindow) -> date | None:
    """The first day of a run of skip dates that keeps the window closed for the whole search
    horizon (two years), or None. A step falling due then could never be sent."""
    days = sorted(window.skip_dates)
    starts = [day for index, day in enumerate(days) if index == 0 or days[index - 1] != day - _DAY]
    without_spread = dataclasses.replace(window, spread=timedelta(0))
    for start in starts:
        try:
            _first_allowed_firing(datetime.combine(start, time(), UTC), without_spread, _UTC)
        except WindowNeverOpensError:
            return start
    return None


def local_iso(moment: datetime, tz: ZoneInfo) -> str:
    """ISO 8601 local time with its UTC offset, to the second, e.g. 2026-03-30T09:17:42+02:00."""
    return moment.astimezone(tz).isoformat(timespec="seconds")


@lru_cache(maxsize=_CACHE_SIZE)
def _anchor_key(anchor: datetime) -> datetime:
    """A stand-in for `anchor` that gives the same due times and repeats across a bulk enrollment.

    Slots, quiet hours, midnights, DST transitions and offsets fall on whole minutes, so every
    anchor within (m, m + 1 minute) gives the same results as m + 1 second.
    """
    anchor = _as_utc(anchor, "anchor")
    floor = anchor.replace(second=0, microsecond=0)
    return anchor if anchor == floor else floor + _SECOND


@lru_cache(maxsize=_CACHE_SIZE)
def _step_slots(
    anchor: datetime, offsets: tuple[Offset, ...], window: SendWindow, tz: ZoneInfo
) -> tuple[tuple[datetime, int], ...]:
    return tuple(_step_slot(anchor, offset, window, tz) for offset in offsets)


@lru_cache(maxsize=_CACHE_SIZE)
def _step_slot(
    anchor: datetime, offset: Offset, window: SendWindow, tz: ZoneInfo
) -> tuple[datetime, int]:
    """The unspread due time of a step and how many seconds of spread it may take."""
    if offset.delta % _MINUTE:
        raise ValueError(f"offset {offset.delta} is not a whole number of minutes")
    anchor_date = anchor.astimezone(tz).date()
    if offset.at is not None:
        if offset.delta % _DAY:
            raise ValueError(f"offset {offset} mixes hours or minutes with a time of day")
        chosen = _resolve_local(datetime.combine(anchor_date + offset.delta, offset.at), tz)
        if chosen >= anchor and is_allowed(chosen, window, tz):
            return chosen, 0
        earliest = max(chosen, anchor)
    elif offset.delta % _DAY:
        earliest = max(anchor, anchor + offset.delta)
    else:
        midnight = _resolve_local(datetime.combine(anchor_date + offset.delta, time()), tz)
        earliest = max(anchor, midnight)
    return _open_slot(_ceil_minute(earliest), window, tz)


@lru_cache(maxsize=_CACHE_SIZE)
def _open_slot(earliest: datetime, window: SendWindow, tz: ZoneInfo) -> tuple[datetime, int]:
    """The first allowed slot at or after a whole-minute UTC `earliest`, and its spread limit."""
    slot = _first_allowed_firing(earliest, window, tz)
    return slot, _spread_limit(slot, window, tz)


def _first_allowed_firing(earliest: datetime, window: SendWindow, tz: ZoneInfo) -> datetime:
    local_start = earliest.astimezone(tz).replace(tzinfo=None, fold=0)
    horizon = local_start + _SEARCH_HORIZON
    cron = copy.copy(_cron_template(window.send_at))
    # croniter returns firings strictly after its current time, at minute precision.
    cursor = local_start - _MINUTE
    while True:
        cron.set_current(cursor, force=True)
        try:
            firing: datetime = cron.get_next(datetime)
        except CroniterBadDateError:
            firing = horizon + _MINUTE
        if firing > horizon:
            raise WindowNeverOpensError(_never_opens_message(window, tz, local_start))
        cursor = firing
        if firing.date() in window.skip_dates:
            cursor = datetime.combine(firing.date() + _DAY, time()) - _MINUTE
            continue
        moment = _resolve_local(firing, tz)
        if moment < earliest:
            continue
        local = moment.astimezone(tz).replace(tzinfo=None)
        if local.date() in window.skip_dates:
            cursor = max(cursor, datetime.combine(local.date() + _DAY, time()) - _MINUTE)
            continue
        quiet_end = _quiet_until(local, window.quiet_hours)
        if quiet_end is not None:
            cursor = max(cursor, quiet_end - _MINUTE)
            continue
        return moment


def _quiet_until(local: datetime, quiet_hours: tuple[QuietHours, ...]) -> datetime | None:
    """The local wall time at which the quiet span containing `local` ends, or None."""
    for quiet in quiet_hours:
        if quiet.contains(local.time()):
            end_date = local.date()
            if quiet.start > quiet.end and local.time() >= quiet.start:
                end_date += _DAY
            return datetime.combine(end_date, quiet.end)
    return None


def _spread_limit(slot: datetime, window: SendWindow, tz: ZoneInfo) -> int:
    """Seconds after `slot` that stay open and on the slot's local date, capped at the spread.

    Quiet hours, midnight and DST transitions all fall on whole minutes, so checking each minute
    finds the first closed second exactly.
    """
    total = int(window.spread.total_seconds())
    slot_date = slot.astimezone(tz).date()
    for minute in range(1, -(-total // 60)):
        local = (slot + minute * _MINUTE).astimezone(tz)
        if local.date() != slot_date or not window.allows(local.date(), local.time()):
            return minute * 60
    return max(total, 0)


def _scale(spread_key: str, limit: int) -> int:
    """Map the key's stable 64-bit hash onto [0, limit)."""
    if limit <= 0:
        return 0
    return (_key_hash(spread_key) * limit) >> 64


def _key_hash(spread_key: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(spread_key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


def _resolve_local(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall time: first occurrence in an overlap, gap end in a gap."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    return _gap_end(wall, tz)


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The transition instant that skips over `wall`, found by bisection over whole minutes."""
    # Inside a gap, fold=1 reads the wall time with the offset after the transition (an instant
    # before it) and fold=0 with the offset before (an instant after it).
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    before, after = min(before, after), max(before, after)
    offset_before = before.astimezone(tz).utcoffset()
    low, high = 0, (after - before) // _MINUTE
    while high - low > 1:
        middle = (low + high) // 2
        if (before + middle * _MINUTE).astimezone(tz).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return before + high * _MINUTE


@lru_cache(maxsize=256)
def _cron_template(send_at: str) -> croniter:
    """A parsed cron to copy per search: croniter objects are stateful and slow to parse."""
    if len(send_at.split()) != 5:
        raise ValueError(
            f"send_at {send_at!r} must have five fields (minute hour day month weekday), "
            'e.g. "0 9 * * 1-5"'
        )
    try:
        return croniter(send_at, datetime(2000, 1, 1), ret_type=datetime)
    except CroniterError as exc:
        raise ValueError(f"cannot read send_at {send_at!r}: {exc}") from exc


def _never_opens_message(window: SendWindow, tz: ZoneInfo, local_start: datetime) -> str:
    quiet = ", ".join(str(span) for span in window.quiet_hours) or "none"
    return (
        f"send window never opens: send_at {window.send_at!r} has no slot outside quiet hours "
        f"({quiet}) and skip dates within two years after {local_start:%Y-%m-%d %H:%M} {tz.key}; "
        "change send_at, quiet_hours or skip_dates"
    )


def _ceil_minute(moment: datetime) -> datetime:
    remainder = moment - moment.replace(second=0, microsecond=0)
    return moment if not remainder else moment - remainder + _MINUTE


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} {moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC)
