"""A book on the shared catalog (server/pricing/pricer.py: own versions and a reference to the
catalog's) resolves every lookup exactly as the book holding a copy of the catalog did, where
the copy was made when the organization was created, before any version of its own: own
versions take over from their dates and win at the same instant, corrections included, the
any-provider, snapshot and catalog-rule fallbacks alike. The shared catalog's ids are drawn
after the own versions' here, the case where ids alone would order them wrongly."""

from __future__ import annotations

import datetime as dt
import decimal
import random

from server.pricing import catalog
from server.pricing.pricer import Book, Version

D = decimal.Decimal
COPY_IDS = 1  # the copy: ids 1..N, before every own version
OWN_IDS = 10_000
SHARED_IDS = 1_000_000  # the shared catalog: installed after the organization's own versions


def _catalog_versions(first: int, shared: bool) -> list[Version]:
    return [Version(f"pv_{first + i}", first + i, e.provider, e.model, catalog.CURRENCY, e.effective_from, e.prices,
                    shared=shared) for i, e in enumerate(catalog.entries())]


def _own_versions(rng: random.Random) -> list[Version]:
    """Versions of the organization's own: over catalog keys at one of their catalog dates (a
    correction of it), at random dates, at 2000-01-01; corrections of their own; any-provider
    versions; a dated snapshot name; a model the catalog lacks."""
    keys = sorted({(e.provider, e.model) for e in catalog.entries()})
    dates: dict[tuple[str, str], list[dt.datetime]] = {}
    for e in catalog.entries():
        dates.setdefault((e.provider, e.model), []).append(e.effective_from)
    chosen = [*rng.sample(keys, 150), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5")]
    out: list[Version] = []

    def add(provider: str, model: str, at: dt.datetime) -> None:
        vid = OWN_IDS + len(out)
        prices = {("input", ""): D(rng.randint(1, 99)) / 10**6, ("output", ""): D(rng.randint(1, 99)) / 10**6}
        out.append(Version(f"pv_{vid}", vid, provider, model, catalog.CURRENCY, at, prices))

    for provider, model in chosen:
        for _ in range(rng.randint(1, 3)):
            at = rng.choice([
                rng.choice(dates[(provider, model)]), catalog.EARLIEST,
                dt.datetime(2023, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=rng.randint(0, 4 * 365 * 24)),
            ])
            add(provider, model, at)
            if rng.random() < 0.2:
                add(provider, model, at)  # a correction: the later wins
        if rng.random() < 0.1:
            add("", model, dt.datetime(2025, 5, 1, tzinfo=dt.UTC))  # any provider
    add("openai", "gpt-4o-2024-08-06", dt.datetime(2025, 2, 1, tzinfo=dt.UTC))  # a snapshot of its own
    add("acme", "house-model", catalog.EARLIEST)
    return out


def _queries(own: list[Version], rng: random.Random) -> list[tuple[str | None, str, dt.datetime]]:
    names = [(v.provider, v.model) for v in own] + rng.sample(
        sorted({(e.provider, e.model) for e in catalog.entries()}), 200)
    times = {t for v in own for t in (v.effective_from, v.effective_from - dt.timedelta(seconds=1))}
    times |= {e.effective_from for e in catalog.entries()[:300]}
    times |= {dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC), dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)}
    out: list[tuple[str | None, str, dt.datetime]] = []
    for provider, model in names:
        for name in (model, f"{model}-2025-01-15", model.upper()):
            for who in (provider or None, None, "gcp.gemini" if "gemini" in model else "azure"):
                out.extend((who, name, at) for at in rng.sample(sorted(times), 6))
    return out


def test_the_shared_catalog_resolves_every_lookup_as_the_copy_did():
    rng = random.Random(16)
    own = _own_versions(rng)
    copied = Book(7, [*_catalog_versions(COPY_IDS, shared=False), *own])
    shared_catalog = Book(0, _catalog_versions(SHARED_IDS, shared=True))
    shared = Book(7, own, shared_catalog)
    assert len(shared) == len(copied) and len(shared_catalog) == len(catalog.entries())

    def same(a: Version | None, b: Version | None) -> bool:
        """The same own version, or the same catalog entry (the copy's and the shared one)."""
        if a is None or b is None:
            return a is b
        if a.version_id >= OWN_IDS and a.version_id < SHARED_IDS:
            return a is b
        return b.shared and a.version_id - COPY_IDS == b.version_id - SHARED_IDS

    queries = _queries(own, rng)
    priced_by_own = priced_by_catalog = 0
    for provider, model, at in queries:
        a = copied.in_force(provider, model, catalog.CURRENCY, at)
        b = shared.in_force(provider, model, catalog.CURRENCY, at)
        assert same(a, b), (provider, model, at, a, b)
        priced_by_own += b is not None and not b.shared
        priced_by_catalog += b is not None and b.shared
    assert priced_by_own > 500 and priced_by_catalog > 500, (priced_by_own, priced_by_catalog)
    for v in own:
        assert shared.priced_as(v.stamp(200_000)) == copied.priced_as(v.stamp(200_000)) == (v, 200_000)
    first = shared_catalog.by_name[f"pv_{SHARED_IDS}"]
    assert shared.priced_as(first.name) == (first, 0) and copied.priced_as(first.name) is None
    assert {v.name for v in shared.by_name.values()} == {v.name for v in own} | set(shared_catalog.by_name)
