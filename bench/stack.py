"""A throwaway stack for benchmarks: a fresh database, a server, a gateway and a worker process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metering.v1 import admin_pb2, admin_pb2_grpc

ADMIN_DSN = os.environ.get("METERING_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """Peak RSS of a process and its children (a multi-process server is a supervisor plus servers)."""
    total = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{pid}/children") as f:
        total += sum(peak_rss_mb(int(child)) for child in f.read().split())
    return total


def channel(target: str) -> grpc.aio.Channel:
    """A channel with a connection of its own (grpc shares connections between
    channels by default), so several channels spread over server processes."""
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


@dataclass
class Stack:
    dsn: str
    target: str  # gRPC host:port
    http: str  # gateway base URL, e.g. http://127.0.0.1:8123
    key: str
    server: subprocess.Popen[bytes]
    gateway: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def stack(pool_size: int = 10, server_processes: int = 1, database: str | None = None) -> AsyncIterator[Stack]:
    """database: the DSN of a database to run on and keep (created if missing, e.g. a
    loaded query data set); by default a fresh database, dropped afterwards."""
    admin = await asyncpg.connect(ADMIN_DSN)
    if database is None:
        name = "metering_bench_" + secrets.token_hex(4)
        await admin.execute(f"create database {name}")
        dsn = _with_database(ADMIN_DSN, name)
    else:
        dsn, name = database, database.rpartition("/")[2]
        if not await admin.fetchval("select 1 from pg_database where datname = $1", name):
            await admin.execute(f'create database "{name}"')
    port, http_port = free_port(), free_port()
    master = "bench-master-" + secrets.token_hex(16)
    env = {**os.environ, "METERING_DATABASE_URL": dsn, "METERING_GRPC_ADDR": f"127.0.0.1:{port}",
           "METERING_HTTP_ADDR": f"127.0.0.1:{http_port}",
           "METERING_MASTER_KEY": master, "METERING_LOG_LEVEL": "WARNING", "METERING_DB_POOL_SIZE": str(pool_size),
           "METERING_SERVER_PROCESSES": str(server_processes),
           # a queue of its own, so a bench never feeds (or is fed by) another worker on the same Redis
           "METERING_QUEUE_NAME": "metering:bench:" + name,
           "METERING_REDIS_URL": os.environ.get("METERING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")}
    server = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env)
    procs = [server]
    try:
        target = f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(target) as ch:
            deadline = time.monotonic() + 120  # migrations of a big existing database may run first
            while True:
                try:
                    await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                    break
                except grpc.aio.AioRpcError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            reply = await admin_pb2_grpc.AdminServiceStub(ch).CreateApiKey(
                admin_pb2.CreateApiKeyRequest(name="bench"), metadata=(("authorization", f"Bearer {master}"),)
            )
        gateway = subprocess.Popen([sys.executable, "-m", "gateway"], env=env)
        worker = subprocess.Popen([sys.executable, "-m", "worker"], env=env)
        procs += [gateway, worker]
        await wait_http(f"http://127.0.0.1:{http_port}")
        yield Stack(dsn=dsn, target=target, http=f"http://127.0.0.1:{http_port}", key=reply.key,
                    server=server, gateway=gateway, worker=worker)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        if database is None:
            await admin.execute(f"drop database {name} with (force)")
        await admin.close()


async def wait_http(base: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    deadline = time.monotonic() + 30
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
