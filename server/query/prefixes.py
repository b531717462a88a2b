"""Buckets whose settled past is kept: a long bucket read while its last day is written.

A budget's month, or a dashboard's month read as one bucket, is dirty while usage comes
in: its current day has windows with appended events, and the worker rolls them up again
and again. Each pass takes a new stamp for that day, so the bucket's settled answer (kept
by etag in server/query/tails.py) changes with every pass and the whole month would be
read again: every day's rollups, each time. Only the days with dirty windows change,
though. So a bucket is cut at the start of the UTC day of its first dirty window: before
the cut, no window is dirty and no stamp moves while today is written, so the answer of
[bucket start, cut) has an etag that stays (server/query/etags.py) and is kept by it; the
rest, [cut, bucket end), is read as any bucket is (its rollups, its appended events).

Exact because the sum is additive over disjoint ranges: the prefix's answer is that of
its rows in any snapshot that sees it clean with the same stamps, and the suffix is read
in the query's own snapshot. Only buckets with a day or more before the cut are cut (weeks,
months, budgets' periods); 1-minute buckets are read raw and never cut.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence

from server.core.windows import DAY, WINDOW, floor_to

# Shorter prefixes are not worth a statement of their own: a day bucket of a zone west of
# UTC would be cut every time its day is written, to save reading a few hour rollups.
MIN_PREFIX = DAY


def cuts(edges: Sequence[dt.datetime], todo: Sequence[int], dirty: Sequence[dt.datetime]) -> dict[int, dt.datetime]:
    """For the buckets numbered in `todo` (edges[i], edges[i + 1]) that a dirty window
    overlaps: the start of the UTC day of the first such window, when it lies a day or
    more after the bucket's start (the end of the bucket's clean prefix). dirty: the starts of the dirty
    15-minute windows, sorted."""
    found: dict[int, dt.datetime] = {}
    for i in todo:
        lo, hi = edges[i], edges[i + 1]
        first = bisect.bisect_right(dirty, lo - WINDOW)  # the first window ending after lo
        if first == len(dirty) or dirty[first] >= hi:
            continue  # clean
        cut = floor_to(dirty[first], DAY)
        if cut - lo >= MIN_PREFIX:
            found[i] = cut
    return found
