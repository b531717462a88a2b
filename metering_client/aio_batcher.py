"""The asyncio client's delivery task: the same policy as batcher.py, on the event loop.

Journal writes and reads run in worker threads (they fsync). If the task is cancelled before
the client is closed (asyncio.run() ending with the client still open), everything not yet
acknowledged is written to the journal on the spot, synchronously, and delivered by the
interpreter-exit hook or the next client that starts with the same key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence

import grpc

from metering.v1 import event_pb2, ingest_pb2
from metering_client.delivery import (
    MAX_BATCH_BYTES,
    DeliveryOptions,
    Item,
    Ledger,
    backoff,
    chunked,
    is_retryable,
    item_result,
    journaled,
    too_large,
)
from metering_client.journal import Journal
from metering_client.results import ItemResult, Outcome

log = logging.getLogger(__name__)
AsyncSend = Callable[[Sequence[event_pb2.UsageEvent], float], Awaitable[ingest_pb2.RecordEventsResponse]]
AsyncItem = Item["asyncio.Future[ItemResult]"]
HOUSEKEEPING = 60.0


@dataclasses.dataclass
class _Marker:
    done: asyncio.Future[None]
    close: bool = False


class AsyncBatcher:
    def __init__(self, send: AsyncSend, journal: Journal, ledger: Ledger, options: DeliveryOptions) -> None:
        self._send = send
        self.journal = journal
        self.ledger = ledger
        self.options = options
        self._queue: asyncio.Queue[AsyncItem | _Marker] | None = None
        self._task: asyncio.Task[None] | None = None
        self._unacked: dict[int, AsyncItem] = {}
        self._wake: asyncio.Event | None = None
        self._deadline: float | None = None
        self._next_replay = 0.0
        self._probes = 0
        self._held: list[AsyncItem] = []
        self._closed = False

    def _start(self) -> asyncio.Queue[AsyncItem | _Marker]:
        if self._queue is None or self._task is None or self._task.done():
            if self._task is not None and self._task.done():
                raise RuntimeError("the metering delivery task has stopped")
            self._queue = asyncio.Queue(self.options.max_buffer)
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="metering-delivery")
        return self._queue

    # -- producer side ------------------------------------------------------------------------

    async def put(self, event: event_pb2.UsageEvent) -> asyncio.Future[ItemResult]:
        if self._closed:
            raise RuntimeError("the metering client is closed")
        queue = self._start()
        future: asyncio.Future[ItemResult] = asyncio.get_running_loop().create_future()
        size = event.ByteSize()
        item = Item(event, future, size)
        self._unacked[id(item)] = item
        if (refused := too_large(event, size)) is not None:
            self._resolve(item, refused)
        elif self.options.overflow == "spill" and queue.full():
            try:
                await asyncio.to_thread(self.journal.append, [event])
            except OSError:
                log.exception("metering: buffer full and journal unwritable; waiting for room")
                await queue.put(item)
            else:
                self._resolve(item, journaled(event))
                if self.ledger.connected:
                    self._next_replay = min(self._next_replay, time.monotonic())
        else:
            await queue.put(item)
        return future

    def buffered(self) -> int:
        return len(self._unacked)

    async def flush(self, timeout: float | None = None) -> bool:
        if self._task is None:
            return True
        marker = _Marker(asyncio.get_running_loop().create_future())
        self._next_replay = min(self._next_replay, time.monotonic())  # also push out spilled events
        await self._start().put(marker)
        assert self._task is not None
        await asyncio.wait({marker.done, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if marker.done.done():
            return True
        if self._task.done():
            raise RuntimeError("the metering delivery task has stopped; close() journals what is left")
        return False

    async def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if timeout is not None:
            self._deadline = time.monotonic() + timeout
        if self._task is None:  # never used: still replay a journal left by an earlier run
            self._task = asyncio.get_running_loop().create_task(self._final_replay())
            await self._task
            return
        if not self._task.done():
            assert self._queue is not None and self._wake is not None
            marker = _Marker(asyncio.get_running_loop().create_future(), close=True)
            await self._queue.put(marker)
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), None if timeout is None else timeout + 5.0)
            except TimeoutError:
                self._task.cancel()  # journals what is left
                await asyncio.gather(self._task, return_exceptions=True)
        self.journal_unacked()

    async def _final_replay(self) -> None:
        if self.journal.size() > 0:
            await self._replay()

    def journal_unacked(self) -> None:
        """Synchronously journal every accepted, unresolved event (cancellation, exit)."""
        items = [i for i in self._unacked.values() if not i.future.done()]
        self._unacked.clear()
        if not items:
            return
        try:
            self.journal.append([i.event for i in items])
        except OSError:
            log.critical("metering: %d event(s) lost: server unreachable and journal %s unwritable",
                         len(items), self.journal.path)
            return
        log.warning("metering: %d undelivered event(s) journaled to %s", len(items), self.journal.path)
        for item in items:
            self.ledger.count(journaled(item.event))
            if not item.future.get_loop().is_closed():
                item.future.set_result(journaled(item.event))

    # -- delivery task ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                batch, markers = await self._collect()
                closing = any(m.close for m in markers)
                try:
                    await self._deliver(batch, closing=closing)
                except Exception:  # a bug, not the network: keep the events, keep the task
                    log.exception("metering: delivery failed unexpectedly; journaling the batch")
                    await self._journal(batch)
                for marker in markers:
                    if not marker.done.done():
                        marker.done.set_result(None)
                if closing:
                    return
        except asyncio.CancelledError:
            self.journal_unacked()
            raise
        except BaseException:
            log.exception("metering: delivery task crashed; journaling what is left")
            self.journal_unacked()
            raise

    async def _collect(self) -> tuple[list[AsyncItem], list[_Marker]]:
        assert self._queue is not None
        items: list[AsyncItem] = list(self._held)
        self._held = []
        markers: list[_Marker] = []
        wait = None if math.isinf(self._next_replay) else max(0.0, self._next_replay - time.monotonic())
        if items:
            wait = 0.0
        try:
            first = await asyncio.wait_for(self._queue.get(), wait) if wait != 0.0 else self._queue.get_nowait()
        except (TimeoutError, asyncio.QueueEmpty):
            return items, markers
        (markers if isinstance(first, _Marker) else items).append(first)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.options.max_delay
        while len(items) < self.options.batch_size and not markers:
            remaining = deadline - time.monotonic()
            try:
                if self._queue.empty() and remaining > 0:
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                else:
                    nxt = self._queue.get_nowait()
            except (TimeoutError, asyncio.QueueEmpty):
                break
            (markers if isinstance(nxt, _Marker) else items).append(nxt)  # type: ignore[arg-type]
        return items, markers

    async def _deliver(self, batch: list[AsyncItem], *, closing: bool) -> None:
        if time.monotonic() >= self._next_replay or (closing and self.journal.size() > 0):
            await self._replay()
        if not batch:
            return
        if not self.ledger.connected:
            await self._journal(batch)
            return
        chunks = list(chunked(batch))
        for n, chunk in enumerate(chunks):
            if not await self._send_chunk(chunk):
                await self._journal([item for rest in chunks[n:] for item in rest])
                return

    def _limit(self, started: float, budget: float) -> float:
        limit = started + budget
        return limit if self._deadline is None else min(limit, self._deadline)

    def _timeout(self, limit: float) -> float:
        return max(0.05, min(self.options.attempt_timeout, limit - time.monotonic()))

    async def _send_chunk(self, chunk: list[AsyncItem]) -> bool:
        started = time.monotonic()
        attempt = 0
        events = [item.event for item in chunk]
        while True:
            limit = self._limit(started, self.options.retry_budget)
            try:
                response = await self._send(events, self._timeout(limit))
            except grpc.RpcError as error:
                if not is_retryable(error):
                    self.ledger.refused(error)
                    await self._journal(chunk)
                    return True
                delay = backoff(attempt, self.options)
                attempt += 1
                if time.monotonic() + delay >= limit:
                    self.ledger.unreachable(error, len(chunk))
                    self._schedule_probe()
                    return False
                assert self._wake is not None
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                self._wake.clear()
                continue
            if len(response.results) != len(chunk):
                log.error("metering: server answered %d results for %d events", len(response.results), len(chunk))
                await self._journal(chunk)
                return True
            self.ledger.reached()
            for item, result in zip(chunk, response.results, strict=True):
                self._resolve(item, item_result(result))
            return True

    def _schedule_probe(self) -> None:
        wait = min(self.options.max_backoff, self.options.reconnect_interval * 2 ** min(self._probes, 20))
        self._probes += 1
        self._next_replay = time.monotonic() + wait

    async def _journal(self, items: list[AsyncItem]) -> None:
        items = [item for item in items if not item.future.done()]
        if not items:
            return
        try:
            await asyncio.to_thread(self.journal.append, [item.event for item in items])
        except OSError:
            log.exception("metering: cannot write the journal %s", self.journal.path)
            if self._closed and self._deadline is not None and time.monotonic() >= self._deadline:
                for item in items:
                    self._resolve(item, ItemResult(item.event.request_id, Outcome.REJECTED, field="event",
                                                   reason="UNDELIVERABLE",
                                                   message="server unreachable and journal unwritable"))
            else:
                self._held.extend(items)
            return
        for item in items:
            self._resolve(item, journaled(item.event))
        if self.ledger.connected:
            self._schedule_probe()

    def _resolve(self, item: AsyncItem, result: ItemResult) -> None:
        if self._unacked.pop(id(item), None) is None:
            return
        self.ledger.count(result)
        if result.outcome is Outcome.REJECTED:
            self.ledger.reject(item.event, result)
        if not item.future.done():
            item.future.set_result(result)

    # -- journal replay -----------------------------------------------------------------------

    async def _replay(self) -> None:
        if self.journal.size() == 0:
            self._next_replay = math.inf
            self.ledger.assume_reachable()
            return
        with self.journal.lease() as mine:
            if not mine:
                self._next_replay = time.monotonic() + HOUSEKEEPING
                self.ledger.assume_reachable()
                return
            acked, kept, sent = 0, list[bytes](), False
            chunks = self.journal.chunks(await asyncio.to_thread(self.journal.snapshot), self.options.batch_size,
                                         MAX_BATCH_BYTES)
            try:
                while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                    results: Sequence[ingest_pb2.ItemResult] = []
                    if chunk.events:
                        budget = self.options.attempt_timeout
                        if not sent and not self.ledger.connected:  # a probe: do not hold up live events long
                            budget = min(budget, self.options.probe_timeout)
                        limit = self._limit(time.monotonic(), budget)
                        response = await self._send(chunk.events, self._timeout(limit))
                        sent = True
                        self.ledger.reached()
                        results = response.results
                    await asyncio.to_thread(self.ledger.replayed_chunk, chunk, results)
                    acked, kept = chunk.end, kept + chunk.kept
            except grpc.RpcError as error:
                if is_retryable(error):
                    self.ledger.unreachable(error, 0)
                else:
                    self.ledger.refused(error)
                self._schedule_probe()
                return
            except ValueError:
                log.exception("metering: journal replay stopped")
                self._schedule_probe()
                return
            finally:
                chunks.close()
                try:
                    await asyncio.to_thread(self.journal.drop_prefix, acked, kept)
                except OSError:
                    log.exception("metering: cannot trim the journal %s (lines will be sent again)", self.journal.path)
        if not sent:
            self.ledger.assume_reachable()
        self._probes = 0
        self._next_replay = math.inf if self.journal.size() == 0 else time.monotonic() + HOUSEKEEPING
