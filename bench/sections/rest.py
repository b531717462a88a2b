"""REST ingest benchmark: seed 002's `POST /usage`, one event per request, through the gateway.

The load generator is deliberately lean, so that what is measured is the gateway and the server,
not the client: raw asyncio protocols over `concurrency` keep-alive HTTP/1.1 connections, every
request pre-built as bytes (each with its own Idempotency-Key, so retries would be exactly-once and
every request is a distinct event), responses parsed just enough to find their status and length.
httpx spends more CPU per request than the gateway does and would be the bottleneck.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import deque
from urllib.parse import urlsplit

import asyncpg

from bench.stack import Stack


def build_requests(host: str, key: str, tag: str, n: int) -> list[bytes]:
    requests = []
    for i in range(n):
        body = (f'{{"api_name": "bench_rest", "endpoint": "/chat/{i % 7}", "units_used": {i % 1000}, '
                f'"cost_usd": 0.00{i % 97:02d}, "api_key_used": "pk_bench_{i % 13}"}}').encode()
        requests.append(
            f"POST /usage HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nIdempotency-Key: {tag}-{i}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
    return requests


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends the next request when the previous response is complete."""

    def __init__(self, work: deque[bytes], latencies: list[float], failures: list[bytes], done: asyncio.Future[None]):
        self.work, self.latencies, self.failures, self.done = work, latencies, failures, done
        self.buffer = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._next()

    def _next(self) -> None:
        if not self.work:
            if not self.done.done():
                self.done.set_result(None)
            return
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.work.popleft())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            response, self.buffer = self.buffer[:total], self.buffer[total:]
            self.latencies.append(time.perf_counter() - self.sent_at)
            if not response.startswith(b"HTTP/1.1 200 "):
                self.failures.append(response)
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("the gateway closed the connection"))


async def drive(base_url: str, requests: list[bytes], concurrency: int) -> tuple[float, list[float], list[bytes]]:
    """Sends every request over `concurrency` connections; (requests/s, latencies in s, failed responses)."""
    url = urlsplit(base_url)
    loop = asyncio.get_running_loop()
    work = deque(requests)
    latencies: list[float] = []
    failures: list[bytes] = []
    dones = [loop.create_future() for _ in range(concurrency)]
    started = time.perf_counter()
    transports = []
    assert url.hostname is not None and url.port is not None, f"{base_url} names no host and port"
    for done in dones:
        transport, _ = await loop.create_connection(
            functools.partial(_Connection, work, latencies, failures, done), url.hostname, url.port)
        transports.append(transport)
    try:
        await asyncio.gather(*dones)
    finally:
        for transport in transports:
            transport.close()
    return len(requests) / (time.perf_counter() - started), latencies, failures


async def stored(dsn: str, tag: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("select count(*) from events where request_id like $1", tag + "-%"))
    finally:
        await conn.close()


async def post_usage(st: Stack, n: int, concurrency: int = 64) -> tuple[float, list[float]]:
    """`n` single-event `POST /usage` requests, `concurrency` at a time: (requests/s, latencies in s).
    Asserts every response is a 200 and exactly `n` events were stored."""
    tag = "rest-" + secrets.token_hex(4)
    url = urlsplit(st.http)
    requests = build_requests(f"{url.hostname}:{url.port}", st.key, tag, n)
    # Warm up: the gateway's channel, its identity cache and the server's caches (not measured or counted).
    await drive(st.http, build_requests(f"{url.hostname}:{url.port}", st.key, tag + "w", 200), 8)
    rate, latencies, failures = await drive(st.http, requests, concurrency)
    assert not failures, f"{len(failures)} failed, e.g. {failures[0][:500]!r}"
    count = await stored(st.dsn, tag)
    assert count == n, f"{count} events stored for {n} acknowledged requests"
    return rate, latencies
