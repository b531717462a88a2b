"""Server CPU time per event of batched gRPC ingest (RecordEvents, 1,000 events a request).

    .venv/bin/python -m bench.ingest_cpu [--batches 200] [--connections 2] [--runs 3]

One server process (`python -m server serve`) on a fresh database (dropped after),
`--batches` batches of bench.ingest.make_events over `--connections` connections;
prints the server's CPU (user + sys, from /proc) per event, which depends far less
than events/s on what else the machine runs (still +-15% on a busy 2-core box: take
the median of several runs). `--profile-wait S`: print the server pid, wait S seconds
before sending (to attach py-spy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import time

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.cpu import cpu_seconds
from bench.ingest import make_events
from bench.stack import ADMIN_DSN, _with_database, channel, free_port
from metering.v1 import admin_pb2, admin_pb2_grpc, ingest_pb2, ingest_pb2_grpc


async def _ready(target: str, master: str) -> str:
    """Waits for the server to answer; returns a new admin key of the default organization."""
    async with grpc.aio.insecure_channel(target) as ch:
        for _ in range(300):  # up to a minute (migrations run first); then CreateApiKey fails
            with contextlib.suppress(grpc.aio.AioRpcError):
                await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                break
            await asyncio.sleep(0.2)
        reply: admin_pb2.CreateApiKeyResponse = await admin_pb2_grpc.AdminServiceStub(ch).CreateApiKey(
            admin_pb2.CreateApiKeyRequest(name="bench"), metadata=(("authorization", f"Bearer {master}"),))
    return reply.key


async def _send(target: str, key: str, requests: list[ingest_pb2.RecordEventsRequest], connections: int) -> None:
    auth = (("authorization", f"Bearer {key}"),)
    queue = list(reversed(requests))

    async def sender() -> None:
        async with channel(target) as ch:
            stub = ingest_pb2_grpc.IngestServiceStub(ch)
            while queue:
                reply = await stub.RecordEvents(queue.pop(), metadata=auth)
                assert reply.recorded == len(reply.results), (reply.recorded, reply.rejected)
    await asyncio.gather(*(sender() for _ in range(connections)))


async def run(batches: int, connections: int, profile_wait: float) -> tuple[float, float]:
    """One server, one fresh database; (server CPU µs per event, events/s)."""
    admin = await asyncpg.connect(ADMIN_DSN)
    name = "metering_cpu_" + secrets.token_hex(4)
    await admin.execute(f"create database {name}")
    port, master = free_port(), "bench-master-" + secrets.token_hex(16)
    env = {**os.environ, "METERING_DATABASE_URL": _with_database(ADMIN_DSN, name),
           "METERING_GRPC_ADDR": f"127.0.0.1:{port}", "METERING_MASTER_KEY": master,
           "METERING_LOG_LEVEL": "WARNING", "METERING_SERVER_PROCESSES": "1",
           "METERING_QUEUE_NAME": "metering:bench:" + name,
           "METERING_REDIS_URL": os.environ.get("METERING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")}
    server = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env)
    try:
        target = f"127.0.0.1:{port}"
        key = await _ready(target, master)
        events = make_events(batches * 1000, "c" + secrets.token_hex(3))
        requests = [ingest_pb2.RecordEventsRequest(events=events[i: i + 1000]) for i in range(0, len(events), 1000)]
        await _send(target, key, requests[:2], connections)  # warm up: caches, partitions, prepared statements
        if profile_wait:
            print(f"server pid {server.pid}", flush=True)
            await asyncio.sleep(profile_wait)
        cpu, started = cpu_seconds(server.pid), time.perf_counter()
        await _send(target, key, requests[2:], connections)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(server.pid) - cpu
        n = (len(requests) - 2) * 1000
        return cpu / n * 1e6, n / elapsed
    finally:
        server.terminate()
        server.wait(30)
        await admin.execute(f"drop database {name} with (force)")
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="fresh server and database each; prints the median")
    parser.add_argument("--profile-wait", type=float, default=0.0)
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        us, rate = asyncio.run(run(args.batches + 2, args.connections, args.profile_wait))
        results.append(us)
        print(f"server CPU {us:.1f} µs/event  {rate:,.0f} events/s", flush=True)
    if args.runs > 1:
        print(f"median server CPU {statistics.median(results):.1f} µs/event")


if __name__ == "__main__":
    main()
