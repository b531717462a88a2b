"""Buckets that only had events appended since their rollup: the settled answer plus those events.

A dashboard polled while usage comes in asks, again and again, for a bucket (today)
whose windows are dirty only because events were appended to them. The engine would
read the whole bucket each time: its rollups (a day of cube rows) and the appended
events (its "tails", server/storage/migrations/0005_tails.sql). But the rollup part is the answer the
bucket had when it was last settled, and that answer has a name: the etag the bucket
would have with those append marks cleared (server/query/etags.py: the rollups of a day
change only in a pass that also takes a new stamp). So the engine keeps that part by
its etag here, as rows, and afterwards reads only the appended events and adds them.

Exact because the sum is associative: rollups + tails, read by one statement or by two,
is the same sum (costs are added in a context wide enough for every exact total). Only
buckets whose dirty windows all had appends only, and are all read from rollups (not
from raw events at an unaligned end), qualify (server/query/engine.py, QueryEngine._based).
"""

from __future__ import annotations

import datetime as dt
import decimal

from metering.lru import LRU
from server.core.money import EXACT  # sums of money never round
from server.query.rows import GroupRow, Groups

MAX_ROWS = 20_000  # per server process: ~15 MB of group rows
# Marks and groups of appended parts per server process (~15 MB at most): a worker 30 s
# behind 10,000 events/s leaves thousands of marks in a day, each a member of every part.
MAX_APPENDED = 200_000


def settled_rows(max_rows: int = MAX_ROWS) -> LRU[str, Groups]:
    """The groups of settled bucket answers by etag, at most max_rows groups in all (a bucket's
    at most a quarter of them)."""
    return LRU(max_rows, len, max_item_size=max_rows // 4)


def appended_rows(max_units: int = MAX_APPENDED) -> LRU[str, tuple[frozenset[int], Groups]]:
    """The appended part of a bucket by its settled etag: the marks it sums and their groups,
    at most max_units marks and groups in all (a part of over a quarter of that is not kept).
    The events of a mark are written in one transaction and change only with a mark of a
    changed window (then the bucket is not read this way) or a rollup pass (then its stamps,
    hence its settled etag, move on). So while the etag stays, the kept groups are those
    marks' events, and a later reading whose marks hold them all reads only the marks added
    since and adds them."""
    return LRU(max_units, lambda kept: len(kept[0]) + len(kept[1]), max_item_size=max_units // 4)


def add_groups(settled: Groups, appended: Groups) -> Groups:
    """settled + appended, group by group (neither is changed)."""
    total = dict(settled)
    for key, row in appended.items():
        before = total.get(key)
        total[key] = row if before is None else _add(before, row)
    return total


def _add(a: GroupRow, b: GroupRow) -> GroupRow:
    extra = a.extra
    if b.extra:
        extra = dict(extra or {})
        for name, value in b.extra.items():
            extra[name] = extra.get(name, 0) + value
    return GroupRow(
        a.events + b.events, a.unpriced_events + b.unpriced_events,
        [x + y for x, y in zip(a.counters, b.counters, strict=True)],
        _money(a.input_cost, b.input_cost), _money(a.output_cost, b.output_cost), _money(a.cost, b.cost),
        _latest(a.last_event_at, b.last_event_at), extra,
    )


def _money(a: decimal.Decimal | None, b: decimal.Decimal | None) -> decimal.Decimal | None:
    """None: not asked for (QueryUsageRequest.metrics), in both rows alike."""
    return None if a is None or b is None else EXACT.add(a, b)


def _latest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b
