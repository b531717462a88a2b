"""The sync client's delivery thread: batch by size and time, retry, journal, replay.

One daemon thread per client drains a bounded queue. A batch goes out when it holds
`batch_size` events or its oldest event has waited `max_delay`, or at once on flush()/close().
A batch that fails with UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED or ABORTED is sent
again, same request_ids, with exponential backoff, for up to `retry_budget` seconds; then it goes
to the journal and the client is "offline": later batches go straight to the journal (no retry
storm, no blocked callers) while the journal's first chunk probes the server now and then. Once a
probe is acknowledged the journal is replayed oldest first and live batches flow again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence

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
Send = Callable[[Sequence[event_pb2.UsageEvent], float], ingest_pb2.RecordEventsResponse]
SyncItem = Item["concurrent.futures.Future[ItemResult]"]
HOUSEKEEPING = 60.0  # seconds between looks at a journal that only other processes or keys use


@dataclasses.dataclass
class _Marker:
    done: threading.Event
    close: bool = False


class Batcher:
    def __init__(self, send: Send, journal: Journal, ledger: Ledger, options: DeliveryOptions,
                 *, start: bool = True) -> None:
        self._send = send
        self.journal = journal
        self.ledger = ledger
        self.options = options
        self._queue: queue.Queue[SyncItem | _Marker] = queue.Queue(options.max_buffer)
        self._unacked: dict[int, SyncItem] = {}  # accepted, not yet resolved (insertion order = age)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._deadline: float | None = None  # set by close(): stop retrying past this time
        self._next_replay = 0.0  # replay a journal left by an earlier run at once
        self._probes = 0
        self._held: list[SyncItem] = []  # neither sent nor journaled (journal unwritable): retried
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="metering-delivery", daemon=True)
        if start:
            self._thread.start()

    # -- producer side ------------------------------------------------------------------------

    def put(self, event: event_pb2.UsageEvent) -> concurrent.futures.Future[ItemResult]:
        if self._closed:
            raise RuntimeError("the metering client is closed")
        future: concurrent.futures.Future[ItemResult] = concurrent.futures.Future()
        size = event.ByteSize()
        item = Item(event, future, size)
        with self._lock:
            self._unacked[id(item)] = item
        if (refused := too_large(event, size)) is not None:
            self._resolve(item, refused)
            return future
        if self.options.overflow == "spill":
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self._spill(item)
            return future
        while True:  # block, but notice a dead delivery thread instead of waiting forever
            try:
                self._queue.put(item, timeout=1.0)
                return future
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError("the metering delivery thread has stopped") from None

    def _spill(self, item: SyncItem) -> None:
        try:
            self.journal.append([item.event])
        except OSError:
            log.exception("metering: buffer full and journal unwritable; waiting for room")
            self._queue.put(item)
            return
        self._resolve(item, journaled(item.event))
        if self.ledger.connected:  # the server is fine, the buffer was just full: replay soon
            self._next_replay = min(self._next_replay, time.monotonic())

    def buffered(self) -> int:
        with self._lock:
            return len(self._unacked)

    def flush(self, timeout: float | None = None) -> bool:
        """True when everything put before this call is resolved (delivered, rejected or journaled)."""
        marker = _Marker(threading.Event())
        self._next_replay = min(self._next_replay, time.monotonic())  # also push out spilled events
        self._queue.put(marker)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not marker.done.wait(1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))):
            if not self._thread.is_alive():
                raise RuntimeError("the metering delivery thread has stopped; close() journals what is left")
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (journaling what cannot be delivered by `timeout`), then stop."""
        if self._closed:
            return
        self._closed = True
        if timeout is not None:
            self._deadline = time.monotonic() + timeout
        if self._thread.is_alive():
            self._queue.put(_Marker(threading.Event(), close=True))
            self._wake.set()
            self._thread.join(None if timeout is None else timeout + 5.0)
        leftover = self._take_unacked()
        if leftover:  # the thread died or overran its deadline: keep the events anyway
            log.error("metering: %d event(s) not delivered by close(); journaling them", len(leftover))
            self._journal(leftover)

    def _take_unacked(self) -> list[SyncItem]:
        with self._lock:
            items = list(self._unacked.values())
        return [i for i in items if not i.future.done()]

    # -- delivery thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch, markers = self._collect()
                closing = any(m.close for m in markers)
                try:
                    self._deliver(batch, closing=closing)
                except Exception:  # a bug, not the network: keep the events, keep the thread
                    log.exception("metering: delivery failed unexpectedly; journaling the batch")
                    self._journal(batch)
                for marker in markers:
                    marker.done.set()
                if closing:
                    return
        except BaseException:
            log.exception("metering: delivery thread crashed; close() journals what is left")
            raise

    def _collect(self) -> tuple[list[SyncItem], list[_Marker]]:
        items: list[SyncItem] = list(self._held)
        self._held = []
        markers: list[_Marker] = []
        wait = None if math.isinf(self._next_replay) else max(0.0, self._next_replay - time.monotonic())
        if items:
            wait = 0.0
        try:
            first = self._queue.get(timeout=wait)
        except queue.Empty:
            return items, markers
        (markers if isinstance(first, _Marker) else items).append(first)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.options.max_delay
        while len(items) < self.options.batch_size and not markers:
            remaining = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            (markers if isinstance(nxt, _Marker) else items).append(nxt)  # type: ignore[arg-type]
        return items, markers

    def _deliver(self, batch: list[SyncItem], *, closing: bool) -> None:
        now = time.monotonic()
        if now >= self._next_replay or (closing and self.journal.size() > 0):
            self._replay()
        if not batch:
            return
        if not self.ledger.connected:
            self._journal(batch)  # offline: the journal keeps them until a probe gets through
            return
        chunks = list(chunked(batch))
        for n, chunk in enumerate(chunks):
            if not self._send_chunk(chunk):
                self._journal([item for rest in chunks[n:] for item in rest])
                return

    def _limit(self, started: float, budget: float) -> float:
        limit = started + budget
        return limit if self._deadline is None else min(limit, self._deadline)

    def _timeout(self, limit: float) -> float:
        return max(0.05, min(self.options.attempt_timeout, limit - time.monotonic()))

    def _send_chunk(self, chunk: list[SyncItem]) -> bool:
        """Send one chunk, retrying; False when the server stayed unreachable (caller journals)."""
        started = time.monotonic()
        attempt = 0
        events = [item.event for item in chunk]
        while True:
            limit = self._limit(started, self.options.retry_budget)
            try:
                response = self._send(events, self._timeout(limit))
            except grpc.RpcError as error:
                if not is_retryable(error):
                    self.ledger.refused(error)
                    self._journal(chunk)
                    return True
                delay = backoff(attempt, self.options)
                attempt += 1
                if time.monotonic() + delay >= limit:
                    self.ledger.unreachable(error, len(chunk))
                    self._schedule_probe()
                    return False
                self._wake.wait(delay)
                self._wake.clear()
                continue
            if len(response.results) != len(chunk):
                log.error("metering: server answered %d results for %d events", len(response.results), len(chunk))
                self._journal(chunk)
                return True
            self.ledger.reached()
            for item, result in zip(chunk, response.results, strict=True):
                self._resolve(item, item_result(result))
            return True

    def _schedule_probe(self) -> None:
        wait = min(self.options.max_backoff, self.options.reconnect_interval * 2 ** min(self._probes, 20))
        self._probes += 1
        self._next_replay = time.monotonic() + wait

    def _journal(self, items: list[SyncItem]) -> None:
        items = [item for item in items if not item.future.done()]
        if not items:
            return
        try:
            self.journal.append([item.event for item in items])
        except OSError:
            log.exception("metering: cannot write the journal %s", self.journal.path)
            if self._closed and self._deadline is not None and time.monotonic() >= self._deadline:
                for item in items:  # nowhere left to keep them: say so, loudly
                    self._resolve(item, ItemResult(item.event.request_id, Outcome.REJECTED, field="event",
                                                   reason="UNDELIVERABLE",
                                                   message="server unreachable and journal unwritable"))
            else:
                self._held.extend(items)
            return
        for item in items:
            self._resolve(item, journaled(item.event))
        if self.ledger.connected:  # refused batches: probe again later rather than at once
            self._schedule_probe()

    def _resolve(self, item: SyncItem, result: ItemResult) -> None:
        with self._lock:
            if self._unacked.pop(id(item), None) is None:
                return  # already resolved (close() fallback raced the thread)
        self.ledger.count(result)
        if result.outcome is Outcome.REJECTED:
            self.ledger.reject(item.event, result)
        item.future.set_result(result)

    # -- journal replay -----------------------------------------------------------------------

    def replay_now(self, timeout: float) -> None:
        """Replay the journal from the calling thread (used at exit, where no thread may start)."""
        self._deadline = time.monotonic() + timeout
        self._replay()

    def _replay(self) -> None:
        if self.journal.size() == 0:
            self._next_replay = math.inf
            self.ledger.assume_reachable()
            return
        with self.journal.lease() as mine:
            if not mine:  # another process is replaying this journal
                self._next_replay = time.monotonic() + HOUSEKEEPING
                self.ledger.assume_reachable()
                return
            acked, kept, sent = 0, list[bytes](), False
            try:
                for chunk in self.journal.chunks(self.journal.snapshot(), self.options.batch_size, MAX_BATCH_BYTES):
                    if chunk.events:
                        budget = self.options.attempt_timeout
                        if not sent and not self.ledger.connected:  # a probe: do not hold up live events long
                            budget = min(budget, self.options.probe_timeout)
                        limit = self._limit(time.monotonic(), budget)
                        response = self._send(chunk.events, self._timeout(limit))
                        sent = True
                        self.ledger.reached()
                        self.ledger.replayed_chunk(chunk, response.results)
                    else:
                        self.ledger.replayed_chunk(chunk, [])
                    acked, kept = chunk.end, kept + chunk.kept
            except grpc.RpcError as error:
                if is_retryable(error):
                    self.ledger.unreachable(error, 0)
                else:
                    self.ledger.refused(error)
                self._schedule_probe()
                return
            except ValueError:  # results/events mismatch from a misbehaving server
                log.exception("metering: journal replay stopped")
                self._schedule_probe()
                return
            finally:
                try:
                    self.journal.drop_prefix(acked, kept)
                except OSError:
                    log.exception("metering: cannot trim the journal %s (lines will be sent again)", self.journal.path)
        if not sent:  # nothing of ours was left to probe with: let the next live batch find out
            self.ledger.assume_reachable()
        self._probes = 0
        self._next_replay = math.inf if self.journal.size() == 0 else time.monotonic() + HOUSEKEEPING
