"""Time buckets in any IANA zone: local calendar units as UTC instants.

A bucket of width 1m / 1h / 1d / month starts whenever the zone's wall clock
reaches, or jumps over, the start of a local minute, hour, day or month. So a
local day across a DST change lasts 23 or 25 hours (Lord Howe: 23.5 / 24.5), a
repeated local hour (fall back) is two one-hour buckets, and a unit start that
the clock skips (spring forward at midnight) begins at the jump. The first and
last bucket of a range are clipped to the half-open range [start, end).
Width "all" is one bucket spanning the range.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import zoneinfo

from server.core.errors import InvalidArgument

UTC = dt.UTC
WIDTHS = ("1m", "1h", "1d", "month", "all")
_UNIT = {"1m": dt.timedelta(minutes=1), "1h": dt.timedelta(hours=1), "1d": dt.timedelta(days=1)}


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def parse_zone(name: str) -> zoneinfo.ZoneInfo:
    """Only names of the IANA database: never a path the loader would open."""
    name = name or "UTC"
    if name not in _zone_names():
        raise InvalidArgument("time_zone", f"unknown time zone {name[:64]!r}; use an IANA name such as Europe/Paris")
    return zoneinfo.ZoneInfo(name)


def parse_width(width: str, field: str = "width") -> str:
    width = width or "1d"
    if width not in WIDTHS:
        raise InvalidArgument(field, f"must be one of {', '.join(WIDTHS)}")
    return width


def floor_wall(wall: dt.datetime, width: str) -> dt.datetime:
    wall = wall.replace(second=0, microsecond=0, fold=0)
    if width == "1m":
        return wall
    wall = wall.replace(minute=0)
    if width == "1h":
        return wall
    wall = wall.replace(hour=0)
    if width == "1d":
        return wall
    return wall.replace(day=1)


def step_wall(wall: dt.datetime, width: str, n: int = 1) -> dt.datetime:
    if width == "month":
        months = wall.year * 12 + wall.month - 1 + n
        return wall.replace(year=months // 12, month=months % 12 + 1)
    return wall + n * _UNIT[width]


def _wall(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def instants(wall: dt.datetime, zone: dt.tzinfo) -> list[dt.datetime]:
    """The UTC instants at which the zone's clock reads `wall`: one, two (a
    repeated time), or for a skipped time the instant the clock jumps over it."""
    first = wall.replace(tzinfo=zone, fold=0)  # PEP 495: the offset before a transition
    second = first.replace(fold=1)  # ... and after it
    before, after = first.utcoffset(), second.utcoffset()
    assert before is not None and after is not None
    if before == after:
        return [(wall - before).replace(tzinfo=UTC)]
    if before > after:  # set back: the wall time happens twice
        return [(wall - before).replace(tzinfo=UTC), (wall - after).replace(tzinfo=UTC)]
    # Skipped: find the jump between the two readings (whole seconds, as in tzdata).
    lo, hi = (wall - after).replace(tzinfo=UTC), (wall - before).replace(tzinfo=UTC)
    while hi - lo > dt.timedelta(seconds=1):
        mid = lo + dt.timedelta(seconds=(hi - lo) // dt.timedelta(seconds=2))
        if _wall(mid, zone) > wall:
            hi = mid
        else:
            lo = mid
    return [hi]


def bucket_edges(
    start: dt.datetime, end: dt.datetime, width: str, zone: dt.tzinfo, limit: int
) -> list[dt.datetime]:
    """Bucket starts from `start`, followed by where the last bucket ends: at most
    `limit` buckets. The last edge is `end`, or the start of the next bucket when
    more than `limit` buckets remain."""
    if start >= end:
        return [start]
    if width == "all":
        return [start, end]
    # Unit starts are visited in wall-clock order. Their first instants then
    # ascend; a second instant (a repeated wall time) trails its first by at most
    # the clock's backward jump nearby, hence the slack at both ends.
    wall = step_wall(floor_wall(_wall(start - _backward_slack(zone, start), zone), width), width, -1)
    found: list[dt.datetime] = []
    cutoff = end
    end_slack: dt.timedelta | None = None
    while True:
        batch = instants(wall, zone)
        if batch[0] >= cutoff:
            if end_slack is None:
                end_slack = _backward_slack(zone, cutoff)
            if batch[0] >= cutoff + end_slack:
                break
        found.extend(u for u in batch if start < u < cutoff)
        if len(found) >= limit:
            found = sorted(set(found))  # a skipped unit start shares its instant with the next
            if len(found) >= limit:
                cutoff = found[limit - 1]  # the next page starts here
                found = found[: limit - 1]
        wall = step_wall(wall, width)
    return [start, *sorted(set(found)), cutoff]


def _backward_slack(zone: dt.tzinfo, around: dt.datetime) -> dt.timedelta:
    """How far the zone's clock is set back within two days of `around` (zero
    almost always): hourly probes of the UTC offset."""
    hour = dt.timedelta(hours=1)
    offsets = [(around + k * hour).astimezone(zone).utcoffset() or dt.timedelta(0) for k in range(-48, 49)]
    return sum((max(a - b, dt.timedelta(0)) for a, b in itertools.pairwise(offsets)), dt.timedelta(0))
