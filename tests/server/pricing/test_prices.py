"""The price book over gRPC and the CLI, pricing at ingest, unpriced events,
adjusted events, and pricing across server replicas."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from metering.v1 import (
    admin_pb2,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    prices_pb2,
    prices_pb2_grpc,
    query_pb2,
    records_pb2,
)
from server.pricing import catalog
from server.runtime import prices_cli
from server.runtime.app import MeteringServer
from server.runtime.cli import _parser
from tests.conftest import MASTER, MASTER_KEY, bearer

D = decimal.Decimal
DAY = dt.timedelta(days=1)
T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def stamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def new_version(
    model: str, prices: dict[str, str], at: dt.datetime = T0, **fields: Any
) -> prices_pb2.NewPriceVersion:
    """prices: {"input": "0.000002", "image:1024x1024": "0.04"}."""
    return prices_pb2.NewPriceVersion(
        model=model, effective_from=stamp(at),
        prices=[prices_pb2.Price(usage_type=k.partition(":")[0], variant=k.partition(":")[2], unit_price=v)
                for k, v in prices.items()],
        **fields,
    )


async def set_prices(stub: prices_pb2_grpc.PriceServiceStub, auth, *versions: prices_pb2.NewPriceVersion
                     ) -> list[prices_pb2.PriceVersionResult]:
    resp = await stub.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(versions=versions), metadata=auth)
    return list(resp.results)


def ev(request_id: str, model: str, at: dt.datetime, **fields: Any) -> event_pb2.UsageEvent:
    return event_pb2.UsageEvent(request_id=request_id, kind="completions", model=model, timestamp=stamp(at), **fields)


async def record(stubs, auth, *events: event_pb2.UsageEvent) -> list[str]:
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=auth)
    assert resp.recorded == len(events), resp
    return [r.event_id for r in resp.results]


def prices_of(v: prices_pb2.PriceVersion) -> dict[str, str]:
    return {f"{p.usage_type}:{p.variant}" if p.variant else p.usage_type: p.unit_price for p in v.prices}


async def test_create_list_and_get_versions(pstubs, new_org):
    org = await new_org()
    [r] = await set_prices(pstubs.prices, org.auth, new_version(
        "gpt-x", {"input": "0.0000025", "cached_input": "0.00000125", "output": "0.00001"}, provider="openai",
        note="list price"))
    v = r.version
    assert r.created and v.version.startswith("pv_") and v.organization_id == org.organization_id
    assert (v.provider, v.model, v.currency, v.note) == ("openai", "gpt-x", "usd", "list price")
    assert v.effective_from.ToDatetime(dt.UTC) == T0 and v.created_by
    assert [(p.usage_type, p.unit_price, p.unit) for p in v.prices] == [
        ("input", "0.0000025", "tokens"), ("cached_input", "0.00000125", "tokens"), ("output", "0.00001", "tokens")]

    got = await pstubs.prices.GetPriceVersion(prices_pb2.GetPriceVersionRequest(version=v.version), metadata=org.auth)
    assert got.version == v.version and prices_of(got) == prices_of(v) and not got.HasField("effective_until")
    listed = await pstubs.prices.ListPriceVersions(prices_pb2.ListPriceVersionsRequest(), metadata=org.auth)
    assert [x.version for x in listed.versions] == [v.version]
    # Another organization sees none of it.
    other = await new_org()
    listed = await pstubs.prices.ListPriceVersions(prices_pb2.ListPriceVersionsRequest(), metadata=other.auth)
    assert list(listed.versions) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pstubs.prices.GetPriceVersion(prices_pb2.GetPriceVersionRequest(version=v.version), metadata=other.auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_versions_carry_over_replace_and_corrections(pstubs, new_org):
    org = await new_org()
    [a] = await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.000002", "output": "0.000008"}))
    # A later output price: input carries over from the version in force then.
    [b] = await set_prices(pstubs.prices, org.auth, new_version("m", {"output": "0.00001"}, T0 + 10 * DAY))
    assert b.created and prices_of(b.version) == {"input": "0.000002", "output": "0.00001"}
    # The same again changes nothing: no new version.
    [same] = await set_prices(pstubs.prices, org.auth, new_version("m", {"output": "0.00001"}, T0 + 20 * DAY))
    assert not same.created and same.version.version == b.version.version
    # A correction of b (same effective_from) supersedes it; replace drops the input price.
    [c] = await set_prices(pstubs.prices, org.auth, new_version("m", {"output": "0.000009"}, T0 + 10 * DAY,
                                                                replace=True))
    assert prices_of(c.version) == {"output": "0.000009"}

    listed = await pstubs.prices.ListPriceVersions(prices_pb2.ListPriceVersionsRequest(model="m"), metadata=org.auth)
    rows = {v.version: v for v in listed.versions}
    assert list(rows) == [a.version.version, b.version.version, c.version.version]
    assert rows[a.version.version].effective_until.ToDatetime(dt.UTC) == T0 + 10 * DAY
    assert rows[b.version.version].superseded_by == c.version.version
    assert not rows[c.version.version].superseded_by and not rows[c.version.version].HasField("effective_until")
    at = await pstubs.prices.ListPriceVersions(
        prices_pb2.ListPriceVersionsRequest(at=stamp(T0 + 15 * DAY)), metadata=org.auth)
    assert [v.version for v in at.versions] == [c.version.version]
    at = await pstubs.prices.ListPriceVersions(
        prices_pb2.ListPriceVersionsRequest(at=stamp(T0 - DAY)), metadata=org.auth)
    assert list(at.versions) == []


@pytest.mark.parametrize(("version", "field"), [
    (new_version("m", {"tokens": "1"}), "versions[0].prices[0].usage_type"),
    (new_version("m", {"input": "-1"}), "versions[0].prices[0].unit_price"),
    (new_version("m", {"input": "NaN"}), "versions[0].prices[0].unit_price"),
    (new_version("m", {"input": "1.5e-40"}), "versions[0].prices[0].unit_price"),
    (new_version("m", {"input:hd": "1"}), "versions[0].prices[0].variant"),
    (new_version("", {"input": "1"}), "versions[0].model"),
    (new_version("m", {"input": "1"}, currency="dollars"), "versions[0].currency"),
    (new_version("m", {}), "versions[0].prices"),
    (new_version("m", {"input": "1"}, dt.datetime(1999, 1, 1, tzinfo=dt.UTC)), "versions[0].effective_from"),
])
async def test_invalid_versions_name_the_field(pstubs, new_org, version, field):
    org = await new_org()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_prices(pstubs.prices, org.auth, version)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


async def test_only_organization_admins_manage_prices(stubs, pstubs, new_org):
    org = await new_org()
    await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(username=f"{org.name}-bob", password="password-1"),
                                 metadata=org.auth)
    member = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(user_id=f"{org.name}-bob"), metadata=org.auth)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_prices(pstubs.prices, bearer(member.key), new_version("m", {"input": "1"}))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The master key manages any organization's book; members may read it.
    await pstubs.prices.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(
        organization=org.organization_id, versions=[new_version("m", {"input": "1"})]), metadata=MASTER)
    listed = await pstubs.prices.ListPriceVersions(prices_pb2.ListPriceVersionsRequest(), metadata=bearer(member.key))
    assert [v.model for v in listed.versions] == ["m"]


async def test_events_are_priced_at_ingest_and_stamped(stubs, pstubs, new_org, db):
    org = await new_org()
    [v1, v2] = [r.version for r in await set_prices(
        pstubs.prices, org.auth,
        new_version("gpt-x", {"input": "0.000002", "cached_input": "0.000001", "output": "0.000008"}),
        new_version("gpt-x", {"input": "0.000003"}, T0 + 10 * DAY),
    )]
    ids = await record(
        stubs, org.auth,
        ev("a", "gpt-x", T0 + DAY, input_tokens=1000, input_cached_tokens=400, output_tokens=100),
        ev("b", "gpt-x", T0 + 11 * DAY, input_tokens=1000, input_cached_tokens=400, output_tokens=100),
        ev("c", "gpt-x", T0 + DAY, input_tokens=1000, output_tokens=100, input_cost="0.5", output_cost="0.25"),
        ev("d", "unknown-model", T0 + DAY, input_tokens=10),
        ev("e", "gpt-x", T0 + 2 * DAY, input_tokens=10, input_cached_tokens=20),  # inconsistent
        ev("f", "gpt-x", T0 - DAY, input_tokens=10),  # before the first version
        ev("g", "gpt-x-2025-01-01", T0 + DAY, input_tokens=1000),  # a dated snapshot: the model's prices
    )
    got = {}
    for eid in ids:
        e = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=eid), metadata=org.auth)
        got[e.request_id] = e
    a, b = got["a"], got["b"]
    assert (a.input_cost, a.output_cost, a.cost, a.price_version, a.unpriced) == (
        "0.0016", "0.0008", "0.0024", v1.version, False)  # 600 x 2e-6 + 400 x 1e-6; 100 x 8e-6
    assert (b.input_cost, b.cost, b.price_version) == ("0.0022", "0.003", v2.version)  # 600 x 3e-6 + 400 x 1e-6
    c = got["c"]
    assert (c.input_cost, c.output_cost, c.cost, c.price_version, c.unpriced) == ("0.5", "0.25", "0.75", "", False)
    for name in "def":
        assert got[name].unpriced and not got[name].price_version and not got[name].HasField("cost"), name
    assert (got["g"].cost, got["g"].price_version) == ("0.002", v1.version)
    # The version is part of the series, so rollups and queries keep versions apart.
    rows = await db.fetch(
        "select e.request_id, e.price_version, s.price_version as series_version from events e "
        "join series s using (org_id, series_id) where s.org_id = (select org_id from organizations where id = $1)",
        org.organization_id)
    assert {r["request_id"]: (r["price_version"], r["series_version"]) for r in rows} == {
        "a": (v1.version, v1.version), "b": (v2.version, v2.version), "c": (None, None), "d": (None, "unpriced"),
        "e": (None, "unpriced"), "f": (None, "unpriced"), "g": (v1.version, v1.version)}

    # Unpriced usage: listed with reasons, and counted by the query engine.
    listed = await pstubs.prices.ListUnpricedEvents(prices_pb2.ListUnpricedEventsRequest(page_size=2),
                                                    metadata=org.auth)
    assert [u.event.request_id for u in listed.events] == ["e", "d"] and listed.next_page_token
    reasons = {u.event.request_id: u.reason for u in listed.events}
    assert "no price version for unknown-model" in reasons["d"] and "inconsistent" in reasons["e"]
    more = await pstubs.prices.ListUnpricedEvents(
        prices_pb2.ListUnpricedEventsRequest(page_size=2, page_token=listed.next_page_token), metadata=org.auth)
    assert [u.event.request_id for u in more.events] == ["f"] and not more.next_page_token
    counted = await pstubs.query.QueryUsage(query_pb2.QueryUsageRequest(
        start_time=stamp(T0 - 5 * DAY), end_time=stamp(T0 + 20 * DAY), width="all", group_by=["model"],
        filters=[query_pb2.Filter(field="price_version", values=["unpriced"])]), metadata=org.auth)
    assert {g.key["model"]: g.metrics.events for g in counted.buckets[0].groups} == {"gpt-x": 2, "unknown-model": 1}
    assert sum(g.metrics.unpriced_events for g in counted.buckets[0].groups) == 3


async def test_adjusted_events_are_priced_again(stubs, pstubs, new_org):
    org = await new_org()
    [v1] = [r.version for r in await set_prices(pstubs.prices, org.auth,
                                                new_version("m", {"input": "0.001", "output": "0.002"}))]
    [eid] = await record(stubs, org.auth, ev("x", "m", T0 + DAY, input_tokens=10, output_tokens=1))
    # A later price change does not touch it; an adjustment of its counters keeps its version.
    await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.005"}, T0))
    upd = records_pb2.UpdateEventRequest(event=event_pb2.UsageEvent(event_id=eid, input_tokens=20),
                                         update_mask=field_mask_pb2.FieldMask(paths=["input_tokens"]))
    e = await stubs.records.UpdateEvent(upd, metadata=org.auth)
    assert (e.cost, e.input_cost, e.price_version) == ("0.022", "0.02", v1.version)
    # An explicit cost makes it caller-given.
    upd = records_pb2.UpdateEventRequest(event=event_pb2.UsageEvent(event_id=eid, cost="1.5"),
                                         update_mask=field_mask_pb2.FieldMask(paths=["cost"]))
    e = await stubs.records.UpdateEvent(upd, metadata=org.auth)
    assert (e.cost, e.price_version, e.unpriced) == ("1.5", "", False)
    # An unpriced event adjusted into something priceable is priced by the version in force.
    [uid] = await record(stubs, org.auth, ev("y", "nope", T0 + DAY, input_tokens=10))
    upd = records_pb2.UpdateEventRequest(event=event_pb2.UsageEvent(event_id=uid, model="m"),
                                         update_mask=field_mask_pb2.FieldMask(paths=["model"]))
    e = await stubs.records.UpdateEvent(upd, metadata=org.auth)
    assert (e.cost, e.unpriced) == ("0.05", False) and e.price_version != v1.version


@pytest.fixture
async def replica(database_url: str, server: MeteringServer) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    """A second server on the same database, as another replica would be."""
    other = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY, pool_size=2)
    await other.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as ch:
            yield ingest_pb2_grpc.IngestServiceStub(ch)
    finally:
        await other.stop(grace=1)


async def test_prices_set_on_one_replica_price_the_next_write_of_another(stubs, pstubs, new_org, replica):
    org = await new_org()
    other_ingest = replica

    async def cost_of(request_id: str) -> tuple[str, str]:
        resp = await other_ingest.RecordEvent(ingest_pb2.RecordEventRequest(
            event=ev(request_id, "m", T0 + DAY, input_tokens=1000)), metadata=org.auth)
        e = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=resp.event_id), metadata=org.auth)
        return e.cost, e.price_version

    assert await cost_of("before") == ("", "")  # the replica has now cached an empty book
    [v1] = [r.version for r in await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.001"}))]
    assert await cost_of("after-1") == ("1", v1.version)
    [v2] = [r.version for r in await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.002"}))]
    assert await cost_of("after-2") == ("2", v2.version)


async def cli(channel, *argv: str) -> list[str]:
    args = _parser().parse_args(["prices", *argv])
    return await prices_cli.call(channel, MASTER, args)


async def test_cli_sync_set_list_reprice_and_costs(channel, stubs, new_org):
    org = await new_org()
    lines = await cli(channel, "sync", "--org", org.name)
    entries = len(catalog.entries())
    assert lines[-1].endswith(f"{entries} dated versions; {entries} created, 0 unchanged")
    assert any("openai/gpt-4o\tusd" in line and "input=2.5/1M" in line for line in lines)
    again = await cli(channel, "sync", "--org", org.organization_id)
    assert again == [lines[-1].replace(f"{entries} created, 0 unchanged", f"0 created, {entries} unchanged")]

    [line] = await cli(channel, "set", "--org", org.name, "--model", "gpt-4o", "--provider", "openai",
                       "--effective-from", "2025-03-10", "output=12/1M", "image:1024x1024 hd=0.08")
    assert line.startswith("created  pv_") and "output=12/1M" in line and "input=2.5/1M" in line
    assert "image:1024x1024 hd=0.08" in line
    listed = await cli(channel, "list", "--org", org.name, "--model", "gpt-4o", "--at", "now")
    assert len(listed) == 1 and "from 2025-03-10T00:00:00+00:00" in listed[0]

    await record(stubs, org.auth, ev("r1", "gpt-4o-2024-08-06", T0 + 12 * DAY, provider="openai",
                                     input_tokens=1_000_000, output_tokens=1_000_000))
    costs = await cli(channel, "costs", "--org", org.name, "--start", "2025-03-13", "--end", "2025-03-14",
                      "--group-by", "line_item")
    assert costs == ["2025-03-13\t2.5 usd\tline_item=gpt-4o-2024-08-06, input\t1000000 tokens",
                     "2025-03-13\t12 usd\tline_item=gpt-4o-2024-08-06, output\t1000000 tokens"]
    preview = await cli(channel, "reprice", "--org", org.name, "--start", "2025-03-01", "--end", "2025-04-01")
    assert preview[-1].startswith("would change: 0 events")
    unpriced = await cli(channel, "unpriced", "--org", org.name)
    assert unpriced == []


def test_price_notation():
    assert prices_cli.unit_price("2.50/1M") == "0.0000025"
    assert prices_cli.unit_price("0.006/60") == "0.0001"
    assert prices_cli.unit_price("2.5/1k") == "0.0025"
    assert prices_cli.unit_price("0.04") == "0.04"
    for bad in ("x", "1/0", "1/abc"):
        with pytest.raises(Exception, match="not a price"):
            prices_cli.unit_price(bad)
