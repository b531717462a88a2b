"""A TCP proxy on loopback between a server under test and Postgres, which the test cuts.

What a network partition or a Postgres stop looks like to the server, without touching the
shared Postgres: `down()` drops every connection through the proxy and refuses new ones until
`up()`; `cut_on(pattern)` drops the one connection whose client bytes carry `pattern` (a
request id in a Bind or COPY message, `COMMIT`), before or after passing those bytes on, so a
test can cut a write at a chosen point.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import struct
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

CHUNK = 65536
# An ErrorResponse as Postgres sends it to a connection attempt during shutdown.
_SHUTTING_DOWN = b"".join(
    field + text + b"\0" for field, text in ((b"S", b"FATAL"), (b"V", b"FATAL"), (b"C", b"57P03"),
                                              (b"M", b"the database system is shutting down"))) + b"\0"
SHUTTING_DOWN_REPLY = b"E" + struct.pack("!I", len(_SHUTTING_DOWN) + 4) + _SHUTTING_DOWN


@dataclasses.dataclass
class _Trap:
    pattern: bytes
    how: Literal["drop", "deliver", "terminate"]
    sprung: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


@dataclasses.dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter

    def abort(self, *, graceful_upstream: bool = False) -> None:
        """Drop the link: the client sees its connection reset; Postgres a reset, or with
        graceful_upstream an end of stream after what it was sent (it still reads that)."""
        self.client.transport.abort()
        if graceful_upstream:
            self.upstream.close()
        else:
            self.upstream.transport.abort()


class PgProxy:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        parts = urlsplit(database_url)
        self._parts = parts
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.is_down = False
        self.shutting_down = False
        self.links: set[_Link] = set()
        self.accepted = 0
        self._traps: list[_Trap] = []

    async def start(self) -> PgProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    @property
    def dsn(self) -> str:
        """The database URL, through the proxy."""
        user = f"{self._parts.username}@" if self._parts.username else ""
        return urlunsplit(self._parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def down(self) -> None:
        """Drop every connection, and refuse new ones (accepted, then reset) until up()."""
        self.is_down = True
        for link in list(self.links):
            link.abort()
        self.links.clear()

    def freeze(self) -> None:
        """Stop passing bytes on the connections open now, without closing them (a network that
        silently drops everything); new connections work."""
        for link in self.links:
            for transport in (link.client.transport, link.upstream.transport):
                assert isinstance(transport, asyncio.ReadTransport)
                transport.pause_reading()

    def up(self) -> None:
        self.is_down = self.shutting_down = False

    async def shut_down(self) -> None:
        """A graceful stop: Postgres terminates every session through the proxy (each gets FATAL
        57P01), and refuses new connections with 57P03 until up()."""
        self.shutting_down = True
        await self._terminate(*self.links)

    def cut_on(self, pattern: bytes, *, deliver: bool = False) -> asyncio.Event:
        """Drop the first connection that sends `pattern` (one shot). deliver=False: those bytes
        never reach Postgres; True: they do, then Postgres sees the end of the stream (a COMMIT
        passed on this way commits, and its reply is lost). The event is set once it happened."""
        trap = _Trap(pattern, "deliver" if deliver else "drop")
        self._traps.append(trap)
        return trap.sprung

    def terminate_on(self, pattern: bytes) -> asyncio.Event:
        """Hold back the bytes of the first connection that sends `pattern` (one shot), have
        Postgres terminate that session (the client gets FATAL 57P01, then the end of the stream),
        then pass them on to the closed session. The event is set once it happened."""
        trap = _Trap(pattern, "terminate")
        self._traps.append(trap)
        return trap.sprung

    async def close(self) -> None:
        self.down()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.is_down:
            writer.transport.abort()
            return
        if self.shutting_down:
            await _refuse_startup(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self.links.add(link)
        try:
            await asyncio.gather(self._client_to_server(link, reader), self._pipe(up_reader, writer))
        finally:
            self.links.discard(link)
            link.abort()

    async def _client_to_server(self, link: _Link, reader: asyncio.StreamReader) -> None:
        tail = b""  # the end of the previous chunk: a pattern may straddle two reads
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                seen = tail + data
                trap = next((t for t in self._traps if t.pattern in seen), None)
                if trap is not None and trap.how == "terminate":
                    self._traps.remove(trap)
                    await self._terminate(link)
                    trap.sprung.set()
                elif trap is not None:
                    self._traps.remove(trap)
                    if trap.how == "deliver":
                        link.upstream.write(data)
                        await link.upstream.drain()
                    self.links.discard(link)
                    link.abort(graceful_upstream=trap.how == "deliver")
                    trap.sprung.set()
                    return
                link.upstream.write(data)
                await link.upstream.drain()
                longest = max((len(t.pattern) for t in self._traps), default=1)
                tail = seen[-(longest - 1):] if longest > 1 else b""
        link.upstream.close()

    async def _terminate(self, *links: _Link) -> None:
        """Postgres ends the sessions of `links` (found by the ports it sees the proxy connect from)."""
        ports = [link.upstream.get_extra_info("sockname")[1] for link in links]
        conn = await asyncpg.connect(self.database_url)
        try:
            await conn.execute("select pg_terminate_backend(pid, 5000) from pg_stat_activity "
                               "where client_port = any($1::int[]) and client_addr = '127.0.0.1'", ports)
        finally:
            await conn.close()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(CHUNK):
                dst.write(data)
                await dst.drain()
        dst.close()


async def _refuse_startup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers a connection attempt as Postgres does while shutting down: an SSL request gets
    "N" (no SSL), the startup message the 57P03 error, then the connection is closed."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while True:
            length = struct.unpack("!I", await reader.readexactly(4))[0]
            body = await reader.readexactly(length - 4)
            if body[:4] in (struct.pack("!I", 80877103), struct.pack("!I", 80877104)):  # SSL, GSS requests
                writer.write(b"N")
                continue
            writer.write(SHUTTING_DOWN_REPLY)
            await writer.drain()
            break
    writer.close()
