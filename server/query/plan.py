"""Which source answers which stretch of a query's range.

The range [start, end) is cut at every bucket edge and around every dirty
15-minute window. Each piece that holds no dirty window and lies in one bucket
is read from the coarsest UTC rollup that tiles it (days, then hours, then
15-minute windows); its unaligned ends, the dirty windows, and everything for
1-minute buckets are read from the raw events. Every instant of the range is
covered by exactly one source, so the sums are those of the raw events. The
whole days and hours may be read from the cubes instead of rollups_1d and
rollups_1h (cube_covers): the same UTC days and hours, the same sums, fewer rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterable, Sequence

from server.core.windows import DAY, HOUR, WINDOW, ceil_to, floor_to

Range = tuple[dt.datetime, dt.datetime]

# The dimensions of the cubes (server/storage/migrations/0004_cubes.sql, 0008_hour_cubes.sql). A
# query may read a UTC day or hour from the cubes instead of the per-series rollups
# only when every field it groups on, filters on or is scoped by is one of these.
CUBE_DIMENSIONS = frozenset({
    "kind", "project_id", "model", "provider", "endpoint", "api_name", "service_tier", "batch", "status",
    "currency", "price_version",
})


def cube_covers(fields: Iterable[str]) -> bool:
    return all(field in CUBE_DIMENSIONS for field in fields)


@dataclasses.dataclass
class Plan:
    days: list[Range] = dataclasses.field(default_factory=list)
    hours: list[Range] = dataclasses.field(default_factory=list)
    windows: list[Range] = dataclasses.field(default_factory=list)
    raw: list[Range] = dataclasses.field(default_factory=list)

    def add(self, level: list[Range], lo: dt.datetime, hi: dt.datetime) -> None:
        if lo >= hi:
            return
        if level and level[-1][1] == lo:
            level[-1] = (level[-1][0], hi)
        else:
            level.append((lo, hi))


def rolled_up(pieces: Plan, window: dt.datetime) -> bool:
    """Whether the 15-minute window starting at `window` is read wholly from rollups
    (days, hours, windows or cubes): then its appended events are added as its tail;
    a window read raw, even in part, already counts them."""
    end = window + WINDOW
    covered = any(lo <= window and end <= hi for lo, hi in [*pieces.days, *pieces.hours, *pieces.windows])
    return covered and not any(lo < end and window < hi for lo, hi in pieces.raw)


def plan(edges: Sequence[dt.datetime], dirty: Iterable[dt.datetime], *, use_rollups: bool = True) -> Plan:
    """Split [edges[0], edges[-1]) (edges = bucket starts, then the end) into
    rollup and raw ranges, given the starts of the dirty 15-minute windows."""
    result = Plan()
    start, end = edges[0], edges[-1]
    if start >= end:
        return result
    if not use_rollups:
        result.add(result.raw, start, end)
        return result
    dirty_set = {w for w in dirty if w + WINDOW > start and w < end}
    cuts = set(edges)
    for w in dirty_set:
        cuts.add(max(w, start))
        cuts.add(min(w + WINDOW, end))
    points = sorted(cuts)
    for lo, hi in itertools.pairwise(points):
        if floor_to(lo, WINDOW) in dirty_set:  # pieces never straddle a dirty window's edge
            result.add(result.raw, lo, hi)
            continue
        x, y = ceil_to(lo, WINDOW), floor_to(hi, WINDOW)
        if x >= y:
            result.add(result.raw, lo, hi)
            continue
        result.add(result.raw, lo, x)
        _tile(result, x, y)
        result.add(result.raw, y, hi)
    return result


def _tile(result: Plan, x: dt.datetime, y: dt.datetime) -> None:
    """[x, y) on 15-minute edges: windows up to the first hour, hours up to the
    first day, whole days, then back down."""
    h0, h1 = ceil_to(x, HOUR), floor_to(y, HOUR)
    if h0 >= h1:
        result.add(result.windows, x, y)
        return
    d0, d1 = ceil_to(h0, DAY), floor_to(h1, DAY)
    result.add(result.windows, x, h0)
    if d0 >= d1:
        result.add(result.hours, h0, h1)
    else:
        result.add(result.hours, h0, d0)
        result.add(result.days, d0, d1)
        result.add(result.hours, d1, h1)
    result.add(result.windows, h1, y)
