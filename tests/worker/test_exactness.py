"""Differential test: the query engine equals a brute-force aggregation of the
same events (tests/worker/oracle.py), in random zones, widths, ranges, filters
and groupings, around DST changes; with late arrivals, duplicates, updates and
voids; before the rollup job ran (raw events), and after (rollups, and the
per-day cubes for queries on cube dimensions), to the unit and the last decimal.

Examples per run: METERING_HYPOTHESIS_EXAMPLES (default 50, ~12 s), e.g.
    METERING_HYPOTHESIS_EXAMPLES=2000 .venv/bin/pytest tests/worker/test_exactness.py
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, query_pb2, query_pb2_grpc, records_pb2
from server.core.events import COUNTER_FIELDS
from server.ingest.validation import MAX_COUNTER
from server.query.plan import CUBE_DIMENSIONS
from server.tenants.credentials import random_text
from tests.conftest import MASTER, bearer
from tests.worker import oracle
from tests.worker.checks import EXACT_SUMS
from worker.jobs import rollup_day

EXAMPLES = int(os.environ.get("METERING_HYPOTHESIS_EXAMPLES", "50"))
UTC = dt.UTC
ZONES = ("America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC")
ANCHORS = (
    dt.datetime(2024, 3, 10, 7, tzinfo=UTC),  # New York springs forward
    dt.datetime(2024, 11, 3, 6, tzinfo=UTC),  # New York falls back
    dt.datetime(2024, 4, 6, 15, tzinfo=UTC),  # Lord Howe falls back half an hour
    dt.datetime(2024, 10, 5, 15, 30, tzinfo=UTC),  # Lord Howe springs forward half an hour
    dt.datetime(2024, 2, 29, 20, 15, tzinfo=UTC),  # a month (and Kathmandu/Kolkata day) boundary
)
SPREAD = 36 * 3600  # events within this many seconds of the anchor
VALUES = {
    "kind": ("completions", "embeddings", "rerank", "images"),
    "model": ("m1", "m2", ""),
    "provider": ("openai", ""),
    "project_id": ("p1", "p2", ""),
    "user_id": ("u1", "u2", ""),
    "client_id": ("c1", ""),
    "service_tier": ("default", "flex", ""),
    "batch": ("true", "false"),
    "status": ("success", "error"),
    "currency": ("usd", "eur"),
    "labels.rule_type": ("a", "b", ""),
    "labels.task_id": ("t1", "t2", ""),
}
GROUPABLE = (*VALUES, "api_key_id", "endpoint", "labels.size")
CUBE_GROUPABLE = tuple(f for f in GROUPABLE if f in CUBE_DIMENSIONS)
CUBE_FILTERABLE = tuple(f for f in VALUES if f in CUBE_DIMENSIONS)
EXTRA = ("inference", "eval_prompt", "user_input")


def stamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def none_or(*values: str) -> st.SearchStrategy[str | None]:
    return st.sampled_from((None, *values))


money = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False, allow_infinity=False)


@st.composite
def moments(draw: st.DrawFn, anchor: dt.datetime) -> dt.datetime:
    seconds = draw(st.one_of(
        st.integers(-SPREAD, SPREAD),
        st.integers(-SPREAD // 900, SPREAD // 900).map(lambda k: k * 900),  # on a window edge
    ))
    micros = draw(st.sampled_from((0, 0, 1, 999_999, 500_000)))
    return anchor + dt.timedelta(seconds=seconds, microseconds=micros)


@st.composite
def events(draw: st.DrawFn, anchor: dt.datetime) -> event_pb2.UsageEvent:
    e = event_pb2.UsageEvent(
        request_id=draw(st.integers(0, 2**62).map(lambda i: f"r-{i}")), timestamp=stamp(draw(moments(anchor))),
        kind=draw(st.sampled_from(VALUES["kind"])), batch=draw(st.booleans()),
        status=draw(st.sampled_from(VALUES["status"])), currency=draw(st.sampled_from(VALUES["currency"])),
        labels=draw(st.dictionaries(st.sampled_from(("rule_type", "task_id", "size")),
                                    st.sampled_from(("a", "b", "t1", "t2", "")), max_size=3)),
        counters=draw(st.dictionaries(st.sampled_from(EXTRA), st.integers(0, MAX_COUNTER), max_size=3)),
        input_tokens=draw(st.integers(0, MAX_COUNTER)), output_tokens=draw(st.integers(0, 10**6)),
        images=draw(st.integers(0, 5)), seconds=draw(st.integers(0, 3600)), units_used=draw(st.integers(0, 9)),
    )
    for name in ("model", "provider", "project_id", "user_id", "client_id", "service_tier", "endpoint"):
        value = draw(none_or(*(v for v in VALUES.get(name, ("/v1/x",)) if v)))
        if value is not None:
            setattr(e, name, value)
    if draw(st.booleans()):
        e.api_key_id = "k1"
    if draw(st.booleans()):
        e.num_model_requests = draw(st.integers(0, 3))
    pricing = draw(st.sampled_from(("none", "parts", "input", "total")))
    if pricing in ("parts", "input"):
        e.input_cost = format(draw(money), "f")
    if pricing == "parts":
        e.output_cost = format(draw(money), "f")
    if pricing == "total":
        e.cost = format(draw(money), "f")
    return e


@dataclasses.dataclass
class Query:
    zone: str
    width: str
    start: dt.datetime
    end: dt.datetime
    group_by: list[str]
    filters: dict[str, list[str]]
    page_size: int


@st.composite
def cube_queries(draw: st.DrawFn, anchor: dt.datetime) -> Query:
    """Whole UTC days grouped and filtered on cube dimensions only: the engine reads the
    settled days from the cubes (migrations/0004_cubes.sql); in other zones only the UTC
    days wholly inside a bucket."""
    start = anchor.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=draw(st.integers(-2, 0)))
    end = start + dt.timedelta(days=draw(st.integers(1, 4)), hours=draw(st.sampled_from((0, 0, 5))))
    return Query(
        zone=draw(st.sampled_from(ZONES)), width=draw(st.sampled_from(("1d", "month", "all"))), start=start, end=end,
        group_by=draw(st.lists(st.sampled_from(CUBE_GROUPABLE), unique=True, max_size=3)),
        filters=draw(st.dictionaries(
            st.sampled_from(CUBE_FILTERABLE), st.just(()), max_size=2,
        ).flatmap(lambda chosen: st.fixed_dictionaries({
            field: st.lists(st.sampled_from(VALUES[field]), min_size=1, max_size=3, unique=True) for field in chosen
        }))),
        page_size=draw(st.sampled_from((13, 100, 1000))),
    )


@st.composite
def queries(draw: st.DrawFn, anchor: dt.datetime) -> Query:
    if draw(st.integers(0, 3)) == 0:
        return draw(cube_queries(anchor))
    width = draw(st.sampled_from(("1m", "1h", "1d", "month", "all")))
    start = anchor + dt.timedelta(seconds=draw(st.one_of(
        st.integers(-SPREAD - 7200, SPREAD), st.integers(-48, 36).map(lambda k: k * 3600),
    )))
    longest = 6 * 3600 if width == "1m" else 2 * SPREAD + 14400
    end = start + dt.timedelta(seconds=draw(st.integers(1, longest)), microseconds=draw(st.sampled_from((0, 1))))
    return Query(
        zone=draw(st.sampled_from(ZONES)), width=width, start=start, end=end,
        group_by=draw(st.lists(st.sampled_from(GROUPABLE), unique=True, max_size=3)),
        filters=draw(st.dictionaries(
            st.sampled_from(tuple(VALUES)), st.just(()), max_size=2,
        ).flatmap(lambda chosen: st.fixed_dictionaries({
            field: st.lists(st.sampled_from(VALUES[field]), min_size=1, max_size=3, unique=True) for field in chosen
        }))),
        page_size=draw(st.sampled_from((13, 100, 1000))),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    anchor = draw(st.sampled_from(ANCHORS))
    first = draw(st.lists(events(anchor), min_size=1, max_size=25))
    n = len(first)
    return {
        "first": first,
        "duplicates": draw(st.lists(st.tuples(st.integers(0, n - 1), events(anchor)), max_size=4)),
        "late": draw(st.lists(events(anchor), max_size=8)),
        "updates": draw(st.lists(st.tuples(st.integers(0, n - 1), events(anchor),
                                           st.sets(st.sampled_from(("input_tokens", "model", "labels", "counters")),
                                                   min_size=1)), max_size=3)),
        "voids": draw(st.lists(st.integers(0, n - 1), max_size=3, unique=True)),
        "queries": [draw(queries(anchor)) for _ in range(8)],
    }


def model_of(e: event_pb2.UsageEvent, key_id: str) -> oracle.Stored:
    """The event as stored: the defaults validation applies, for an org-wide admin key."""
    dims: dict[str, str | None] = {
        name: (getattr(e, name) or None) for name in oracle.DIMENSIONS if name not in ("batch",)
    }
    dims["api_key_id"] = e.api_key_id or key_id
    dims["status"] = e.status or "success"
    dims["currency"] = e.currency or "usd"
    dims["batch"] = "true" if e.batch else "false"
    counters = {name: getattr(e, name) for name in COUNTER_FIELDS}
    if not e.HasField("num_model_requests"):
        counters["num_model_requests"] = 1
    input_cost = decimal.Decimal(e.input_cost) if e.HasField("input_cost") else None
    output_cost = decimal.Decimal(e.output_cost) if e.HasField("output_cost") else None
    cost = decimal.Decimal(e.cost) if e.HasField("cost") else None
    if cost is None and (input_cost is not None or output_cost is not None):
        cost = EXACT_SUMS.add(input_cost or 0, output_cost or 0)
    return oracle.Stored(
        ts=e.timestamp.ToDatetime(UTC), dims=dims, labels=dict(e.labels), counters=counters,
        extra=dict(e.counters) or None, input_cost=input_cost, output_cost=output_cost, cost=cost,
    )


@pytest.fixture(scope="module")
async def query_stub(channel: grpc.aio.Channel) -> AsyncIterator[query_pb2_grpc.QueryServiceStub]:
    yield query_pb2_grpc.QueryServiceStub(channel)


async def fetch_all(stub, auth, q: Query) -> tuple[list[query_pb2.UsageBucket], list[query_pb2.Freshness]]:
    request = query_pb2.QueryUsageRequest(
        start_time=stamp(q.start), end_time=stamp(q.end), width=q.width, time_zone=q.zone, group_by=q.group_by,
        filters=[query_pb2.Filter(field=f, values=v) for f, v in q.filters.items()], page_size=q.page_size,
    )
    buckets, freshness = [], []
    while True:
        resp = await stub.QueryUsage(request, metadata=auth)
        buckets.extend(resp.buckets)
        freshness.append(resp.freshness)
        if not resp.next_page_token:
            return buckets, freshness
        request.page_token = resp.next_page_token


async def settle(db, org_number: int) -> int:
    """Run the worker's rollup job for every dirty day of the organization."""
    days = await db.fetch(
        "select distinct date_trunc('day', window_start, 'UTC') as day from dirty_windows where org_id = $1",
        org_number,
    )
    for row in days:
        await rollup_day({"db": db, "rollup_delay": 0, "job_try": 1}, org_number, row["day"].isoformat())
    assert await db.fetchval("select count(*) from dirty_windows where org_id = $1", org_number) == 0
    return len(days)


async def check(stub, auth, stored: dict[str, oracle.Stored], q: Query, *, settled: bool) -> None:
    buckets, freshness = await fetch_all(stub, auth, q)
    expected = oracle.aggregate(stored.values(), q.start, q.end, q.width, q.zone, q.group_by, q.filters)
    got = oracle.from_response(buckets, q.group_by)
    assert [(lo, hi) for lo, hi, _ in got] == [(lo, hi) for lo, hi, _ in expected], "bucket edges differ"
    for (lo, _, g), (_, _, e) in zip(got, expected, strict=True):
        assert g == e, f"bucket {lo.isoformat()} differs ({q})"
    if settled:
        assert all(f.raw_windows == 0 for f in freshness)


@settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(scenario=scenarios())
async def test_query_equals_brute_force(scenario, stubs, query_stub, db):
    org = await stubs.admin.CreateOrganization(
        admin_pb2.CreateOrganizationRequest(name="diff-" + random_text(10)), metadata=MASTER
    )
    key = await stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(organization=org.organization_id, name="admin"), metadata=MASTER
    )
    auth, key_id = bearer(key.key), key.api_key.api_key_id
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    stored: dict[str, oracle.Stored] = {}
    ids: list[str] = []

    async def ingest(batch: list[event_pb2.UsageEvent]) -> None:
        resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=batch), metadata=auth)
        for e, result in zip(batch, resp.results, strict=True):
            assert result.outcome in (ingest_pb2.OUTCOME_RECORDED, ingest_pb2.OUTCOME_DUPLICATE), result.message
            if result.outcome == ingest_pb2.OUTCOME_RECORDED:
                stored[result.event_id] = model_of(e, key_id)
                ids.append(result.event_id)

    first = scenario["first"]
    duplicates = []
    for i, other in scenario["duplicates"]:  # same request_id, other content: the first one wins
        other.request_id = first[i].request_id
        duplicates.append(other)
    await ingest(first + duplicates[:2])
    await ingest(duplicates[2:])
    queries = scenario["queries"]

    for q in queries[0:2]:
        await check(query_stub, auth, stored, q, settled=False)
    await settle(db, number)
    for q in queries[2:4]:
        await check(query_stub, auth, stored, q, settled=True)

    await ingest(scenario["late"])
    # Only appends since the rollups: a rolled-up window is read as its rollup plus the events
    # appended since (its "tail", migrations/0005_tails.sql), a window read raw in part as raw.
    assert await db.fetchval("select coalesce(bool_and(appends), true) from dirty_windows where org_id = $1", number)
    for q in queries[2:6]:
        await check(query_stub, auth, stored, q, settled=False)
    for i, patch, paths in scenario["updates"]:  # first may repeat a request_id: fewer ids than events
        eid = ids[i % len(ids)]
        patch.event_id = eid
        updated = await stubs.records.UpdateEvent(
            records_pb2.UpdateEventRequest(event=patch, update_mask=field_mask_pb2.FieldMask(paths=sorted(paths))),
            metadata=auth,
        )
        stored[eid] = dataclasses.replace(model_of(updated, key_id), active=True)
    for i in scenario["voids"]:
        eid = ids[i % len(ids)]
        await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=eid), metadata=auth)
        stored[eid].active = False

    for q in queries[4:6]:
        await check(query_stub, auth, stored, q, settled=False)
    await settle(db, number)
    # Queries 2-3 were answered settled before: the server kept their buckets by etag
    # (server/api/bucket_cache.py). The days changed since, so those must not be sent again.
    for q in queries[2:8]:
        await check(query_stub, auth, stored, q, settled=True)
