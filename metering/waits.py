"""Waiting with a time limit, in a way a cancellation always ends.

`asyncio.wait_for` is not used (ruff bans it in pyproject.toml): on Python 3.11 it runs its
awaitable in a separate task and, when the waiting task is cancelled in the same loop iteration
as that awaitable finishes, returns the result and drops the cancellation (CPython gh-86296; 3.12
rebuilt wait_for on asyncio.timeout). A loop stopped by `task.cancel()` whose wake-up event was
set at that moment then ran on, and its `close()` waited forever: a fresh-clone CI run hung in
`tests/worker/test_worker.py` with a burst worker's delivery loop claiming deliveries for 10
minutes after close. `asyncio.timeout` awaits in the caller's own task and keeps a cancellation
that comes with its deadline, so it is what the project uses instead.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, seconds: float | None) -> bool:
    """Waits until `event` is set or `seconds` pass (None: no limit); True if it is set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
