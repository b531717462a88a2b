"""Repricing: move past events to the price versions now in force (README "Prices and costs").

A new or corrected version changes nothing stored by itself. Repricing a range
finds the events the price book priced (or could not price) whose version in
force under today's book differs from the one they carry, previews the change
per UTC day, project, line item and currency, and applies it as audited
adjustments: each event gets its new costs, version and series, an
event_adjustments row ("reprice", before/after), and its window is marked dirty
in the same transaction so the rollups follow. Caller-given costs are never
touched, and an event the new book cannot price keeps its old price (counted as
skipped).

Preview and apply run the same computation. The preview returns a token, a
digest of every change; apply with that token recomputes under row locks and
refuses (FAILED_PRECONDITION) if anything differs, so an applied delta always
equals the preview it was approved from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
from collections.abc import Sequence
from typing import Any

import asyncpg

from server.core import convert
from server.core.errors import FailedPrecondition, InvalidArgument
from server.core.events import COUNTER_FIELDS, TEXT_DIMENSIONS, SeriesKey
from server.core.money import EXACT, ZERO
from server.core.windows import window_start
from server.ingest.writer import EventWriter
from server.pricing.pricer import Book, Version
from server.pricing.rules import LineItem
from server.storage.db import q

CHUNK = 5_000
DAY = dt.timedelta(days=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class RepricingSpec:
    start: dt.datetime
    end: dt.datetime
    models: tuple[str, ...] | None = None
    providers: tuple[str, ...] | None = None
    versions: frozenset[str] | None = None  # only moves to these versions


@dataclasses.dataclass
class Delta:
    day: dt.datetime
    project_id: str | None
    line_item: str
    currency: str
    before: decimal.Decimal = ZERO
    after: decimal.Decimal = ZERO
    events: int = 0

    @property
    def delta(self) -> decimal.Decimal:
        return EXACT.subtract(self.after, self.before)


@dataclasses.dataclass
class Report:
    deltas: list[Delta]
    totals: dict[str, tuple[decimal.Decimal, decimal.Decimal]]  # currency -> (before, after)
    events: int  # events whose pricing changes
    skipped: int  # events the new book cannot price: they keep their old price
    token: str
    applied: bool = False


def make_spec(
    start: dt.datetime | None, end: dt.datetime | None, models: Sequence[str] = (), providers: Sequence[str] = (),
    versions: Sequence[str] = (), now: dt.datetime | None = None,
) -> RepricingSpec:
    if start is None:
        raise InvalidArgument("start_time", "required", reason="REQUIRED")
    end = end or now or dt.datetime.now(dt.UTC)
    if end <= start:
        raise InvalidArgument("end_time", "must be after start_time")
    return RepricingSpec(
        start, end, tuple(sorted(set(models))) or None, tuple(sorted(set(providers))) or None,
        frozenset(versions) or None,
    )


def _day(ts: dt.datetime) -> dt.datetime:
    return ts - (ts - _EPOCH) % DAY


def _money(value: decimal.Decimal | None) -> str | None:
    return None if value is None else convert.money(value)


@dataclasses.dataclass
class _Change:
    row: asyncpg.Record
    old: tuple[Version, int] | None  # the version and long-context tier it was priced with
    new: tuple[Version, int]
    costs: tuple[decimal.Decimal, decimal.Decimal, decimal.Decimal]  # input, output, total

    @property
    def stamp(self) -> str:
        return self.new[0].stamp(self.new[1])


class _Tally:
    """Accumulates changes into the report and the digest, in event order."""

    def __init__(self) -> None:
        self.deltas: dict[tuple[dt.datetime, str | None, str, str], Delta] = {}
        self.digest = hashlib.sha256()
        self.events = 0
        self.skipped = 0

    def add(self, change: _Change, counters: Sequence[int], labels: dict[str, str]) -> None:
        row = change.row
        self.events += 1
        self.digest.update(f"{row['event_id']}|{row['price_version']}|{change.stamp}|{change.costs[2]}\n".encode())
        model = row["model"]
        day = _day(row["ts"])
        touched = set()

        def items(priced: tuple[Version, int] | None) -> list[LineItem]:
            if priced is None:
                return []
            version, tier = priced
            return version.plan(version.variant_for(labels), tier).line_items(counters)

        for side, priced in (("before", change.old), ("after", change.new)):
            for item in items(priced):
                key = (day, row["project_id"], f"{model}, {item.label}", row["currency"])
                delta = self.deltas.get(key)
                if delta is None:
                    delta = self.deltas[key] = Delta(*key)
                setattr(delta, side, EXACT.add(getattr(delta, side), item.amount))
                touched.add(key)
        for key in touched:
            self.deltas[key].events += 1

    def report(self) -> Report:
        deltas = sorted(self.deltas.values(), key=lambda d: (d.day, d.project_id or "", d.line_item, d.currency))
        totals: dict[str, tuple[decimal.Decimal, decimal.Decimal]] = {}
        for d in deltas:
            before, after = totals.get(d.currency, (ZERO, ZERO))
            totals[d.currency] = (EXACT.add(before, d.before), EXACT.add(after, d.after))
        return Report(deltas, totals, self.events, self.skipped, self.digest.hexdigest()[:32])


def _changes(book: Book, rows: Sequence[asyncpg.Record], spec: RepricingSpec, tally: _Tally) -> list[_Change]:
    out = []
    for row in rows:
        new = book.in_force(row["provider"], row["model"], row["currency"], row["ts"])
        if new is None:
            continue
        counters = [row[name] for name in COUNTER_FIELDS]
        tier = new.tier_for(counters)
        if new.stamp(tier) == row["price_version"]:
            continue
        if spec.versions is not None and new.name not in spec.versions:
            continue
        labels = row["labels"]
        priced = new.plan(new.variant_for(labels), tier).price(counters)
        if priced is None:
            if row["price_version"] is not None:
                tally.skipped += 1  # keeps its old price
            continue
        old = book.priced_as(row["price_version"]) if row["price_version"] else None
        change = _Change(row, old, (new, tier), (priced.input_cost, priced.output_cost, priced.cost))
        tally.add(change, counters, labels)
        out.append(change)
    return out


class Repricer:
    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer
        self.pool = writer.pool
        self.pricer = writer.pricer

    def _args(self, org_id: int, spec: RepricingSpec) -> tuple[Any, ...]:
        return (org_id, spec.start, spec.end, list(spec.models) if spec.models else None,
                list(spec.providers) if spec.providers else None)

    async def preview(self, org_id: int, spec: RepricingSpec) -> Report:
        await self.pricer.refresh(self.pool, [org_id])
        book = self.pricer.book(org_id)
        tally = _Tally()
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(q("reprice_candidates"), *self._args(org_id, spec))
            while rows := await cursor.fetch(CHUNK):
                _changes(book, rows, spec, tally)
        return tally.report()

    async def apply(self, org_id: int, spec: RepricingSpec, actor: str, reason: str, token: str = "") -> Report:
        await self.pricer.refresh(self.pool, [org_id])
        book = self.pricer.book(org_id)
        tally = _Tally()
        windows: set[dt.datetime] = set()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("reprice_lock"), *self._args(org_id, spec))
            cursor = await conn.cursor(q("reprice_candidates"), *self._args(org_id, spec))
            while rows := await cursor.fetch(CHUNK):
                changes = _changes(book, rows, spec, tally)
                if changes:
                    await self._write(conn, org_id, changes, actor, reason)
                    windows.update(window_start(c.row["ts"]) for c in changes)
            report = tally.report()
            if token and token != report.token:
                raise FailedPrecondition("the events or prices changed since the preview; preview again",
                                         reason="PREVIEW_OUTDATED", field="preview_token")
            if windows:
                ordered = sorted(windows)
                await conn.execute(q("mark_changed"), [org_id] * len(ordered), ordered)
        if windows and self.writer.after_commit is not None:
            self.writer.after_commit([(org_id, w) for w in sorted(windows)])
        report.applied = True
        return report

    async def _write(
        self, conn: asyncpg.pool.PoolConnectionProxy, org_id: int, changes: list[_Change], actor: str, reason: str
    ) -> None:
        keys = {}
        for c in changes:
            r = c.row
            keys[c.row["event_id"]] = SeriesKey(
                kind=r["kind"], dims=tuple(r[name] for name in TEXT_DIMENSIONS), batch=r["batch"],
                status=r["status"], currency=r["currency"], labels=tuple(sorted(r["labels"].items())),
                price_version=c.stamp,
            )
        series = await self.writer.series.resolve(self.pool, {(org_id, k) for k in keys.values()})
        await conn.execute(
            q("reprice_events"), org_id, [c.row["ts"] for c in changes], [c.row["event_id"] for c in changes],
            [series[(org_id, keys[c.row["event_id"]])] for c in changes],
            [c.costs[0] for c in changes], [c.costs[1] for c in changes], [c.costs[2] for c in changes],
            [c.stamp for c in changes],
        )
        before = [{
            "price_version": c.row["price_version"], "unpriced": c.row["unpriced"], "cost": _money(c.row["cost"]),
            "input_cost": _money(c.row["input_cost"]), "output_cost": _money(c.row["output_cost"]),
        } for c in changes]
        after = [{
            "price_version": c.stamp, "unpriced": False, "cost": _money(c.costs[2]),
            "input_cost": _money(c.costs[0]), "output_cost": _money(c.costs[1]),
        } for c in changes]
        await conn.execute(
            q("reprice_audit"), org_id, actor, reason[:1024], [c.row["event_id"] for c in changes],
            [c.row["ts"] for c in changes], before, after,
        )
