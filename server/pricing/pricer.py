"""The price book in memory: versions indexed for lookup by (provider, model,
currency) and time, and the Pricer that prices write batches from it, kept
current across replicas (README "Prices and costs"; quantities and plans in
server/pricing/rules.py).

A book that uses the shared price catalog (docs/prices.md "The catalog") holds
only the organization's own versions and a reference to the catalog's, one
immutable Book per catalog and process, loaded once and shared by every book
that uses it. Lookups merge the two by date, as if the catalog had been copied
into the book before any version of its own: an own version takes over from its
effective_from, and wins over the catalog's at the same instant (Version.order).
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import datetime as dt
import decimal
import logging
import re
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, Sequence

import asyncpg

from server.core.events import TEXT_DIMENSIONS, NewEvent, SeriesKey
from server.pricing import catalog
from server.pricing.rules import INPUT_TOKENS, TIER_MARK, UNPRICED, VARIANT_TYPES, Plan, Priced
from server.storage.db import q
from server.storage.notify import Change, Listener, Topic

log = logging.getLogger(__name__)
_Line = tuple[list[dt.datetime], list["Version"]]  # effective_from of each version, the versions
_SNAPSHOT = re.compile(r"-(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8})$")  # -2024-08-06, -20250514


@dataclasses.dataclass
class Version:
    """One immutable price version (a row of price_versions with its prices)."""

    name: str  # "pv_<id>"
    version_id: int
    provider: str  # "" = any provider
    model: str
    currency: str
    effective_from: dt.datetime
    prices: dict[tuple[str, str], decimal.Decimal]  # (usage type, variant) -> unit price
    note: str = ""
    created_by: str = ""
    create_time: dt.datetime | None = None
    shared: bool = False  # a version of the shared catalog (not the organization's own)
    _plans: dict[str, Plan] = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.variants = sorted({v for t, v in self.prices if t in VARIANT_TYPES and v})
        # Long-context tiers: the thresholds of its ">N" prices (rules.py "Tiers").
        self.tiers = sorted({int(v[1:]) for _, v in self.prices if v.startswith(TIER_MARK)})

    @property
    def order(self) -> tuple[dt.datetime, bool, int]:
        """Its place in its line: by effective_from; at one instant the catalog's version
        first, then the organization's own by id, and the last one wins (a correction)."""
        return self.effective_from, not self.shared, self.version_id

    def tier_for(self, counters: Sequence[int]) -> int:
        """The tier an event's counters fall in: the highest threshold its input_tokens
        exceed, or 0 (the base prices)."""
        tier = 0
        for threshold in self.tiers:
            if counters[INPUT_TOKENS] > threshold:
                tier = threshold
        return tier

    def stamp(self, tier: int = 0) -> str:
        """What priced usage carries as its price_version: "pv_12", or "pv_12>200000"
        above a tier (so rollups keep the tiers of a version apart)."""
        return f"{self.name}{TIER_MARK}{tier}" if tier else self.name

    def variant_for(self, labels: Sequence[tuple[str, str]] | dict[str, str]) -> str:
        """The image variant an event's labels select: "<size> <quality>", "<size>" or ""."""
        if not self.variants:
            return ""
        found = dict(labels)
        size, quality = found.get("size"), found.get("quality")
        for candidate in (f"{size} {quality}" if size and quality else None, size):
            if candidate and candidate in self.variants:
                return candidate
        return ""

    def plan(self, variant: str = "", tier: int = 0) -> Plan:
        key = f"{variant}{TIER_MARK}{tier}" if tier else variant
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = Plan(self._prices_at(tier), variant)
        return plan

    def _prices_at(self, tier: int) -> dict[tuple[str, str], decimal.Decimal]:
        """The prices of one tier: the base prices, each overridden by the price of its
        highest threshold not above the tier."""
        if not self.tiers:
            return self.prices
        out = {k: p for k, p in self.prices.items() if not k[1].startswith(TIER_MARK)}
        tiered = sorted((int(v[1:]), t, p) for (t, v), p in self.prices.items() if v.startswith(TIER_MARK))
        for threshold, usage_type, price in tiered:
            if threshold <= tier:
                out[(usage_type, "")] = price
        return out


def _line_of(versions: Iterable[Version]) -> _Line:
    """One key's versions as a line: in order, a correction replacing the version of its instant."""
    line: list[Version] = []
    for v in sorted(versions, key=lambda v: v.order):
        if line and line[-1].effective_from == v.effective_from:
            line[-1] = v  # a correction: the later version of the same instant wins
        else:
            line.append(v)
    return [v.effective_from for v in line], line


class Book:
    """An organization's price book at one revision, indexed for lookups: its own
    versions, merged by date with those of the shared catalog it uses, if any."""

    def __init__(self, revision: int, versions: Iterable[Version], catalog: Book | None = None) -> None:
        self.revision = revision
        self.catalog = catalog
        own: dict[str, Version] = {}
        by_key: dict[tuple[str, str, str], list[Version]] = {}
        for v in versions:
            own[v.name] = v
            by_key.setdefault((v.provider, v.model, v.currency), []).append(v)
        # Every version, by name (a catalog version's id is drawn from the same sequence as own ones).
        self._names = own
        self.by_name: Mapping[str, Version] = own if catalog is None else ChainMap(own, catalog._names)
        self._lines: dict[tuple[str, str, str], _Line] = {key: _line_of(line) for key, line in by_key.items()}
        self._by_model: dict[tuple[str, str], set[str]] = {}
        for provider, model, currency in self._lines:
            if provider:
                self._by_model.setdefault((model, currency), set()).add(provider)
        self._merged: dict[tuple[str, str, str], _Line] = {}  # keys priced by both the catalog and own versions
        self._memo: dict[tuple[str | None, str, str], list[_Line]] = {}

    def versions_of(self, key: tuple[str, str, str]) -> list[Version]:
        """The versions in force one after another for exactly this key (no fallback)."""
        line = self._exact(key)
        return line[1] if line is not None else []

    def lines(self, provider: str | None, model: str, currency: str) -> list[_Line]:
        """The lines of versions that may price (provider, model, currency), in
        order: the provider's own, then the any-provider ("") line. Usage without a
        provider takes the "" line, or the line of the only provider pricing the
        model. A dated snapshot ("gpt-4o-2024-08-06") without versions of its own
        takes its model's ("gpt-4o")."""
        key = (provider, model, currency)
        found = self._memo.get(key)
        if found is None:
            lines = (self._line(p, model, currency) for p in self._providers(provider, model, currency))
            found = [line for line in lines if line is not None]
            if not found and len(self):
                matched = catalog.match(provider, model)  # the catalog's own match rules
                if matched is not None and matched != (provider, model):
                    line = self._line(matched[0], matched[1], currency)
                    found = [line] if line is not None else []
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _providers(self, provider: str | None, model: str, currency: str) -> tuple[str, ...]:
        if provider:
            return (provider, "")
        if self._line("", model, currency) is not None:
            return ("",)
        base = _SNAPSHOT.sub("", model)
        only = self._providers_of(model, currency) or self._providers_of(base, currency)
        return tuple(only) if len(only) == 1 else ()

    def _providers_of(self, model: str, currency: str) -> set[str]:
        found = self._by_model.get((model, currency), set())
        if self.catalog is not None:
            found = found | self.catalog._by_model.get((model, currency), set())
        return found

    def _line(self, provider: str, model: str, currency: str) -> _Line | None:
        line = self._exact((provider, model, currency))
        if line is None:
            base = _SNAPSHOT.sub("", model)
            if base != model:
                line = self._exact((provider, base, currency))
        return line

    def _exact(self, key: tuple[str, str, str]) -> _Line | None:
        """The line of exactly this key: the catalog's and the own versions merged by date."""
        own = self._lines.get(key)
        shared = self.catalog._lines.get(key) if self.catalog is not None else None
        if own is None or shared is None:
            return own or shared
        merged = self._merged.get(key)
        if merged is None:
            merged = self._merged[key] = _line_of([*shared[1], *own[1]])
        return merged

    def in_force(self, provider: str | None, model: str | None, currency: str, at: dt.datetime) -> Version | None:
        """The version pricing (provider, model, currency) at `at`: the first of
        lines() with a version in force then."""
        if model is None:
            return None
        for starts, versions in self.lines(provider, model, currency):
            i = bisect.bisect_right(starts, at) - 1
            if i >= 0:
                return versions[i]
        return None

    def priced_as(self, stamp: str) -> tuple[Version, int] | None:
        """The version and tier of a price_version stamp ("pv_12" or "pv_12>200000")."""
        name, mark, tier = stamp.partition(TIER_MARK)
        version = self.by_name.get(name)
        if version is None or (mark and not tier.isdigit()):
            return None
        return version, int(tier) if mark else 0

    def __len__(self) -> int:
        return len(self._names) + (len(self.catalog) if self.catalog is not None else 0)


_EMPTY = Book(0, ())
_PROVIDER = TEXT_DIMENSIONS.index("provider")
_MODEL = TEXT_DIMENSIONS.index("model")


def version_from_rows(rows: Sequence[asyncpg.Record], shared: bool = False) -> list[Version]:
    """Versions from price_book_versions rows (one per price, or one with a null
    usage_type for a version without prices), or price_catalog_versions rows (shared)."""
    heads: dict[int, asyncpg.Record] = {}
    prices: dict[int, dict[tuple[str, str], decimal.Decimal]] = {}
    for r in rows:
        heads.setdefault(r["version_id"], r)
        found = prices.setdefault(r["version_id"], {})
        if r["usage_type"] is not None:
            found[(r["usage_type"], r["variant"])] = r["unit_price"]
    return [
        Version(r["version"], r["version_id"], r["provider"], r["model"], r["currency"], r["effective_from"],
                prices[vid], r["note"], r["created_by"], r["create_time"], shared)
        for vid, r in heads.items()
    ]


class _Target:
    """How to price the events of one (organization, series) in one batch."""

    __slots__ = ("_pricer", "_series", "_line", "_by_version", "_unpriced")

    def __init__(self, pricer: Pricer, org_id: int, series: SeriesKey) -> None:
        book = pricer.book(org_id)
        provider, model = series.dims[_PROVIDER], series.dims[_MODEL]
        self._pricer = pricer
        self._series = series
        self._line = book.lines(provider, model, series.currency) if model is not None else []
        self._by_version: dict[tuple[int, int], tuple[Callable[[Sequence[int]], Priced | None], SeriesKey, str]] = {}
        self._unpriced: SeriesKey | None = None

    def price(self, e: NewEvent) -> NewEvent:
        version = None
        for starts, versions in self._line:
            i = bisect.bisect_right(starts, e.ts) - 1
            if i >= 0:
                version = versions[i]
                break
        if version is not None:
            tier = version.tier_for(e.counters) if version.tiers else 0
            found = self._by_version.get((version.version_id, tier))
            if found is None:
                plan = version.plan(version.variant_for(self._series.labels) if version.variants else "", tier)
                stamp = version.stamp(tier)
                found = self._by_version[(version.version_id, tier)] = (
                    plan.price, self._pricer._with_version(self._series, stamp), stamp)
            priced = found[0](e.counters)
            if priced is not None:
                return _stamped(e, found[1], found[2], *priced)
        if self._unpriced is None:
            self._unpriced = self._pricer._with_version(self._series, UNPRICED)
        return _stamped(e, self._unpriced, None, None, None, None)


def _stamped(
    e: NewEvent, series: SeriesKey, version: str | None, input_cost: decimal.Decimal | None,
    output_cost: decimal.Decimal | None, cost: decimal.Decimal | None,
) -> NewEvent:
    """A copy of e with pricing fields set (dataclasses.replace without its
    per-call introspection, several microseconds an event on the ingest path)."""
    return NewEvent(
        e.request_id, e.ts, e.event_id, series, e.counters, e.extra_counters, input_cost, output_cost, cost,
        e.payload, version,
    )


class Pricer:
    """The price books of the organizations this process writes for, kept
    current across replicas: before pricing a batch, one query reads the books'
    revisions, and a book whose revision moved is reloaded. With follow(), a book
    is also reloaded as soon as it changes anywhere, not at the next batch. The
    shared catalogs the books use are loaded once each (immutable: a new catalog
    has a new id) and dropped when no book held here uses them any more."""

    def __init__(self) -> None:
        self._books: dict[int, Book] = {}
        self._catalogs: dict[int, Book] = {}
        self._catalog_lock = asyncio.Lock()
        self._series: dict[tuple[SeriesKey, str], SeriesKey] = {}
        self._lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[None]] = set()

    def book(self, org_id: int) -> Book:
        return self._books.get(org_id, _EMPTY)

    def follow(self, listener: Listener, pool: asyncpg.Pool) -> None:
        """Reload a book held here when its change is heard (server/storage/notify.py)."""
        listener.subscribe(Topic.PRICE_BOOK, lambda change: self._changed(pool, change))

    def _changed(self, pool: asyncpg.Pool, change: Change) -> None:
        orgs = list(self._books) if change.org_id is None else [o for o in (change.org_id,) if o in self._books]
        if orgs:
            task = asyncio.create_task(self._reload(pool, orgs))
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

    async def _reload(self, pool: asyncpg.Pool, orgs: list[int]) -> None:
        try:
            await self.refresh(pool, orgs)
        except Exception as exc:  # Postgres gone, the pool closing: the next batch reads the revisions anyway
            log.debug("price book reload of %d organizations failed: %s", len(orgs), exc)

    async def refresh(self, pool: asyncpg.Pool, orgs: Iterable[int]) -> None:
        wanted = sorted(set(orgs))
        rows = await pool.fetch(q("price_book_revisions"), wanted)
        revisions = {r["org_id"]: r["revision"] for r in rows}
        for org in wanted:  # held from now on, if only as empty: follow() reloads what is held
            self._books.setdefault(org, _EMPTY)
        stale = [o for o in wanted if revisions.get(o, 0) != self.book(o).revision]
        if stale:
            async with self._lock:  # one reload at a time; a concurrent batch may have done ours
                stale = [o for o in stale if revisions.get(o, 0) > self.book(o).revision]
                if stale:
                    await self._load(pool, stale)

    async def _load(self, pool: asyncpg.Pool, orgs: list[int]) -> None:
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            heads = {r["org_id"]: r for r in await conn.fetch(q("price_book_revisions"), orgs)}
            rows = await conn.fetch(q("price_book_versions"), orgs)
            shared = {r["catalog_id"]: await self.catalog(conn, r["catalog_id"])
                      for r in heads.values() if r["catalog_id"] is not None}
        by_org: dict[int, list[asyncpg.Record]] = {}
        for r in rows:
            by_org.setdefault(r["org_id"], []).append(r)
        for org in orgs:
            head = heads.get(org)
            self._books[org] = Book(head["revision"] if head else 0, version_from_rows(by_org.get(org, [])),
                                    shared.get(head["catalog_id"]) if head else None)
        used = {id(book.catalog) for book in self._books.values()}
        self._catalogs = {k: c for k, c in self._catalogs.items() if id(c) in used}

    async def catalog(self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, catalog_id: int) -> Book:
        """The shared catalog `catalog_id` (price_catalogs), read once by this process."""
        found = self._catalogs.get(catalog_id)
        if found is None:
            async with self._catalog_lock:
                found = self._catalogs.get(catalog_id)
                if found is None:
                    rows = await conn.fetch(q("price_catalog_versions"), catalog_id, catalog.CREATED_BY)
                    found = self._catalogs[catalog_id] = Book(0, version_from_rows(rows, shared=True))
        return found

    async def price(self, pool: asyncpg.Pool, items: Sequence[tuple[int, NewEvent]]) -> list[tuple[int, NewEvent]]:
        """Events without a cost, priced and stamped with the version in force at
        their time, or marked unpriced; events with a cost are returned as they are."""
        orgs = {org for org, e in items if e.cost is None}
        if not orgs:
            return list(items)
        await self.refresh(pool, orgs)
        return self.price_batch(items)

    def price_batch(self, items: Sequence[tuple[int, NewEvent]]) -> list[tuple[int, NewEvent]]:
        """price() from the cached books (no I/O). The per-series work (which line
        of versions, which plan, the versioned series key) is done once per
        distinct series of the batch; per event remain a bisect on the event time
        and the compiled plan."""
        out: list[tuple[int, NewEvent]] = []
        memo: dict[tuple[int, SeriesKey], _Target] = {}
        for org, e in items:
            if e.cost is not None:
                out.append((org, e))
                continue
            target = memo.get((org, e.series))
            if target is None:
                target = memo[(org, e.series)] = _Target(self, org, e.series)
            out.append((org, target.price(e)))
        return out

    def price_one(self, org_id: int, e: NewEvent, prefer: str | None = None) -> NewEvent:
        """One event without a cost, priced from the cached book (no I/O). `prefer`: a
        version to use if it still matches the event (an adjusted event keeps its version)."""
        book = self.book(org_id)
        s = e.series
        preferred = book.priced_as(prefer) if prefer else None
        version = preferred[0] if preferred else None
        if version is None or version.model != s.dims[_MODEL] or version.currency != s.currency or (
            version.provider and version.provider != s.dims[_PROVIDER]
        ):
            version = book.in_force(s.dims[_PROVIDER], s.dims[_MODEL], s.currency, e.ts)
        priced = None
        if version is not None:
            tier = version.tier_for(e.counters)
            priced = version.plan(version.variant_for(s.labels) if version.variants else "", tier).price(e.counters)
        if priced is None or version is None:
            return _stamped(e, self._with_version(s, UNPRICED), None, None, None, None)
        stamp = version.stamp(tier)
        return _stamped(e, self._with_version(s, stamp), stamp, *priced)

    def _with_version(self, key: SeriesKey, version: str) -> SeriesKey:
        found = self._series.get((key, version))
        if found is None:
            if len(self._series) >= 200_000:  # bounded, like the series cache
                self._series.clear()
            found = self._series[(key, version)] = dataclasses.replace(key, price_version=version)
        return found

    def why_unpriced(self, org_id: int, provider: str | None, model: str | None, currency: str, at: dt.datetime,
                     counters: Sequence[int], labels: dict[str, str]) -> str:
        """Why the current book leaves such an event unpriced ("" if it would price it now)."""
        if model is None:
            return "no model: prices are per model"
        version = self.book(org_id).in_force(provider, model, currency, at)
        if version is None:
            who = f"{provider}/{model}" if provider else model
            return f"no price version for {who} in {currency} in force at {at.isoformat()}"
        reason = version.plan(version.variant_for(labels), version.tier_for(counters)).why_not(counters)
        return f"{version.name}: {reason}" if reason else ""
