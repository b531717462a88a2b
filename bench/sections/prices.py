"""python -m bench --only prices: what the price catalog costs (docs/prices.md "The catalog").

Organizations are created in turn with an empty price book (the baseline), with the shared
catalog (METERING_DEFAULT_PRICES=catalog: a reference to it), and with a copy of the catalog
as organizations got it before migration 0016 (the statement is kept here, as the baseline of
that change), on the stack's database, so all three see the same load. Then a server's first
load of books on the shared catalog (the first also loads the catalog, once per process) and
of copied books, time and memory held, and `metering prices sync` into an empty book, again
(nothing new), and into a book on the shared catalog, through PriceVersions.create as the
PriceService calls it."""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc
from collections.abc import Awaitable

import asyncpg

from bench.stack import Stack
from server.pricing import catalog
from server.pricing.pricer import Pricer
from server.pricing.versions import NewVersion, PriceVersions
from server.tenants.store import Tenants

Row = tuple[str, str, str]
# A new organization's book before migration 0016: a copy of the catalog, versions and prices.
COPY = """
with v as (
    insert into price_versions (org_id, provider, model, currency, effective_from, note, created_by)
    select $1, c.provider, c.model, c.currency, c.effective_from, c.note, 'catalog'
    from price_catalog c join price_catalog_state s using (catalog_id)
    order by c.version_id
    returning version_id, provider, model, currency, effective_from
), p as (
    insert into prices (org_id, version_id, usage_type, variant, unit_price)
    select $1, v.version_id, cp.usage_type, cp.variant, cp.unit_price
    from v
    join price_catalog c using (provider, model, currency, effective_from)
    join price_catalog_state s using (catalog_id)
    join price_catalog_prices cp on cp.version_id = c.version_id
)
insert into price_books (org_id, revision) values ($1, 1)"""
ORGS_LOADED = 10  # books loaded per kind, for the time and memory per organization


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def _create(pool: asyncpg.Pool, kind: str, name: str) -> int:
    """A new organization with an empty book, the shared catalog or a copy of it."""
    if kind != "copied":
        return int((await Tenants(pool, default_prices=kind == "shared").create_organization(name))["org_id"])
    async with pool.acquire() as conn, conn.transaction():
        org_id = int(await conn.fetchval("insert into organizations (id, name) values ($1, $1) returning org_id",
                                         f"org_{name}"))
        await conn.execute(COPY, org_id)
    return org_id


async def _loads(pool: asyncpg.Pool, orgs: list[int]) -> tuple[list[float], list[float]]:
    """A fresh process's first load of each book in turn: seconds each, then again in another
    fresh one measuring the MB held after each (tracemalloc slows allocation down)."""
    times, held = [], []
    pricer = Pricer()
    for org in orgs:
        start = time.perf_counter()
        await pricer.refresh(pool, [org])
        times.append(time.perf_counter() - start)
    pricer = Pricer()
    tracemalloc.start()
    try:
        for org in orgs:
            await pricer.refresh(pool, [org])
            held.append(tracemalloc.get_traced_memory()[0] / 1e6)
    finally:
        tracemalloc.stop()
    return times, held


async def _timed(call: Awaitable[int]) -> tuple[float, int]:
    start = time.perf_counter()
    result = await call
    return time.perf_counter() - start, result


async def run(st: Stack, quick: bool) -> list[Row]:
    n = 10 if quick else 30
    salt = os.urandom(3).hex()
    pool = await asyncpg.create_pool(st.dsn, min_size=1, max_size=2)
    try:
        await catalog.install(pool)
        kinds = ("empty", "shared", "copied")
        times: dict[str, list[float]] = {k: [] for k in kinds}
        made: dict[str, list[int]] = {k: [] for k in kinds}
        for i in range(max(n, ORGS_LOADED)):
            for kind in kinds:
                took, org = await _timed(_create(pool, kind, f"bench-prices-{salt}-{i}-{kind}"))
                times[kind].append(took)
                made[kind].append(org)
        create = {k: statistics.median(v[:n]) for k, v in times.items()}
        shared_times, shared_held = await _loads(pool, made["shared"][:ORGS_LOADED])
        copied_times, copied_held = await _loads(pool, made["copied"][:ORGS_LOADED])

        versions = [NewVersion(e.provider, e.model, catalog.CURRENCY, e.effective_from, e.prices, e.note, True)
                    for e in catalog.entries()]
        target = (await Tenants(pool).create_organization(f"bench-prices-{salt}-sync"))["org_id"]
        book = PriceVersions(pool, Pricer())
        first_sync, created = await _timed(_sync(book, target, versions))
        second_sync, again = await _timed(_sync(book, target, versions))
        on_shared = await _create(pool, "shared", f"bench-prices-{salt}-shared")
        shared_sync, shared_created = await _timed(_sync(book, on_shared, versions))
    finally:
        await pool.close()
    entries = catalog.entries()
    prices = sum(len(e.prices) for e in entries)
    rest = ORGS_LOADED - 1
    shared_per_org = (shared_held[-1] - shared_held[0]) / rest
    copied_per_org = (copied_held[-1] - copied_held[0]) / rest
    return [
        ("create an organization, empty price book", _ms(create["empty"]), f"median of {n}; the baseline"),
        ("create an organization on the shared catalog", _ms(create["shared"]),
         f"median of {n}, in turn with the others; {create['shared'] / create['empty']:.1f}x the baseline"),
        ("create an organization with the catalog copied (before 0016)", _ms(create["copied"]),
         f"median of {n}; {len(entries):,} versions, {prices:,} prices (genai-prices {catalog.version()}); "
         f"{create['copied'] / create['empty']:.0f}x the baseline"),
        ("a process's first load of a shared-catalog book, the first", _ms(shared_times[0]),
         f"loads the catalog too: {shared_held[0]:.1f} MB held"),
        ("a process's first load of a shared-catalog book, the others", _ms(statistics.median(shared_times[1:])),
         f"median of {rest}; {shared_per_org * 1000:.1f} KB held per organization"),
        ("a process's first load of a copied book (before 0016)", _ms(statistics.median(copied_times)),
         f"median of {ORGS_LOADED}; {copied_per_org:.1f} MB held per organization"),
        ("prices sync into an empty book", _ms(first_sync), f"{created:,} versions created"),
        ("prices sync again", _ms(second_sync), f"{again} created (idempotent)"),
        ("prices sync into a book on the shared catalog", _ms(shared_sync), f"{shared_created} created"),
    ]


async def _sync(book: PriceVersions, org_id: int, versions: list[NewVersion]) -> int:
    return sum(c for _, c in await book.create(org_id, versions, "bench"))
