"""Query benchmark (issue 7): the OpenAI-dialect 31 x 1d usage query grouped by model
and project, over REST and gRPC, beside the raw GROUP BY over the events table.

Data, loading and reuse: bench/query_data.py.

Measured: p50/p95/p99 of sequential calls of the OpenAI query GET
/v1/organization/usage/completions?start_time=<day0>&bucket_width=1d&limit=31
&group_by=model&group_by=project_id through the gateway, and of the gRPC QueryUsage it
sends:
  (a) REST, the same caller asking again (a dashboard polling: the gateway revalidates the
      buckets it rendered by their etags, gateway/upstream/answer_cache.py), RUNS calls;
  (a') REST, the first call of each of COLD_RUNS new API keys of the organization (the
      server sends the buckets it kept, the gateway parses them and reuses renderings);
  (a'') as (a) while events are recorded in the last day before each GET (that bucket is
      read afresh, the 30 settled ones are revalidated);
  (b) gRPC, asked again without etags (the server sends the encoded buckets it kept,
      server/api/bucket_cache.py);
  (b') gRPC, COLD_RUNS queries the server has not answered before (a kind filter value
      that matches nothing is added: the same answer, read and encoded, as after a rollup);
  (b'') gRPC with if_none_match set to the first reply's etag (not_modified);
  (b*) gRPC, COLD_RUNS hourly queries not answered before: the last week of the range,
      168 x 1h by model (the OpenAI 1h width at its largest page), checked against (c)
      summed by UTC day and model;
  (c) BASELINE_RUNS of the raw GROUP BY by UTC day, model and project over events joined
      to series.
REST latency is to the last byte of the ~5 MB reply on a raw keep-alive HTTP/1.1
connection (httpx alone takes ~14 ms more to read it). (a), (a'), (b) and (b') are checked
against (c), group by group and counter by counter: the benchmark fails on any difference.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import grpc
from google.protobuf import timestamp_pb2

from bench.query_data import DAYS, MODELS, PROJECTS, database_state, load, mark_reusable, settle
from bench.stack import Stack
from bench.stats import latency_note, pct
from gateway.dialects.openai.usage import COMPLETIONS_METRICS
from metering.v1 import admin_pb2, admin_pb2_grpc, event_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc

RUNS = int(os.environ.get("METERING_BENCH_QUERY_RUNS", "50"))
COLD_RUNS = int(os.environ.get("METERING_BENCH_QUERY_COLD_RUNS", "10"))
LIVE_EVENTS = 100
BASELINE_RUNS = int(os.environ.get("METERING_BENCH_QUERY_BASELINE_RUNS", "5"))
# The metrics the OpenAI completions result carries, compared with the raw baseline.
METRICS = ("input_tokens", "output_tokens", "input_cached_tokens", "num_model_requests")

BASELINE_SQL = """
select date_trunc('day', e.ts, 'UTC') as day, s.model, s.project_id, count(*) as events,
       sum(e.input_tokens) as input_tokens, sum(e.output_tokens) as output_tokens,
       sum(e.input_cached_tokens) as input_cached_tokens, sum(e.num_model_requests) as num_model_requests,
       sum(e.cost) as cost
from events e
join series s on s.org_id = e.org_id and s.series_id = e.series_id
where e.org_id = $1 and e.ts >= $2 and e.ts < $3 and e.active and s.kind = 'completions'
group by 1, 2, 3
"""


def _rest_params(day0: dt.datetime) -> list[tuple[str, str]]:
    return [("start_time", str(int(day0.timestamp()))), ("bucket_width", "1d"), ("limit", str(DAYS)),
            ("group_by", "model"), ("group_by", "project_id")]


def _grpc_request(day0: dt.datetime) -> query_pb2.QueryUsageRequest:
    """What the gateway sends for the REST query (gateway/dialects/openai/usage.py)."""
    return query_pb2.QueryUsageRequest(
        start_time=timestamp_pb2.Timestamp(seconds=int(day0.timestamp())),
        end_time=timestamp_pb2.Timestamp(seconds=int(time.time()) + 1), width="1d", time_zone="UTC",
        filters=[query_pb2.Filter(field="kind", values=["completions"])], group_by=["model", "project_id"],
        page_size=DAYS, metrics=COMPLETIONS_METRICS,
    )


Groups = dict[tuple[int, str, str], dict[str, Any]]


async def measure_rest(http: str, keys: list[str], day0: dt.datetime, runs: int) -> tuple[list[float], Groups]:
    """`runs` calls per key after three warm-up calls (runs=0: one call per key, all measured);
    time to the last byte of the reply (see _get)."""
    latencies: list[float] = []
    body = b""
    url = urlsplit(http)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    query = urlencode(_rest_params(day0))
    try:
        for key in keys:
            warm_up = 3 if runs else 0
            for i in range(max(runs, 1) + warm_up):
                t = time.perf_counter()
                body = await _get(reader, writer, f"/v1/organization/usage/completions?{query}", url.netloc, key)
                if i >= warm_up:
                    latencies.append(time.perf_counter() - t)
    finally:
        writer.close()
    return latencies, _rest_groups(json.loads(body))


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, host: str, key: str) -> bytes:
    """One GET on a keep-alive HTTP/1.1 connection, read with asyncio streams: a ~5 MB reply
    takes httpx ~14 ms more to read than curl (9 ms in all), so httpx would measure itself."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"GET {path}: {head[:200]!r}")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if length is None:
        raise RuntimeError(f"GET {path}: no content-length")
    return await reader.readexactly(int(length.group(1)))


def _rest_groups(body: dict[str, Any]) -> Groups:
    assert len(body["data"]) == DAYS, len(body["data"])
    groups: Groups = {}
    for b in body["data"]:
        for r in b["results"]:
            groups[(b["start_time"], r["model"], r["project_id"])] = {m: r[m] for m in METRICS}
    return groups


async def _timed_queries(
    target: str, auth: Any, count: int,
    request: Callable[[int, query_pb2.QueryUsageResponse], query_pb2.QueryUsageRequest],
    warm_up: int = 0, seen: Callable[[int, query_pb2.QueryUsageResponse], None] = lambda i, reply: None,
) -> tuple[list[float], query_pb2.QueryUsageResponse, query_pb2.QueryUsageResponse]:
    """`warm_up` + `count` sequential QueryUsage calls, the i-th sending request(i, first reply)
    and shown to seen(i, reply); the latencies after the warm-up, the first and the last reply."""
    latencies: list[float] = []
    first = reply = query_pb2.QueryUsageResponse()
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        stub = query_pb2_grpc.QueryServiceStub(ch)
        for i in range(warm_up + count):
            message = request(i, first)
            t = time.perf_counter()
            reply = await stub.QueryUsage(message, metadata=auth)
            if i >= warm_up:
                latencies.append(time.perf_counter() - t)
            if not i:
                first = reply
            seen(i, reply)
    return latencies, first, reply


def _values(metrics: query_pb2.UsageMetrics) -> dict[str, Any]:
    """The metrics compared with the raw GROUP BY."""
    return {**{m: getattr(metrics, m) for m in METRICS}, "events": metrics.events}


def _unseen(request: query_pb2.QueryUsageRequest) -> query_pb2.QueryUsageRequest:
    """The same question the server has not answered before: a kind filter value no event has."""
    request.filters[0].values.append(f"bench-unseen-{time.time_ns()}")
    return request


async def measure_grpc(target: str, auth: Any, day0: dt.datetime, runs: int,
                       conditional: bool = False, unseen: bool = False) -> tuple[list[float], Groups]:
    """conditional: every call after the first sends the first reply's etag back (which
    must then be answered not_modified); the groups are the first reply's. unseen: every
    call is a query the server has not answered before, so it is read and encoded rather
    than sent as kept (server/api/bucket_cache.py)."""
    def request(i: int, first: query_pb2.QueryUsageResponse) -> query_pb2.QueryUsageRequest:
        message = _grpc_request(day0)
        if conditional and i:
            message.if_none_match = first.etag
        return _unseen(message) if unseen else message

    def seen(i: int, reply: query_pb2.QueryUsageResponse) -> None:
        if conditional and i:
            assert reply.not_modified, "the answer changed between two conditional calls"

    latencies, first, last = await _timed_queries(target, auth, runs, request, warm_up=3, seen=seen)
    reply = first if conditional else last
    assert len(reply.buckets) == DAYS, len(reply.buckets)
    return latencies, {(b.start_time.seconds, g.key["model"], g.key["project_id"]): _values(g.metrics)
                       for b in reply.buckets for g in b.groups}


async def measure_hourly(target: str, auth: Any, day0: dt.datetime, runs: int) -> tuple[list[float], Groups]:
    """The last week of the range in 1h buckets by model, `runs` queries the server has not
    answered before; the groups summed by (UTC day, model), to compare with the raw GROUP BY."""
    start, end = day0 + dt.timedelta(days=DAYS - 7), day0 + dt.timedelta(days=DAYS)

    def request(i: int, first: query_pb2.QueryUsageResponse) -> query_pb2.QueryUsageRequest:
        return _unseen(query_pb2.QueryUsageRequest(
            start_time=timestamp_pb2.Timestamp(seconds=int(start.timestamp())),
            end_time=timestamp_pb2.Timestamp(seconds=int(end.timestamp())), width="1h", time_zone="UTC",
            group_by=["model"], page_size=7 * 24, metrics=COMPLETIONS_METRICS,
            filters=[query_pb2.Filter(field="kind", values=["completions"])]))

    latencies, _, reply = await _timed_queries(target, auth, runs, request)
    assert len(reply.buckets) == 7 * 24 and not reply.next_page_token
    hours = {(b.start_time.seconds, g.key["model"], ""): _values(g.metrics) for b in reply.buckets for g in b.groups}
    return latencies, by_day_and_model(hours, start)


def by_day_and_model(groups: Groups, since: dt.datetime) -> Groups:
    """Groups (time, model, project) from `since` on, summed by (UTC day, model)."""
    out: Groups = {}
    for (at, model, _), values in groups.items():
        if at >= since.timestamp():
            summed = out.setdefault((at // 86400 * 86400, model, ""), dict.fromkeys((*METRICS, "events"), 0))
            for m in (*METRICS, "events"):
                summed[m] += values[m]
    return out


async def measure_baseline(dsn: str, day0: dt.datetime, runs: int) -> tuple[list[float], Groups]:
    latencies: list[float] = []
    rows: list[asyncpg.Record] = []
    conn = await asyncpg.connect(dsn)
    try:
        org = await conn.fetchval("select org_id from organizations where id = 'org_default'")
        for _ in range(runs):
            t = time.perf_counter()
            rows = await conn.fetch(BASELINE_SQL, org, day0, day0 + dt.timedelta(days=DAYS))
            latencies.append(time.perf_counter() - t)
    finally:
        await conn.close()
    groups: Groups = {}
    for r in rows:
        values: dict[str, Any] = {m: int(r[m]) for m in METRICS}
        values["events"] = r["events"]
        values["cost"] = r["cost"]
        groups[(int(r["day"].timestamp()), r["model"], r["project_id"])] = values
    return latencies, groups


def check_exact(name: str, got: Groups, expected: Groups) -> None:
    if got.keys() != expected.keys():
        raise AssertionError(f"{name}: groups differ from the raw GROUP BY: "
                             f"{len(got.keys() - expected.keys())} extra, {len(expected.keys() - got.keys())} missing")
    for key, values in got.items():
        for metric, value in values.items():
            if value != expected[key][metric]:
                raise AssertionError(f"{name}: {key} {metric} = {value}, raw GROUP BY says {expected[key][metric]}")


async def run(st: Stack, events: int) -> list[tuple[str, str, str]]:
    """Rows (benchmark, result, notes) for the table of `python -m bench`."""
    reuse = os.environ.get("METERING_BENCH_QUERY_DSN")
    if not reuse:
        return await _bench(st, events, reuse=False)
    if st.dsn != reuse:
        raise RuntimeError("run the stack on METERING_BENCH_QUERY_DSN: stack(database=...)")
    state = await database_state(reuse)
    if state is None or state[0] != events:
        conn = await asyncpg.connect(reuse)
        try:
            if await conn.fetchval("select exists (select 1 from events)"):
                raise RuntimeError(f"METERING_BENCH_QUERY_DSN holds other data (not {events:,} bench events); "
                                   "drop it or name another database")
        finally:
            await conn.close()
    return await _bench(st, events, reuse=state is not None and state[0] == events, day0=state and state[1])


async def _bench(st: Stack, events: int, *, reuse: bool, day0: dt.datetime | None = None) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if not reuse:
        day0, loaded = await load(st.dsn, events)
        if os.environ.get("METERING_BENCH_QUERY_DSN"):
            await mark_reusable(st.dsn, events, day0)  # settle below resumes if interrupted
        settled = await settle(st.dsn)
        rows.append((f"query: load {events:,} events (SQL) + rollups", f"{loaded + settled:,.0f} s",
                     f"load {loaded:.0f} s, rollups {settled:.0f} s"))
    else:
        settled = await settle(st.dsn)  # an interrupted earlier run may have left work
        rows.append((f"query: reused database of {events:,} events", "", f"settle {settled:.0f} s"))
    assert day0 is not None
    cold_keys = [await _new_key(st, f"bench-query-{i}") for i in range(COLD_RUNS)]
    rest, rest_groups = await measure_rest(st.http, [st.key], day0, RUNS)
    cold, cold_groups = await measure_rest(st.http, cold_keys, day0, 0)
    grpc_lat, grpc_groups = await measure_grpc(st.target, st.auth, day0, RUNS)
    unseen, unseen_groups = await measure_grpc(st.target, st.auth, day0, COLD_RUNS, unseen=True)
    cond_lat, _ = await measure_grpc(st.target, st.auth, day0, RUNS, conditional=True)
    hourly, hourly_groups = await measure_hourly(st.target, st.auth, day0, COLD_RUNS)
    raw, raw_groups = await measure_baseline(st.dsn, day0, BASELINE_RUNS)
    live = await measure_rest_live(st, day0, RUNS)  # last: it adds events
    check_exact("REST", rest_groups, raw_groups)
    check_exact("REST, first call", cold_groups, raw_groups)
    check_exact("gRPC", grpc_groups, raw_groups)
    check_exact("gRPC, unseen query", unseen_groups, raw_groups)
    check_exact("gRPC, hourly", hourly_groups, by_day_and_model(raw_groups, day0 + dt.timedelta(days=DAYS - 7)))
    n, base = len(raw_groups), pct(raw, .5)

    def row(name: str, latencies: list[float], note: str) -> None:
        rows.append((f"query: {name}", f"{pct(latencies, .5):.1f} ms", f"{latency_note(latencies)}; {note}"))

    def faster(latencies: list[float]) -> str:
        return f"{base / pct(latencies, .5):.0f}x faster than raw"

    row(f"REST OpenAI completions 31 x 1d by model+project ({n:,} results), asked again", rest,
        f"{RUNS} runs; exact; {faster(rest)}")
    row("REST, same query, first call of each of 10 other API keys", cold,
        f"{COLD_RUNS} callers; exact; {faster(cold)}")
    row("REST, same query again while its last day is being written", live,
        f"{RUNS} runs, each after {LIVE_EVENTS} more events in the last day")
    row("gRPC QueryUsage, same query again (buckets kept by the server)", grpc_lat, f"{RUNS} runs; exact")
    row("gRPC QueryUsage, a query not answered before (read, encoded)", unseen,
        f"{COLD_RUNS} runs; exact; {faster(unseen)}")
    row("gRPC QueryUsage, if_none_match (not modified)", cond_lat, f"{RUNS} runs")
    row("gRPC QueryUsage, 168 x 1h by model, a query not answered before", hourly,
        f"{COLD_RUNS} runs; exact (summed by day)")
    rows.append(("  baseline: raw GROUP BY over events (join series, by UTC day)", f"{base:.0f} ms",
                 f"{BASELINE_RUNS} runs"))
    return rows


async def measure_rest_live(st: Stack, day0: dt.datetime, runs: int) -> list[float]:
    """The dashboard case while usage comes in: before each GET, LIVE_EVENTS events are
    recorded (acknowledged) in the last day of the range, so that bucket is dirty and read
    afresh while the 30 settled ones are revalidated by their etags."""
    latencies: list[float] = []
    url = urlsplit(st.http)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    query = urlencode(_rest_params(day0))
    last = int((day0 + dt.timedelta(days=DAYS - 1, hours=12)).timestamp())
    try:
        async with grpc.aio.insecure_channel(st.target) as ch:
            ingest = ingest_pb2_grpc.IngestServiceStub(ch)
            for i in range(runs + 3):
                events = [event_pb2.UsageEvent(
                    request_id=f"live-{last}-{time.time_ns()}-{n}", kind="completions", model=f"model-{n % MODELS}",
                    project_id=f"proj-{n % PROJECTS}", user_id=f"user-{n}", input_tokens=n, output_tokens=1,
                    timestamp=timestamp_pb2.Timestamp(seconds=last + n)) for n in range(LIVE_EVENTS)]
                reply = await ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=st.auth)
                assert reply.recorded == LIVE_EVENTS, reply
                t = time.perf_counter()
                body = await _get(reader, writer, f"/v1/organization/usage/completions?{query}", url.netloc, st.key)
                if i >= 3:
                    latencies.append(time.perf_counter() - t)
    finally:
        writer.close()
    assert len(json.loads(body)["data"]) == DAYS
    return latencies


async def _new_key(st: Stack, name: str) -> str:
    """Another API key of the organization: a caller whose answers the gateway has not seen."""
    async with grpc.aio.insecure_channel(st.target) as ch:
        reply = await admin_pb2_grpc.AdminServiceStub(ch).CreateApiKey(
            admin_pb2.CreateApiKeyRequest(name=name), metadata=st.auth)
    return str(reply.key)


if __name__ == "__main__":  # python -m bench.sections.query [EVENTS]: this benchmark alone
    from bench.stack import stack

    async def _main(n: int) -> None:
        async with stack(database=os.environ.get("METERING_BENCH_QUERY_DSN")) as st:
            for name, value, note in await run(st, n):
                print(f"{name:<75} {value:>12}  {note}")

    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.sections.query", description="The query benchmark alone.")
    parser.add_argument("events", type=int, nargs="?", default=1_000_000, help="events in the data set")
    asyncio.run(_main(parser.parse_args().events))
