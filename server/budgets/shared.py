"""Concurrent Checks of the same budgets share one reading of their usage.

A reading (the settle_seqs, then the query engine's snapshot) may serve every Check
that arrived before it started: its snapshot is then within each one's call, so each is
exact as of that moment. So at most one reading of a key runs at a time, and the Checks
that arrive meanwhile wait for it to end and share the next one, which starts at once
(as the group commit of writes coalesces the writes that queue meanwhile). A hot budget
then costs one engine read per round rather than one per Check, and the round's
reservations go to the critical section together (server/budgets/reserve.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedReads(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}
        self._next: dict[Hashable, asyncio.Future[T]] = {}

    async def read(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """make()'s result, from a call of it that starts after this one began."""
        waiting = self._next.get(key)
        if waiting is not None:  # the next reading is not started yet: it will do
            return await self._joined(waiting, make)
        running = self._running.get(key)
        if running is None:
            return await self._lead(key, asyncio.get_running_loop().create_future(), make)
        # one started before we came: wait for it to end, then lead the next one
        waiting = self._next[key] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait([running])
        except BaseException:
            waiting.cancel()  # our followers read for themselves
            raise
        finally:
            del self._next[key]
        return await self._lead(key, waiting, make)

    async def _lead(self, key: Hashable, future: asyncio.Future[T], make: Callable[[], Awaitable[T]]) -> T:
        self._running[key] = future
        try:
            result = await make()
        except asyncio.CancelledError:
            future.cancel()  # our followers read for themselves
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: followers re-raise it; without any, nothing to report
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[key]

    @staticmethod
    async def _joined(future: asyncio.Future[T], make: Callable[[], Awaitable[T]]) -> T:
        """The shared result; if its leader was cancelled (its caller gave up), a reading of our own."""
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.cancelled():
                raise  # we were cancelled ourselves
            return await make()
