"""Handles on queued events: wait for (or await) the server's answer for one event."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Generator
from typing import Any

from metering_client.results import ItemResult


class Receipt:
    """Returned by MeteringClient.record(): `request_id` at once, `result()` once delivered."""

    __slots__ = ("_future", "request_id")

    def __init__(self, request_id: str, future: concurrent.futures.Future[ItemResult]) -> None:
        self.request_id = request_id
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> ItemResult:
        """Block until the event is recorded, found duplicate, rejected or journaled.
        Raises TimeoutError if that takes longer than `timeout` seconds."""
        return self._future.result(timeout)

    def add_done_callback(self, fn: Callable[[ItemResult], Any]) -> None:
        self._future.add_done_callback(lambda f: fn(f.result()))

    def __repr__(self) -> str:
        state = self._future.result().outcome.value if self._future.done() else "pending"
        return f"<Receipt {self.request_id} {state}>"


class AsyncReceipt:
    """Returned by AsyncMeteringClient.record(): `request_id` at once; `await receipt` for the result."""

    __slots__ = ("_future", "request_id")

    def __init__(self, request_id: str, future: asyncio.Future[ItemResult]) -> None:
        self.request_id = request_id
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> ItemResult:
        """The result if done (else asyncio.InvalidStateError)."""
        return self._future.result()

    def __await__(self) -> Generator[Any, None, ItemResult]:
        return asyncio.shield(self._future).__await__()

    def __repr__(self) -> str:
        state = self._future.result().outcome.value if self._future.done() else "pending"
        return f"<AsyncReceipt {self.request_id} {state}>"
