"""Etags of query answers: a name for the answer of a bucket (and of a page) that
stays the same exactly while the answer does.

A bucket has an etag only when no dirty window overlaps it in the query's snapshot.
Its etag hashes the query (organization, read scope, width, zone, grouping,
filters), the bucket's range, and the newest rollup stamp of the UTC days it
overlaps. migrations/0006_stamps.sql says why two snapshots that both see the
bucket clean with the same stamp see the same events in it. A page's etag hashes
its buckets' etags, and exists when all of them do.

A caller sends etags back (QueryUsageRequest.if_none_match for the page,
known_etags for buckets): the engine then skips the aggregate for what is
unchanged (server/query.py).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import json
from collections.abc import Sequence

from server.principal import Principal
from server.query_plan import WINDOW

# Part of every etag: change it when the same rows would give a different answer.
ETAG_VERSION = "usage-2"
DAY = dt.timedelta(days=1)


def bucket_etags(
    principal: Principal, query: Sequence[object], edges: Sequence[dt.datetime],
    dirty_windows: Sequence[dt.datetime], stamps: Sequence[tuple[dt.datetime, int]],
) -> list[str]:
    """One etag per bucket of `edges` ("" for a bucket a dirty window overlaps).
    query: what besides the range decides the answer (width, zone, grouping,
    filters); dirty_windows: starts of the dirty 15-minute windows; stamps: (UTC
    day, stamp) of the days that have one, sorted by day."""
    prefix = hashlib.sha256(json.dumps(
        [ETAG_VERSION, principal.org_id, principal.read_scope(), *query], default=str).encode())
    windows = sorted(dirty_windows)
    days = [day for day, _ in stamps]
    etags = []
    for lo, hi in zip(edges, edges[1:]):
        first = bisect.bisect_right(windows, lo - WINDOW)  # windows ending after lo ...
        if first < len(windows) and windows[first] < hi:  # ... that start before hi
            etags.append("")
            continue
        # Days overlapping [lo, hi): starting after lo - 1 day and before hi.
        stamp = max((s for _, s in stamps[bisect.bisect_right(days, lo - DAY):bisect.bisect_left(days, hi)]),
                    default=0)
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
