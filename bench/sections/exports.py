"""python -m bench --only exports: exports of many events and of a month's usage (docs/exports.md
"Cost"), each beside its baseline, and the memory of the server and the gateway while they stream.

Data: bench/query_data.py's data set (events spread over 31 days of the default organization,
every window dirty, then settled by the worker's rollup function). Measured, one after the other
on the same stack (one server process, the gateway, real sockets):

- GET /v1/events:export as CSV through the gateway, read as it comes; the RSS of the gateway and
  of the server sampled every 50 ms (growth: peak during the export minus RSS after its first
  tenth);
- ExportEvents over gRPC (no CSV, no HTTP);
- baseline: ListEvents paged by the client, 1,000 a page (the same keyset queries, one call each);
- floor: Postgres writing the same rows as CSV itself (COPY ... TO STDOUT, through asyncpg);
- GET /v1/usage:export of the month by hour and model as CSV, beside the QueryUsage pages of it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Awaitable, Callable

import asyncpg
import grpc
import httpx
import psutil
from google.protobuf import timestamp_pb2

from bench import query_data
from bench.stack import Stack
from metering.v1 import exports_pb2_grpc, query_pb2, query_pb2_grpc, records_pb2, records_pb2_grpc

Row = tuple[str, str, str]
_ROWS = """select e.event_id, e.request_id, e.ts, s.kind, s.project_id, s.user_id, s.api_key_id, s.model, s.status,
                 e.input_tokens, e.output_tokens, e.input_cached_tokens, e.cost
          from events e join series s on s.org_id = e.org_id and s.series_id = e.series_id
          order by e.ts desc, e.event_id desc"""


class RssSampler:
    """Peak RSS of some processes, sampled in a thread every 50 ms; `mark()` notes the sample count."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.marked = 0

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for name, proc in self.procs.items():
                self.samples[name].append(proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self) -> None:
        self.marked = min(len(s) for s in self.samples.values())

    def note(self) -> str:
        parts = []
        for name, samples in self.samples.items():
            after = samples[self.marked:] or samples[-1:]
            base = samples[min(self.marked, len(samples) - 1)]
            parts.append(f"{name} RSS {base / 2**20:.0f} MiB, +{(max(after) - base) / 2**20:.1f} MiB at peak")
        return "; ".join(parts)


async def _timed(run: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    started = time.perf_counter()
    rows = await run()
    return rows, time.perf_counter() - started


async def run(st: Stack, events: int) -> list[Row]:
    day0, loaded = await query_data.load(st.dsn, events)
    settled = await query_data.settle(st.dsn)
    headers = {"Authorization": f"Bearer {st.key}"}
    rows: list[Row] = [("exports: data set", f"{events:,} events", f"loaded in {loaded:.0f} s, settled in "
                        f"{settled:.0f} s (bench/query_data.py)")]
    sampler = RssSampler({"gateway": st.gateway.pid, "server": st.server.pid})

    async def rest_csv() -> int:
        count = 0
        async with httpx.AsyncClient(base_url=st.http, timeout=600, headers=headers) as client, client.stream(
                "GET", "/v1/events:export") as reply:
            reply.raise_for_status()
            async for chunk in reply.aiter_bytes():
                count += chunk.count(b"\n")  # no field of these rows holds a line break
                if count >= events // 10 and not sampler.marked:
                    sampler.mark()
        return count - 1  # the header

    with sampler:
        n_rest, t_rest = await _timed(rest_csv)
    assert n_rest == events, (n_rest, events)
    rows.append(("exports: GET /v1/events:export as CSV", f"{n_rest / t_rest:,.0f} rows/s",
                 f"{t_rest:.1f} s; {sampler.note()}"))

    async with grpc.aio.insecure_channel(st.target, options=[("grpc.max_receive_message_length", 16 << 20)]) as ch:
        export = exports_pb2_grpc.ExportServiceStub(ch)

        async def grpc_export() -> int:
            return sum([len(c.events) async for c in export.ExportEvents(records_pb2.ListEventsRequest(),
                                                                          metadata=st.auth)])

        async def paged() -> int:
            stub, count, token = records_pb2_grpc.RecordServiceStub(ch), 0, ""
            while True:
                page = await stub.ListEvents(records_pb2.ListEventsRequest(page_size=1000, page_token=token),
                                             metadata=st.auth)
                count += len(page.events)
                token = page.next_page_token
                if not token:
                    return count

        n_grpc, t_grpc = await _timed(grpc_export)
        n_paged, t_paged = await _timed(paged)
        rows.append(("exports: ExportEvents over gRPC", f"{n_grpc / t_grpc:,.0f} rows/s", f"{t_grpc:.1f} s"))
        rows.append(("  baseline: ListEvents paged by the client, 1,000 a page", f"{n_paged / t_paged:,.0f} rows/s",
                     f"the export is {t_paged / t_grpc:.2f}x its speed; the REST CSV {t_paged / t_rest:.2f}x"))

        async def copy() -> int:
            conn = await asyncpg.connect(st.dsn)
            try:
                counted = [0]

                async def sink(data: bytes) -> None:
                    counted[0] += data.count(b"\n")

                await conn.copy_from_query(_ROWS, output=sink, format="csv", header=True)
            finally:
                await conn.close()
            return counted[0] - 1

        n_copy, t_copy = await _timed(copy)
        rows.append(("  floor: Postgres COPY of the rows as CSV (fewer columns)", f"{n_copy / t_copy:,.0f} rows/s",
                     f"REST CSV is {t_copy / t_rest:.0%} of it"))

        start, end = day0, day0 + dt.timedelta(days=query_data.DAYS)
        params = {"start_time": start.isoformat(), "end_time": end.isoformat(), "width": "1h", "group_by": "model",
                  "page_size": "100"}

        async def usage_csv() -> int:
            async with httpx.AsyncClient(base_url=st.http, timeout=600, headers=headers) as client:
                reply = await client.get("/v1/usage:export", params=params)
                reply.raise_for_status()
                return reply.text.count("\r\n") - 1

        async def usage_pages() -> int:
            stub, count, token = query_pb2_grpc.QueryServiceStub(ch), 0, ""
            while True:
                page = await stub.QueryUsage(query_pb2.QueryUsageRequest(
                    start_time=_stamp(start), end_time=_stamp(end), width="1h", group_by=["model"], page_size=100,
                    page_token=token), metadata=st.auth)
                count += sum(max(1, len(b.groups)) for b in page.buckets)
                token = page.next_page_token
                if not token:
                    return count

        async def usage_grpc() -> int:
            request = query_pb2.QueryUsageRequest(start_time=_stamp(start), end_time=_stamp(end), width="1h",
                                                  group_by=["model"], page_size=100)
            return sum([sum(max(1, len(b.groups)) for b in c.buckets)
                        async for c in export.ExportUsage(request, metadata=st.auth)])

        await usage_pages()  # all read settled buckets the server keeps encoded: warm them alike
        n_usage, t_usage = await _timed(usage_csv)
        n_stream, t_stream = await _timed(usage_grpc)
        n_pages, t_pages = await _timed(usage_pages)
        assert n_usage == n_pages == n_stream, (n_usage, n_pages, n_stream)
        rows.append(("exports: GET /v1/usage:export, a month by hour and model", f"{t_usage * 1000:.0f} ms",
                     f"{n_usage:,} rows"))
        rows.append(("exports: ExportUsage over gRPC, the same", f"{t_stream * 1000:.0f} ms", ""))
        rows.append(("  baseline: the QueryUsage pages of it over gRPC", f"{t_pages * 1000:.0f} ms",
                     f"the CSV export takes {t_usage / t_pages:.1f}x"))
    return rows


def _stamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp
