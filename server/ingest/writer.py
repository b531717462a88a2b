"""The exactly-once write path (DESIGN §4).

One transaction per batch: claim the (organization, request_id) keys, COPY the
newly claimed events and their payloads, mark their 15-minute windows dirty,
commit. A key is claimed in the same transaction as its event, so a failed write
never burns a key; a key held by a concurrent uncommitted transaction makes us
wait for it, then count as a duplicate (or claim it, if that one rolled back).
Keys are claimed in sorted order so concurrent batches cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import operator
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from server.core.events import COUNTER_FIELDS, PAYLOAD_FIELDS, NewEvent
from server.core.windows import window_at, window_number
from server.pricing.pricer import Pricer
from server.storage.db import Parameters, q
from server.storage.partitions import Partitions
from server.storage.series import SeriesCache

# Called after a write commits with the (org_id, window_start) pairs it marked dirty.
AfterCommit = Callable[[Iterable[tuple[int, dt.datetime]]], None]
# The candidates' (org_id, request_id, event_id, ts) as four columns: request_keys' columns.
Keys = tuple[list[int], list[str], list[uuid.UUID], list[dt.datetime]]

EVENT_COLUMNS = (
    "org_id", "ts", "event_id", "series_id", "request_id", "received_at", "updated_at",
    *COUNTER_FIELDS, "counters", "input_cost", "output_cost", "cost", "price_version", "unpriced", "has_payload",
    "mark_id",
)
PAYLOAD_COLUMNS = ("org_id", "ts", "event_id", *PAYLOAD_FIELDS)
KEY_COLUMNS = ("org_id", "request_id", "event_id", "ts")
_ALWAYS_COUNTED = COUNTER_FIELDS.index("num_model_requests")  # its column default is 1, not 0


SMALL_BATCH = 64  # up to this many events are written by one statement; more by COPY


# The optional columns: the event attribute of each (its default: null, or false for the flags) and its type.
_OPTIONAL = {
    "counters": ("extra_counters", "jsonb"),
    "input_cost": ("input_cost", "numeric"),
    "output_cost": ("output_cost", "numeric"),
    "cost": ("cost", "numeric"),
    "price_version": ("price_version", "text"),
    "unpriced": ("unpriced", "boolean"),
    "has_payload": ("has_payload", "boolean"),
}
_OPTIONAL_ATTRIBUTES = {name: attribute for name, (attribute, _) in _OPTIONAL.items()}
_OPTIONAL_VALUES = {name: operator.attrgetter(attribute) for name, attribute in _OPTIONAL_ATTRIBUTES.items()}
_ALL_OPTIONAL_VALUES = operator.attrgetter(*_OPTIONAL_ATTRIBUTES.values())  # an event's, in _OPTIONAL order


def _set_columns(events: list[NewEvent]) -> tuple[list[str], Callable[[NewEvent], tuple[object, ...]]]:
    """The optional columns some event sets (not null, not false), and a function giving an
    event's values of them as a tuple (one C call an event)."""
    names = [name for name, get in _OPTIONAL_VALUES.items()
             if any(v is not None and v is not False for v in map(get, events))]
    if not names:
        return names, lambda e: ()
    get = operator.attrgetter(*(_OPTIONAL_ATTRIBUTES[name] for name in names))
    return names, (lambda e: (get(e),)) if len(names) == 1 else get


# The parameters of the one-statement write, one array per column (a value per candidate event,
# payload or window), by name; the events' counters and optional columns go by their column names.
_PAYLOAD_PARAMETERS = tuple(f"payload_{name}" for name in PAYLOAD_COLUMNS)
_NO_PAYLOADS = ((),) * len(PAYLOAD_COLUMNS)
_WRITE_PARAMETERS = Parameters((
    ("org_id", "integer[]"), ("request_id", "text[]"), ("event_id", "uuid[]"), ("ts", "timestamptz[]"),
    ("received_at", "timestamptz"),  # one value: the write's time, also its updated_at
    ("series_id", "bigint[]"),
    *((name, "bigint[]") for name in COUNTER_FIELDS),
    *((name, f"{kind}[]") for name, (_, kind) in _OPTIONAL.items()),
    *zip(_PAYLOAD_PARAMETERS, ("integer[]", "timestamptz[]", "uuid[]", *(["text[]"] * len(PAYLOAD_FIELDS))),
         strict=True),
    ("mark_org_id", "integer[]"), ("mark_window_start", "timestamptz[]"),  # the distinct windows to mark
    ("window_start", "timestamptz[]"),  # each event's window
))


def _write_small_statement() -> str:
    """The one-statement write of _write_small, generated from the column lists."""
    n = _WRITE_PARAMETERS
    event_columns = ", ".join(EVENT_COLUMNS)
    values = ", ".join(("e.org_id", "e.ts", "e.event_id", "e.series_id", "e.request_id",
                        n.bare("received_at"), n.bare("received_at"),
                        *(f"e.{c}" for c in (*COUNTER_FIELDS, *_OPTIONAL)), "d.id"))
    per_event = ", ".join(n[name] for name in (*COUNTER_FIELDS, *_OPTIONAL))
    return f"""
        with claimed as (
            insert into request_keys (org_id, request_id, event_id, ts)
            select * from unnest({n["org_id"]}, {n["request_id"]}, {n["event_id"]}, {n["ts"]})
            on conflict (org_id, request_id) do nothing
            returning org_id, request_id, event_id
        ), dirty as (
            insert into dirty_windows (org_id, window_start, appends)
            select o, w, true from unnest({n["mark_org_id"]}, {n["mark_window_start"]}) as m(o, w)
            returning id, org_id, window_start
        ), written as (
            insert into events ({event_columns})
            select {values}
            from unnest({n["org_id"]}, {n["ts"]}, {n["event_id"]}, {n["series_id"]}, {n["request_id"]}, {per_event},
                        {n["window_start"]})
                 as e(org_id, ts, event_id, series_id, request_id, {", ".join((*COUNTER_FIELDS, *_OPTIONAL))},
                      window_start)
            join claimed c on c.org_id = e.org_id and c.request_id = e.request_id
            -- each event carries its window's mark (server/storage/migrations/0005_tails.sql)
            join dirty d on d.org_id = e.org_id and d.window_start = e.window_start
        ), payloads as (
            insert into event_payloads ({", ".join(PAYLOAD_COLUMNS)})
            select p.* from unnest({", ".join(n[name] for name in _PAYLOAD_PARAMETERS)})
                 as p({", ".join(PAYLOAD_COLUMNS)})
            join claimed c on c.event_id = p.event_id
        )
        select org_id, request_id from claimed"""


_WRITE_SMALL = _write_small_statement()


class Written(NamedTuple):
    recorded: bool  # False: a duplicate of event_id
    event_id: uuid.UUID
    request_id: str
    received_at: dt.datetime | None = None  # when recorded; None for a duplicate


def _windows(orgs: Iterable[int], numbers: Iterable[int]) -> list[tuple[int, dt.datetime]]:
    """The distinct (org, window start) pairs, sorted, of events given by org and window number."""
    return [(org, window_at(n)) for org, n in sorted(set(zip(orgs, numbers, strict=True)))]


_org_of = operator.itemgetter(0)


def _claim_order(items: Sequence[tuple[int, NewEvent]]) -> list[int]:
    """The index of the first item of each distinct (org_id, request_id), sorted
    by that key: the order keys are claimed in, the same in every transaction,
    so concurrent batches cannot deadlock."""
    orgs = set(map(_org_of, items))
    if len(orgs) == 1:
        # One organization (every RecordEvents): sorting the request ids alone
        # gives the same order ~9x cheaper than sorting ((org, request_id), index)
        # tuples (measured: 52 against 475 ns an event for 1,000).
        request_ids = [e.request_id for _, e in items]
        # inserted last to first: each request id keeps the index of its first item
        first = dict(zip(reversed(request_ids), range(len(request_ids) - 1, -1, -1), strict=True))
        return [first[rid] for rid in sorted(first)]
    found: dict[tuple[int, str], int] = {}
    for i, (org, event) in enumerate(items):
        found.setdefault((org, event.request_id), i)
    return [i for _, i in sorted(found.items())]


async def _settle(conn: PoolConnectionProxy, written: Iterable[tuple[int, NewEvent]]) -> None:
    """In the transaction writing the events: the budget reservations they carry are
    settled, their holds released (metering_budget_close; unknown, closed and expired
    reservations are left alone), so the events' own usage counts instead."""
    settling = [(org, e.reservation_id, e.event_id) for org, e in written if e.reservation_id]
    if settling:
        orgs, ids, event_ids = map(list, zip(*settling, strict=True))
        await conn.fetch(q("close_reservations"), orgs, ids, event_ids, "settled")


class EventWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.series = SeriesCache()
        self.partitions = Partitions()
        self.pricer = Pricer()  # prices events without a cost (server/pricing/pricer.py)
        self.after_commit: AfterCommit | None = None  # e.g. enqueue rollups (server/rollups/queue.py)

    async def write(self, items: Sequence[tuple[int, NewEvent]]) -> list[Written]:
        """Write (org_id, event) pairs; returns one result per item, in order."""
        if not items:
            return []
        items = await self.pricer.price(self.pool, items)
        order = _claim_order(items)  # the candidates: one item per distinct key
        chosen = [items[i][1] for i in order]
        await self.partitions.ensure(self.pool, [e.ts for e in chosen])
        series_ids = await self.series.ids_of(self.pool, items)  # of each item

        keys: Keys = ([items[i][0] for i in order], [e.request_id for e in chosen],
                      [e.event_id for e in chosen], [e.ts for e in chosen])
        existing: dict[tuple[int, str], uuid.UUID] = {}
        claimed: set[tuple[int, str]] | None = None  # None: every candidate's key
        reserved = any(e.reservation_id for e in chosen)
        async with self.pool.acquire() as conn:
            if len(order) <= SMALL_BATCH and not reserved:
                now, claimed, windows = await self._write_small(conn, keys, chosen, [series_ids[i] for i in order])
            elif len(order) <= SMALL_BATCH:
                async with conn.transaction():  # the settlement commits with the events
                    now, claimed, windows = await self._write_small(conn, keys, chosen,
                                                                    [series_ids[i] for i in order])
                    await _settle(conn, [(o, e) for o, e in zip(keys[0], chosen, strict=True)
                                         if (o, e.request_id) in claimed])
            else:
                try:  # optimistic: no key of the batch is taken (retries are rare), COPY them all
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "request_keys", records=zip(*keys, strict=True), columns=KEY_COLUMNS)
                        now = dt.datetime.now(dt.UTC)
                        windows = await self._copy(conn, keys[0], chosen, [series_ids[i] for i in order], now)
                        await _settle(conn, list(zip(keys[0], chosen, strict=True)))
                except asyncpg.UniqueViolationError:  # some are (committed, or we waited): claim one by one
                    async with conn.transaction():
                        claimed = await self._claim(conn, keys)
                        fresh = [i for i in order if (items[i][0], items[i][1].request_id) in claimed]
                        now = dt.datetime.now(dt.UTC)
                        windows = await self._copy(
                            conn, [items[i][0] for i in fresh], [items[i][1] for i in fresh],
                            [series_ids[i] for i in fresh], now) if fresh else []
                        await _settle(conn, [items[i] for i in fresh])
            if claimed is not None and len(claimed) < len(order):
                # duplicates: their keys are committed, read the originals
                taken = [key for key in zip(keys[0], keys[1], strict=True) if key not in claimed]
                rows = await conn.fetch(q("find_request_keys"), [o for o, _ in taken], [r for _, r in taken])
                existing = {(r["org_id"], r["request_id"]): r["event_id"] for r in rows}
        if windows and self.after_commit is not None:
            self.after_commit(windows)

        if len(order) == len(items) and (claimed is None or len(claimed) == len(order)):
            # the usual batch: every item new and claimed
            return [Written(True, e.event_id, e.request_id, now) for _, e in items]
        first = {(items[i][0], items[i][1].request_id): i for i in order}
        results = []
        for i, (org, event) in enumerate(items):
            key = (org, event.request_id)
            if first[key] == i and (claimed is None or key in claimed):
                results.append(Written(True, event.event_id, event.request_id, now))
            else:
                original = existing.get(key) or items[first[key]][1].event_id
                results.append(Written(False, original, event.request_id))
        return results

    async def _claim(self, conn: PoolConnectionProxy, keys: Keys) -> set[tuple[int, str]]:
        """Claims the keys; returns those claimed. Usually all are: then the command
        tag says so and no row comes back to decode (1,000 rows of a batch, ~7%
        of the server's work). Otherwise ask which keys now carry our event ids."""
        status = await conn.execute(q("claim_request_keys"), *keys)
        if int(status.rsplit(" ", 1)[1]) == len(keys[0]):
            return set(zip(keys[0], keys[1], strict=True))
        rows = await conn.fetch(q("claimed_request_keys"), keys[0], keys[1], keys[2])
        return {(r[0], r[1]) for r in rows}

    async def _write_small(
        self, conn: PoolConnectionProxy, keys: Keys, chosen: list[NewEvent], series_ids: list[int]
    ) -> tuple[dt.datetime, set[tuple[int, str]], list[tuple[int, dt.datetime]]]:
        """A few events (group commit of single events, small batches): the claim,
        the events, their payloads and dirty marks in one statement, one round trip
        instead of five (BEGIN, claim, COPY, mark, COMMIT). Windows are marked for
        every candidate; a duplicate's mark only costs a recompute."""
        orgs, request_ids, event_ids, stamps = keys
        now = dt.datetime.now(dt.UTC)
        payloads = [(org, e.ts, e.event_id, *e.payload)
                    for org, e in zip(orgs, chosen, strict=True) if e.payload is not None]
        numbers = [window_number(ts) for ts in stamps]
        windows = _windows(orgs, numbers)
        values: dict[str, object] = {
            "org_id": orgs, "request_id": request_ids, "event_id": event_ids, "ts": stamps,
            "received_at": now, "series_id": series_ids,
            "mark_org_id": [o for o, _ in windows], "mark_window_start": [w for _, w in windows],
            "window_start": [window_at(n) for n in numbers],
        }  # and by column name: the counters, the optional columns, the payloads' columns
        values.update(zip(COUNTER_FIELDS, zip(*(e.counters for e in chosen), strict=True), strict=True))
        values.update(zip(_OPTIONAL, zip(*map(_ALL_OPTIONAL_VALUES, chosen), strict=True), strict=True))
        values.update(zip(_PAYLOAD_PARAMETERS, zip(*payloads, strict=True) if payloads else _NO_PAYLOADS, strict=True))
        rows = await conn.fetch(_WRITE_SMALL, *_WRITE_PARAMETERS.arguments(values))
        return now, {(r[0], r[1]) for r in rows}, windows

    async def _copy(
        self, conn: PoolConnectionProxy, orgs: list[int], events: list[NewEvent], series_ids: list[int],
        now: dt.datetime,
    ) -> list[tuple[int, dt.datetime]]:
        """COPY the events (of orgs, with series_ids) with their dirty marks."""
        # COPY only the columns some event of the batch sets: the others take their
        # defaults (0, null, false), and each column left out saves encoding here and
        # parsing in Postgres (a completions batch sets 3-5 of the 21 counters, and
        # usually none of the extra counters, split costs, payloads or price versions).
        by_column = zip(*(e.counters for e in events), strict=True)
        used = [i for i, column in enumerate(by_column) if i == _ALWAYS_COUNTED or any(column)]
        pick = operator.itemgetter(*used)  # used has >= 2 entries or is just _ALWAYS_COUNTED
        single = len(used) == 1
        optional, values = _set_columns(events)
        columns = (*EVENT_COLUMNS[:7], *(COUNTER_FIELDS[i] for i in used), *optional, "mark_id")
        numbers = [window_number(e.ts) for e in events]
        ordered = _windows(orgs, numbers)
        # The marks first: each event carries its window's mark id (server/storage/migrations/0005_tails.sql).
        rows = await conn.fetch(q("mark_dirty"), [o for o, _ in ordered], [w for _, w in ordered])
        mark_ids = {(r[1], window_number(r[2])): r[0] for r in rows}
        records = []
        payloads = []
        for org, e, number, series_id in zip(orgs, events, numbers, series_ids, strict=True):
            counted = (pick(e.counters),) if single else pick(e.counters)
            records.append((
                org, e.ts, e.event_id, series_id, e.request_id, now, now, *counted, *values(e), mark_ids[(org, number)],
            ))
            if e.payload is not None:
                payloads.append((org, e.ts, e.event_id, *e.payload))
        await conn.copy_records_to_table("events", records=records, columns=columns)
        if payloads:
            await conn.copy_records_to_table("event_payloads", records=payloads, columns=PAYLOAD_COLUMNS)
        return ordered
