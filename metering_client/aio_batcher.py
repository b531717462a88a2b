"""The asyncio client's delivery task: runs batching.py's delivery on the event loop.

The task starts on first use, inside the running loop. It awaits the delivery's calls, pauses on an
asyncio.Event that close() sets, and runs journal reads and writes in a worker thread. If the task is
cancelled (the loop is shutting down) or crashes, everything not yet acknowledged is written to the
journal on the spot, synchronously, and delivered by the interpreter-exit hook or the next client that
starts with the same key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from metering.v1 import event_pb2
from metering.waits import wait_set
from metering_client.batching import BatchDelivery, Blocking, Marker, Pause, Send, Step, Steps, Take
from metering_client.channel import AsyncSender
from metering_client.delivery import DeliveryOptions, Item, Ledger
from metering_client.journal import Journal
from metering_client.results import ItemResult

log = logging.getLogger(__name__)
AsyncFuture = asyncio.Future[ItemResult]
Entry = Item[AsyncFuture] | Marker
T = TypeVar("T")


def _settle(future: AsyncFuture, result: ItemResult) -> None:
    if not future.get_loop().is_closed():  # at interpreter exit nobody awaits it any more
        future.set_result(result)


def _reached(done: asyncio.Future[None]) -> Callable[[], None]:
    def reached() -> None:
        if not done.done():
            done.set_result(None)
    return reached


class AsyncBatcher:
    def __init__(self, send: AsyncSender, journal: Journal, ledger: Ledger, options: DeliveryOptions,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self.options = options
        self.delivery = BatchDelivery[AsyncFuture](journal, ledger, options, _settle, clock=clock)
        self._queue: asyncio.Queue[Entry] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def _start(self) -> asyncio.Queue[Entry]:
        if self._queue is None or self._task is None or self._task.done():
            if self._task is not None and self._task.done():
                raise RuntimeError("the metering delivery task has stopped")
            self._queue = asyncio.Queue(self.options.max_buffer)
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="metering-delivery")
        return self._queue

    # -- producer side ------------------------------------------------------------------------

    async def put(self, event: event_pb2.UsageEvent) -> AsyncFuture:
        if self.delivery.closed:
            raise RuntimeError("the metering client is closed")
        queue = self._start()
        future: AsyncFuture = asyncio.get_running_loop().create_future()
        item = self.delivery.accept(event, future)
        if item is None:
            return future
        if self.options.overflow == "spill" and queue.full() and await self._run_steps(self.delivery.spill(item)):
            return future
        await self._enqueue(item)
        return future

    async def _enqueue(self, entry: Entry) -> None:
        """Wait for room, but notice a stopped delivery task instead of waiting forever."""
        queue, task = self._start(), self._task
        assert task is not None
        if not queue.full():
            queue.put_nowait(entry)
            return
        room = asyncio.ensure_future(queue.put(entry))
        try:
            done, _ = await asyncio.wait({room, task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            room.cancel()
            raise
        if room not in done:
            room.cancel()
            raise RuntimeError("the metering delivery task has stopped")

    def buffered(self) -> int:
        return self.delivery.buffered()

    async def flush(self, timeout: float | None = None) -> bool:
        if self._task is None:
            return True
        done = asyncio.get_running_loop().create_future()
        self.delivery.replay_soon()  # also push out spilled events
        await self._enqueue(Marker(_reached(done)))
        assert self._task is not None
        await asyncio.wait({done, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if done.done():
            return True
        if self._task.done():
            raise RuntimeError("the metering delivery task has stopped; close() journals what is left")
        return False

    async def close(self, timeout: float | None = None) -> None:
        if self.delivery.closed:
            return
        self.delivery.close_by(timeout)
        if self._task is None:  # never used: still replay a journal left by an earlier run
            self._task = asyncio.get_running_loop().create_task(self._run_steps(self.delivery.replay_left_over()))
            await self._task
            return
        if not self._task.done():
            assert self._wake is not None
            try:
                await self._enqueue(Marker(close=True))
            except RuntimeError:
                pass  # the task stopped meanwhile
            self._wake.set()
            try:
                async with asyncio.timeout(None if timeout is None else timeout + 5.0):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()  # journals what is left
                await asyncio.gather(self._task, return_exceptions=True)
        self.journal_unacked()

    def journal_unacked(self) -> None:
        """Synchronously journal every accepted, unresolved event (cancellation, exit)."""
        self.delivery.journal_unacked()

    # -- delivery task ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._run_steps(self.delivery.run())
        except asyncio.CancelledError:
            self.journal_unacked()
            raise
        except BaseException:
            log.exception("metering: delivery task crashed; journaling what is left")
            self.journal_unacked()
            raise

    async def _run_steps(self, steps: Steps[T]) -> T:
        """Perform each step on the loop; a step that fails raises inside `steps`, where it was yielded."""
        error: BaseException | None = None
        while True:
            try:
                step = next(steps) if error is None else steps.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            error = None
            try:
                await self._perform(step)
            except BaseException as failed:
                error = failed

    async def _perform(self, step: Step) -> None:
        match step:
            case Take():
                step.entry = await self._take(step.timeout)
            case Send():
                step.response = await self._send(step.events, step.timeout)
            case Pause():
                assert self._wake is not None
                await wait_set(self._wake, step.seconds)
                self._wake.clear()
            case Blocking():
                await asyncio.to_thread(step.run)

    async def _take(self, timeout: float | None) -> Entry | None:
        assert self._queue is not None
        if not self._queue.empty() or timeout == 0.0:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None
