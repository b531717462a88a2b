"""What a slow or idle client may hold of the gateway's HTTP server: read deadlines for a request's
headers and body, a cap on header bytes, and a cap on open connections.

uvicorn bounds only the idle time between the requests of a keep-alive connection
(`timeout_keep_alive`). A client that opens a connection and sends half a request line, headers
without the blank line that ends them, or a body shorter than its Content-Length, holds the
connection for ever; `limit_concurrency` answers 503 only once a request's headers are in, so it
frees none of those. `GuardedHttpToolsProtocol` is uvicorn's httptools protocol plus:

- header deadline: the request line and headers are complete `header_timeout` seconds after the
  connection opens or, on a keep-alive connection, after the request's first byte;
- body deadline: the body is complete `body_timeout` seconds after the headers;
- keep-alive: an idle connection closes after `keepalive_timeout` seconds (also when a response
  went out before its request's body was read, where uvicorn's own timer is not armed);
- header size: more than `max_header_bytes` of request line and headers is answered 431;
- connection cap: with `max_connections` open, a new connection closes the one that has waited
  longest on its client (reading a request, or idle between requests); when every connection has
  a request in the app, the new one is answered 503 and closed.

A request that misses a deadline after sending part of itself is answered 408, then closed. The
deadlines are enforced by one timer per server, every `tick` seconds, so a request costs a few
attribute writes rather than a timer of its own (and a deadline holds to within a tick).
"""

from __future__ import annotations

import dataclasses
import http
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)
LINGER = 1.0  # seconds a connection closed with an answer still reads (and drops) what its client sends


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = 10.0  # seconds
    body_timeout: float = 60.0
    keepalive_timeout: float = 5.0
    max_connections: int = 1000
    max_header_bytes: int = 64 * 1024

    @property
    def tick(self) -> float:
        """How often deadlines are checked: often enough for each to hold within a quarter of itself."""
        return min(1.0, self.header_timeout / 4, self.body_timeout / 4, self.keepalive_timeout / 4)


# Environment variable -> (HttpLimits field, largest value).
ENV: Mapping[str, tuple[str, float]] = {
    "METERING_HTTP_HEADER_TIMEOUT": ("header_timeout", 3600),
    "METERING_HTTP_BODY_TIMEOUT": ("body_timeout", 3600),
    "METERING_HTTP_KEEPALIVE_TIMEOUT": ("keepalive_timeout", 3600),
    "METERING_HTTP_MAX_CONNECTIONS": ("max_connections", 1_000_000),
}


def limits_from_env(environ: Mapping[str, str] = os.environ) -> HttpLimits:
    """HttpLimits from METERING_HTTP_* (unset or empty: the default). ValueError names a bad variable."""
    given: dict[str, Any] = {}
    for name, (field, largest) in ENV.items():
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = int(raw) if field == "max_connections" else float(raw)
        except ValueError:
            value = -1
        if not 0 < value <= largest:
            kind = "a whole number" if field == "max_connections" else "seconds"
            raise ValueError(f"{name} must be {kind} in (0, {largest:g}], got {raw!r}")
        given[field] = value
    return HttpLimits(**given)


# A connection's phase. Plain ints: they are compared a few times on every request.
HEADERS, BODY, APP, KEEPALIVE, CLOSED = range(5)
PHASES = ("reading a request's line and headers", "reading a request's body", "the app has a request",
          "idle between requests", "closed by the guard")


class Guard:
    """The connections of one server that wait on their client, oldest first (the order in which a
    full server closes them), and the timer that enforces their deadlines."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.waiting: dict[GuardedHttpToolsProtocol, None] = {}
        self._timer: Any = None  # asyncio.TimerHandle while any connection waits

    def wait(self, conn: GuardedHttpToolsProtocol) -> None:
        self.waiting[conn] = None
        if self._timer is None:
            self._timer = conn.loop.call_later(self.limits.tick, self._sweep, conn.loop)

    def drop(self, conn: GuardedHttpToolsProtocol) -> None:
        self.waiting.pop(conn, None)

    def _sweep(self, loop: Any) -> None:
        self._timer = None
        now = loop.time()
        for conn in [c for c in self.waiting if c.deadline <= now]:
            conn.timed_out()
        if self.waiting:
            self._timer = loop.call_later(self.limits.tick, self._sweep, loop)


class GuardedConfig(uvicorn.Config):
    """uvicorn's Config serving with GuardedHttpToolsProtocol under `limits`; one Guard per server."""

    def __init__(self, app: Any, *, limits: HttpLimits, **kwargs: Any) -> None:
        kwargs.setdefault("http", GuardedHttpToolsProtocol)
        super().__init__(app, timeout_keep_alive=max(1, math.ceil(limits.keepalive_timeout)),
                         h11_max_incomplete_event_size=limits.max_header_bytes, **kwargs)
        self.guard = Guard(limits)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection (see the module docstring). Served only by a GuardedConfig.

    A request read whole in one read (the usual case) costs a few int compares and assignments and
    two dict operations: the deadlines of the head and the body are set after a read that leaves
    them incomplete, and an idle keep-alive connection is closed by uvicorn's own timer."""

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: Any = None) -> None:
        if not isinstance(config, GuardedConfig):
            raise TypeError("GuardedHttpToolsProtocol needs a GuardedConfig")
        super().__init__(config, server_state, app_state, _loop)
        self.guard = config.guard
        self.limits = config.guard.limits
        self.waiting = config.guard.waiting
        self.max_head = config.guard.limits.max_header_bytes
        self.phase = HEADERS
        self.deadline = math.inf  # loop time by which the client must have done its part
        self.head_bytes = 0  # bytes received while reading the current request's line and headers

    # -- the connection ------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            oldest = next(iter(self.guard.waiting), None)
            if oldest is None:  # every connection has a request in the app: no room
                log.debug("connection refused: %d connections open", len(self.connections))
                transport.write(_plain_response(http.HTTPStatus.SERVICE_UNAVAILABLE, retry_after=1))
                self._close(http.HTTPStatus.SERVICE_UNAVAILABLE)
                return
            log.debug("connection closed to make room (it was %s)", PHASES[oldest.phase])
            oldest._close(http.HTTPStatus.SERVICE_UNAVAILABLE)
        self.deadline = self.loop.time() + self.limits.header_timeout
        self.guard.wait(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.drop(self)
        self.phase = CLOSED
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == KEEPALIVE:  # the first bytes of the next request
            self.phase = phase = HEADERS
            self.deadline = math.inf
        if phase == HEADERS:
            self.head_bytes += len(data)
        elif phase == CLOSED:
            return  # a lingering close: dropped
        super().data_received(data)
        phase = self.phase
        if phase == HEADERS:
            if self.head_bytes > self.max_head:
                self._close(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            elif self.deadline == math.inf:
                self.deadline = self.loop.time() + self.limits.header_timeout
        elif phase == BODY and self.deadline == math.inf:
            self.deadline = self.loop.time() + self.limits.body_timeout

    def timed_out(self) -> None:
        """Called by the Guard once the deadline has passed."""
        log.debug("connection closed: deadline passed while %s", PHASES[self.phase])
        self._close(http.HTTPStatus.REQUEST_TIMEOUT)

    # -- httptools parser callbacks ------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if self.head_bytes > self.max_head and self._head_size() > self.max_head:
            app, self.app = self.app, _headers_too_large  # complete but too large, all in one read
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        if self.phase == HEADERS:
            self.phase = BODY
            self.head_bytes = 0
            self.deadline = math.inf

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.phase != BODY:
            return
        if self.cycle.response_complete:  # answered before its body was read: uvicorn armed no timer
            self.phase = KEEPALIVE
            self.deadline = self.loop.time() + self.limits.keepalive_timeout
        else:
            self.phase = APP
            self.waiting.pop(self, None)  # the server's turn

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.phase == APP and self.timeout_keep_alive_task is not None:  # idle now (no pipelined request)
            self.phase = KEEPALIVE
            self.deadline = math.inf  # uvicorn's keep-alive timer closes it
            self.guard.wait(self)

    # -- helpers -------------------------------------------------------------------------------

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _close(self, status: http.HTTPStatus) -> None:
        """Closes the connection, first answering `status` to a request the client has begun to send
        and no response has begun to answer (never to an idle connection)."""
        cycle: Any = self.cycle
        pending = (self.phase == HEADERS and self.head_bytes > 0) or (
            self.phase == BODY and cycle is not None and not cycle.response_started)
        self.guard.drop(self)
        self.connections.discard(self)  # counted out now: a burst of new connections evicts one each
        self.phase = CLOSED
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() says http.disconnect, its send() is dropped
            cycle.message_event.set()
        if pending and not self.transport.is_closing() and self.transport.can_write_eof():
            # Lingering close: the answer and a FIN now, the socket closed a moment later. Closed at
            # once, a socket with unread input sends RST, and the client may never see the answer.
            self.transport.write(_plain_response(status))
            self.transport.write_eof()
            self.transport.resume_reading()  # what still arrives is read and dropped (phase CLOSED)
            self.loop.call_later(LINGER, self.transport.close)
            return
        self.transport.close()


def _plain_response(status: http.HTTPStatus, retry_after: int | None = None) -> bytes:
    body = status.phrase.encode()
    extra = f"retry-after: {retry_after}\r\n" if retry_after is not None else ""
    return (f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\n{extra}connection: close\r\n\r\n").encode() + body


async def _headers_too_large(scope: Any, receive: Any, send: Any) -> None:
    status = http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    body = status.phrase.encode()
    await send({"type": "http.response.start", "status": status.value, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
