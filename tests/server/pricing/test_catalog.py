"""The price catalog on a real server and database (server/pricing/catalog.py, docs/prices.md
"The catalog"): new organizations start with it (METERING_DEFAULT_PRICES, default catalog)
and their first events are priced as genai-prices prices them, long-context tiers by the
event's own token count, consistently in costs, repricing and unpriced usage; `metering
prices sync` imports it idempotently and adds only what a newer catalog adds."""

from __future__ import annotations

import datetime as dt
import decimal
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import genai_prices
import grpc
import pytest
from genai_prices import Usage
from genai_prices.data import providers

from metering.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    prices_pb2,
    prices_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
)
from server.core.config import ConfigError
from server.pricing import catalog
from server.runtime import prices_cli
from server.runtime.app import MeteringServer
from server.runtime.cli import _parser
from tests.conftest import MASTER, MASTER_KEY, bearer
from tests.server.pricing.test_catalog_prices import TIMES, _comparable, _theirs, _usage
from tests.server.pricing.test_prices import stamp
from tests.support import services

D = decimal.Decimal
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


class Service:
    def __init__(self, server: MeteringServer, channel: grpc.aio.Channel, dsn: str) -> None:
        self.server = server
        self.dsn = dsn
        self.channel = channel
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        self.records = records_pb2_grpc.RecordServiceStub(channel)
        self.prices = prices_pb2_grpc.PriceServiceStub(channel)
        self.costs = prices_pb2_grpc.CostServiceStub(channel)

    async def org(self, name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        org = await self.admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name=name), metadata=MASTER)
        key = await self.admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(organization=org.organization_id, name="admin"), metadata=MASTER)
        return org.organization_id, bearer(key.key)


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[Service]:
    """A server as users run it (the catalog by default) on a database of its own: it gives
    the default organization the catalog, which the session's database must not get."""
    admin = services.postgres_admin_dsn()
    dsn = await services.create_test_database(admin)
    server = MeteringServer(dsn, "127.0.0.1:0", MASTER_KEY, pool_size=4, default_prices=True)
    try:
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield Service(server, channel, dsn)
    finally:
        await server.stop(grace=1)
        await services.drop_test_database(admin, dsn)


def genai_cost(model: str, provider: str | None, at: dt.datetime, **usage: int) -> D:
    return D(genai_prices.calc_price(Usage(**usage), model, provider_id=provider, genai_request_timestamp=at)
             .total_price)


async def record(service: Service, auth, *events: event_pb2.UsageEvent) -> list[event_pb2.UsageEvent]:
    resp = await service.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=auth)
    assert resp.recorded == len(events), resp
    return [await service.records.GetEvent(records_pb2.GetEventRequest(event_id=r.event_id), metadata=auth)
            for r in resp.results]


def test_the_setting():
    assert catalog.default_prices({}) is True
    assert catalog.default_prices({"METERING_DEFAULT_PRICES": "none"}) is False
    assert catalog.default_prices({"METERING_DEFAULT_PRICES": "Catalog"}) is True
    with pytest.raises(ConfigError, match="METERING_DEFAULT_PRICES must be catalog or none"):
        catalog.default_prices({"METERING_DEFAULT_PRICES": "starter"})


async def test_a_new_organizations_first_events_are_priced_by_the_catalog(service: Service):
    _, auth = await service.org("quick-start")
    listed = await service.prices.ListPriceVersions(prices_pb2.ListPriceVersionsRequest(), metadata=auth)
    assert len(listed.versions) == len(catalog.entries())
    # The README's first call: a model and no provider.
    first, embedding = await record(
        service, auth,
        event_pb2.UsageEvent(request_id="req-1", kind="completions", model="gpt-4o-mini", input_tokens=120,
                             output_tokens=40, timestamp=stamp(NOW)),
        event_pb2.UsageEvent(request_id="req-3", kind="embeddings", model="text-embedding-3-small", provider="openai",
                             input_tokens=512, timestamp=stamp(NOW)))
    assert D(first.cost) == genai_cost("gpt-4o-mini", None, NOW, input_tokens=120, output_tokens=40)
    assert D(first.cost) == D("0.000042") and first.price_version.startswith("pv_")
    assert D(embedding.cost) == genai_cost("text-embedding-3-small", "openai", NOW, input_tokens=512)
    # Sold by several providers, and genai-prices' rules name none of them: unpriced, with the reason.
    [ambiguous] = await record(service, auth, event_pb2.UsageEvent(
        request_id="req-4", kind="embeddings", model="text-embedding-3-small", input_tokens=512, timestamp=stamp(NOW)))
    assert not ambiguous.HasField("cost")
    unpriced = await service.prices.ListUnpricedEvents(prices_pb2.ListUnpricedEventsRequest(), metadata=auth)
    assert [(e.event.request_id, e.reason) for e in unpriced.events] == [
        ("req-4", f"no price version for text-embedding-3-small in usd in force at {NOW.isoformat()}")]


async def test_the_default_organization_gets_the_catalog_once(service: Service):
    conn = await asyncpg.connect(service.dsn)
    try:
        book = ("select b.catalog_id, "
                "(select count(*) from price_catalog c where c.catalog_id = b.catalog_id) as shared, "
                "(select count(*) from price_versions v where v.org_id = b.org_id) as own "
                "from price_books b join organizations o using (org_id) where o.id = 'org_default'")
        first = await conn.fetchrow(book)
        assert first is not None
        assert (first["shared"], first["own"]) == (len(catalog.entries()), 0)  # the shared catalog, not a copy
        pool = service.server.pool
        assert pool is not None
        assert await catalog.install(pool) is False  # the same package: nothing to do
        installed = []
        for older in ("0.0.1", "0.0.2", "0.0.3"):  # as if an older one was installed, each time
            await conn.execute("update price_catalog_state set version = $1", older)
            assert await catalog.install(pool) is True
            assert await conn.fetchval("select version from price_catalog_state") == catalog.version()
            installed.append(await conn.fetchval("select catalog_id from price_catalog_state"))
            assert await conn.fetchrow(book) == first  # books are never changed by an install
        kept = {r["catalog_id"] for r in await conn.fetch("select catalog_id from price_catalogs")}
        # the one in use, the current one and the one it replaced stay; one no book uses is gone
        assert first["catalog_id"] in kept and set(installed[1:]) <= kept and installed[0] not in kept
    finally:
        await conn.close()


async def test_long_context_tiers_are_priced_by_the_events_own_token_count(service: Service):
    _, auth = await service.org("tiers")
    at = NOW - dt.timedelta(days=1)
    usage: dict[str, Any] = dict(input_tokens=250_000, input_cached_tokens=50_000, input_cache_write_tokens=10_000,
                 output_tokens=2_000)
    small: dict[str, Any] = dict(input_tokens=150_000, input_cached_tokens=50_000, input_cache_write_tokens=10_000,
                 output_tokens=2_000)
    above, below, gemini = await record(
        service, auth,
        event_pb2.UsageEvent(request_id="long", kind="completions", provider="anthropic",
                             model="claude-sonnet-4-5-20250929", timestamp=stamp(at), **usage),
        event_pb2.UsageEvent(request_id="short", kind="completions", provider="anthropic",
                             model="claude-sonnet-4-5-20250929", timestamp=stamp(at), **small),
        event_pb2.UsageEvent(request_id="gemini", kind="completions", provider="gcp.gemini", model="gemini-2.5-pro",
                             input_tokens=300_000, output_tokens=1_000, timestamp=stamp(at)))

    def theirs(**u: int) -> D:
        return genai_cost("claude-sonnet-4-5-20250929", "anthropic", at, input_tokens=u["input_tokens"],
                          cache_read_tokens=u["input_cached_tokens"], cache_write_tokens=u["input_cache_write_tokens"],
                          output_tokens=u["output_tokens"])

    assert D(above.cost) == theirs(**usage) and D(below.cost) == theirs(**small)
    assert D(gemini.cost) == genai_cost("gemini-2.5-pro", "google", at, input_tokens=300_000, output_tokens=1_000)
    assert above.price_version == below.price_version + ">200000"
    assert gemini.price_version.endswith(">200000")
    version = await service.prices.GetPriceVersion(prices_pb2.GetPriceVersionRequest(version=above.price_version),
                                                   metadata=auth)  # a tier's stamp names its version
    assert version.version == below.price_version and version.model == "claude-sonnet-4-5"

    # Costs from the rollups and raw tails keep the tiers apart: the line items add up to the events.
    start = stamp(at.replace(hour=0, minute=0, second=0))
    costs = await service.costs.GetCosts(
        prices_pb2.GetCostsRequest(start_time=start, group_by=["line_item", "price_version"]), metadata=auth)
    total = sum((D(r.amount.value) for b in costs.buckets for r in b.results), D(0))
    assert total == D(above.cost) + D(below.cost) + D(gemini.cost)
    assert {r.price_version for b in costs.buckets for r in b.results} == {
        above.price_version, below.price_version, gemini.price_version}
    assert not any(b.unpriced_events for b in costs.buckets)
    # Nothing to reprice, nothing unpriced.
    preview = await service.prices.PreviewRepricing(
        prices_pb2.PreviewRepricingRequest(start_time=start), metadata=auth)
    assert preview.events == 0 and preview.skipped == 0
    unpriced = await service.prices.ListUnpricedEvents(prices_pb2.ListUnpricedEventsRequest(), metadata=auth)
    assert list(unpriced.events) == []


async def test_a_tier_set_by_hand_reprices_events_consistently(service: Service):
    """A tier through the API (TYPE:>N), repricing across tiers, audited and consistent with costs."""
    _, auth = await service.org("hand-tiers")
    at = NOW - dt.timedelta(days=2)
    model = prices_pb2.NewPriceVersion(provider="acme", model="long-1", effective_from=stamp(at - dt.timedelta(days=1)),
                                       prices=[prices_pb2.Price(usage_type="input", unit_price="0.000001"),
                                               prices_pb2.Price(usage_type="output", unit_price="0.000002")])
    await service.prices.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(versions=[model]), metadata=auth)
    big, small = await record(
        service, auth,
        event_pb2.UsageEvent(request_id="big", kind="completions", provider="acme", model="long-1",
                             input_tokens=1_000, output_tokens=10, timestamp=stamp(at)),
        event_pb2.UsageEvent(request_id="small", kind="completions", provider="acme", model="long-1",
                             input_tokens=100, output_tokens=10, timestamp=stamp(at)))
    assert (D(big.cost), D(small.cost)) == (D("0.00102"), D("0.00012"))
    tier = prices_pb2.Price(usage_type="input", variant="> 500", unit_price="0.000003")  # written loosely
    tiered = prices_pb2.NewPriceVersion(provider="acme", model="long-1",
                                        effective_from=stamp(at - dt.timedelta(days=1)), prices=[tier])
    created = await service.prices.CreatePriceVersions(
        prices_pb2.CreatePriceVersionsRequest(versions=[tiered]), metadata=auth)
    version = created.results[0].version
    assert {(p.usage_type, p.variant, p.unit_price) for p in version.prices} == {
        ("input", "", "0.000001"), ("input", ">500", "0.000003"), ("output", "", "0.000002")}
    start = stamp(at.replace(hour=0, minute=0, second=0))
    preview = await service.prices.PreviewRepricing(
        prices_pb2.PreviewRepricingRequest(start_time=start), metadata=auth)
    assert preview.events == 2 and [(t.before, t.after) for t in preview.totals] == [("0.00114", "0.00314")]
    applied = await service.prices.ApplyRepricing(prices_pb2.ApplyRepricingRequest(
        start_time=start, preview_token=preview.preview_token), metadata=auth)
    assert applied.applied and applied.events == 2
    listed = await service.records.ListEvents(records_pb2.ListEventsRequest(), metadata=auth)
    again = {e.request_id: e for e in listed.events}
    assert again["big"].price_version == f"{version.version}>500" and D(again["big"].cost) == D("0.00302")
    assert again["small"].price_version == version.version and D(again["small"].cost) == D("0.00012")
    costs = await service.costs.GetCosts(prices_pb2.GetCostsRequest(start_time=start), metadata=auth)
    assert sum((D(r.amount.value) for b in costs.buckets for r in b.results), D(0)) == D("0.00314")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        bad = prices_pb2.NewPriceVersion(provider="acme", model="long-1",
                                         prices=[prices_pb2.Price(usage_type="image", variant=">5", unit_price="1")])
        await service.prices.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(versions=[bad]), metadata=auth)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "tier" in (refused.value.details() or "")


async def test_sync_is_idempotent_and_adds_only_what_a_newer_catalog_adds(channel, new_org, monkeypatch):
    """On the session's server, whose organizations start without the catalog (the tests' setting)."""
    full = tuple(e for e in catalog.entries() if e.provider in ("anthropic", "openai", "google"))  # kept small
    dated = [i for i, e in enumerate(full) if e.effective_from > catalog.EARLIEST]
    assert len(dated) > 10  # the catalog has a price history
    left_out = set(dated[-10:])
    older = tuple(e for i, e in enumerate(full) if i not in left_out)  # as if 10 changes were not out yet
    org = await new_org()

    async def sync() -> list[str]:
        return await prices_cli.call(channel, MASTER, _parser().parse_args(["prices", "sync", "--org", org.name]))

    monkeypatch.setattr(catalog, "entries", lambda: older)
    first = await sync()
    assert first[-1].endswith(f"{len(older)} dated versions; {len(older)} created, 0 unchanged")
    assert (await sync())[-1].endswith(f"{len(older)} dated versions; 0 created, {len(older)} unchanged")
    monkeypatch.setattr(catalog, "entries", lambda: full)  # the newer package
    newer = await sync()
    assert newer[-1].endswith(f"{len(full)} dated versions; 10 created, {len(full) - 10} unchanged")
    assert len(newer) == 11 and all(line.startswith("created  pv_") for line in newer[:-1])
    assert {line.split("\t")[1] for line in newer[:-1]} == {f"{full[i].provider}/{full[i].model}" for i in left_out}


async def test_an_organization_with_the_catalog_syncs_nothing(service: Service):
    org, _ = await service.org("synced")
    lines = await prices_cli.call(service.channel, MASTER, _parser().parse_args(["prices", "sync", "--org", org]))
    assert lines == [f"genai-prices {catalog.version()}: {len({e.provider for e in catalog.entries()})} providers, "
                     f"{len({(e.provider, e.model) for e in catalog.entries()})} models, {len(catalog.entries())} "
                     f"dated versions; 0 created, {len(catalog.entries())} unchanged"]


async def _org_number(service: Service, organization_id: str) -> int:
    conn = await asyncpg.connect(service.dsn)
    try:
        return int(await conn.fetchval("select org_id from organizations where id = $1", organization_id))
    finally:
        await conn.close()


async def test_a_sample_across_providers_on_the_shared_catalog_costs_what_genai_prices_computes(service: Service):
    """tests/server/pricing/test_catalog_prices.py's comparison, through RecordEvents for an
    organization whose book is the shared catalog (no version of its own)."""
    organization, auth = await service.org("shared-sample")
    rng = random.Random(21)
    expected: dict[str, tuple[D, D, D]] = {}
    events: list[event_pb2.UsageEvent] = []
    for provider in providers:
        models = [m for m in provider.models if any(_comparable(m, at) for at in TIMES)]
        for model in rng.sample(models, min(len(models), 4)):
            for at in TIMES:
                if not _comparable(model, at):
                    continue
                for long_context in (False, True):
                    values: dict[str, Any] = _usage(model, at, rng, long_context)
                    theirs = _theirs(model, provider, at, values)
                    request_id = f"sample-{len(events)}"
                    expected[request_id] = (theirs.input_price, theirs.output_price, theirs.total_price)
                    events.append(event_pb2.UsageEvent(request_id=request_id, kind="completions",
                                                       provider=provider.id, model=model.id, timestamp=stamp(at),
                                                       **values))
    for i in range(0, len(events), 500):
        resp = await service.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events[i:i + 500]),
                                                 metadata=auth)
        assert resp.recorded == len(events[i:i + 500])
    found: dict[str, event_pb2.UsageEvent] = {}
    token = ""
    while True:
        page = await service.records.ListEvents(records_pb2.ListEventsRequest(page_size=1000, page_token=token),
                                                metadata=auth)
        found.update((e.request_id, e) for e in page.events)
        token = page.next_page_token
        if not token:
            break
    assert len({e.provider for e in events}) >= 40 and len(found) == len(events) >= 300
    for request_id, (input_cost, output_cost, cost) in expected.items():
        e = found[request_id]
        assert (D(e.input_cost), D(e.output_cost), D(e.cost)) == (input_cost, output_cost, cost), e
    pricer = service.server.ingest.writer.pricer if service.server.ingest else None
    assert pricer is not None
    book = pricer.book(await _org_number(service, organization))
    assert book.catalog is not None and len(book) == len(book.catalog) == len(catalog.entries())


async def test_organizations_share_one_catalog_and_an_own_version_takes_over_from_its_date(service: Service):
    (a, auth_a), (b, auth_b) = await service.org("shared-a"), await service.org("shared-b")
    day = dt.timedelta(days=1)
    takes_over = (NOW - 10 * day).replace(hour=0, minute=0, second=0)

    def gpt4o(request_id: str, at: dt.datetime) -> event_pb2.UsageEvent:
        return event_pb2.UsageEvent(request_id=request_id, kind="completions", provider="openai", model="gpt-4o",
                                    input_tokens=1_000_000, input_cached_tokens=200_000, output_tokens=100_000,
                                    timestamp=stamp(at))

    def theirs(at: dt.datetime) -> D:
        return genai_cost("gpt-4o", "openai", at, input_tokens=1_000_000, cache_read_tokens=200_000,
                          output_tokens=100_000)

    # Before any version of its own, both organizations price alike, with the catalog's version.
    [early_a], [late_b] = await record(service, auth_a, gpt4o("early", takes_over - day)), await record(
        service, auth_b, gpt4o("late-b", takes_over + day))
    [late_a] = await record(service, auth_a, gpt4o("late-a", takes_over + day))
    assert D(early_a.cost) == theirs(takes_over - day) and D(late_a.cost) == D(late_b.cost) == theirs(takes_over + day)
    catalog_version = late_a.price_version
    assert late_b.price_version == catalog_version

    # A's own version from `takes_over`: its other prices carry over from the catalog's version in force then.
    own = prices_pb2.NewPriceVersion(provider="openai", model="gpt-4o", effective_from=stamp(takes_over),
                                     prices=[prices_pb2.Price(usage_type="input", unit_price="0.000002")])
    [created] = (await service.prices.CreatePriceVersions(
        prices_pb2.CreatePriceVersionsRequest(versions=[own]), metadata=auth_a)).results
    assert created.created and created.version.version != catalog_version
    shared = await service.prices.GetPriceVersion(prices_pb2.GetPriceVersionRequest(version=catalog_version),
                                                  metadata=auth_a)
    carried = {(p.usage_type, p.variant): p.unit_price for p in shared.prices}
    assert {(p.usage_type, p.variant): p.unit_price for p in created.version.prices} == {
        **carried, ("input", ""): "0.000002"}
    assert shared.created_by == "catalog" and shared.effective_until == created.version.effective_from

    # Events already priced keep their version until repriced; repricing moves A's, never B's.
    preview = await service.prices.PreviewRepricing(
        prices_pb2.PreviewRepricingRequest(start_time=stamp(takes_over - 2 * day)), metadata=auth_a)
    assert preview.events == 1
    applied = await service.prices.ApplyRepricing(prices_pb2.ApplyRepricingRequest(
        start_time=stamp(takes_over - 2 * day), preview_token=preview.preview_token), metadata=auth_a)
    assert applied.applied and applied.events == 1
    none_for_b = await service.prices.PreviewRepricing(
        prices_pb2.PreviewRepricingRequest(start_time=stamp(takes_over - 2 * day)), metadata=auth_b)
    assert none_for_b.events == 0
    listed = {e.request_id: e for e in (await service.records.ListEvents(
        records_pb2.ListEventsRequest(), metadata=auth_a)).events}
    assert listed["late-a"].price_version == created.version.version
    assert D(listed["late-a"].cost) == 800_000 * D("0.000002") + 200_000 * D(carried[("cached_input", "")]) + (
        100_000 * D(carried[("output", "")]))
    assert listed["early"].price_version == early_a.price_version and listed["early"].cost == early_a.cost

    # New events: A's own version from its date, the catalog before it; B still the catalog.
    [before, after] = await record(service, auth_a, gpt4o("before", takes_over - dt.timedelta(seconds=1)),
                                   gpt4o("after", takes_over))
    [other] = await record(service, auth_b, gpt4o("other", takes_over))
    assert before.price_version == catalog_version and D(before.cost) == theirs(takes_over)
    assert after.price_version == created.version.version and after.cost == listed["late-a"].cost
    assert other.price_version == catalog_version and D(other.cost) == theirs(takes_over)

    # At the very instant of a catalog version, an own version wins (a correction of it).
    single = next(e for e in catalog.entries() if e.provider == "anthropic" and [
        (x.provider, x.model) for x in catalog.entries()].count((e.provider, e.model)) == 1)
    correction = prices_pb2.NewPriceVersion(
        provider=single.provider, model=single.model, effective_from=stamp(catalog.EARLIEST), replace=True,
        prices=[prices_pb2.Price(usage_type="input", unit_price="0.001"),
                prices_pb2.Price(usage_type="output", unit_price="0.002")])
    [fixed] = (await service.prices.CreatePriceVersions(
        prices_pb2.CreatePriceVersionsRequest(versions=[correction]), metadata=auth_a)).results
    history = (await service.prices.ListPriceVersions(prices_pb2.ListPriceVersionsRequest(
        provider=single.provider, model=single.model), metadata=auth_a)).versions
    assert [v.superseded_by for v in history] == [fixed.version.version, ""] and history[0].created_by == "catalog"
    [corrected] = await record(service, auth_a, event_pb2.UsageEvent(
        request_id="corrected", kind="completions", provider=single.provider, model=single.model, input_tokens=10,
        output_tokens=10, timestamp=stamp(NOW)))
    assert corrected.price_version == fixed.version.version and D(corrected.cost) == D("0.03")
    listed_b = (await service.prices.ListPriceVersions(prices_pb2.ListPriceVersionsRequest(), metadata=auth_b))
    assert len(listed_b.versions) == len(catalog.entries())  # B's book is the catalog alone

    # One process holds the catalog once: both books refer to the same immutable structure.
    pricer = service.server.ingest.writer.pricer if service.server.ingest else None
    assert pricer is not None
    book_a, book_b = pricer.book(await _org_number(service, a)), pricer.book(await _org_number(service, b))
    assert book_a.catalog is not None and book_a.catalog is book_b.catalog
    assert book_a.by_name[catalog_version] is book_b.by_name[catalog_version]
    assert len(book_a) == len(catalog.entries()) + 2 and len(book_b) == len(catalog.entries())
