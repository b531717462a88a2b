"""Time windows: the 15-minute base grain that every IANA zone offset aligns to, and
UTC hours and days built from it (DESIGN §5). Dirty marks, rollups, cubes and the
query planner all count time in these units."""

from __future__ import annotations

import datetime as dt

WINDOW = dt.timedelta(minutes=15)  # the base grain every IANA zone offset aligns to
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_WINDOW_SECONDS = int(WINDOW.total_seconds())  # divides a day: windows align with UTC days


def floor_to(ts: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """The start of the step-long UTC-aligned span holding ts."""
    return ts - (ts - EPOCH) % step


def ceil_to(ts: dt.datetime, step: dt.timedelta) -> dt.datetime:
    floor = floor_to(ts, step)
    return floor if floor == ts else floor + step


def window_number(ts: dt.datetime) -> int:
    """Which 15-minute window (counted from the Unix epoch) holds ts (after 1970)."""
    return int(ts.timestamp()) // _WINDOW_SECONDS


def window_at(number: int) -> dt.datetime:
    """The start of window `number` (see window_number)."""
    return dt.datetime.fromtimestamp(number * _WINDOW_SECONDS, dt.UTC)


def window_start(ts: dt.datetime) -> dt.datetime:
    return window_at(window_number(ts))


def day_start(ts: dt.datetime) -> dt.datetime:
    return floor_to(ts, DAY)


def hour_start(ts: dt.datetime) -> dt.datetime:
    return floor_to(ts, HOUR)
