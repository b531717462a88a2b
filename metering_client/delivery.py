"""The values of delivery: options, the ledger of outcomes, retry policy, chunking, each event's result.

The delivery itself (batching, retries, the journal, replay) is batching.py, which both batchers run."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Generic, Literal, TypeVar

import grpc

from metering.v1 import event_pb2, ingest_pb2
from metering_client.journal import Chunk, Journal
from metering_client.results import DeliveryError, Failure, ItemResult, Outcome, RejectedEventsError

log = logging.getLogger(__name__)

# Sent again with the same request_ids. CANCELLED too: a server shutting down cancels calls in flight.
RETRYABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED,
})
MAX_BATCH_EVENTS = 10_000           # the server's RecordEvents limit
MAX_BATCH_BYTES = 4 * 1024 * 1024    # well under the server's 16 MiB message limit
MAX_EVENT_BYTES = 15 * 1024 * 1024   # larger can never be sent: rejected locally
Overflow = Literal["block", "spill"]
OnFailure = Callable[[Failure], None]
F = TypeVar("F")  # the receipt's future type: concurrent.futures.Future or asyncio.Future


@dataclasses.dataclass(frozen=True)
class DeliveryOptions:
    batch_size: int = 500            # events per RecordEvents call
    max_delay: float = 0.2           # seconds an event may wait for its batch to fill
    max_buffer: int = 10_000         # events queued in memory before back-pressure
    overflow: Overflow = "block"     # buffer full: "block" the caller, or "spill" the event to the journal
    retry_budget: float = 30.0       # seconds of retries for one batch before it goes to the journal
    attempt_timeout: float = 10.0    # deadline of one RecordEvents call
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    reconnect_interval: float = 1.0  # first wait before probing an unreachable server again (doubles, to max_backoff)
    probe_timeout: float = 1.0       # deadline of a probe (the journal's first chunk while offline)
    exit_timeout: float = 5.0        # at interpreter exit: seconds to deliver before journaling the rest
    journal_path: Path | None = None  # default: journal.default_path(api_key)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_EVENTS or self.max_buffer < 1:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_EVENTS} and max_buffer >= 1")
        if self.overflow not in ("block", "spill"):
            raise ValueError("overflow must be 'block' or 'spill'")
        if min(self.max_delay, self.retry_budget, self.attempt_timeout, self.initial_backoff) < 0:
            raise ValueError("delays must be >= 0")


def backoff(attempt: int, options: DeliveryOptions) -> float:
    """Exponential with jitter: attempt 0 -> ~initial_backoff, doubling up to max_backoff."""
    ceiling = min(options.max_backoff, options.initial_backoff * float(2 ** min(attempt, 30)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclasses.dataclass
class Item(Generic[F]):
    event: event_pb2.UsageEvent
    future: F
    size: int


def chunked(items: Sequence[Item[F]], limit: int = MAX_BATCH_BYTES) -> Iterator[list[Item[F]]]:
    """Split a batch so no RecordEvents message grows past `limit` bytes."""
    chunk: list[Item[F]] = []
    size = 0
    for item in items:
        if chunk and size + item.size > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item.size + 8
    if chunk:
        yield chunk


def item_result(proto: ingest_pb2.ItemResult) -> ItemResult:
    outcome = {
        ingest_pb2.OUTCOME_RECORDED: Outcome.RECORDED,
        ingest_pb2.OUTCOME_DUPLICATE: Outcome.DUPLICATE,
    }.get(proto.outcome, Outcome.REJECTED)
    return ItemResult(
        request_id=proto.request_id, outcome=outcome, event_id=proto.event_id,
        field=proto.field, reason=proto.reason or ("" if outcome != Outcome.REJECTED else "UNKNOWN"),
        message=proto.message,
    )


def journaled(event: event_pb2.UsageEvent) -> ItemResult:
    return ItemResult(request_id=event.request_id, outcome=Outcome.JOURNALED)


def undeliverable(event: event_pb2.UsageEvent) -> ItemResult:
    """Neither the server nor the journal would take it, and there is no time left to wait for either."""
    return ItemResult(request_id=event.request_id, outcome=Outcome.REJECTED, field="event", reason="UNDELIVERABLE",
                      message="server unreachable and journal unwritable")


def too_large(event: event_pb2.UsageEvent, size: int) -> ItemResult | None:
    if size <= MAX_EVENT_BYTES:
        return None
    return ItemResult(request_id=event.request_id, outcome=Outcome.REJECTED, field="event", reason="TOO_LARGE",
                      message=f"{size} bytes; an event must stay under {MAX_EVENT_BYTES} bytes")


def error_text(error: grpc.RpcError) -> str:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return f"{code.name if code else 'UNKNOWN'}: {details}"


def is_retryable(error: grpc.RpcError) -> bool:
    return hasattr(error, "code") and error.code() in RETRYABLE


@dataclasses.dataclass(frozen=True)
class DeliveryStatus:
    """A snapshot of one client's delivery (counts since the client started)."""

    buffered: int        # accepted by record() and not yet resolved
    recorded: int
    duplicates: int
    rejected: int
    journaled: int       # events this client wrote to the journal
    replayed: int        # journal events the server has acknowledged since
    journal_bytes: int   # current size of the journal file (all processes sharing it)
    journal_path: str
    connected: bool      # the last call to the server succeeded
    last_error: str | None


class Ledger:
    """Counts outcomes and keeps rejected items until they are reported; thread-safe.

    Rejections go to `on_failure` when one is given; otherwise they wait in the ledger until
    failures() drains them or flush()/close() raises them as RejectedEventsError. Whole batches
    refused for a reason other than "unreachable" (credentials, permission, server error) are
    journaled and raised once by the next flush()/close() as DeliveryError.
    """

    def __init__(self, journal: Journal, on_failure: OnFailure | None) -> None:
        self.journal = journal
        self.on_failure = on_failure
        self._lock = threading.Lock()
        self._failures: list[Failure] = []
        self._refusals: list[str] = []
        self.recorded = self.duplicates = self.rejected = self.journaled = self.replayed = 0
        self.connected = True
        self.last_error: str | None = None

    def count(self, result: ItemResult) -> None:
        with self._lock:
            if result.outcome is Outcome.RECORDED:
                self.recorded += 1
            elif result.outcome is Outcome.DUPLICATE:
                self.duplicates += 1
            elif result.outcome is Outcome.JOURNALED:
                self.journaled += 1
            else:
                self.rejected += 1

    def reject(self, event: event_pb2.UsageEvent, result: ItemResult) -> None:
        failure = Failure(result, event)
        log.warning("metering: event rejected: %s", failure)
        if self.on_failure is not None:
            try:
                self.on_failure(failure)
            except Exception:
                log.exception("metering: on_failure callback raised")
            return
        with self._lock:
            self._failures.append(failure)

    def refused(self, error: grpc.RpcError) -> None:
        text = error_text(error)
        log.error("metering: server refused a batch (%s); events kept in %s", text, self.journal.path)
        with self._lock:
            self.last_error = text
            if not self._refusals or self._refusals[-1] != text:  # a refusing server is probed repeatedly
                self._refusals.append(text)

    def unreachable(self, error: grpc.RpcError | None, journaled: int) -> None:
        text = error_text(error) if error is not None else "closing"
        with self._lock:
            self.connected = False
            self.last_error = text
        if journaled:
            log.warning("metering: server unreachable (%s); %d event(s) journaled to %s", text, journaled,
                        self.journal.path)

    def reached(self) -> None:
        with self._lock:
            if not self.connected:
                log.info("metering: server reachable again")
            self.connected = True

    def assume_reachable(self) -> None:
        with self._lock:
            self.connected = True

    def replayed_chunk(self, chunk: Chunk, results: Sequence[ingest_pb2.ItemResult]) -> None:
        """Account for a replayed chunk: rejected events are dead-lettered and reported."""
        dead = list(chunk.unreadable)
        for event, proto in zip(chunk.events, results, strict=True):
            result = item_result(proto)
            if result.outcome is Outcome.REJECTED:
                dead.append(self.journal.reject_line(event, result.field, result.reason, result.message))
                self.count(result)
                self.reject(event, result)
            else:
                with self._lock:
                    self.replayed += 1
        if chunk.unreadable:
            log.error("metering: %d unreadable journal line(s) moved to %s", len(chunk.unreadable),
                      self.journal.rejected_path)
        self.journal.dead_letter(dead)

    def take_failures(self) -> list[Failure]:
        with self._lock:
            taken, self._failures = self._failures, []
        return taken

    def raise_pending(self) -> None:
        """What flush()/close() raise: refused batches first, then rejected events."""
        with self._lock:
            refusals, self._refusals = self._refusals, []
        if refusals:
            raise DeliveryError(refusals, str(self.journal.path))
        failures = self.take_failures()
        if failures:
            raise RejectedEventsError(failures)

    def log_unreported(self) -> None:
        """At exit nobody can catch an exception: say it loudly instead."""
        with self._lock:
            refusals, self._refusals = self._refusals, []
        for text in refusals:
            log.error("metering: delivery refused (%s); events kept in %s", text, self.journal.path)
        for failure in self.take_failures():
            log.error("metering: event rejected and never reported: %s", failure)

    def status(self, buffered: int) -> DeliveryStatus:
        with self._lock:
            return DeliveryStatus(
                buffered=buffered, recorded=self.recorded, duplicates=self.duplicates, rejected=self.rejected,
                journaled=self.journaled, replayed=self.replayed, journal_bytes=self.journal.size(),
                journal_path=str(self.journal.path), connected=self.connected, last_error=self.last_error,
            )

