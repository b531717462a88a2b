"""Group commit: concurrent single-event writes share one transaction.

A dispatcher takes everything queued (up to max_batch) whenever a writer slot
is free. Idle, each call is written at once; under load, calls queue while the
slots commit and the next transaction carries all of them. Every caller is
answered only after its transaction commits.

A committer given a `name` observes each transaction's size in metering_group_commit_batch_size.
Its tasks run in a context of their own, so a log line of a write never carries the request id
of whichever call happened to start the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from server.core.metrics import GROUP_COMMIT_SIZE

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    def __init__(
        self, write: Callable[[list[T]], Awaitable[list[R]]], *, max_batch: int = 1000, max_inflight: int = 4,
        name: str | None = None,
    ) -> None:
        self._write = write
        self._sizes = GROUP_COMMIT_SIZE.labels(name) if name else None
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(max_inflight)
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), context=contextvars.Context())
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._ready.set()
        return await future

    async def _dispatch(self) -> None:
        while True:
            await self._ready.wait()
            await self._slots.acquire()
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            if not self._queue:
                self._ready.clear()
            if not batch:
                self._slots.release()
                continue
            if self._sizes is not None:
                self._sizes.observe(len(batch))
            task = asyncio.create_task(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except BaseException as exc:  # every caller of the batch sees the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Finish what is queued and in flight, then stop."""
        while self._queue or self._tasks:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
