"""Slow clients cannot hold the gRPC server (server/runtime/app.py's options; the gateway's side is
tests/gateway/http/test_connections.py): over raw sockets to the test server, a connection that never
finishes its HTTP/2 handshake is closed, and the server announces its per-connection call limit."""

from __future__ import annotations

import asyncio
import struct

from server.runtime.app import MeteringServer

HANDSHAKE_TIMEOUT = 5.0  # grpc.server_handshake_timeout_ms
BOUND = 5.0  # seconds past it by which the connection must be closed
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, SETTINGS_MAX_CONCURRENT_STREAMS = 0x4, 0x3


def frame(kind: int, payload: bytes = b"", flags: int = 0, stream: int = 0) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    head = await reader.readexactly(9)
    length = int.from_bytes(head[:3], "big")
    return head[3], head[4], await reader.readexactly(length)


async def test_a_connection_that_never_finishes_its_handshake_is_closed(server: MeteringServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(PREFACE[:10])  # and never the rest
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT + BOUND):
            while await reader.read(65536):
                pass
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_the_server_announces_its_call_limit_per_connection(server: MeteringServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(PREFACE + frame(SETTINGS))
        async with asyncio.timeout(BOUND):
            kind, flags, payload = await read_frame(reader)
        assert kind == SETTINGS and not flags & 0x1  # the server's own settings, not an ACK
        settings = dict(struct.unpack(">HI", payload[i:i + 6]) for i in range(0, len(payload), 6))
        assert settings[SETTINGS_MAX_CONCURRENT_STREAMS] == 1000
    finally:
        writer.close()
