"""The price book: immutable, dated price versions per organization (DESIGN §6).

A version prices one (provider, model, currency) from its effective_from until
the next version of that key. Creating a version never changes what is stored:
events keep the version they were priced with until a repricing moves them
(server/costs/reprice.py). Each change bumps the book's revision in the same
transaction, which tells every server to reload it (server/pricing/pricer.py), and sends a
notification that has them reload it at once (server/storage/notify.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
from collections.abc import Iterable

import asyncpg

from server.core.errors import InvalidArgument, NotFound
from server.pricing.pricer import Book, Pricer, Version, version_from_rows
from server.pricing.rules import TIER_MARK, USAGE_TYPES, VARIANT_TYPES
from server.storage import notify
from server.storage.db import q

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MAX_NAME = 256
MAX_NOTE = 1024
MAX_VARIANT = 64
MAX_PRICE_DIGITS = 38
MAX_PRICE_DECIMALS = 30
MAX_VERSIONS_PER_CALL = 10_000
_CURRENCY = re.compile(r"^[a-z]{3}$")
_VERSION = re.compile(r"^pv_[0-9]{1,18}(?:>[0-9]{1,15})?$")  # a version, or the stamp of one of its tiers
_PLANNED = 1 << 62  # placeholder ids of versions about to be created: after every stored one
_TIER = re.compile(r"^>\s*([0-9]{1,15})$")
Key = tuple[str, str, str]  # provider, model, currency


@dataclasses.dataclass(frozen=True)
class NewVersion:
    provider: str
    model: str
    currency: str
    effective_from: dt.datetime
    prices: dict[tuple[str, str], decimal.Decimal]
    note: str = ""
    replace: bool = False  # False: prices not given carry over from the version in force at effective_from


@dataclasses.dataclass(frozen=True)
class Listed:
    version: Version
    effective_until: dt.datetime | None  # the next version of the key takes over here
    superseded_by: str | None  # a correction with the same effective_from replaced this one


def parse_price(field: str, text: str) -> decimal.Decimal:
    text = text.strip()
    try:
        price = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise InvalidArgument(field, f"not a decimal number: {text[:64]!r}") from None
    if not price.is_finite() or price < 0:
        raise InvalidArgument(field, "must be a finite decimal >= 0")
    sign, digits, exponent = price.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > MAX_PRICE_DIGITS or exponent < -MAX_PRICE_DECIMALS:
        raise InvalidArgument(field, f"at most {MAX_PRICE_DIGITS} digits, {MAX_PRICE_DECIMALS} after the point")
    return abs(price)


def check_new_version(
    field: str, provider: str, model: str, currency: str, effective_from: dt.datetime | None,
    prices: list[tuple[str, str, str]], note: str, replace: bool, now: dt.datetime,
) -> NewVersion:
    """Validate one version to create; errors name the field (field prefix + name)."""
    model = model.strip()
    if not model:
        raise InvalidArgument(f"{field}model", "required", reason="REQUIRED")
    for name, value in (("model", model), ("provider", provider)):
        if len(value) > MAX_NAME or "\x00" in value:
            raise InvalidArgument(f"{field}{name}", f"at most {MAX_NAME} characters, no NUL")
    currency = (currency or "usd").lower()
    if not _CURRENCY.match(currency):
        raise InvalidArgument(f"{field}currency", "must be a three-letter ISO 4217 code")
    start = effective_from or now
    if start < EARLIEST:
        raise InvalidArgument(f"{field}effective_from", "must be 2000-01-01 or later")
    if len(note) > MAX_NOTE:
        raise InvalidArgument(f"{field}note", f"at most {MAX_NOTE} characters")
    found: dict[tuple[str, str], decimal.Decimal] = {}
    for i, (usage_type, variant, unit_price) in enumerate(prices):
        where = f"{field}prices[{i}]"
        if usage_type not in USAGE_TYPES:
            raise InvalidArgument(f"{where}.usage_type", f"unknown usage type {usage_type[:64]!r}; one of "
                                  f"{', '.join(USAGE_TYPES)}")
        variant = variant.strip()
        if variant.startswith(TIER_MARK):
            tier = _TIER.match(variant)
            if USAGE_TYPES[usage_type].unit != "tokens" or tier is None or not int(tier[1]):
                raise InvalidArgument(f"{where}.variant", "a long-context tier is \">N\" (N > 0 input tokens) "
                                      "on a token price")
            variant = f"{TIER_MARK}{int(tier[1])}"
        elif variant and usage_type not in VARIANT_TYPES:
            raise InvalidArgument(f"{where}.variant", f"only {', '.join(sorted(VARIANT_TYPES))} prices have variants "
                                  "(and token prices tiers \">N\")")
        if len(variant) > MAX_VARIANT or "\x00" in variant:
            raise InvalidArgument(f"{where}.variant", f"at most {MAX_VARIANT} characters")
        if (usage_type, variant) in found:
            raise InvalidArgument(f"{where}.usage_type", f"{usage_type} {variant!r} is priced twice")
        found[(usage_type, variant)] = parse_price(f"{where}.unit_price", unit_price)
    if not found and not replace:
        raise InvalidArgument(f"{field}prices", "give at least one price (or replace=true for a version "
                              "that stops pricing the model)", reason="REQUIRED")
    return NewVersion(provider.strip(), model, currency, start, found, note, replace)


def by_key(versions: Iterable[Version]) -> dict[Key, list[Version]]:
    out: dict[Key, list[Version]] = {}
    for v in versions:
        out.setdefault((v.provider, v.model, v.currency), []).append(v)
    return out


def exact_in_force(lines: dict[Key, list[Version]], key: Key, at: dt.datetime) -> Version | None:
    """The version of exactly this key in force at `at` (no any-provider fallback)."""
    best = None
    for v in lines.get(key, ()):
        if v.effective_from <= at and (best is None or v.order > best.order):
            best = v
    return best


class PriceVersions:
    def __init__(self, pool: asyncpg.Pool, pricer: Pricer) -> None:
        self.pool = pool
        self.pricer = pricer

    async def create(self, org_id: int, versions: list[NewVersion], actor: str) -> list[tuple[Version, bool]]:
        """Create versions in one transaction. A version that would change nothing
        (the version of its key in force at its effective_from has the same prices)
        is not created: that one comes back with created=False."""
        if len(versions) > MAX_VERSIONS_PER_CALL:
            raise InvalidArgument("versions", f"at most {MAX_VERSIONS_PER_CALL} per call")
        results: list[tuple[Version, bool]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            head = await conn.fetchrow(q("lock_price_book"), org_id)
            assert head is not None  # an upsert returns its row
            lines = by_key(version_from_rows(await conn.fetch(q("price_book_versions"), [org_id])))
            if head["catalog_id"] is not None:  # the shared catalog's versions of each key given
                shared = await self.pricer.catalog(conn, head["catalog_id"])
                for key in {(n.provider, n.model, n.currency) for n in versions}:
                    lines.setdefault(key, []).extend(shared.versions_of(key))
            planned: list[tuple[int, NewVersion, dict[tuple[str, str], decimal.Decimal]]] = []
            outcomes: list[tuple[Version | int, bool]] = []  # a stored version or an index in planned; created
            for new in versions:
                key = (new.provider, new.model, new.currency)
                current = exact_in_force(lines, key, new.effective_from)
                prices = dict(new.prices) if new.replace or current is None else {**current.prices, **new.prices}
                if current is not None and current.prices == prices:
                    planned_one = current.version_id >= _PLANNED  # an earlier input of this call
                    outcomes.append((current.version_id - _PLANNED if planned_one else current, False))
                    continue
                # Later inputs build on earlier ones: a placeholder ordered after every stored version.
                placeholder = Version("", _PLANNED + len(planned), *key, new.effective_from, prices)
                lines.setdefault(key, []).append(placeholder)
                outcomes.append((len(planned), True))
                planned.append((len(planned), new, prices))
            created = await self._insert(conn, org_id, planned, actor)
            results = [(o if isinstance(o, Version) else created[o], new_one) for o, new_one in outcomes]
            if created:
                await conn.execute(q("bump_price_book"), org_id)
                await notify.send(conn, notify.Topic.PRICE_BOOK, org_id)  # every server reloads it on commit
        return results

    @staticmethod
    async def _insert(
        conn: asyncpg.pool.PoolConnectionProxy, org_id: int,
        planned: list[tuple[int, NewVersion, dict[tuple[str, str], decimal.Decimal]]], actor: str,
    ) -> list[Version]:
        """The planned versions inserted in three statements whatever their number: ids drawn
        in input order (so a later correction gets the higher id), the versions, their prices."""
        if not planned:
            return []
        ids = [r["version_id"] for r in await conn.fetch(q("next_price_version_ids"), len(planned))]
        now = await conn.fetchval(q("insert_price_versions"), org_id, ids, [n.provider for _, n, _ in planned],
                                  [n.model for _, n, _ in planned], [n.currency for _, n, _ in planned],
                                  [n.effective_from for _, n, _ in planned], [n.note for _, n, _ in planned], actor)
        rows = [(vid, t, v, price) for vid, (_, _, prices) in zip(ids, planned, strict=True)
                for (t, v), price in sorted(prices.items())]
        if rows:
            await conn.execute(q("insert_prices"), org_id, *(list(c) for c in zip(*rows, strict=True)))
        return [Version(f"pv_{vid}", vid, n.provider, n.model, n.currency, n.effective_from, prices, n.note, actor, now)
                for vid, (_, n, prices) in zip(ids, planned, strict=True)]

    async def book(self, org_id: int) -> Book:
        await self.pricer.refresh(self.pool, [org_id])
        return self.pricer.book(org_id)

    async def get(self, org_id: int, name: str) -> Version:
        if not _VERSION.match(name):
            raise InvalidArgument("version", "a price version looks like pv_123 (or pv_123>200000, one of its tiers)")
        found = (await self.book(org_id)).priced_as(name)
        if found is None:
            raise NotFound(f"price version {name!r} not found", field="version")
        return found[0]

    async def list(
        self, org_id: int, *, provider: str | None = None, model: str | None = None, currency: str | None = None,
        at: dt.datetime | None = None,
    ) -> list[Listed]:
        """Versions by (provider, model, currency, effective_from, version); with `at`,
        only those in force at that instant."""
        book = await self.book(org_id)
        lines: dict[tuple[str, str, str], list[Version]] = {}
        for v in book.by_name.values():
            if (provider is None or v.provider == provider) and (model is None or v.model == model) and (
                currency is None or v.currency == currency
            ):
                lines.setdefault((v.provider, v.model, v.currency), []).append(v)
        out: list[Listed] = []
        for key in sorted(lines):
            line = sorted(lines[key], key=lambda v: v.order)
            starts = sorted({v.effective_from for v in line})
            for v in line:
                same = [w for w in line if w.effective_from == v.effective_from]
                superseded = same[-1].name if same[-1] is not v else None
                later = [s for s in starts if s > v.effective_from]
                until = later[0] if later else None
                if at is not None and (superseded or v.effective_from > at or (until is not None and until <= at)):
                    continue
                out.append(Listed(v, until, superseded))
        return out
