"""Which source answers which stretch (server/query/plan.py): every instant of
the range exactly once; rollups only for clean, aligned stretches inside one bucket."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from server.core.windows import DAY, HOUR, WINDOW, floor_to
from server.query.plan import plan

UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)


def test_aligned_range_uses_the_coarsest_grain():
    start = T0 - dt.timedelta(minutes=7)
    end = T0 + 3 * DAY + 2 * HOUR + dt.timedelta(minutes=31)
    p = plan([start, end], [])
    assert p.raw == [(start, T0), (end - dt.timedelta(minutes=1), end)]
    assert p.days == [(T0, T0 + 3 * DAY)]
    assert p.hours == [(T0 + 3 * DAY, T0 + 3 * DAY + 2 * HOUR)]
    assert p.windows == [(T0 + 3 * DAY + 2 * HOUR, T0 + 3 * DAY + 2 * HOUR + 2 * WINDOW)]


def test_dirty_windows_and_unaligned_edges_are_raw():
    dirty = [T0 + 5 * HOUR, T0 + 5 * HOUR + WINDOW]
    edges = [T0, T0 + 90 * dt.timedelta(minutes=1) + dt.timedelta(seconds=20), T0 + DAY]  # a bucket edge off the grid
    p = plan(edges, dirty)
    assert (T0 + 5 * HOUR, T0 + 5 * HOUR + 2 * WINDOW) in p.raw
    assert (T0 + 90 * dt.timedelta(minutes=1), T0 + 105 * dt.timedelta(minutes=1)) in p.raw
    assert p.days == []


def test_one_minute_buckets_read_raw_events():
    p = plan([T0, T0 + dt.timedelta(minutes=1), T0 + DAY], [], use_rollups=False)
    assert p.raw == [(T0, T0 + DAY)] and not (p.days or p.hours or p.windows)


instants = st.integers(0, 4 * 96 * 15).map(lambda m: T0 + dt.timedelta(minutes=m, seconds=m % 7))


@settings(max_examples=300, deadline=None)
@given(points=st.lists(instants, min_size=2, max_size=12, unique=True),
       dirty=st.lists(st.integers(-2, 4 * 96).map(lambda k: T0 + k * WINDOW), max_size=20))
def test_plan_covers_the_range_exactly_once(points, dirty):
    edges = sorted(points)
    p = plan(edges, dirty)
    pieces = sorted([*p.days, *p.hours, *p.windows, *p.raw])
    assert pieces[0][0] == edges[0] and pieces[-1][1] == edges[-1]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces)), "gap or overlap"
    dirty_set = set(dirty)
    for level, step in ((p.days, DAY), (p.hours, HOUR), (p.windows, WINDOW)):
        for lo, hi in level:
            assert floor_to(lo, step) == lo and floor_to(hi, step) == hi
            w = lo
            while w < hi:
                assert w not in dirty_set, "a dirty window read from rollups"
                w += WINDOW
            row = lo
            while row < hi:  # each rollup row lies in one bucket: no edge strictly inside it
                inner = bisect.bisect_right(edges, row)
                assert inner == len(edges) or edges[inner] >= row + step
                row += step
