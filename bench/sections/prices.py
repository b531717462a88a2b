"""python -m bench --only prices: what the price catalog costs (docs/prices.md "The catalog").

Organizations are created alternately with an empty price book (the baseline) and with the
catalog copied in (METERING_DEFAULT_PRICES=catalog), on the stack's database, so both see the
same load; then a server's first load of a catalog book (time and memory), and `metering
prices sync` into an empty book and again (nothing new), through PriceVersions.create as the
PriceService calls it."""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc

import asyncpg

from bench.stack import Stack
from server.pricing import catalog
from server.pricing.pricer import Pricer
from server.pricing.versions import NewVersion, PriceVersions
from server.tenants.store import Tenants

Row = tuple[str, str, str]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def run(st: Stack, quick: bool) -> list[Row]:
    n = 10 if quick else 30
    salt = os.urandom(3).hex()
    pool = await asyncpg.create_pool(st.dsn, min_size=1, max_size=2)
    try:
        await catalog.install(pool)
        times: dict[bool, list[float]] = {False: [], True: []}
        last = 0
        for i in range(n):
            for with_catalog in (False, True):
                tenants = Tenants(pool, default_prices=with_catalog)
                start = time.perf_counter()
                row = await tenants.create_organization(f"bench-prices-{salt}-{i}-{int(with_catalog)}")
                times[with_catalog].append(time.perf_counter() - start)
                last = row["org_id"] if with_catalog else last
        empty, copied = statistics.median(times[False]), statistics.median(times[True])

        start = time.perf_counter()
        await Pricer().refresh(pool, [last])
        load = time.perf_counter() - start
        tracemalloc.start()  # again, measuring memory (tracemalloc slows allocation down)
        pricer = Pricer()
        await pricer.refresh(pool, [last])
        memory = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()

        versions = [NewVersion(e.provider, e.model, catalog.CURRENCY, e.effective_from, e.prices, e.note, True)
                    for e in catalog.entries()]
        target = (await Tenants(pool).create_organization(f"bench-prices-{salt}-sync"))["org_id"]
        book = PriceVersions(pool, Pricer())
        start = time.perf_counter()
        created = sum(c for _, c in await book.create(target, versions, "bench"))
        first_sync = time.perf_counter() - start
        start = time.perf_counter()
        again = sum(c for _, c in await book.create(target, versions, "bench"))
        second_sync = time.perf_counter() - start
    finally:
        await pool.close()
    entries = catalog.entries()
    prices = sum(len(e.prices) for e in entries)
    return [
        ("create an organization, empty price book", _ms(empty), f"median of {n}; the baseline"),
        ("create an organization with the catalog copied", _ms(copied),
         f"median of {n}, alternating with the baseline; {len(entries):,} versions, {prices:,} prices "
         f"(genai-prices {catalog.version()}); {copied / empty:.0f}x the baseline"),
        ("a server's first load of a catalog book", _ms(load), f"{memory:.1f} MB held per organization and process"),
        ("prices sync into an empty book", _ms(first_sync), f"{created:,} versions created"),
        ("prices sync again", _ms(second_sync), f"{again} created (idempotent)"),
    ]
