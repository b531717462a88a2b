"""One client's delivery, written once: batch, send, retry, journal, replay, resolve each event.

A batch goes out when it holds `batch_size` events or its oldest event has waited `max_delay`, or at
once on flush()/close(). A batch that fails with a retryable status (delivery.RETRYABLE) is sent again,
same request_ids, with exponential backoff, for up to `retry_budget` seconds; then it goes to the
journal and the client is "offline": later batches go straight to the journal (no retry storm, no
blocked callers) while the journal's first chunk probes the server now and then. Once a probe is
acknowledged the journal is replayed oldest first and live batches flow again.

The policy is written as generators of steps: a step is something to wait for, which the generator
yields and the runner performs, setting its result on it or raising its error back into the generator
where the step was yielded:
    Send     one RecordEvents call                 -> .response
    Pause    a pause between retries, cut short by close()
    Blocking a call that may block on the disk      -> .result
    Take     the next entry of the batcher's queue  -> .entry (None when the wait ran out)
Batcher (batcher.py) performs them on its delivery thread; AsyncBatcher (aio_batcher.py) awaits them on
the event loop, blocking calls in a worker thread. Everything else happens here, once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

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
    undeliverable,
)
from metering_client.journal import Journal
from metering_client.results import ItemResult, Outcome

log = logging.getLogger(__name__)
HOUSEKEEPING = 60.0  # seconds between looks at a journal that only other processes or keys use
T = TypeVar("T")


class Pending(Protocol):
    """What the core asks of an event's future (concurrent.futures.Future or asyncio.Future)."""

    def done(self) -> bool: ...


F = TypeVar("F", bound=Pending)


def _unobserved() -> None:
    pass


@dataclasses.dataclass
class Marker:
    """A flush() or close() in the queue: `reached()` once every event queued before it is resolved."""

    reached: Callable[[], None] = _unobserved  # close() waits for the delivery to end instead
    close: bool = False


# -- steps ------------------------------------------------------------------------------------


class Send:
    def __init__(self, events: Sequence[event_pb2.UsageEvent], timeout: float) -> None:
        self.events = events
        self.timeout = timeout
        self.response: ingest_pb2.RecordEventsResponse


class Pause:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Blocking(Generic[T]):
    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call
        self.result: T

    def run(self) -> None:
        self.result = self.call()


class Take(Generic[F]):
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout  # None: wait as long as it takes; 0: only what is queued already
        self.entry: Item[F] | Marker | None = None


Step: TypeAlias = Send | Pause | Blocking[Any] | Take[Any]
Steps: TypeAlias = Generator[Step, None, T]  # a policy's steps, ending with its result


class BatchDelivery(Generic[F]):
    """The state and policy of one batcher: the events accepted and not yet resolved, those the journal
    could not take (retried), when to probe the server with the journal next, and the close() deadline.

    `settle(future, result)` hands a result to whoever waits for the event; it is called once per event
    and never for a future that is already done (cancelled by whoever holds it).
    """

    def __init__(self, journal: Journal, ledger: Ledger, options: DeliveryOptions,
                 settle: Callable[[F, ItemResult], None], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.journal = journal
        self.ledger = ledger
        self.options = options
        self.clock = clock
        self._settle = settle
        self._lock = threading.Lock()  # producers, the delivery thread and close() resolve concurrently
        self._unacked: dict[int, Item[F]] = {}  # accepted, not yet resolved (insertion order = age)
        self._held: list[Item[F]] = []  # neither sent nor journaled (journal unwritable): retried
        self.next_replay = 0.0  # replay a journal left by an earlier run at once
        self._probes = 0
        self.closed = False
        self.deadline: float | None = None  # set by close(timeout): stop retrying past this time

    # -- events in and out --------------------------------------------------------------------

    def accept(self, event: event_pb2.UsageEvent, future: F) -> Item[F] | None:
        """Track a new event until it is resolved; None if it can never be sent (resolved as rejected)."""
        item = Item(event, future, event.ByteSize())
        with self._lock:
            self._unacked[id(item)] = item
        if (refused := too_large(event, item.size)) is not None:
            self.resolve(item, refused)
            return None
        return item

    def resolve(self, item: Item[F], result: ItemResult) -> None:
        """Count and report the event's fate, and settle its future; only the first result counts."""
        with self._lock:
            if self._unacked.pop(id(item), None) is None:
                return
        self.ledger.count(result)
        if result.outcome is Outcome.REJECTED:
            self.ledger.reject(item.event, result)
        if not item.future.done():
            self._settle(item.future, result)

    def _unresolved(self, items: Sequence[Item[F]]) -> list[Item[F]]:
        with self._lock:
            return [item for item in items if self._unacked.get(id(item)) is item]

    def buffered(self) -> int:
        with self._lock:
            return len(self._unacked)

    def close_by(self, timeout: float | None) -> None:
        self.closed = True
        if timeout is not None:
            self.deadline = self.clock() + timeout

    # -- the delivery loop --------------------------------------------------------------------

    def run(self) -> Steps[None]:
        """Collect a batch, deliver it, tell the flush()/close() callers waiting on it; until close()."""
        while True:
            batch, markers = yield from self._collect()
            closing = any(marker.close for marker in markers)
            yield from self.deliver(batch, closing=closing)
            for marker in markers:
                marker.reached()
            if closing:
                return

    def _collect(self) -> Steps[tuple[list[Item[F]], list[Marker]]]:
        """Held events first; then queued ones, up to batch_size or max_delay after the first. A marker
        ends the batch. The wait for a first event ends when the journal is due for a replay."""
        items, self._held = self._held, []
        markers: list[Marker] = []
        take: Take[F] = Take(0.0 if items else self._until_replay())
        yield take
        deadline = self.clock() + self.options.max_delay
        while (entry := take.entry) is not None:
            if isinstance(entry, Marker):
                markers.append(entry)
            else:
                items.append(entry)
            if len(items) >= self.options.batch_size or markers:
                break
            take = Take(max(0.0, deadline - self.clock()))
            yield take
        return items, markers

    def deliver(self, batch: list[Item[F]], *, closing: bool) -> Steps[None]:
        try:
            if self.clock() >= self.next_replay or (closing and self.journal.size() > 0):
                yield from self.replay()
            if not batch:
                return
            if not self.ledger.connected:
                yield from self.to_journal(batch)  # offline: the journal keeps them until a probe gets through
                return
            chunks = list(chunked(batch))
            for n, chunk in enumerate(chunks):
                if not (yield from self._send_chunk(chunk)):
                    yield from self.to_journal([item for rest in chunks[n:] for item in rest])
                    return
        except Exception:  # a bug, not the network: keep the events, keep delivering
            log.exception("metering: delivery failed unexpectedly; journaling the batch")
            yield from self.to_journal(batch)

    def _limit(self, started: float, budget: float) -> float:
        limit = started + budget
        return limit if self.deadline is None else min(limit, self.deadline)

    def _timeout(self, limit: float) -> float:
        return max(0.05, min(self.options.attempt_timeout, limit - self.clock()))

    def _send_chunk(self, chunk: list[Item[F]]) -> Steps[bool]:
        """Send one chunk, retrying; False when the server stayed unreachable (the caller journals)."""
        started = self.clock()
        attempt = 0
        events = [item.event for item in chunk]
        while True:
            limit = self._limit(started, self.options.retry_budget)
            send = Send(events, self._timeout(limit))
            try:
                yield send
            except grpc.RpcError as error:
                if not is_retryable(error):
                    self.ledger.refused(error)
                    yield from self.to_journal(chunk)
                    return True
                delay = backoff(attempt, self.options)
                attempt += 1
                if self.clock() + delay >= limit:
                    self.ledger.unreachable(error, len(chunk))
                    self._schedule_probe()
                    return False
                yield Pause(delay)
                continue
            results = send.response.results
            if len(results) != len(chunk):
                log.error("metering: server answered %d results for %d events", len(results), len(chunk))
                yield from self.to_journal(chunk)
                return True
            self.ledger.reached()
            for item, result in zip(chunk, results, strict=True):
                self.resolve(item, item_result(result))
            return True

    # -- the journal --------------------------------------------------------------------------

    def to_journal(self, items: list[Item[F]]) -> Steps[None]:
        """Journal the unresolved ones; if the journal cannot take them, hold them for the next batch
        (or, once close()'s deadline has passed, resolve them as undeliverable)."""
        items = self._unresolved(items)
        if not items:
            return
        try:
            yield Blocking(functools.partial(self.journal.append, [item.event for item in items]))
        except OSError:
            log.exception("metering: cannot write the journal %s", self.journal.path)
            if self.closed and self.deadline is not None and self.clock() >= self.deadline:
                for item in items:  # nowhere left to keep them: say so, loudly
                    self.resolve(item, undeliverable(item.event))
            else:
                self._held.extend(items)
            return
        for item in items:
            self.resolve(item, journaled(item.event))
        if self.ledger.connected:  # refused batches: probe again later rather than at once
            self._schedule_probe()

    def spill(self, item: Item[F]) -> Steps[bool]:
        """Journal an event the full buffer has no room for; False if the journal cannot take it either."""
        try:
            yield Blocking(functools.partial(self.journal.append, [item.event]))
        except OSError:
            log.exception("metering: buffer full and journal unwritable; waiting for room")
            return False
        self.resolve(item, journaled(item.event))
        if self.ledger.connected:  # the server is fine, the buffer was just full: replay soon
            self.replay_soon()
        return True

    def journal_unacked(self) -> None:
        """Journal every unresolved event on the spot, synchronously (close() when delivery has stopped
        or overran, cancellation, interpreter exit); resolve them as undeliverable if even that fails."""
        with self._lock:
            items = list(self._unacked.values())
        if not items:
            return
        try:
            self.journal.append([item.event for item in items])
        except OSError:
            log.critical("metering: %d event(s) lost: server unreachable and journal %s unwritable",
                         len(items), self.journal.path)
            for item in items:
                self.resolve(item, undeliverable(item.event))
            return
        log.warning("metering: %d undelivered event(s) journaled to %s", len(items), self.journal.path)
        for item in items:
            self.resolve(item, journaled(item.event))

    # -- probing and replaying the journal ----------------------------------------------------

    def _until_replay(self) -> float | None:
        """Seconds until the journal is due for a replay (None: nothing to replay)."""
        return None if math.isinf(self.next_replay) else max(0.0, self.next_replay - self.clock())

    def replay_soon(self) -> None:
        self.next_replay = min(self.next_replay, self.clock())

    def _schedule_probe(self) -> None:
        wait = min(self.options.max_backoff, self.options.reconnect_interval * 2 ** min(self._probes, 20))
        self._probes += 1
        self.next_replay = self.clock() + wait

    def replay_left_over(self) -> Steps[None]:
        """close() of a client that never sent: still replay a journal left by an earlier run."""
        if self.journal.size() > 0:
            yield from self.replay()

    def replay(self) -> Steps[None]:
        """Send the journal oldest first, then trim what the server acknowledged. While offline, its first
        chunk is the probe: a short deadline, and a failure schedules the next probe."""
        if self.journal.size() == 0:
            self.next_replay = math.inf
            self.ledger.assume_reachable()
            return
        with self.journal.lease() as mine:
            if not mine:  # another process is replaying this journal
                self.next_replay = self.clock() + HOUSEKEEPING
                self.ledger.assume_reachable()
                return
            acked, kept, sent = 0, list[bytes](), False
            snapshot = Blocking(self.journal.snapshot)
            yield snapshot
            chunks = self.journal.chunks(snapshot.result, self.options.batch_size, MAX_BATCH_BYTES)
            try:
                while True:
                    read = Blocking(lambda: next(chunks, None))
                    yield read
                    if (chunk := read.result) is None:
                        break
                    results: Sequence[ingest_pb2.ItemResult] = []
                    if chunk.events:
                        budget = self.options.attempt_timeout
                        if not sent and not self.ledger.connected:  # a probe: do not hold up live events long
                            budget = min(budget, self.options.probe_timeout)
                        send = Send(chunk.events, self._timeout(self._limit(self.clock(), budget)))
                        yield send
                        sent = True
                        self.ledger.reached()
                        results = send.response.results
                    yield Blocking(functools.partial(self.ledger.replayed_chunk, chunk, results))
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
                chunks.close()
                try:
                    yield Blocking(functools.partial(self.journal.drop_prefix, acked, kept))
                except OSError:
                    log.exception("metering: cannot trim the journal %s (lines will be sent again)", self.journal.path)
        if not sent:  # nothing of ours was left to probe with: let the next live batch find out
            self.ledger.assume_reachable()
        self._probes = 0
        self.next_replay = math.inf if self.journal.size() == 0 else self.clock() + HOUSEKEEPING
