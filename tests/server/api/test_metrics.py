"""The server's metrics, scraped over HTTP from its registry as METERING_METRICS_ADDR serves it:
events counted by path and outcome exactly, RPC latencies by method and code, group-commit sizes,
the pool, the query cache, and labels only from small fixed sets."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from metering.metrics import serve_metrics
from metering.v1 import event_pb2, ingest_pb2, query_pb2, query_pb2_grpc
from server.core.metrics import REGISTRY
from server.runtime.app import MeteringServer
from tests.conftest import Org, Stubs
from tests.gateway.usage_events import at
from tests.server.otlp.spans_support import CHAT, export_request, make_spans
from tests.support.prometheus import Scrape, scrape

RECORD = "/metering.v1.IngestService/RecordEvent"
# Every label of the server's metrics and the values it may take (a method: one of the services').
BOUNDED = {
    "path": {"grpc_unary", "grpc_batch", "grpc_stream", "rest", "otlp"},
    "outcome": {"recorded", "duplicate", "rejected", "failed"},
    "code": {c.name for c in grpc.StatusCode} | {"ABORTED_BY_HANDLER"},
    "committer": {"ingest", "budget_reservations"},
    "cache": {"server_buckets"}, "result": {"hit", "miss"},
    "state": {"in_use", "idle", "max"},
}


@pytest.fixture(scope="module")
async def metrics_url() -> AsyncIterator[str]:
    served = serve_metrics(("127.0.0.1", 0), REGISTRY, "METERING_METRICS_ADDR")
    yield f"http://127.0.0.1:{served.port}/metrics"
    served.close()


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def events(prefix: str, n: int) -> list[event_pb2.UsageEvent]:
    return [event_pb2.UsageEvent(request_id=f"{prefix}{i}", kind="completions", model="m", input_tokens=i)
            for i in range(n)]


async def test_ingest_counts_every_event_by_path_and_outcome(
        stubs: Stubs, new_org: Callable[[], Awaitable[Org]], metrics_url: str, server: MeteringServer):
    org = await new_org()
    before = await scrape(metrics_url)
    one, two = events("u", 2)
    for event in (one, two, one):  # the third: a duplicate
        await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event), metadata=org.auth)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(kind="nope")),
                                       metadata=org.auth)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    batch = [*events("b", 4), event_pb2.UsageEvent(kind="completions", input_tokens=-1)]
    reply = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=batch), metadata=org.auth)
    assert (reply.recorded, reply.rejected) == (4, 1)

    async def stream() -> AsyncIterator[ingest_pb2.StreamEventsRequest]:
        for i, event in enumerate(events("s", 2)):
            yield ingest_pb2.StreamEventsRequest(sequence=i, event=event)

    assert len([r async for r in stubs.ingest.StreamEvents(stream(), metadata=org.auth)]) == 2
    after = await scrape(metrics_url)

    counted = {(path, outcome): moved(before, after, "metering_events_ingested_total", path=path, outcome=outcome)
               for path in ("grpc_unary", "grpc_batch", "grpc_stream") for outcome in BOUNDED["outcome"]}
    assert {k: v for k, v in counted.items() if v} == {
        ("grpc_unary", "recorded"): 2, ("grpc_unary", "duplicate"): 1, ("grpc_unary", "rejected"): 1,
        ("grpc_batch", "recorded"): 4, ("grpc_batch", "rejected"): 1, ("grpc_stream", "recorded"): 2,
    }
    assert after.types["metering_events_ingested"] == "counter"
    # every call timed, by method and code
    seconds = "metering_grpc_server_handling_seconds_count"
    assert moved(before, after, seconds, method=RECORD, code="OK") == 3
    assert moved(before, after, seconds, method=RECORD, code="INVALID_ARGUMENT") == 1
    assert moved(before, after, seconds, method="/metering.v1.IngestService/RecordEvents", code="OK") == 1
    assert moved(before, after, seconds, method="/metering.v1.IngestService/StreamEvents", code="OK") == 1
    assert after.value("metering_grpc_server_handling_seconds_bucket", method=RECORD, code="OK", le="+Inf") == \
        after.value(seconds, method=RECORD, code="OK")
    # the single events went through group commit: 3 unary (the duplicate too) and 2 streamed
    assert moved(before, after, "metering_group_commit_batch_size_sum", committer="ingest") == 5
    assert 1 <= moved(before, after, "metering_group_commit_batch_size_count", committer="ingest") <= 5
    assert after.value("metering_db_pool_connections", state="max") == server.pool_size


async def test_otlp_spans_count_as_their_own_path(
        channel: grpc.aio.Channel, new_org: Callable[[], Awaitable[Org]], metrics_url: str):
    org = await new_org()
    spans = make_spans([("chat", CHAT), ("chat", CHAT)])
    export = trace_service_pb2_grpc.TraceServiceStub(channel).Export
    before = await scrape(metrics_url)
    for _ in range(2):  # the exporter's retry: duplicates
        await export(export_request(spans), metadata=org.auth)
    after = await scrape(metrics_url)
    assert {outcome: moved(before, after, "metering_events_ingested_total", path="otlp", outcome=outcome)
            for outcome in BOUNDED["outcome"]} == {"recorded": 2, "duplicate": 2, "rejected": 0, "failed": 0}


async def test_the_query_cache_counts_hits_and_misses(
        channel: grpc.aio.Channel, new_org: Callable[[], Awaitable[Org]], metrics_url: str):
    org = await new_org()
    query = query_pb2_grpc.QueryServiceStub(channel)
    start = dt.datetime(2020, 3, 1, tzinfo=dt.UTC)  # settled days with nothing in them
    ask = query_pb2.QueryUsageRequest(start_time=at(start), end_time=at(start + dt.timedelta(days=3)),
                                      width="1d")
    before = await scrape(metrics_url)
    await query.QueryUsage(ask, metadata=org.auth)
    middle = await scrape(metrics_url)
    await query.QueryUsage(ask, metadata=org.auth)
    after = await scrape(metrics_url)
    name = "metering_query_cache_lookups_total"
    assert moved(before, middle, name, cache="server_buckets", result="miss") == 3
    assert moved(middle, after, name, cache="server_buckets", result="hit") == 3
    assert moved(middle, after, name, cache="server_buckets", result="miss") == 0


async def test_labels_come_from_small_fixed_sets(
        stubs: Stubs, new_org: Callable[[], Awaitable[Org]], metrics_url: str):
    org = await new_org()
    await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=events("l", 1)[0]), metadata=org.auth)
    found = await scrape(metrics_url)
    methods = {s.labels["method"] for s in found.samples if "method" in s.labels}
    assert methods and all(re.fullmatch(r"/[a-z][\w.]*\.[A-Z]\w*/[A-Z]\w*", m) for m in methods), methods
    for name, labelsets in found.labelsets().items():
        for labels in labelsets:
            for key, value in labels:
                if key != "method":
                    assert value in BOUNDED[key], (name, key, value)
                assert org.organization_id not in value and org.admin_key not in value
