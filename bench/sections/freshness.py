"""Freshness under load: how soon an acknowledged event counts in queries while the server ingests.

Background: batched gRPC ingest (`RecordEvents`, 1,000 events a call, up to 4 calls in flight)
paced at `rate` events/s for `seconds`; the achieved rate is reported as measured (when the
server cannot keep up, calls queue and the rate falls short of the target).
Meanwhile a probe, again and again: records one marker event (`RecordEvent`, its own user_id, so
only it matches) and, once it is acknowledged, polls `QueryUsage` (the last 24 hours, one bucket,
filtered by that user_id) until the marker counts. The lag is from the acknowledgement to the
arrival of the first answer that counts it, so it includes that query's own latency: a lag about
one query long means the event was visible at the first poll.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import grpc
from google.protobuf import timestamp_pb2

from bench.ingest import make_events
from bench.stack import Stack, channel
from bench.stats import pct
from metering.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc

BATCH = 1000
IN_FLIGHT = 4
PROBE_PAUSE = 0.2  # seconds between probes: each query reads raw events, so the probe should measure, not add load
IDLE_SECONDS = 2.0
POLL_LIMIT = 30.0  # a marker not visible after this long fails the benchmark


async def _background(stubs: list[ingest_pb2_grpc.IngestServiceStub], st: Stack,
                      requests: list[ingest_pb2.RecordEventsRequest], rate: int) -> tuple[int, float]:
    """Sends request k at start + k * BATCH / rate (or as soon as a slot frees); (events acked, seconds)."""
    slots = asyncio.Semaphore(IN_FLIGHT)
    acked = 0

    async def one(stub: ingest_pb2_grpc.IngestServiceStub, request: ingest_pb2.RecordEventsRequest) -> None:
        nonlocal acked
        try:
            reply = await stub.RecordEvents(request, metadata=st.auth, timeout=60)
            assert reply.recorded == len(request.events), (reply.recorded, reply.rejected)
            acked += reply.recorded
        finally:
            slots.release()

    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = []
    for k, request in enumerate(requests):
        delay = started + k * BATCH / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        tasks.append(asyncio.create_task(one(stubs[k % len(stubs)], request)))
    await asyncio.gather(*tasks)
    return acked, loop.time() - started


async def _probe(channel: grpc.aio.Channel, st: Stack, tag: str, stop: asyncio.Event
                 ) -> tuple[list[float], int, list[float], int]:
    """(lags in s, probes visible at the first poll, query latencies in s, most dirty windows read raw)."""
    ingest = ingest_pb2_grpc.IngestServiceStub(channel)
    query = query_pb2_grpc.QueryServiceStub(channel)
    lags: list[float] = []
    queries: list[float] = []
    first_poll = 0
    raw_windows = 0
    i = 0
    while not stop.is_set():
        i += 1
        marker = f"{tag}-{i}"
        reply = await ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
            request_id=marker, kind="completions", model="probe", user_id=marker, input_tokens=1,
        )), metadata=st.auth, timeout=30)
        acked = time.perf_counter()
        assert reply.outcome == ingest_pb2.OUTCOME_RECORDED
        now = int(time.time())
        request = query_pb2.QueryUsageRequest(
            start_time=timestamp_pb2.Timestamp(seconds=now - 86_400),
            end_time=timestamp_pb2.Timestamp(seconds=now + 60),
            width="all", filters=[query_pb2.Filter(field="user_id", values=[marker])],
        )
        polls = 0
        while True:
            polls += 1
            sent = time.perf_counter()
            answer = await query.QueryUsage(request, metadata=st.auth, timeout=30)
            arrived = time.perf_counter()
            queries.append(arrived - sent)
            raw_windows = max(raw_windows, answer.freshness.raw_windows)
            if sum(g.metrics.events for b in answer.buckets for g in b.groups) >= 1:
                lags.append(arrived - acked)
                first_poll += polls == 1
                break
            assert arrived - acked < POLL_LIMIT, f"marker {marker} not visible after {POLL_LIMIT}s"
        await asyncio.sleep(PROBE_PAUSE)
    return lags, first_poll, queries, raw_windows


async def run(st: Stack, rate: int = 20_000, seconds: float = 20) -> list[tuple[str, str, str]]:
    tag = "fresh-" + secrets.token_hex(3)
    events = make_events(int(rate * seconds), tag)
    requests = [ingest_pb2.RecordEventsRequest(events=events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
    del events
    # Connections of their own (bench.stack.channel): the load is spread over the server
    # processes, and the probe's small calls never wait behind 1,000-event messages.
    load_channels = [channel(st.target) for _ in range(IN_FLIGHT)]
    stubs = [ingest_pb2_grpc.IngestServiceStub(ch) for ch in load_channels]
    async with channel(st.target) as probe_ch:
        stub = stubs[0]
        await stub.RecordEvents(ingest_pb2.RecordEventsRequest(events=make_events(10, tag + "w")), metadata=st.auth)
        idle_stop = asyncio.Event()
        idle_probe = asyncio.create_task(_probe(probe_ch, st, tag + "-idle", idle_stop))
        await asyncio.sleep(IDLE_SECONDS)  # the baseline: the same probe with no background ingest
        idle_stop.set()
        idle_lags, _, idle_queries, _ = await idle_probe
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe(probe_ch, st, tag + "-probe", stop))
        try:
            acked, elapsed = await _background(stubs, st, requests, rate)
        finally:
            stop.set()
            for ch in load_channels:
                await ch.close()
        lags, first_poll, queries, raw_windows = await probe
    achieved = acked / elapsed
    return [
        (f"freshness: background RecordEvents, {BATCH}/batch, paced at {rate:,}/s", f"{achieved:,.0f} events/s",
         f"{acked:,} events in {elapsed:.1f} s" + ("" if achieved >= 0.98 * rate else " (fell short of the target)")),
        ("  ack -> visible in QueryUsage (24 h, user_id filter), under that load",
         f"p50 {pct(lags, .5):.0f} ms", f"p99 {pct(lags, .99):.0f} ms, max {max(lags) * 1000:.0f} ms; "
         f"{len(lags)} probes, {first_poll} visible at the first poll; query p50 {pct(queries, .5):.0f} ms, "
         f"up to {raw_windows} dirty windows (read raw, or rollup + tail)"),
        ("  baseline: the same probe before the load", f"p50 {pct(idle_lags, .5):.0f} ms",
         f"p99 {pct(idle_lags, .99):.0f} ms; {len(idle_lags)} probes; query p50 {pct(idle_queries, .5):.0f} ms"),
    ]
