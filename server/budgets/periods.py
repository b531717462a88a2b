"""The current period of a budget at an instant: the half-open range [start, end) of
event time whose usage counts, and when the budget resets.

Calendar periods (day, week, month, quarter, year) follow the wall clock of an IANA
zone: a period starts at the first instant the zone's clock reads the local midnight
that begins it, or, when the clock skips that midnight (a spring-forward at 00:00),
at the instant it jumps over it (server/query/buckets.instants, the rule the query
engine's local buckets follow). So a New York day lasts 23 or 25 hours around DST,
a Kathmandu day starts at 18:15 UTC, and a Lord Howe day lasts 23.5 or 24.5 hours.

`total` never resets: it counts every event (ingest accepts event times from
2000-01-01 up to a day ahead). `rolling` is the last `window` ending now.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo

from server.ingest.validation import EARLIEST
from server.query.buckets import instants
from server.query.spec import QUERY_LATEST

CALENDAR = ("day", "week", "month", "quarter", "year")
PERIODS = (*CALENDAR, "total", "rolling")
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


@dataclasses.dataclass(frozen=True)
class Period:
    start: dt.datetime  # inclusive
    end: dt.datetime  # exclusive: the range of event time the budget counts
    resets_at: dt.datetime | None  # None: never (total); rolling: see current_period


def _unit_start(wall: dt.datetime, kind: str, week_start: int) -> dt.datetime:
    """The local midnight that begins the calendar unit holding the wall time."""
    midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    if kind == "day":
        return midnight
    if kind == "week":
        return midnight - dt.timedelta(days=(midnight.isoweekday() - week_start) % 7)
    if kind == "year":
        return midnight.replace(month=1, day=1)
    return midnight.replace(month=(midnight.month - 1) // _MONTHS[kind] * _MONTHS[kind] + 1, day=1)


def _step(wall: dt.datetime, kind: str, n: int) -> dt.datetime:
    if kind == "day":
        return wall + dt.timedelta(days=n)
    if kind == "week":
        return wall + dt.timedelta(days=7 * n)
    months = wall.year * 12 + wall.month - 1 + n * _MONTHS[kind]
    return wall.replace(year=months // 12, month=months % 12 + 1)


def calendar_period(kind: str, now: dt.datetime, zone: dt.tzinfo, week_start: int = 1) -> Period:
    """The calendar unit of `zone` holding `now`. Unit starts are taken from the wall
    units around now's local reading (a clock set back over midnight reads yesterday's
    date after today's unit began), each at its first instant; the period is the pair
    of consecutive starts around now."""
    wall = now.astimezone(zone).replace(tzinfo=None)
    here = _unit_start(wall, kind, week_start)
    starts = [instants(_step(here, kind, n), zone)[0] for n in (-1, 0, 1, 2)]
    end = min(s for s in starts if s > now)
    return Period(max(s for s in starts if s <= now), end, end)


def current_period(
    kind: str, now: dt.datetime, time_zone: str = "UTC", week_start: int = 1,
    window: dt.timedelta | None = None, oldest: dt.datetime | None = None,
) -> Period:
    """The period of a budget at `now` (aware). Rolling: [now - window, now), resetting
    when its oldest usage (`oldest`, if known) leaves the window."""
    if kind in CALENDAR:
        return calendar_period(kind, now, zoneinfo.ZoneInfo(time_zone), week_start)
    if kind == "total":
        return Period(EARLIEST, QUERY_LATEST, None)
    if kind == "rolling":
        if window is None:
            raise ValueError("a rolling period needs its window")
        return Period(now - window, now, None if oldest is None else max(now, oldest + window))
    raise ValueError(f"unknown period {kind!r}")
