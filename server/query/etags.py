"""Etags of query answers: a name for the answer of a bucket (and of a page) that
stays the same exactly while the answer does.

A bucket has an etag only when no dirty window overlaps it in the query's snapshot.
Its etag hashes the query (organization, read scope, width, zone, grouping,
filters, metrics), the bucket's range, and the newest rollup stamp of the UTC
hours (and days) it overlaps. server/storage/migrations/0006_stamps.sql and 0007_hour_stamps.sql
say why two snapshots that both see the bucket clean with the same stamp see the
same events in it. A page's etag hashes
its buckets' etags, and exists when all of them do.

A caller sends etags back (QueryUsageRequest.if_none_match for the page,
known_etags for buckets): the engine then skips the aggregate for what is
unchanged (server/query/engine.py).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Sequence

import asyncpg

from server.core.principal import Principal
from server.core.windows import WINDOW

# Part of every etag: change it when the same rows would give a different answer.
ETAG_VERSION = "usage-3"
LONGEST_STAMP = dt.timedelta(days=1)  # the longest span a stamp covers (a day)
Stamp = tuple[dt.datetime, dt.datetime, int] | asyncpg.Record  # (start, end, stamp): a row of query_stamps


def bucket_etags(
    principal: Principal, query: Sequence[object], edges: Sequence[dt.datetime],
    dirty_windows: Sequence[dt.datetime], stamps: Sequence[Stamp],
) -> list[str]:
    """One etag per bucket of `edges` ("" for a bucket a dirty window overlaps).
    query: what besides the range decides the answer (width, zone, grouping,
    filters, metrics); dirty_windows: starts of the dirty 15-minute windows; stamps:
    (start, end, stamp) of the UTC hours and days that have one, sorted by start."""
    prefix = hashlib.sha256(json.dumps(
        [ETAG_VERSION, principal.org_id, principal.read_scope(), *query], default=str).encode())
    windows = sorted(dirty_windows)
    starts = [start for start, _, _ in stamps]
    etags = []
    for lo, hi in itertools.pairwise(edges):
        first = bisect.bisect_right(windows, lo - WINDOW)  # windows ending after lo ...
        if first < len(windows) and windows[first] < hi:  # ... that start before hi
            etags.append("")
            continue
        # Spans overlapping [lo, hi): starting before hi and ending after lo.
        near = stamps[bisect.bisect_right(starts, lo - LONGEST_STAMP):bisect.bisect_left(starts, hi)]
        stamp = max((s for _, end, s in near if end > lo), default=0)
        digest = prefix.copy()
        digest.update(f"|{lo.isoformat()}|{hi.isoformat()}|{stamp}".encode())
        etags.append(_text(digest.digest()))
    return etags


def page_etag(etags: Sequence[str]) -> str:
    """The page's etag: "" unless every bucket has one."""
    if not etags or not all(etags):
        return ""
    return _text(hashlib.sha256("|".join(etags).encode()).digest())


def _text(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest[:18]).decode()
