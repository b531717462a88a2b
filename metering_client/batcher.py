"""The sync client's delivery thread: runs batching.py's delivery on one daemon thread per client.

Producers put events in a bounded queue.Queue (blocking, or spilling to the journal, when it is full);
the thread performs the delivery's steps inline: calls, pauses on a threading.Event that close() sets,
journal writes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from metering.v1 import event_pb2
from metering_client.batching import BatchDelivery, Blocking, Marker, Pause, Send, Step, Steps, Take
from metering_client.channel import Sender
from metering_client.delivery import DeliveryOptions, Item, Ledger
from metering_client.journal import Journal
from metering_client.results import ItemResult

log = logging.getLogger(__name__)
SyncFuture = concurrent.futures.Future[ItemResult]
T = TypeVar("T")


def _settle(future: SyncFuture, result: ItemResult) -> None:
    try:
        future.set_result(result)
    except concurrent.futures.InvalidStateError:  # cancelled by another thread since done() was asked
        pass


class Batcher:
    def __init__(self, send: Sender, journal: Journal, ledger: Ledger, options: DeliveryOptions,
                 *, start: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self.options = options
        self.delivery = BatchDelivery[SyncFuture](journal, ledger, options, _settle, clock=clock)
        self._queue: queue.Queue[Item[SyncFuture] | Marker] = queue.Queue(options.max_buffer)
        self._wake = threading.Event()  # cuts a pause between retries short (close())
        self._thread = threading.Thread(target=self._run, name="metering-delivery", daemon=True)
        if start:
            self._thread.start()

    # -- producer side ------------------------------------------------------------------------

    def put(self, event: event_pb2.UsageEvent) -> SyncFuture:
        if self.delivery.closed:
            raise RuntimeError("the metering client is closed")
        future: SyncFuture = concurrent.futures.Future()
        item = self.delivery.accept(event, future)
        if item is None:
            return future
        if self.options.overflow == "spill":
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                if not self._run_steps(self.delivery.spill(item)):
                    self._enqueue(item)
            return future
        self._enqueue(item)
        return future

    def _enqueue(self, entry: Item[SyncFuture] | Marker) -> None:
        while True:  # wait for room, but notice a dead delivery thread instead of waiting forever
            try:
                self._queue.put(entry, timeout=1.0)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError("the metering delivery thread has stopped") from None

    def buffered(self) -> int:
        return self.delivery.buffered()

    def flush(self, timeout: float | None = None) -> bool:
        """True when everything put before this call is resolved (delivered, rejected or journaled)."""
        done = threading.Event()
        self.delivery.replay_soon()  # also push out spilled events
        self._enqueue(Marker(done.set))
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done.wait(1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))):
            if not self._thread.is_alive():
                raise RuntimeError("the metering delivery thread has stopped; close() journals what is left")
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (journaling what cannot be delivered by `timeout`), then stop."""
        if self.delivery.closed:
            return
        self.delivery.close_by(timeout)
        if self._thread.is_alive():
            try:
                self._enqueue(Marker(close=True))
            except RuntimeError:
                pass  # the thread died meanwhile
            self._wake.set()
            self._thread.join(None if timeout is None else timeout + 5.0)
        self.delivery.journal_unacked()  # the thread died or overran its deadline: keep the events anyway

    def replay_now(self, timeout: float) -> None:
        """Replay the journal from the calling thread (used at exit, where no thread may start)."""
        self.delivery.deadline = self.delivery.clock() + timeout
        self._run_steps(self.delivery.replay())

    # -- delivery thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._run_steps(self.delivery.run())
        except BaseException:
            log.exception("metering: delivery thread crashed; close() journals what is left")
            raise

    def _run_steps(self, steps: Steps[T]) -> T:
        """Perform each step on this thread; a step that fails raises inside `steps`, where it was yielded."""
        error: BaseException | None = None
        while True:
            try:
                step = next(steps) if error is None else steps.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            error = None
            try:
                self._perform(step)
            except BaseException as failed:
                error = failed

    def _perform(self, step: Step) -> None:
        match step:
            case Take():
                try:
                    step.entry = self._queue.get(timeout=step.timeout)
                except queue.Empty:
                    step.entry = None
            case Send():
                step.response = self._send(step.events, step.timeout)
            case Pause():
                self._wake.wait(step.seconds)
                self._wake.clear()
            case Blocking():
                step.run()
