"""Postgres lost at any point of a call (issue 15, item 4): the answer is UNAVAILABLE with reason
DATABASE_UNAVAILABLE and a RetryInfo (never INTERNAL or UNKNOWN), nothing half is committed, and a
retry with the same request ids stores each event exactly once. Health says NOT_SERVING while
Postgres cannot be reached, over gRPC and the gateway's /healthz, and SERVING again after.

The server under test reaches Postgres through a proxy of the test's own (tests/support/pg_proxy.py):
`down()` is Postgres gone (every connection dropped, new ones refused); `cut_on` drops the one
connection carrying given bytes: an event's request id (the write's Bind, or its COPY data) or
COMMIT, before those bytes reach Postgres or after (a commit whose reply is lost)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from metering.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from server.runtime.app import MeteringServer
from server.tenants.credentials import random_text
from tests.conftest import MASTER_KEY, Org, asgi_lifespan
from tests.support.pg_proxy import PgProxy

RECORDED, DUPLICATE = ingest_pb2.OUTCOME_RECORDED, ingest_pb2.OUTCOME_DUPLICATE
DEADLINE = 10.0  # seconds any poll below may take


@pytest.fixture
async def outage_server(proxy: PgProxy, server: MeteringServer) -> AsyncIterator[MeteringServer]:
    """A server reaching Postgres only through the proxy (the session's server has migrated)."""
    srv = MeteringServer(proxy.dsn, "127.0.0.1:0", MASTER_KEY, pool_size=4)
    await srv.start()
    yield srv
    proxy.up()
    await srv.stop(grace=1)


@pytest.fixture
async def ingest(outage_server: MeteringServer) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{outage_server.port}") as channel:
        yield ingest_pb2_grpc.IngestServiceStub(channel)


def ev(request_id: str, **fields: Any) -> event_pb2.UsageEvent:
    return event_pb2.UsageEvent(request_id=request_id, kind="completions", model="m", input_tokens=1, **fields)


def assert_unavailable(err: grpc.aio.AioRpcError) -> None:
    """UNAVAILABLE, said to be the database, with a delay to retry after."""
    assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
    status = rpc_status.from_call(err)
    assert status is not None, "no google.rpc.Status details"
    reasons, delays = [], []
    for detail in status.details:
        info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reasons.append(info.reason)
        elif detail.Unpack(retry):
            delays.append(retry.retry_delay.ToTimedelta())
    assert reasons == ["DATABASE_UNAVAILABLE"], status
    assert len(delays) == 1 and delays[0] > dt.timedelta(0), status


async def expect_unavailable(call: Awaitable[Any]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert_unavailable(caught.value)


async def stored(db: asyncpg.Pool, org: Org, request_ids: Sequence[str]) -> dict[str, int]:
    """How many events (and request keys) each request id has: each must be 0 or 1, and the same."""
    rows = await db.fetch(
        """select k.request_id, count(e.event_id) as events, count(distinct k.event_id) as keys
           from request_keys k join organizations o using (org_id)
           left join events e on e.org_id = k.org_id and e.event_id = k.event_id
           where o.id = $1 and k.request_id = any($2::text[]) group by k.request_id""",
        org.organization_id, list(request_ids))
    for r in rows:
        assert r["events"] == r["keys"] == 1, dict(r)  # a key never without its event, nor twice
    return {r["request_id"]: r["events"] for r in rows}


async def warm(ingest: ingest_pb2_grpc.IngestServiceStub, org: Org) -> None:
    """One write first: the key is known and the pool's connections are open."""
    reply = await ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev("warm-" + random_text(8))),
                                     metadata=org.auth)
    assert reply.outcome == RECORDED


def trap(proxy: PgProxy, pattern: bytes, how: str) -> asyncio.Event:
    """drop: the bytes never reach Postgres; deliver: they do, their reply is lost; terminate:
    Postgres ends the session first (FATAL admin shutdown, as in a graceful stop)."""
    if how == "terminate":
        return proxy.terminate_on(pattern)
    return proxy.cut_on(pattern, deliver=how == "deliver")


async def exactly_once_after_retry(
    db: asyncpg.Pool, org: Org, request_ids: Sequence[str], retry: Callable[[], Awaitable[list[Any]]],
) -> None:
    """The retry records each event, or finds it recorded (a write committed before its reply was
    lost, or still in flight then): each is then stored exactly once, with the event id the
    retry answered."""
    results = await retry()
    assert [r.request_id for r in results] == list(request_ids)
    assert {r.outcome for r in results} <= {RECORDED, DUPLICATE}
    assert await stored(db, org, request_ids) == dict.fromkeys(request_ids, 1)
    ids = await db.fetch("select request_id, event_id::text from request_keys k join organizations o "
                         "using (org_id) where o.id = $1 and request_id = any($2::text[])",
                         org.organization_id, list(request_ids))
    assert {r["request_id"]: r["event_id"] for r in ids} == {r.request_id: r.event_id for r in results}


async def test_record_event_while_postgres_is_down(proxy, ingest, new_org, db):
    org = await new_org()
    await warm(ingest, org)
    proxy.down()
    await expect_unavailable(ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev("down-1")),
                                                metadata=org.auth))
    await expect_unavailable(ingest.RecordEvents(ingest_pb2.RecordEventsRequest(
        events=[ev(f"down-b{i}") for i in range(100)]), metadata=org.auth))
    assert await stored(db, org, ["down-1", *(f"down-b{i}" for i in range(100))]) == {}
    proxy.up()

    async def retry() -> list[Any]:
        return [await ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev("down-1")), metadata=org.auth)]

    await exactly_once_after_retry(db, org, ["down-1"], retry)


@pytest.mark.parametrize("how", ["drop", "deliver", "terminate"])
async def test_record_event_cut_in_its_statement(proxy, ingest, new_org, db, how):
    """The group commit's one-statement write (claim, event, marks): cut before it reaches
    Postgres, or after (it commits; the reply is lost)."""
    org = await new_org()
    await warm(ingest, org)
    rid = "one-" + random_text(8)
    cut = trap(proxy, rid.encode(), how)
    await expect_unavailable(ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(rid)), metadata=org.auth))
    await asyncio.wait_for(cut.wait(), DEADLINE)
    if how != "deliver":  # the statement never ran
        assert await stored(db, org, [rid]) == {}

    async def retry() -> list[Any]:
        return [await ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(rid)), metadata=org.auth)]

    await exactly_once_after_retry(db, org, [rid], retry)


@pytest.mark.parametrize("how", ["drop", "deliver", "terminate"])
async def test_coalesced_record_events_cut(proxy, ingest, new_org, db, how):
    """Concurrent unary calls share a group-commit transaction: the cut fails every call of it
    with UNAVAILABLE, none with anything else, and none is half written."""
    org = await new_org()
    await warm(ingest, org)
    rids = [f"group-{random_text(6)}-{i}" for i in range(40)]
    cut = trap(proxy, rids[-1].encode(), how)
    replies = await asyncio.gather(*(
        ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(rid)), metadata=org.auth) for rid in rids
    ), return_exceptions=True)
    await asyncio.wait_for(cut.wait(), DEADLINE)
    failed = [r for r in replies if isinstance(r, BaseException)]
    assert failed, "the cut failed no call"
    for err in failed:
        assert isinstance(err, grpc.aio.AioRpcError)
        assert_unavailable(err)
    if how != "deliver":  # the calls of the cut transaction: none of their events is stored
        lost = [rid for rid, reply in zip(rids, replies, strict=True) if isinstance(reply, BaseException)]
        assert await stored(db, org, lost) == {}

    async def retry() -> list[Any]:
        return list(await asyncio.gather(*(
            ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(rid)), metadata=org.auth) for rid in rids)))

    await exactly_once_after_retry(db, org, rids, retry)


@pytest.mark.parametrize("how", ["drop", "deliver", "terminate"])
@pytest.mark.parametrize(("size", "where"), [(10, "event"), (200, "event"), (200, "commit")],
                         ids=["one-statement", "inside-copy", "at-commit"])
async def test_record_events_batch_cut(proxy, ingest, new_org, db, size, where, how):
    org = await new_org()
    await warm(ingest, org)
    rids = [f"batch-{random_text(6)}-{i}" for i in range(size)]
    cut = trap(proxy, rids[size // 2].encode() if where == "event" else b"COMMIT", how)
    request = ingest_pb2.RecordEventsRequest(events=[ev(rid) for rid in rids])
    await expect_unavailable(ingest.RecordEvents(request, metadata=org.auth))
    await asyncio.wait_for(cut.wait(), DEADLINE)
    if where == "event" and size > 64 or how != "deliver":  # the transaction never reached its COMMIT
        assert await stored(db, org, rids) == {}

    async def retry() -> list[Any]:
        return list((await ingest.RecordEvents(request, metadata=org.auth)).results)

    await exactly_once_after_retry(db, org, rids, retry)


async def test_graceful_stop_under_ingest(proxy, ingest, new_org, db):
    """Postgres stopped gracefully (every session gets FATAL 57P01, new ones 57P03) while unary
    calls (coalesced), small and COPY batches are in flight: every failure is UNAVAILABLE, and
    after a restart every event is stored exactly once."""
    org = await new_org()
    await warm(ingest, org)
    unary = [f"stop-u-{random_text(6)}-{i}" for i in range(300)]
    batches = [[f"stop-b{b}-{random_text(6)}-{i}" for i in range(size)]
               for b, size in enumerate([5, 20, 100, 300, 5, 200] * 3)]
    stopped = asyncio.Event()

    async def one(rid: str) -> list[Any]:
        await asyncio.sleep(0)
        return [await ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(rid)), metadata=org.auth)]

    async def batch(rids: list[str]) -> list[Any]:
        request = ingest_pb2.RecordEventsRequest(events=[ev(rid) for rid in rids])
        return list((await ingest.RecordEvents(request, metadata=org.auth)).results)

    async def stop() -> None:
        while not await db.fetchval("select count(*) > 0 from request_keys k join organizations o using (org_id) "
                                    "where o.id = $1 and request_id like 'stop-%'", org.organization_id):
            await asyncio.sleep(0.001)
        await proxy.shut_down()
        stopped.set()

    calls = [*(one(rid) for rid in unary), *(batch(rids) for rids in batches)]
    *outcomes, _ = await asyncio.gather(*calls, stop(), return_exceptions=True)
    assert stopped.is_set()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors, "the stop failed no call"
    failed = [err for err in errors if isinstance(err, grpc.aio.AioRpcError)]
    assert failed == errors, errors
    assert {(err.code().name, err.details()) for err in failed} == {("UNAVAILABLE", "database unavailable; retry")}
    for err in failed:
        assert_unavailable(err)
    proxy.up()
    everything = [*unary, *(rid for rids in batches for rid in rids)]

    async def retry() -> list[Any]:
        done = await asyncio.gather(*(one(rid) for rid in unary), *(batch(rids) for rids in batches))
        return [r for results in done for r in results]

    await exactly_once_after_retry(db, org, everything, retry)


@pytest.mark.parametrize("how", ["drop", "terminate"])
async def test_stream_cut(proxy, ingest, new_org, db, how):
    org = await new_org()
    await warm(ingest, org)
    rids = [f"stream-{random_text(6)}-{i}" for i in range(30)]
    cut = trap(proxy, rids[10].encode(), how)

    async def requests(hold_after: int | None = None) -> AsyncIterator[ingest_pb2.StreamEventsRequest]:
        for i, rid in enumerate(rids):
            yield ingest_pb2.StreamEventsRequest(sequence=i, event=ev(rid))
            if i == hold_after:
                # Send nothing after the cut event until the server ends the call: a message written
                # after the server's status makes grpc's client report its own INTERNAL ("Internal
                # error from Core") in place of the server's status, a race of the client library.
                await asyncio.Event().wait()

    acknowledged = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for reply in ingest.StreamEvents(requests(hold_after=10), metadata=org.auth):
            acknowledged.append(reply.result.request_id)
    assert_unavailable(caught.value)
    await asyncio.wait_for(cut.wait(), DEADLINE)
    assert rids[10] not in acknowledged
    assert rids[10] not in await stored(db, org, [rids[10]])  # its transaction never committed
    assert set(acknowledged) <= set((await stored(db, org, rids)).keys())  # acknowledged = committed

    async def retry() -> list[Any]:
        return [reply.result async for reply in ingest.StreamEvents(requests(), metadata=org.auth)]

    await exactly_once_after_retry(db, org, rids, retry)


async def test_query_cut(proxy, outage_server, ingest, new_org):
    org = await new_org()
    await warm(ingest, org)
    model = "cut-" + random_text(8)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    request = query_pb2.QueryUsageRequest(width="1h", filters=[query_pb2.Filter(field="model", values=[model])])
    request.start_time.FromDatetime(start)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{outage_server.port}") as channel:
        query = query_pb2_grpc.QueryServiceStub(channel)
        cut = proxy.cut_on(model.encode())
        await expect_unavailable(query.QueryUsage(request, metadata=org.auth))
        await asyncio.wait_for(cut.wait(), DEADLINE)
        proxy.down()
        await expect_unavailable(query.QueryUsage(request, metadata=org.auth))
        proxy.up()
        reply = await query.QueryUsage(request, metadata=org.auth)
        assert all(not b.groups for b in reply.buckets)


# --- health -----------------------------------------------------------------------------------

async def wait_for_status(health: health_pb2_grpc.HealthStub, wanted: int) -> float:
    """Polls the health service until it says `wanted`; returns the seconds it took."""
    started = time.monotonic()
    while True:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        if reply.status == wanted:
            return time.monotonic() - started
        assert time.monotonic() - started < DEADLINE, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        await asyncio.sleep(0.02)


async def test_health_follows_postgres(proxy, outage_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{outage_server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        await wait_for_status(health, health_pb2.HealthCheckResponse.SERVING)
        proxy.down()
        down = await wait_for_status(health, health_pb2.HealthCheckResponse.NOT_SERVING)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="metering.v1.IngestService"))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        proxy.up()
        up = await wait_for_status(health, health_pb2.HealthCheckResponse.SERVING)
        # a dropped connection is seen at once; the listener's backoff is at most 1 s (margins for a busy machine)
        assert down < 2.0 and up < 5.0, (down, up)
        print(f"health: NOT_SERVING {down * 1000:.0f} ms after Postgres went away, SERVING {up * 1000:.0f} ms "
              "after it came back")


# --- over REST ---------------------------------------------------------------------------------

@pytest.fixture
async def outage_http(outage_server: MeteringServer) -> AsyncIterator[httpx.AsyncClient]:
    from gateway.app import create_app

    app = create_app(f"127.0.0.1:{outage_server.port}")
    async with asgi_lifespan(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


async def test_gateway_answers_503_with_retry_after(proxy, outage_http, ingest, new_org):
    org = await new_org()
    await warm(ingest, org)
    headers = {"authorization": f"Bearer {org.admin_key}"}
    body = {"request_id": "rest-" + random_text(8), "kind": "completions", "model": "m", "input_tokens": 1}
    assert (await outage_http.get("/healthz")).status_code == 200
    proxy.down()
    native = await outage_http.post("/v1/events", json=body, headers=headers)
    assert native.status_code == 503, native.text
    assert int(native.headers["retry-after"]) >= 1
    usage = await outage_http.get("/v1/organization/usage/completions",
                                  params={"start_time": int(time.time()) - 3600}, headers=headers)
    assert usage.status_code == 503, usage.text
    assert int(usage.headers["retry-after"]) >= 1
    started = time.monotonic()
    while (healthz := await outage_http.get("/healthz")).status_code != 503:
        assert time.monotonic() - started < DEADLINE, healthz.text
        await asyncio.sleep(0.02)
    assert healthz.json()["status"] == "NOT_SERVING"
    proxy.up()
    while (healthz := await outage_http.get("/healthz")).status_code != 200:
        assert time.monotonic() - started < 2 * DEADLINE, healthz.text
        await asyncio.sleep(0.02)


# --- the SDK ------------------------------------------------------------------------------------

async def test_sdk_retries_through_a_graceful_stop(proxy, outage_server, ingest, new_org, db, tmp_path,
                                                  monkeypatch, caplog):
    """Batches sent while Postgres is stopped get UNAVAILABLE, which the SDK retries (with the same
    request ids) instead of journaling; once Postgres is back every event is stored exactly once."""
    from metering_client import MeteringClient, Outcome

    monkeypatch.setenv("METERING_JOURNAL_DIR", str(tmp_path))
    caplog.set_level(logging.INFO, logger="metering.access")  # one line per call, with its code
    org = await new_org()
    await warm(ingest, org)
    await proxy.shut_down()
    client = MeteringClient(f"127.0.0.1:{outage_server.port}", org.admin_key, batch_size=50, max_delay=0.01,
                            journal_path=tmp_path / "journal.jsonl", retry_budget=30)
    try:
        receipts = await asyncio.to_thread(lambda: [
            client.record(request_id=f"sdk-{i}", kind="completions", model="m", input_tokens=1) for i in range(200)])
        started = time.monotonic()
        while not any("RecordEvents UNAVAILABLE" in r.getMessage() for r in caplog.records):  # a batch was refused
            assert time.monotonic() - started < DEADLINE
            await asyncio.sleep(0.01)
        proxy.up()  # ... and is retried once Postgres is back
        await asyncio.to_thread(client.flush)
    finally:
        await asyncio.to_thread(client.close)
    status = client.delivery_status()
    assert status.journaled == 0 and status.recorded + status.duplicates == 200, status
    assert {r.result().outcome for r in receipts} <= {Outcome.RECORDED, Outcome.DUPLICATE}
    assert await stored(db, org, [f"sdk-{i}" for i in range(200)]) == {f"sdk-{i}": 1 for i in range(200)}
