"""GET /v1/usage:export and GET /v1/events:export: CSV that Python's csv module reads back to the
query's numbers, NDJSON with one JSON object per line, the query's parameters and scoping,
errors before the body in the native shape and after it as the format allows, and exports of
many events streamed in flat memory."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import time

import asyncpg
import grpc
import httpx
import psutil
import pytest

from bench.sections.exports import RssSampler
from bench.stress import replicas
from metering import exports
from metering.v1 import exports_pb2_grpc, query_pb2, query_pb2_grpc, records_pb2
from tests.conftest import MASTER_KEY
from tests.support import services
from tests.support.export_data import DAY, Tenant, at, bulk_events, tenant

END = DAY + dt.timedelta(days=3)
RANGE = {"start_time": "2024-03-08T21:00:00Z", "end_time": "2024-03-12T00:00:00Z"}


def headers(key: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **more}


@pytest.fixture(scope="module")
async def usage(stubs) -> Tenant:
    return await tenant(stubs)


@pytest.fixture(scope="module")
def export(channel: grpc.aio.Channel) -> exports_pb2_grpc.ExportServiceStub:
    return exports_pb2_grpc.ExportServiceStub(channel)


def read_csv(text: str) -> list[dict[str, str]]:
    assert text.endswith("\r\n") and "\r\n" in text  # RFC 4180 line ends
    return list(csv.DictReader(io.StringIO(text, newline="")))


def as_cells(columns: exports.Columns, rows: list[list[object]]) -> list[dict[str, str]]:
    """What csv reads back of rows written by metering.exports."""
    return read_csv(exports.csv_text([columns.header, *columns.csv_rows(rows)]))


SHAPES = [
    ({"width": "1d", "group_by": "model"}, dict(width="1d", group_by=["model"])),
    ({"width": "1h", "time_zone": "America/New_York", "group_by": ["project_id", "labels.size"],
      "filter.model": ["gpt-4o", "gpt-4o-mini"]},
     dict(width="1h", time_zone="America/New_York", group_by=["project_id", "labels.size"],
          filters=[query_pb2.Filter(field="model", values=["gpt-4o", "gpt-4o-mini"])])),
    ({"width": "all", "metrics": ["input_tokens", "cost", "counters"], "filter.labels.size": ""},
     dict(width="all", metrics=["input_tokens", "cost", "counters"],
          filters=[query_pb2.Filter(field="labels.size", values=[""])])),
]


@pytest.mark.parametrize(("params", "shape"), SHAPES, ids=["by-model", "new-york-filtered", "all-unlabelled"])
async def test_usage_csv_has_the_rows_and_sums_of_the_query(http, export, usage, params, shape):
    reply = await http.get("/v1/usage:export", params={**RANGE, **params}, headers=headers(usage.admin_key))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/csv; charset=utf-8; header=present"
    assert reply.headers["content-disposition"] == 'attachment; filename="usage.csv"'
    got = read_csv(reply.text)
    request = query_pb2.QueryUsageRequest(start_time=at(DAY - dt.timedelta(hours=3)), end_time=at(END), **shape)
    chunks = [c async for c in export.ExportUsage(request, metadata=usage.admin)]
    columns = exports.usage_columns(list(request.group_by), list(request.metrics))
    assert got == as_cells(columns, [row for c in chunks for row in columns.rows(c)])
    # and the sums are the query's
    groups = [g for c in chunks for b in c.buckets for g in b.groups]
    assert sum(int(r["events"]) for r in got) == sum(g.metrics.events for g in groups) > 0
    assert sum(int(r["input_tokens"]) for r in got) == sum(g.metrics.input_tokens for g in groups)
    assert sum(decimal.Decimal(r["cost"]) for r in got) == sum(decimal.Decimal(g.metrics.cost) for g in groups)


async def test_usage_ndjson_by_parameter_or_accept_header(http, usage):
    params = {**RANGE, "width": "1d", "group_by": "model"}
    by_param = await http.get("/v1/usage:export", params={**params, "format": "ndjson"},
                              headers=headers(usage.admin_key))
    by_accept = await http.get("/v1/usage:export", params=params,
                               headers=headers(usage.admin_key, Accept="application/x-ndjson"))
    as_csv = await http.get("/v1/usage:export", params=params, headers=headers(usage.admin_key, Accept="text/csv"))
    assert by_param.status_code == by_accept.status_code == 200
    assert by_param.headers["content-type"] == "application/x-ndjson"
    assert by_param.headers["content-disposition"] == 'attachment; filename="usage.ndjson"'
    assert by_param.text == by_accept.text and by_param.text.endswith("\n")
    lines = [json.loads(line) for line in by_param.text.splitlines()]
    assert [{k: "" if v is None else str(v) for k, v in line.items() if k != "counters"} for line in lines] == [
        {k: v for k, v in row.items() if k != "counters"} for row in read_csv(as_csv.text)]
    assert sum(line["events"] for line in lines) == usage.events
    assert all(isinstance(line["input_tokens"], int) and isinstance(line["counters"], dict) for line in lines)
    assert {line["start_time"] for line in lines} == {"2024-03-08T21:00:00Z", "2024-03-09T00:00:00Z",
                                                     "2024-03-10T00:00:00Z", "2024-03-11T00:00:00Z"}


async def test_event_csv_round_trips_payloads_labels_and_counters(http, stubs, usage):
    reply = await http.get("/v1/events:export", params={"include_payload": "true", "page_size": "7"},
                           headers=headers(usage.admin_key))
    assert reply.status_code == 200 and reply.headers["content-disposition"] == 'attachment; filename="events.csv"'
    rows = read_csv(reply.text)
    listed = await stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=1000, include_payload=True),
                                            metadata=usage.admin)
    assert len(rows) == len(listed.events) == usage.events
    for row, event in zip(rows, listed.events, strict=True):
        assert row["event_id"] == event.event_id and row["request_raw"] == event.request_raw  # commas, quotes, lines
        assert "\n" in row["request_raw"] and '"' in row["request_raw"]
        assert json.loads(row["labels"]) == dict(event.labels) and json.loads(row["counters"]) == dict(event.counters)
        assert int(row["input_tokens"]) == event.input_tokens and row["active"] == "true"
        assert row["input_cost"] == (event.input_cost if event.HasField("input_cost") else "")
    without = read_csv((await http.get("/v1/events:export", params={"models": "gpt-4o"},
                                       headers=headers(usage.admin_key))).text)
    assert "request_raw" not in without[0] and {r["model"] for r in without} == {"gpt-4o"}
    assert len(without) == usage.events // 3


async def test_a_member_exports_only_its_own_usage_and_another_org_nothing(http, usage, new_org):
    events = read_csv((await http.get("/v1/events:export", headers=headers(usage.member_key))).text)
    assert {r["user_id"] for r in events} == {usage.member_id} and len(events) == usage.events // 3
    rows = read_csv((await http.get("/v1/usage:export", params={**RANGE, "width": "all", "group_by": "user_id"},
                                    headers=headers(usage.member_key))).text)
    assert [(r["user_id"], r["events"]) for r in rows] == [(usage.member_id, str(usage.events // 3))]
    stranger = await new_org()
    rows = read_csv((await http.get("/v1/usage:export", params={**RANGE, "width": "all"},
                                    headers=headers(stranger.admin_key))).text)
    assert [r["events"] for r in rows] == ["0"]  # the range's one bucket, empty
    assert read_csv((await http.get("/v1/events:export", headers=headers(stranger.admin_key))).text) == []


@pytest.mark.parametrize(("path", "params", "status", "field"), [
    ("/v1/usage:export", {"start_time": "2024-03-09T00:00:00Z", "width": "2d"}, 400, "width"),
    ("/v1/usage:export", {"width": "1d"}, 400, "start_time"),
    ("/v1/usage:export", {**RANGE, "format": "xml"}, 400, "format"),
    ("/v1/usage:export", {**RANGE, "filter.": "x"}, 400, "filter."),
    ("/v1/usage:export", {**RANGE, "known_etags": "e"}, 400, "known_etags"),
    ("/v1/events:export", {"page_token": "nope"}, 400, "page_token"),
    ("/v1/events:export", {"start_time": "yesterday"}, 400, "start_time"),
])
async def test_errors_before_the_body_are_native_errors(http, usage, path, params, status, field):
    reply = await http.get(path, params=params, headers=headers(usage.admin_key))
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0] and body["message"].startswith(field), body
    assert any(v["field"] == field for d in body["details"] for v in d.get("field_violations", ())), body


async def test_no_credentials_is_401(http):
    reply = await http.get("/v1/events:export")
    assert reply.status_code == 401 and reply.json()["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]


async def test_a_failure_mid_stream_ends_ndjson_with_an_error_line_and_cuts_csv(live_gateway, db, new_org):
    org = await new_org()
    await bulk_events(db, org.organization_id, 10, DAY, dt.timedelta(hours=5))
    # two events of 2^62 input tokens on the third day: its bucket sums beyond int64 (OUT_OF_RANGE)
    await bulk_events(db, org.organization_id, 2, DAY + dt.timedelta(days=2), dt.timedelta(hours=1),
                      input_tokens="4611686018427387904")
    params = {**RANGE, "width": "1d", "page_size": "1"}
    async with httpx.AsyncClient(base_url=live_gateway, headers=headers(org.admin_key)) as client:
        reply = await client.get("/v1/usage:export", params={**params, "format": "ndjson"})
        assert reply.status_code == 200
        *rows, last = [json.loads(line) for line in reply.text.splitlines()]
        assert [r["events"] for r in rows] == [0, 10, 0]  # the buckets before the failing one
        assert last["error"]["code"] == grpc.StatusCode.OUT_OF_RANGE.value[0], last
        assert last["error"]["message"].startswith("input_tokens"), last
        async with client.stream("GET", "/v1/usage:export", params=params) as stream:
            assert stream.status_code == 200
            received = b""
            with pytest.raises(httpx.RemoteProtocolError):  # the body never ends as a complete one
                async for part in stream.aiter_bytes():
                    received += part
        assert received.decode().count("\r\n") == 4  # the header and the three rows before the failure


async def test_a_million_events_export_in_flat_memory():
    """A million events exported as CSV through the gateway over HTTP, read as they come: the rows
    and sums are QueryUsage's, and neither the server nor the gateway grows while the export
    streams. They run as processes of their own (the exporting side, sampled from here; the work
    spreads over the cores) on a database of its own, dropped afterwards, so no other test scans or
    rolls up these events."""
    count, start, span = 1_000_000, dt.datetime(2024, 5, 1, tzinfo=dt.UTC), dt.timedelta(days=10)
    began, cpu = time.perf_counter(), time.process_time()
    async with services.own_database() as dsn, replicas.cluster(dsn, services.redis_url(), MASTER_KEY, replicas=1,
                                                       workers=False) as stack, \
            replicas.tenant(stack.target, MASTER_KEY) as org:
        ready, loaded = time.perf_counter() - began, time.perf_counter()
        async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
            await bulk_events(pool, org.organization_id, count, start, span)
        loaded = time.perf_counter() - loaded
        exporting = {"server": stack.servers[0], "gateway": stack.gateways[0]}
        cpu_before = {name: psutil.Process(p.pid).cpu_times() for name, p in exporting.items()}
        rows, tokens, cost = 0, 0, decimal.Decimal(0)
        took = time.perf_counter()
        with RssSampler({name: p.pid for name, p in exporting.items()}) as sampler:
            async with httpx.AsyncClient(base_url=stack.http_urls[0], timeout=120) as client, client.stream(
                    "GET", "/v1/events:export", headers=headers(org.key)) as reply:
                assert reply.status_code == 200
                lines = reply.aiter_lines()
                header = next(csv.reader([await anext(lines)]))
                token_at, cost_at = header.index("input_tokens"), header.index("cost")
                async for line in lines:
                    if not line:
                        continue
                    cells = line.split(",")  # no field of these events needs quoting
                    rows += 1
                    tokens += int(cells[token_at])
                    cost += decimal.Decimal(cells[cost_at])
                    if rows == count // 10:
                        sampler.mark()
        took = time.perf_counter() - took
        used = {name: sum(psutil.Process(p.pid).cpu_times()[:2]) - sum(cpu_before[name][:2])
                for name, p in exporting.items()}
        reply = await query_pb2_grpc.QueryServiceStub(org.channel).QueryUsage(query_pb2.QueryUsageRequest(
            start_time=at(start), end_time=at(start + span), width="all"), metadata=org.auth)
        [group] = reply.buckets[0].groups
        assert (rows, tokens, cost) == (group.metrics.events, group.metrics.input_tokens,
                                        decimal.Decimal(group.metrics.cost)) and rows == count
        growth = {name: max(s[sampler.marked:]) - s[sampler.marked] for name, s in sampler.samples.items()}
    print(f"\n{count:,} events: stack up in {ready:.1f} s, loaded in {loaded:.1f} s, exported as CSV in {took:.1f} s "
          f"({count / took:,.0f} rows/s; CPU: server {used['server']:.1f} s, gateway {used['gateway']:.1f} s); "
          f"{sampler.note()}; test {time.perf_counter() - began:.1f} s, {time.process_time() - cpu:.1f} s of CPU "
          "in this process")
    assert all(grew < 40 * 2**20 for grew in growth.values()), growth
