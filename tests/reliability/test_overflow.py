"""Issue 15, item 1: one tenant's extreme counters must not break its organization's reports.

Two events with input_tokens = 2^63 - 1 (and every other counter and an extra counter at
2^63 - 1) made every usage query of the organization fail with `400 database:
NumericValueOutOfRangeError` and every rollup pass with `bigint out of range`. Now a
counter above 10^12 (server.ingest.validation.MAX_COUNTER) is refused naming the field,
and events of 2^63 - 1 already stored (accepted before the limit existed, written here
straight into the events table) sum exactly wherever sums are kept; a sum the int64
reply cannot carry is OUT_OF_RANGE naming the metric, with its exact value.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest

from metering.v1 import event_pb2, ingest_pb2, prices_pb2, query_pb2
from server.api.interceptors import to_status
from server.core.events import COUNTER_FIELDS
from server.core.principal import Principal
from server.ingest.validation import MAX_COUNTER
from server.query.engine import QueryEngine
from server.query.spec import make_spec
from server.storage.db import create_pool
from tests.conftest import PriceStubs, Stubs
from tests.gateway.conftest import auth
from tests.worker.checks import assert_rollups_exact, org_number, stamp, stored_sql
from worker.jobs import rollup_day

INT64_MAX = 2**63 - 1
TWICE = 2 * INT64_MAX  # 18446744073709551614
MAX_COST = decimal.Decimal("99999999999999999999.999999999999999999")  # the largest cost an event may carry
TWICE_COST = decimal.Decimal("199999999999999999999.999999999999999998")  # (TWICE_COST rounds to 28 digits)
DAY = dt.datetime(2024, 6, 3, tzinfo=dt.UTC)
NEXT_DAY = DAY + dt.timedelta(days=1)
INTERNALS = ("Error", "SQLSTATE", "asyncpg", "bigint", "select ")  # what no client may read


def biggest(i: int) -> event_pb2.UsageEvent:
    """An event at every limit: each counter and an extra counter at MAX_COUNTER, the largest cost."""
    event = event_pb2.UsageEvent(
        request_id=f"big-{i}", kind="completions", model="m", user_id="u1", client_id="c", project_id=f"p{i}",
        labels={"rule_type": "r"}, timestamp=stamp(DAY + dt.timedelta(hours=i)), counters={"inference": MAX_COUNTER},
        input_cost=str(MAX_COST),
    )
    for name in COUNTER_FIELDS:
        setattr(event, name, MAX_COUNTER)
    return event


async def expect_out_of_range(call: object, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    err = caught.value
    assert err.code() == grpc.StatusCode.OUT_OF_RANGE, err.details()
    message = err.details() or ""
    assert message.startswith(f"{field}: ") and str(TWICE) in message, message
    assert not any(word in message for word in INTERNALS), message


@pytest.fixture(scope="module")
async def pool(database_url: str, server: object) -> AsyncIterator[asyncpg.Pool]:
    made = await create_pool(database_url, min_size=1, max_size=2)
    yield made
    await made.close()


async def record_legacy(stubs: Stubs, db: asyncpg.Pool, auth_: tuple[tuple[str, str], ...], number: int) -> None:
    """The issue's two events: recorded at the maximum, then raised to 2^63 - 1 in place, as if
    accepted before the maximum existed (their windows marked changed, as an adjustment does)."""
    reply = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=[biggest(1), biggest(2)]),
                                            metadata=auth_)
    assert reply.recorded == 2, [r.message for r in reply.results]
    await db.execute(
        f"update events set {', '.join(f'{c} = $2' for c in COUNTER_FIELDS)}, counters = $3::jsonb "
        "where org_id = $1", number, INT64_MAX, json.dumps({"inference": INT64_MAX}))
    await db.execute("insert into dirty_windows (org_id, window_start) "
                     "select org_id, date_trunc('hour', ts) from events where org_id = $1", number)


async def test_counters_above_the_maximum_are_refused_naming_the_field(stubs, new_org, db):
    org = await new_org()
    for field in (*COUNTER_FIELDS, "counters.inference"):
        for value in (MAX_COUNTER + 1, INT64_MAX):
            event = biggest(0)
            if field == "counters.inference":
                event.counters["inference"] = value
            else:
                setattr(event, field, value)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event), metadata=org.auth)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (caught.value.details() or "").startswith(f"{field}: must be <= {MAX_COUNTER}")
    assert await db.fetchval("select count(*) from events where org_id = $1",
                             await org_number(db, org.organization_id)) == 0


async def test_int64_max_events_sum_exactly_everywhere(stubs: Stubs, pstubs: PriceStubs, new_org, db, http, pool):
    org = await new_org()
    number = await org_number(db, org.organization_id)
    await record_legacy(stubs, db, org.auth, number)
    day: dict[str, Any] = {"start_time": stamp(DAY), "end_time": stamp(NEXT_DAY)}

    async def by_project() -> None:  # one event a group: every sum fits, exactly
        reply = await pstubs.query.QueryUsage(
            query_pb2.QueryUsageRequest(width="1d", group_by=["project_id"], **day), metadata=org.auth)
        groups = reply.buckets[0].groups
        assert [g.key["project_id"] for g in groups] == ["p1", "p2"]
        for g in groups:
            assert [getattr(g.metrics, c) for c in COUNTER_FIELDS] == [INT64_MAX] * len(COUNTER_FIELDS)
            assert dict(g.metrics.counters) == {"inference": INT64_MAX}
            assert decimal.Decimal(g.metrics.cost) == MAX_COST

    for settled in (False, True):  # read raw, then from the rollups and cubes
        await expect_out_of_range(pstubs.query.QueryUsage(query_pb2.QueryUsageRequest(width="1d", **day),
                                                          metadata=org.auth), "input_tokens")
        await by_project()
        # The engine itself holds the sums exactly, whatever their size (budgets and costs read it).
        admin = Principal(org_id=number, organization_id=org.organization_id, role="admin")
        result = await QueryEngine(pool).aggregate(admin, make_spec(DAY, NEXT_DAY, width="1d"))
        [group] = result.buckets[0].groups
        assert group.row.counters == [TWICE] * len(COUNTER_FIELDS) and group.row.extra == {"inference": TWICE}
        assert group.row.cost == TWICE_COST

        rest = await http.get("/v1/organization/usage/completions", headers=auth(org.admin_key),
                              params={"start_time": int(DAY.timestamp()), "end_time": int(NEXT_DAY.timestamp())})
        assert rest.status_code == 400, rest.text
        message = rest.json()["error"]["message"]
        assert "input_tokens" in message and str(TWICE) in message, message
        assert not any(word in message for word in INTERNALS), message
        grouped = await http.get("/v1/organization/usage/completions", headers=auth(org.admin_key), params={
            "start_time": int(DAY.timestamp()), "end_time": int(NEXT_DAY.timestamp()), "group_by": "project_id"})
        assert grouped.status_code == 200, grouped.text
        assert [r["input_tokens"] for r in grouped.json()["data"][0]["results"]] == [INT64_MAX, INT64_MAX]

        await expect_out_of_range(pstubs.query.GetUsageTallies(
            query_pb2.GetUsageTalliesRequest(window="day", **day), metadata=org.auth), "input_tokens")
        await expect_out_of_range(pstubs.query.GetTokenUsage(
            query_pb2.GetTokenUsageRequest(**day), metadata=org.auth), "count.inference")
        await expect_out_of_range(pstubs.query.GetClientUsage(
            query_pb2.GetClientUsageRequest(client_id="c"), metadata=org.auth), "total_input_tokens")
        costs = await pstubs.costs.GetCosts(prices_pb2.GetCostsRequest(group_by=["line_item"], **day),
                                            metadata=org.auth)
        [line] = costs.buckets[0].results
        assert (line.line_item, decimal.Decimal(line.amount.value), line.quantity) == ("m, input", TWICE_COST,
                                                                                        str(TWICE))
        if not settled:  # the worker's pass: it failed on every sweep with "bigint out of range"
            assert await rollup_day({"db": db, "rollup_delay": 0, "job_try": 1}, number, DAY.isoformat()) > 0
            assert await db.fetchval("select count(*) from dirty_windows where org_id = $1", number) == 0
            assert await assert_rollups_exact(db, number) == 2
            for table in ("cubes_1d", "cubes_1h"):
                assert await db.fetchval(f"select sum({stored_sql('c', 'input_tokens')}) from {table} c "
                                         "where org_id = $1", number) == TWICE
            assert await db.fetchval("select sum(value) from cube_counters_1d where org_id = $1", number) == TWICE


async def test_a_year_of_maximal_events_sums_exactly(stubs: Stubs, pstubs: PriceStubs, new_org, db, pool):
    """A year of events at the maximum, at 10^6 events/s (20x the ingest rate measured in
    docs/performance.md): its rollups hold 8.64 * 10^22 a day and counter, its year
    3.16 * 10^25. Stored as the rollup pass would have written them, the days sum exactly in
    the worker's next pass, in the engine, and on the wire as OUT_OF_RANGE with that value."""
    org = await new_org()
    number = await org_number(db, org.organization_id)
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    reply = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=[
        event_pb2.UsageEvent(request_id="year", kind="completions", model="m", timestamp=stamp(start))]),
        metadata=org.auth)
    assert reply.recorded == 1
    series = await db.fetchval("select series_id from events where org_id = $1", number)
    quarter = 900 * 10**6  # events in 15 minutes
    per_day = 96 * quarter * MAX_COUNTER

    async def stored(table: str, step: str, first: int, last: int, windows: int) -> None:
        """Rows of `windows` quarters: beyond bigint, so kept wide (migrations/0010_exact_sums.sql)."""
        await db.execute(
            f"insert into {table} (org_id, window_start, series_id, events, unpriced_events, wide, "
            "input_cost, output_cost, cost, last_event_at) "
            f"select $1, $2::timestamptz + i * interval '{step}', $3, $4, $4, array_fill($5::numeric, array[$8::int]), "
            "0, 0, 0, $2 from generate_series($6::int, $7::int) i",
            number, start, series, windows * quarter, decimal.Decimal(windows * quarter * MAX_COUNTER), first, last,
            len(COUNTER_FIELDS))

    # The first day as the passes before left it but for its first window, where an event was
    # just recorded: its other 15-minute windows and hours; then the other 364 days and cubes.
    await stored("rollups_15m", "15 minutes", 1, 3, 1)
    await stored("rollups_1h", "1 hour", 1, 23, 4)
    for table in ("rollups_1d", "cubes_1d"):
        await stored(table, "1 day", 1, 364, 96)
    assert await rollup_day({"db": db, "rollup_delay": 0, "job_try": 1}, number, start.isoformat()) == 1
    first = 95 * quarter * MAX_COUNTER  # the recorded event counts no tokens
    assert await db.fetchval(f"select {stored_sql('r', 'input_tokens')} from rollups_1d r "
                             "where org_id = $1 and window_start = $2", number, start) == first
    end = start + dt.timedelta(days=365)
    admin = Principal(org_id=number, organization_id=org.organization_id, role="admin")
    for width in ("all", "month"):
        result = await QueryEngine(pool).aggregate(admin, make_spec(start, end, width=width))
        total = sum(g.row.counters[0] for b in result.buckets for g in b.groups)
        assert total == first + 364 * per_day  # 3.14 * 10^25: exact
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pstubs.query.QueryUsage(query_pb2.QueryUsageRequest(
            start_time=stamp(start), end_time=stamp(end), width="all"), metadata=org.auth)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert (caught.value.details() or "").startswith(f"input_tokens: the bucket starting {start.isoformat()}")
    assert str(first + 364 * per_day) in (caught.value.details() or "")


async def test_database_errors_reach_clients_without_internals(db, caplog):
    """The one mapping of database errors (server/api/interceptors.py): real errors of a real
    Postgres become a plain message and a reason; the driver's class, the SQLSTATE and the
    SQL go only to the server's log."""
    cases = {
        "select 9223372036854775807::bigint + 1": (grpc.StatusCode.OUT_OF_RANGE, "a number is out of the range"),
        "select convert_from('\\x00'::bytea, 'UTF8')": (grpc.StatusCode.INVALID_ARGUMENT, "cannot be stored"),
        "select 1 / 0": (grpc.StatusCode.INVALID_ARGUMENT, "invalid"),
        "select '2024-13-45'::date": (grpc.StatusCode.OUT_OF_RANGE, "a time is out of the range"),
    }
    for sql, (code, text) in cases.items():
        with pytest.raises(asyncpg.PostgresError) as caught:
            await db.fetchval(sql)
        with caplog.at_level(logging.WARNING, logger="server.api.interceptors"):
            caplog.clear()
            status = to_status(caught.value)
        assert status.code == code, (sql, status.details)
        assert text in status.details, (sql, status.details)
        assert not any(word in status.details for word in INTERNALS), status.details
        details = b"".join(v if isinstance(v, bytes) else v.encode() for _, v in status.trailing_metadata)
        assert b"SQLSTATE" not in details and caught.value.sqlstate.encode() not in details
        assert type(caught.value).__name__ in caplog.text and caught.value.sqlstate in caplog.text
