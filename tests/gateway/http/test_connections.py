"""Slow clients cannot hold the gateway (gateway/http/connections.py): over real sockets to uvicorn on
loopback, half-sent requests are closed by their deadline, oversized heads get 431, and connections
beyond the cap close the longest-waiting one (or are refused when every one has a request in the app)
while a normal request still succeeds.

Deadlines are polled: a test waits for the gateway to close a connection at most BOUND seconds past
the deadline, and asserts nothing about timing below that."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from gateway.http.connections import ENV, GuardedConfig, GuardedHttpToolsProtocol, HttpLimits, limits_from_env
from server.runtime.app import MeteringServer
from tests.gateway.conftest import LoopbackServer, Tenant, serve_gateway

SHORT = HttpLimits(header_timeout=0.4, body_timeout=0.4, keepalive_timeout=0.4, max_connections=6,
                   max_header_bytes=8 * 1024)
BOUND = 5.0  # seconds past a deadline by which the connection must be closed


# --- settings ---------------------------------------------------------------------------------

def test_limits_from_env() -> None:
    assert limits_from_env({}) == HttpLimits()
    assert HttpLimits().tick == 1.0 and SHORT.tick == pytest.approx(0.1)
    given = limits_from_env({"METERING_HTTP_HEADER_TIMEOUT": "2.5", "METERING_HTTP_BODY_TIMEOUT": "30",
                             "METERING_HTTP_KEEPALIVE_TIMEOUT": "", "METERING_HTTP_MAX_CONNECTIONS": "50"})
    assert given == HttpLimits(header_timeout=2.5, body_timeout=30, max_connections=50)
    for name in ENV:
        for bad in ("0", "-1", "soon", "1e9", "nan"):
            with pytest.raises(ValueError, match=name):
                limits_from_env({name: bad})
    with pytest.raises(ValueError, match="METERING_HTTP_MAX_CONNECTIONS"):
        limits_from_env({"METERING_HTTP_MAX_CONNECTIONS": "2.5"})


# --- raw connections --------------------------------------------------------------------------

class Client:
    """A raw connection to the gateway that keeps everything it receives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = b""
        self.eof = False

    async def send(self, data: bytes) -> bool:
        """False if the gateway has closed the connection (the write failed)."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            return False
        return True

    async def is_open(self, wait: float = 0.05) -> bool:
        """Reads what arrives within `wait` s; False once the gateway has closed the connection."""
        if not self.eof:
            try:
                async with asyncio.timeout(wait):
                    chunk = await self.reader.read(65536)
                self.received += chunk
                self.eof = not chunk
            except TimeoutError:
                pass
            except ConnectionError:
                self.eof = True
        return not self.eof

    async def until_closed(self, bound: float) -> bytes:
        """All the gateway sent; fails if the connection is still open `bound` s from now."""
        try:
            async with asyncio.timeout(bound):
                while await self.is_open(bound):
                    pass
        except TimeoutError:
            raise AssertionError(f"connection still open after {bound} s; got {self.received[:200]!r}") from None
        finally:
            self.writer.close()
        return self.received

    async def drip(self, data: bytes, pause: float, piece: int = 1, bound: float = 2 * BOUND) -> int:
        """Sends `data` `piece` bytes at a time, `pause` s apart, until the gateway closes the
        connection (or for `bound` s at most); returns how many bytes went out."""
        sent = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound):
                while sent < len(data) and await self.is_open(pause) and await self.send(data[sent:sent + piece]):
                    sent += piece
        return sent


async def connect(base: str) -> Client:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return Client(*await asyncio.open_connection(host, int(port)))


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


@pytest.fixture
def errors_logged(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    caplog.set_level(logging.DEBUG)
    return lambda: [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.fixture(scope="module")
async def short_gateway(server: MeteringServer) -> AsyncIterator[str]:
    async with serve_gateway(server, SHORT) as url:
        yield url


# --- deadlines --------------------------------------------------------------------------------

async def test_a_connection_that_sends_nothing_is_closed(short_gateway: str) -> None:
    conn = await connect(short_gateway)
    assert await conn.until_closed(SHORT.header_timeout + BOUND) == b""


@pytest.mark.parametrize("part", [b"GET /openapi.js", b"GET /openapi.json HTTP/1.1\r\nHost: t\r\nAccept: */"])
async def test_headers_never_finished_are_closed_with_408(short_gateway: str, part: bytes) -> None:
    conn = await connect(short_gateway)
    assert await conn.send(part)
    assert status_of(await conn.until_closed(SHORT.header_timeout + BOUND)) == 408


async def test_a_dripping_head_is_closed_at_its_deadline(short_gateway: str) -> None:
    """A byte at a time, each well inside the deadline: the deadline is for the whole head."""
    conn = await connect(short_gateway)
    head = b"GET /openapi.json HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000
    assert await conn.drip(head, 0.02) < len(head)
    assert status_of(await conn.until_closed(BOUND)) == 408


async def test_a_body_never_finished_is_closed_with_408(
    short_gateway: str, new_tenant: Callable[[], Awaitable[Tenant]],
    errors_logged: Callable[[], list[logging.LogRecord]],
) -> None:
    tenant = await new_tenant()
    conn = await connect(short_gateway)
    body = b'{"api_name": "slow", "endpoint": "/x", "units_used": 1, "cost_usd": 0}'
    assert await conn.send(b"POST /usage HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                           + f"Authorization: Bearer {tenant.admin.key}\r\nContent-Length: {len(body)}\r\n\r\n"
                           .encode() + body[:20])
    assert status_of(await conn.until_closed(SHORT.body_timeout + BOUND)) == 408
    async with httpx.AsyncClient(base_url=short_gateway) as http:  # nothing was recorded
        assert (await http.get("/usage", headers=tenant.admin.headers)).json() == []
    assert errors_logged() == []  # the app saw the client go, and said nothing of it above DEBUG


async def test_keep_alive_connections_serve_then_close_when_idle(short_gateway: str) -> None:
    conn = await connect(short_gateway)
    for _ in range(3):  # each request well inside the keep-alive and header deadlines
        assert await conn.send(b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await conn.reader.readuntil(b"\r\n\r\n")
        assert status_of(head) == 200 and b"connection: close" not in head.lower()
        await conn.reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
    assert await conn.until_closed(SHORT.keepalive_timeout + BOUND) == b""


async def test_answered_before_its_body_then_dripping_is_still_closed(short_gateway: str) -> None:
    """A 404 goes out before the body is read; the rest of the body, dripped, holds nothing."""
    conn = await connect(short_gateway)
    assert await conn.send(b"POST /no/such/route HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
    assert await conn.drip(b"x" * 100000, 0.05) < 100000
    assert status_of(await conn.until_closed(BOUND)) == 404  # and nothing after it


# --- header size ------------------------------------------------------------------------------

@pytest.mark.parametrize("pieces", [1, 8], ids=["in-one-write", "in-pieces"])
async def test_oversized_heads_get_431(short_gateway: str, pieces: int) -> None:
    conn = await connect(short_gateway)
    head = b"GET /openapi.json HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (2 * SHORT.max_header_bytes) + b"\r\n\r\n"
    await conn.drip(head, 0, piece=len(head) // pieces + 1)
    assert status_of(await conn.until_closed(BOUND)) == 431


# --- the connection cap -----------------------------------------------------------------------

async def test_a_full_gateway_closes_the_longest_waiting_connection_for_a_new_one(server: MeteringServer) -> None:
    limits = HttpLimits(max_connections=4)
    async with serve_gateway(server, limits) as base:
        slow = []
        for _ in range(limits.max_connections):
            conn = await connect(base)
            assert await conn.send(b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n")  # and never the rest
            slow.append(conn)
        assert all([await c.is_open() for c in slow])
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/openapi.json")).status_code == 200  # a normal request still succeeds
        assert status_of(await slow[0].until_closed(BOUND)) == 503  # the oldest made room for it
        assert all([await c.is_open() for c in slow[1:]])
        for conn in slow[1:]:
            conn.writer.close()


@contextlib.asynccontextmanager
async def holding_app(limits: HttpLimits) -> AsyncIterator[tuple[str, asyncio.Event, list[int]]]:
    """uvicorn with the guard, around an app that holds every request until `release` is set: the
    state where each connection has a request in the app."""
    release, entered = asyncio.Event(), [0]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        entered[0] += 1
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    srv = LoopbackServer(GuardedConfig(app, limits=limits, host="127.0.0.1", port=0, log_config=None,
                                       access_log=False, lifespan="off"))
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}", release, entered
    finally:
        release.set()
        srv.should_exit = True
        await task


async def test_a_full_gateway_with_every_request_in_the_app_refuses_new_connections() -> None:
    limits = HttpLimits(max_connections=3)
    async with holding_app(limits) as (base, release, entered):
        busy = []
        for _ in range(limits.max_connections):
            conn = await connect(base)
            assert await conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            busy.append(conn)
        while entered[0] < limits.max_connections:
            await asyncio.sleep(0.01)
        refused = await (await connect(base)).until_closed(BOUND)
        assert status_of(refused) == 503 and b"retry-after: 1" in refused
        release.set()
        for conn in busy:
            assert status_of(await conn.reader.readuntil(b"\r\n\r\n")) == 200
            conn.writer.close()
        async with httpx.AsyncClient(base_url=base) as http:  # room again
            assert (await http.get("/")).status_code == 200


def test_the_protocol_needs_its_config() -> None:
    with pytest.raises(TypeError, match="GuardedConfig"):
        GuardedHttpToolsProtocol(uvicorn.Config("tests:app"), ServerState(), {})
