"""Limits: message and batch size, labels, deadlines, REST body size, and per-key rate limiting
(RESOURCE_EXHAUSTED + RetryInfo over gRPC, 429 + Retry-After over REST)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2

from gateway.http.retry_after import retry_after_seconds
from metering.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc
from server.api.ingest import MAX_BATCH
from server.api.ratelimit import RateLimiter, from_env, limits_from_env
from server.runtime.app import MAX_MESSAGE_BYTES, MeteringServer
from server.tenants.credentials import random_text
from tests.conftest import MASTER_KEY, Org, Stubs, asgi_lifespan

RATE, BURST = 4.0, 10.0


def ev(rid: str = "", **kw: Any) -> event_pb2.UsageEvent:
    return event_pb2.UsageEvent(request_id=rid, kind="completions", model="lim", input_tokens=1, **kw)


def status_of(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no rich status")


async def written(db: asyncpg.Pool, prefix: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM request_keys WHERE request_id LIKE $1", prefix + "%"))


# --- the token bucket ---------------------------------------------------------------------------

def test_bucket_counts_events_and_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(10, 5, clock=lambda: now[0])
    assert limiter.wait_time("k", 5) == 0  # the whole burst at once
    assert limiter.wait_time("k", 1) == pytest.approx(0.1)
    assert limiter.wait_time("other", 1) == 0  # buckets are per credential
    now[0] = 0.3
    assert limiter.wait_time("k", 3) == 0
    assert limiter.wait_time("k", 50) > 0  # bigger than the bucket: waits for a full bucket...
    now[0] = 10.0
    assert limiter.wait_time("k", 50) == 0  # ...then passes and leaves the bucket in debt
    assert limiter.wait_time("k", 1) == pytest.approx((1 + 45) / 10)


def test_rate_limit_configuration() -> None:
    assert from_env({}) is None and from_env({"METERING_RATE_LIMIT": "0"}) is None
    assert limits_from_env({"METERING_RATE_LIMIT": "100", "METERING_RATE_BURST": "500"}) == (100.0, 500.0)
    limiter = from_env({"METERING_RATE_LIMIT": "100"})
    assert limiter is not None and limiter.burst == 100
    for bad in ({"METERING_RATE_LIMIT": "fast"}, {"METERING_RATE_LIMIT": "-1"}, {"METERING_RATE_LIMIT": "nan"},
                {"METERING_RATE_LIMIT": "5", "METERING_RATE_BURST": "0"}):
        with pytest.raises(ValueError, match="METERING_RATE"):
            limits_from_env(bad)
    assert retry_after_seconds(b'{"details":[{"retry_delay":"0.250s"}]}') == 1
    assert retry_after_seconds(b'{"retryDelay": "2.5s"}') == 3 and retry_after_seconds(b"{}") == 1


# --- a rate-limited server ------------------------------------------------------------------------

# The limited server's clock: the real one (streams are paced in real time) plus a skew a test
# moves forward instead of sleeping.
SKEW = [0.0]


@pytest.fixture(scope="module")
async def limited(database_url: str, server: MeteringServer) -> AsyncIterator[MeteringServer]:
    limiter = RateLimiter(RATE, BURST, clock=lambda: time.monotonic() + SKEW[0])
    srv = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY, rate_limiter=limiter)
    await srv.start()
    yield srv
    await srv.stop(grace=1)


@pytest.fixture
async def limited_ingest(limited: MeteringServer) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{limited.port}") as ch:
        yield ingest_pb2_grpc.IngestServiceStub(ch)


async def test_default_server_is_not_limited(stubs: Stubs, new_org: Callable[[], Awaitable[Org]]) -> None:
    org = await new_org()
    for _ in range(3):
        reply = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=[ev() for _ in range(500)]),
                                                metadata=org.auth)
        assert reply.recorded == 500


async def test_batch_counts_events_then_resource_exhausted_with_retry_info(
    limited_ingest: ingest_pb2_grpc.IngestServiceStub, new_org: Callable[[], Awaitable[Org]], db: asyncpg.Pool,
) -> None:
    org, other = await new_org(), await new_org()
    prefix = "rl-" + random_text(8)
    first = await limited_ingest.RecordEvents(ingest_pb2.RecordEventsRequest(
        events=[ev(f"{prefix}-{i}") for i in range(int(BURST))]), metadata=org.auth)
    assert first.recorded == BURST  # one call, BURST events: the bucket is empty now
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await limited_ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(f"{prefix}-x")), metadata=org.auth)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = status_of(err.value)
    infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1
    retry = error_details_pb2.RetryInfo()
    infos[0].Unpack(retry)
    delay = retry.retry_delay.ToTimedelta().total_seconds()
    assert 0 < delay <= 1 / RATE + 0.01
    assert await written(db, prefix) == BURST  # the refused event was not written
    # another key has its own bucket
    assert (await limited_ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev()), metadata=other.auth)).event_id
    SKEW[0] += delay + 0.001  # the retry delay passes
    ok = await limited_ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(f"{prefix}-x")), metadata=org.auth)
    assert ok.outcome == ingest_pb2.OUTCOME_RECORDED


async def test_streams_are_paced_not_refused(
    limited_ingest: ingest_pb2_grpc.IngestServiceStub, new_org: Callable[[], Awaitable[Org]],
) -> None:
    org = await new_org()
    n = int(BURST) + 4
    started = time.monotonic()
    replies = [r async for r in limited_ingest.StreamEvents(
        iter([ingest_pb2.StreamEventsRequest(sequence=i, event=ev()) for i in range(n)]), metadata=org.auth)]
    elapsed = time.monotonic() - started
    assert [r.sequence for r in replies] == list(range(n))
    assert all(r.result.outcome == ingest_pb2.OUTCOME_RECORDED for r in replies)
    assert elapsed >= (n - BURST) / RATE * 0.8


async def test_gateway_answers_429_with_retry_after(
    limited: MeteringServer, new_org: Callable[[], Awaitable[Org]],
) -> None:
    from gateway.app import create_app

    org = await new_org()
    app = create_app(f"127.0.0.1:{limited.port}")
    async with asgi_lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                     base_url="http://t") as http:
        auth = {"Authorization": f"Bearer {org.admin_key}"}
        body = {"events": [{"kind": "completions", "model": "lim", "input_tokens": 1} for _ in range(int(BURST))]}
        assert (await http.post("/v1/events:batchRecord", json=body, headers=auth)).status_code == 200
        for path in ("/v1/events", "/usage", "/v1/organization/usage/completions?start_time=0"):
            reply = await (http.get(path, headers=auth) if "organization" in path else
                           http.post(path, headers=auth, json={"kind": "completions"} if path == "/v1/events"
                                     else {"api_name": "a", "endpoint": "e", "units_used": 1, "cost_usd": 1}))
            assert reply.status_code == 429, (path, reply.text)
            assert int(reply.headers["retry-after"]) >= 1


# --- sizes, labels, deadlines -----------------------------------------------------------------------

async def test_batch_size_limit(stubs: Stubs, new_org: Callable[[], Awaitable[Org]], db: asyncpg.Pool) -> None:
    org = await new_org()
    prefix = "big-" + random_text(8)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(
            events=[ev(f"{prefix}-{i}") for i in range(MAX_BATCH + 1)]), metadata=org.auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "events" in (err.value.details() or "")
    assert await written(db, prefix) == 0


async def test_message_size_limit(stubs: Stubs, new_org: Callable[[], Awaitable[Org]]) -> None:
    org = await new_org()
    huge = "x" * (MAX_MESSAGE_BYTES // 16)
    events = [ev(config_json=huge) for _ in range(17)]  # > 16 MiB on the wire
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(("labels", "field"), [
    ({f"k{i}": "v" for i in range(65)}, "labels"),
    ({"k" * 65: "v"}, "labels"),
    ({"": "v"}, "labels"),
    ({"bad name": "v"}, "labels"),
    ({"k": "v" * 1025}, "labels"),
])
async def test_label_limits(labels: dict[str, str], field: str, stubs: Stubs,
                            new_org: Callable[[], Awaitable[Org]], db: asyncpg.Pool) -> None:
    org = await new_org()
    rid = "lbl-" + random_text(10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(rid, labels=labels)), metadata=org.auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in (err.value.details() or "")
    assert await written(db, rid) == 0
    ok = {f"k{i}": "v" * 1024 for i in range(64)}
    assert (await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(rid, labels=ok)),
                                           metadata=org.auth)).event_id


async def test_deadlines(stubs: Stubs, new_org: Callable[[], Awaitable[Org]], http: httpx.AsyncClient) -> None:
    org = await new_org()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=[ev() for _ in range(2000)]),
                                        metadata=org.auth, timeout=0.001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reply = await http.get("/v1/events", headers={"Authorization": f"Bearer {org.admin_key}",
                                                  "Grpc-Timeout": "1n"})
    assert reply.status_code == 504
    bad = await http.get("/v1/events", headers={"Authorization": f"Bearer {org.admin_key}", "Grpc-Timeout": "soon"})
    assert bad.status_code == 400


async def test_rest_body_limit(http: httpx.AsyncClient, new_org: Callable[[], Awaitable[Org]]) -> None:
    org = await new_org()
    body = b"{" + b" " * (16 * 1024 * 1024) + b"}"
    reply = await http.post("/v1/events", content=body, headers={"Authorization": f"Bearer {org.admin_key}",
                                                                 "Content-Type": "application/json"})
    assert reply.status_code == 413




def test_an_otlp_export_counts_its_spans() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    from server.api.interceptors import _cost

    scopes = [ScopeSpans(spans=[Span(name="a"), Span(name="b")]), ScopeSpans(spans=[Span(name="c")])]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=scopes), ResourceSpans()])
    assert _cost(request) == 3
    assert _cost(ExportTraceServiceRequest()) == 1
