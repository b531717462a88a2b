"""The query engine (DESIGN §5): usage in local-calendar buckets, filtered and
grouped on any dimension or label, exactly equal to aggregating the raw events.

One REPEATABLE READ read-only transaction per call: read the dirty 15-minute
windows of the range, plan which stretches come from which rollup grain and
which from raw events (server/query/plan.py), then aggregate all of them in one
statement. All reads share the snapshot, so a window is read from its rollups
only if no dirty mark for it is visible, and then its rollups are complete for
that snapshot (server/rollups/recompute.py); otherwise its raw events are read. Whole
clean UTC days and hours come from the cubes (sums over the series that share the
cube dimensions, server/storage/migrations/0004_cubes.sql and 0008_hour_cubes.sql, recomputed with
the rollups) when every field the query groups on, filters on or is scoped by is a
cube dimension, and from the per-series rollups otherwise. Scoping follows
Principal.read_scope(), as in server/records/store.py.

Etags (server/query/etags.py): a bucket or page read with no dirty window has an
etag naming its answer. A caller that sends the page's etag back as if_none_match
gets "not modified"; one that sends bucket etags as known_etags gets those buckets
marked not modified and empty, and only the stretch of the other buckets is
aggregated (a month's dashboard refreshed while today is being written reads today).
A bucket whose dirty windows only had events appended (today, while usage comes in) is
its settled answer, kept by the etag it had at its last rollup pass, plus the appended
events (server/query/tails.py): a poll then reads only those events.

The aggregate statement is written for the sources and metrics each call reads
(server/query/sql.py).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import decimal
import itertools
import time
from collections.abc import Callable, Collection
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from metering import page_token as tokens
from metering.lru import LRU
from server.core.errors import InvalidArgument
from server.core.events import COUNTER_FIELDS
from server.core.money import EXACT
from server.core.principal import Principal
from server.core.windows import WINDOW, ceil_to
from server.query import prefixes
from server.query.buckets import bucket_edges, parse_zone
from server.query.etags import Stamp, bucket_etags, page_etag
from server.query.plan import cube_covers, plan, rolled_up
from server.query.rows import GroupRow, Groups, Key, Record, from_record
from server.query.spec import UsageSpec
from server.query.sql import NARROW_SERIES, SERIES_COUNT, parameters, usage_rows
from server.query.tails import add_groups, appended_rows, settled_rows
from server.storage.db import q

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_BUCKETS = 100_000  # internal callers (tallies) read every bucket at once
SERIES_COUNT_TTL = 60.0  # seconds a count of the series a filter selects is used (_narrow)
_ZERO = decimal.Decimal(0)
Mark = dict[str, Any]  # a dirty window: window_start, appends, ids (of its marks)


@dataclasses.dataclass
class Metrics:
    events: int = 0
    unpriced_events: int = 0
    counters: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(COUNTER_FIELDS, 0))
    extra: dict[str, int] = dataclasses.field(default_factory=dict)
    input_cost: decimal.Decimal = _ZERO
    output_cost: decimal.Decimal = _ZERO
    cost: decimal.Decimal = _ZERO
    last_event_at: dt.datetime | None = None

    def add(self, other: Metrics) -> None:
        self.events += other.events
        self.unpriced_events += other.unpriced_events
        for name, value in other.counters.items():
            self.counters[name] += value
        for name, value in other.extra.items():
            self.extra[name] = self.extra.get(name, 0) + value
        self.input_cost = EXACT.add(self.input_cost, other.input_cost)  # the default context rounds to 28 digits
        self.output_cost = EXACT.add(self.output_cost, other.output_cost)
        self.cost = EXACT.add(self.cost, other.cost)
        if other.last_event_at is not None and (self.last_event_at is None or other.last_event_at > self.last_event_at):
            self.last_event_at = other.last_event_at


class Group:
    """One group of a bucket: its key (in group_by order) and its aggregate as the engine
    read it (server/query/rows.py). `metrics` is made from it when first asked for:
    QueryUsage encodes the row directly (a grouped month has ~10,000 groups, and making
    their Metrics was a fifth of a cold query)."""

    __slots__ = ("key", "row", "_metrics")

    def __init__(self, key: Key, row: GroupRow) -> None:
        self.key = key
        self.row = row
        self._metrics: Metrics | None = None

    @property
    def metrics(self) -> Metrics:
        if self._metrics is None:
            row = self.row
            self._metrics = Metrics(
                events=row.events, unpriced_events=row.unpriced_events,
                counters=dict(zip(COUNTER_FIELDS, row.counters, strict=True)), extra=row.extra or {},
                input_cost=_ZERO if row.input_cost is None else row.input_cost,
                output_cost=_ZERO if row.output_cost is None else row.output_cost,
                cost=_ZERO if row.cost is None else row.cost, last_event_at=row.last_event_at,
            )
        return self._metrics


@dataclasses.dataclass
class Bucket:
    start: dt.datetime
    end: dt.datetime
    groups: list[Group]
    etag: str = ""  # names the bucket's answer when no window of it was dirty
    not_modified: bool = False  # the caller knows `etag`: groups left empty
    kept: bytes | None = None  # the caller kept this answer (its `kept` lookup): groups left empty


@dataclasses.dataclass(frozen=True)
class Freshness:
    snapshot_time: dt.datetime
    settled_before: dt.datetime  # every window before it is rolled up
    raw_windows: int  # dirty windows of the range, read from raw events


@dataclasses.dataclass
class UsageResult:
    buckets: list[Bucket]
    freshness: Freshness
    next_start: dt.datetime | None  # where the next page starts; None: done
    etag: str = ""  # names the answer when no window of the page was dirty
    not_modified: bool = False  # the caller's if_none_match is `etag`: buckets left empty


class QueryEngine:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.settled = settled_rows()  # settled parts of buckets with appended events (server/query/tails.py)
        self.appended = appended_rows()  # their appended parts, with the marks they sum (the same)
        self._series_counts: LRU[tuple[object, ...], tuple[int, float]] = LRU(
            10_000)  # series selected by filters and scope, with when they were counted (_narrow)

    async def aggregate(
        self, principal: Principal, spec: UsageSpec, *, start_at: dt.datetime | None = None, limit: int = MAX_BUCKETS,
        if_none_match: str = "", known_etags: Collection[str] = (),
        kept: Callable[[str], bytes | None] = lambda etag: None,
    ) -> UsageResult:
        """Buckets from `start_at` (default spec.start), at most `limit` of them; none
        when `if_none_match` is the etag of this answer, and no groups in those whose
        etag is in `known_etags` or for which `kept(etag)` has what the caller kept of
        that answer (Bucket.kept)."""
        edges = bucket_edges(start_at or spec.start, spec.end, spec.width, parse_zone(spec.time_zone), limit)
        try:
            return await self._aggregate(principal, spec, edges, if_none_match, known_etags, kept, wide=False)
        except asyncpg.NumericValueOutOfRangeError:  # a counter sum beyond bigint: all again, summed in numeric
            return await self._aggregate(principal, spec, edges, if_none_match, known_etags, kept, wide=True)

    async def etags(self, principal: Principal, spec: UsageSpec) -> list[str]:
        """The etags aggregate() would give spec's buckets now ("" for a bucket a dirty window
        overlaps), read in one statement and no transaction: one round trip. A caller that
        kept the answer of a bucket under the etag it finds here has that bucket's answer
        as of this statement's snapshot."""
        edges = bucket_edges(spec.start, spec.end, spec.width, parse_zone(spec.time_zone), MAX_BUCKETS)
        state = await self.pool.fetchrow(q("query_state"), principal.org_id, edges[0], edges[-1],
                                         ceil_to(edges[-1], WINDOW))
        if state is None:
            raise RuntimeError("query_state returned no row")
        return bucket_etags(principal, _shape(spec), edges, [r["window_start"] for r in _marks(state)], _stamps(state))

    async def _aggregate(self, principal: Principal, spec: UsageSpec, edges: list[dt.datetime], if_none_match: str,
                         known_etags: Collection[str], kept: Callable[[str], bytes | None], wide: bool) -> UsageResult:
        """aggregate() in one snapshot; wide: counters summed in numeric (server/query/sql.py)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            fresh = await conn.fetchrow(q("query_state"), principal.org_id, edges[0], edges[-1],
                                        ceil_to(edges[-1], WINDOW))
            if fresh is None:
                raise RuntimeError("query_state returned no row")
            marks, stamps = _marks(fresh), _stamps(fresh)
            etags = bucket_etags(principal, _shape(spec), edges, [r["window_start"] for r in marks], stamps)
            etag = page_etag(etags)
            next_start = edges[-1] if edges[-1] < spec.end else None
            freshness = Freshness(fresh["snapshot_time"], fresh["oldest_dirty"] or fresh["snapshot_time"], len(marks))
            if etag and etag == if_none_match:
                return UsageResult([], freshness, next_start, etag, not_modified=True)
            wanted = set(known_etags)
            known = [bool(e) and e in wanted for e in etags]
            found = [kept(e) if e and not skip else None for e, skip in zip(etags, known, strict=True)]
            todo = [i for i, skip in enumerate(known) if not skip and found[i] is None]
            # No event after the end in its window (a range up to now): read to the window's end,
            # the same sums, so the window comes from its rollup and tail rather than raw.
            reach = [*edges[:-1], ceil_to(edges[-1], WINDOW)] if fresh["end_clear"] else edges
            groups = await self._read(conn, principal, spec, reach, todo, marks, stamps, wide) if todo else {}
        return UsageResult(_buckets(edges, groups, etags, known, found), freshness, next_start, etag)

    async def _read(self, conn: PoolConnectionProxy, principal: Principal, spec: UsageSpec, edges: list[dt.datetime],
                    todo: list[int], marks: list[Mark], stamps: list[Stamp], wide: bool) -> dict[int, Groups]:
        """The groups of the buckets numbered `todo` (from 0, ascending). A bucket with a clean
        prefix before the day of its first dirty window is read as that prefix (kept by its
        etag) plus the rest (server/query/prefixes.py)."""
        cut = {} if spec.width == "1m" else prefixes.cuts(edges, todo, sorted(r["window_start"] for r in marks))
        groups = await self._read_whole(conn, principal, spec, edges, [i for i in todo if i not in cut], marks,
                                        stamps, wide)
        for i, at in cut.items():
            [etag] = bucket_etags(principal, _shape(spec), [edges[i], at], [], stamps)
            prefix = self.settled.get(etag)
            if prefix is None:
                prefix = _grouped(await self._rows(conn, principal, spec, [edges[i], at], [], wide=wide),
                                  0, {0}).get(0, {})
                self.settled.put(etag, prefix)
            rest = await self._read_whole(conn, principal, spec, [at, edges[i + 1]], [0], marks, stamps, wide)
            groups[i] = add_groups(prefix, rest.get(0, {}))
        return groups

    async def _read_whole(self, conn: PoolConnectionProxy, principal: Principal, spec: UsageSpec,
                          edges: list[dt.datetime], todo: list[int], marks: list[Mark], stamps: list[Stamp],
                          wide: bool) -> dict[int, Groups]:
        """The groups of the buckets numbered `todo`, each read over its whole range."""
        if not todo:
            return {}
        based = self._based(principal, spec, edges, todo, marks, stamps)
        read = [i for i in todo if i not in based]
        groups: dict[int, Groups] = {}
        if read:  # one statement over the stretch (rows of buckets not asked for are dropped)
            first = read[0]
            rows = await self._rows(conn, principal, spec, edges[first:read[-1] + 2], marks, wide=wide)
            groups = _grouped(rows, first, set(read))
        if based:
            # the settled part of each from its etag, else read without the appended events
            settled: dict[int, Groups] = {}
            for i, (etag, _) in based.items():
                if (kept := self.settled.get(etag)) is not None:
                    settled[i] = kept
            missing = [i for i in based if i not in settled]
            if missing:
                rows = await self._rows(conn, principal, spec, edges[missing[0]:missing[-1] + 2], [], wide=wide)
                read_now = _grouped(rows, missing[0], set(missing))
                for i in missing:
                    settled[i] = read_now.get(i, {})
                    self.settled.put(based[i][0], settled[i])
            appended = await self._appended(conn, principal, spec, edges, based, wide)
            for i in based:
                groups[i] = add_groups(settled[i], appended.get(i, {}))
        return groups

    async def _appended(self, conn: PoolConnectionProxy, principal: Principal, spec: UsageSpec,
                        edges: list[dt.datetime], based: dict[int, tuple[str, list[int]]],
                        wide: bool) -> dict[int, Groups]:
        """The groups of the events appended under the marks of each based bucket. A lone one
        (a budget's period, a rule's) whose appended groups were kept, by its settled etag with
        the marks they sum, reads only the marks added since (server/query/tails.py)."""
        if len(based) == 1:
            [(i, (etag, marks))] = based.items()
            now = frozenset(marks)
            kept = self.appended.get(etag)
            if kept is not None and kept[0] <= now:
                new = sorted(now - kept[0])
                total = kept[1]
            else:
                new, total = sorted(now), {}
            if new:
                rows = await self._rows(conn, principal, spec, edges[i:i + 2], [], new, wide)
                total = add_groups(total, _grouped(rows, i, {i}).get(i, {}))
            self.appended.put(etag, (now, total))
            return {i: total}
        first = min(based)
        tails = [mark for i in based for mark in based[i][1]]
        return _grouped(await self._rows(conn, principal, spec, edges[first:max(based) + 2], [], tails, wide),
                        first, set(based))

    @staticmethod
    def _based(principal: Principal, spec: UsageSpec, edges: list[dt.datetime], todo: list[int],
               marks: list[Mark], stamps: list[Stamp]) -> dict[int, tuple[str, list[int]]]:
        """Buckets of `todo` read as their settled answer plus their appended events
        (server/query/tails.py): every dirty window of the bucket only had events
        appended and is read from rollups. Bucket -> (etag of the settled answer, marks)."""
        if spec.width == "1m" or not any(r["appends"] for r in marks):
            return {}
        changed = [r["window_start"] for r in marks if not r["appends"]]
        settled = bucket_etags(principal, _shape(spec), edges, changed, stamps)
        ordered = sorted(marks, key=lambda r: r["window_start"])
        starts = [r["window_start"] for r in ordered]
        based: dict[int, tuple[str, list[int]]] = {}
        for i in todo:
            lo, hi = edges[i], edges[i + 1]
            # the marks of windows overlapping [lo, hi): starting after lo - 15 minutes and before hi
            inside = ordered[bisect.bisect_right(starts, lo - WINDOW):bisect.bisect_left(starts, hi)]
            if not settled[i] or not inside:  # a changed window, or clean (read as it is)
                continue
            pieces = plan([lo, hi], [])
            if all(rolled_up(pieces, r["window_start"]) for r in inside):
                based[i] = (settled[i], [mark for r in inside for mark in r["ids"]])
        return based

    async def _rows(self, conn: PoolConnectionProxy, principal: Principal, spec: UsageSpec,
                    edges: list[dt.datetime], marks: list[Mark],
                    only_tails: list[int] | None = None, wide: bool = False) -> list[Record]:
        """The aggregate over the buckets of `edges` (numbered from 1); only_tails: of
        the events appended under these marks alone."""
        scope = principal.read_scope()
        values: dict[str, object] = {
            "org": principal.org_id, "starts": edges[:-1], "group_by": list(spec.group_by),
            "filters": {field: list(values) for field, values in spec.filters},
            "project": scope[0], "user": scope[1], "api_key": scope[2],
        }
        if only_tails is not None:
            ranges: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
            tails = only_tails
        else:
            # Windows with changed events are read raw; windows that only had events
            # appended are read from their rollups plus those events (their "tails").
            dirty = [r["window_start"] for r in marks if not r["appends"]]
            pieces = plan(edges, dirty, use_rollups=spec.width != "1m")
            tails = [i for r in marks if r["appends"] and rolled_up(pieces, r["window_start"]) for i in r["ids"]]
            # Whole clean UTC days and hours come from the cubes when they hold every
            # field the query needs; otherwise from the per-series rollups.
            cubes = cube_covers(_fields(spec, scope))
            ranges = {"cubes" if cubes else "days": pieces.days, "hour_cubes" if cubes else "hours": pieces.hours,
                      "windows": pieces.windows, "raw": pieces.raw}
        for source, stretches in ranges.items():
            if stretches:
                values[f"{source}_lo"], values[f"{source}_hi"] = _columns(stretches)
        sources = frozenset(source for source, stretches in ranges.items() if stretches) | (
            {"tails"} if tails else set())
        if not sources:
            return []
        values["tails"] = tails
        narrow = sources != {"raw"} and await self._narrow(conn, principal.org_id, values, spec)
        return await usage_rows(conn, sources, frozenset(spec.metrics) or None,
                                [values[name] for name in parameters(sources)], wide, narrow)

    async def _narrow(self, conn: PoolConnectionProxy, org_id: int, values: dict[str, object],
                      spec: UsageSpec) -> bool:
        """Whether the query selects at most NARROW_SERIES series (server/query/sql.py): counted
        for its filters and scope, the count kept a minute (series are only ever added, so a
        stale count only costs speed). A user, a key or a project usually has few series, but
        a filter listing 1,000 users has many: by mark is then the cheaper read."""
        scope = (values["project"], values["user"], values["api_key"])
        if not spec.filters and not any(scope):
            return False
        key = (org_id, spec.filters, scope)
        now = time.monotonic()
        known = self._series_counts.get(key)
        if known is None or now - known[1] > SERIES_COUNT_TTL:
            count = await conn.fetchval(SERIES_COUNT, org_id, values["filters"], *scope)
            known = (int(count), now)
            self._series_counts.put(key, known)
        return known[0] <= NARROW_SERIES

    async def page(
        self, principal: Principal, spec: UsageSpec, page_size: int, page_token: str, if_none_match: str = "",
        known_etags: Collection[str] = (), kept: Callable[[str], bytes | None] = lambda etag: None,
    ) -> UsageResult:
        size = page_size or DEFAULT_PAGE_SIZE
        if not 0 < size <= MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"between 1 and {MAX_PAGE_SIZE}")
        if len(known_etags) > MAX_PAGE_SIZE:  # one per bucket of a page at most
            raise InvalidArgument("known_etags", f"at most {MAX_PAGE_SIZE}")
        start_at = _page_start(page_token, spec, principal) if page_token else None
        return await self.aggregate(principal, spec, start_at=start_at, limit=size, if_none_match=if_none_match,
                                    known_etags=known_etags, kept=kept)


def page_token(result: UsageResult, spec: UsageSpec, principal: Principal) -> str:
    """The token of the page after `result` ("" when it is the last): where that page starts."""
    if result.next_start is None:
        return ""
    return tokens.encode({"s": result.next_start.isoformat()}, spec.digest(principal))


def _page_start(token: str, spec: UsageSpec, principal: Principal) -> dt.datetime:
    try:
        start = tokens.decode(token, spec.digest(principal)).instant("s")
    except tokens.PageTokenError as err:
        raise InvalidArgument("page_token", str(err)) from None
    if not spec.start < start < spec.end:
        raise InvalidArgument("page_token", "outside the requested range")
    return start


def _marks(state: asyncpg.Record) -> list[Mark]:
    """The dirty windows of query_state: {window_start, appends (only appends under every
    mark), ids (the marks)} by window."""
    marks: list[Mark] = []
    for start, appends, mark in zip(state["mark_starts"] or (), state["mark_appends"] or (),
                                    state["mark_ids"] or (), strict=True):
        if marks and marks[-1]["window_start"] == start:
            marks[-1]["appends"] = marks[-1]["appends"] and appends
            marks[-1]["ids"].append(mark)
        else:
            marks.append({"window_start": start, "appends": appends, "ids": [mark]})
    return marks


def _stamps(state: asyncpg.Record) -> list[Stamp]:
    """The (start, end, stamp) spans of query_state, by start."""
    return list(zip(state["stamp_starts"] or (), state["stamp_ends"] or (), state["stamps"] or (), strict=True))


def _fields(spec: UsageSpec, scope: tuple[str | None, str | None, str | None]) -> list[str]:
    """Every field the query groups on, filters on or is scoped by."""
    scoped = [name for name, value in zip(("project_id", "user_id", "api_key_id"), scope, strict=True) if value]
    return [*spec.group_by, *(field for field, _ in spec.filters), *scoped]


def _columns(ranges: list[tuple[dt.datetime, dt.datetime]]) -> tuple[list[dt.datetime], list[dt.datetime]]:
    return [lo for lo, _ in ranges], [hi for _, hi in ranges]


def _sort_key(key: Key) -> tuple[tuple[bool, str], ...]:
    return tuple((value is not None, value or "") for value in key)


def _shape(spec: UsageSpec) -> tuple[object, ...]:
    """What besides the range decides a bucket's answer (for its etag)."""
    return (spec.width, spec.time_zone, spec.group_by, spec.filters, *([spec.metrics] if spec.metrics else []))


def _grouped(rows: list[Record], first: int, wanted: set[int]) -> dict[int, Groups]:
    """Rows of query_usage (buckets numbered from 1 at bucket `first`) as groups by
    bucket number, for the buckets in `wanted`. One pass: a grouped month has ~10,000 groups."""
    by_bucket: dict[int, Groups] = {}
    for row in rows:
        index = row[0] + first - 1
        groups = by_bucket.get(index)
        if groups is None:
            if index not in wanted:
                continue
            groups = by_bucket[index] = {}
        groups[tuple(row[1])] = from_record(row)
    return by_bucket


def _buckets(edges: list[dt.datetime], by_bucket: dict[int, Groups], etags: list[str],
             known: list[bool], found: list[bytes | None]) -> list[Bucket]:
    """Buckets with their groups sorted; known and found buckets stay empty."""
    buckets = []
    for index, (lo, hi) in enumerate(itertools.pairwise(edges)):
        if known[index] or found[index] is not None:
            buckets.append(Bucket(lo, hi, [], etags[index], known[index], found[index]))
            continue
        groups = by_bucket.get(index, {})
        if any(None in key for key in groups):
            keys = sorted(groups, key=_sort_key)
        else:  # no unset value: plain tuple order is _sort_key's order
            keys = sorted(groups)
        buckets.append(Bucket(lo, hi, [Group(key, groups[key]) for key in keys], etags[index]))
    return buckets
