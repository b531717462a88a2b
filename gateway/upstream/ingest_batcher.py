"""Coalescing single-event REST ingests into `RecordEvents` batches: group commit in the gateway.

A unary gRPC call costs the server ~0.9 ms of CPU in grpc.aio alone; a batched call costs a
fraction of that per event. So the REST routes that record one event (`POST /usage`) hand it to
an `IngestBatcher` instead of calling `RecordEvent`:

- Requests are grouped in *lanes*, one per set of caller credentials (the `authorization` and
  the other forwarded metadata, see `lane_key`): a batch only ever carries events of one caller,
  so the server authenticates, scopes, rate-limits and defaults each event exactly as it would
  have for the unary call. Requests of different callers are never mixed.
- Like the server's group commit: while fewer than `max_in_flight` calls of a lane are in flight,
  a request is sent at once (idle: no added latency); whatever queues meanwhile goes into the
  next call, up to `max_batch` events.
- Every request gets its own `ItemResult` (recorded / duplicate / rejected with its field and
  the code the unary call would have failed with). A failed call (unauthenticated, rate limited,
  server unavailable, deadline) fails each of its requests with that error.
- Deadlines stay per request: a request whose deadline passes while queued is dropped before it
  is sent (nothing written) and answered DEADLINE_EXCEEDED; a call's deadline is the latest of its
  requests', and a request whose own deadline passes while the call is in flight is answered
  DEADLINE_EXCEEDED at once (as a unary call would be: the event may still be recorded, and a
  retry with the same request_id is then a duplicate).

Trade-offs, accepted: the server logs the call under its first request's X-Request-Id (the
others are in this module's DEBUG line); and the rate limit (METERING_RATE_LIMIT) counts events
as before but refuses a call whole, so a burst over the limit is answered 429 for every request of
that call, where unary calls would have let the first few through.

Exactly-once is the server's: the request_id of each event is claimed in the same transaction
as its write, whether the event came alone or in a batch (two requests with the same request_id
in one batch: the second is the duplicate of the first).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2

from gateway.http.errors import GatewayError
from metering.v1 import event_pb2, ingest_pb2

log = logging.getLogger(__name__)
Metadata = tuple[tuple[str, str], ...]
# Sends one batch with the given metadata and timeout (seconds); raises GatewayError.
Send = Callable[[Metadata, float, Sequence[event_pb2.UsageEvent]], Awaitable[ingest_pb2.RecordEventsResponse]]
DEFAULT_MAX_BATCH = 1000  # events per call; far below the server's 10,000 and 16 MiB limits
# Calls per lane: one being written while the next one fills. 4 measured the same within noise
# (bench/sections/rest.py); 2 makes bigger batches, so less server CPU per event.
DEFAULT_MAX_IN_FLIGHT = 2
# Metadata that differs per HTTP request without changing who the caller is: not part of the lane.
PER_REQUEST_METADATA = frozenset({"x-request-id", "x-forwarded-for"})
ERROR_DOMAIN = "metering.v1"  # the server's ErrorInfo domain (server/api/interceptors.py)


def lane_key(metadata: Metadata) -> Metadata:
    """What decides which requests may share a call: every forwarded pair except the per-request
    ones (the request id and the client address), i.e. the credentials and the organization."""
    return tuple(sorted(pair for pair in metadata if pair[0] not in PER_REQUEST_METADATA))


def lane_digest(metadata: Metadata) -> bytes:
    """lane_key hashed: for caches keyed by who the caller is, which must never hold a secret."""
    return hashlib.sha256(repr(lane_key(metadata)).encode()).digest()


@dataclasses.dataclass(slots=True)
class _Item:
    event: event_pb2.UsageEvent
    metadata: Metadata
    deadline: float  # event-loop time
    future: asyncio.Future[ingest_pb2.ItemResult]


@dataclasses.dataclass(slots=True)
class _Lane:
    queue: deque[_Item] = dataclasses.field(default_factory=deque)
    in_flight: int = 0


@dataclasses.dataclass
class BatcherStats:
    """What the batcher did, for logs, benchmarks and tests."""

    calls: int = 0
    events: int = 0
    largest: int = 0
    expired: int = 0  # requests dropped before sending: deadline passed (or client gone) while queued


class IngestBatcher:
    def __init__(self, send: Send, *, max_batch: int = DEFAULT_MAX_BATCH,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        self._send = send
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._lanes: dict[Metadata, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = BatcherStats()

    async def submit(self, event: event_pb2.UsageEvent, metadata: Metadata, timeout: float) -> ingest_pb2.ItemResult:
        """Records `event` on behalf of the caller whose gRPC `metadata` this is; its own result.
        Raises GatewayError if the call carrying it failed or its deadline passed."""
        loop = asyncio.get_running_loop()
        key = lane_key(metadata)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        item = _Item(event, metadata, loop.time() + timeout, loop.create_future())
        lane.queue.append(item)
        if lane.in_flight < self.max_in_flight:
            # Started now, it runs on the next turn of the loop: a request arriving alone is sent at
            # once, and requests arriving in the same turn (a burst) already share its first call.
            lane.in_flight += 1
            task = loop.create_task(self._drain(key, lane), context=contextvars.Context())  # no one request's id
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        timer = loop.call_at(item.deadline, _expire, item.future)
        try:
            return await item.future
        finally:
            timer.cancel()
            if not item.future.done():  # the request was cancelled (client gone): not sent, if still queued
                item.future.cancel()

    async def _drain(self, key: Metadata, lane: _Lane) -> None:
        try:
            while lane.queue:
                batch = self._take(lane)
                if batch:
                    await self._call(batch)
        except asyncio.CancelledError:  # shutting down: nobody will send what is still queued
            while lane.queue:
                _fail(lane.queue.popleft().future, GatewayError(grpc.StatusCode.UNAVAILABLE, "gateway shutting down"))
            raise
        finally:
            lane.in_flight -= 1
            if lane.in_flight == 0 and not lane.queue and self._lanes.get(key) is lane:
                del self._lanes[key]

    def _take(self, lane: _Lane) -> list[_Item]:
        batch: list[_Item] = []
        while lane.queue and len(batch) < self.max_batch:
            item = lane.queue.popleft()
            if item.future.done():  # expired or cancelled while queued: never sent, nothing written
                self.stats.expired += 1
                continue
            batch.append(item)
        return batch

    async def _call(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        self.stats.calls += 1
        self.stats.events += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        timeout = max(item.deadline for item in batch) - loop.time()
        if log.isEnabledFor(logging.DEBUG):  # which HTTP requests one RecordEvents call carries, for tracing
            log.debug("RecordEvents with %d events for request ids %s", len(batch),
                      ",".join(dict(item.metadata).get("x-request-id", "-") for item in batch))
        try:
            # The batch's metadata: its first request's (same credentials as every other one; its
            # x-request-id names the call in the server's log).
            reply = await self._send(batch[0].metadata, max(timeout, 0.001), [item.event for item in batch])
            results = {result.index: result for result in reply.results}
            if sorted(results) != list(range(len(batch))):
                raise GatewayError(grpc.StatusCode.INTERNAL,
                                   f"server answered {len(reply.results)} results for {len(batch)} events")
        except GatewayError as err:
            for item in batch:
                _fail(item.future, _copy(err))
            return
        except asyncio.CancelledError:
            for item in batch:
                _fail(item.future, GatewayError(grpc.StatusCode.UNAVAILABLE, "gateway shutting down"))
            raise
        except Exception:  # a bug, not the server's answer: fail this batch, keep serving the next ones
            log.exception("RecordEvents batch of %d failed", len(batch))
            for item in batch:
                _fail(item.future, GatewayError(grpc.StatusCode.INTERNAL, "internal error"))
            return
        for i, item in enumerate(batch):
            if not item.future.done():
                item.future.set_result(results[i])


def rejected_error(result: ingest_pb2.ItemResult) -> GatewayError:
    """A rejected item as the error the unary RecordEvent would have failed with: its code (422 or
    403 in the REST dialects), message, ErrorInfo and, for bad input, the BadRequest naming the field
    (which the dialects turn into their own field names), built as server/api/interceptors.py does."""
    code = grpc.StatusCode.INVALID_ARGUMENT  # also for an item rejected without a code (0 would be OK)
    if result.code:
        code = _CODES.get(result.code, code)
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=result.reason, domain=ERROR_DOMAIN,
                                          metadata={"field": result.field} if result.field else {}))
    details = [info]
    if result.field and code == grpc.StatusCode.INVALID_ARGUMENT:
        bad = any_pb2.Any()
        prefix = result.field + ": "
        description = result.message[len(prefix):] if result.message.startswith(prefix) else result.message
        bad.Pack(error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(
            field=result.field, description=description, reason=result.reason)]))
        details.append(bad)
    return GatewayError(code, result.message, details)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _fail(future: asyncio.Future[ingest_pb2.ItemResult], err: GatewayError) -> None:
    if not future.done():  # else answered already: expired, or its request went away
        future.set_exception(err)


def _expire(future: asyncio.Future[ingest_pb2.ItemResult]) -> None:
    _fail(future, GatewayError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"))


def _copy(err: GatewayError) -> GatewayError:
    """One exception object per waiting request: a shared one would collect every raiser's traceback."""
    return GatewayError(err.code, err.message, err.details, http_status=err.http_status, headers=err.headers)
