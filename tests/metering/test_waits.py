"""metering.waits.wait_set: a timed wait for an event that a cancellation always ends, also one
that comes in the same loop iteration as the event is set (where Python 3.11's asyncio.wait_for
returns normally and the cancellation is lost, CPython gh-86296)."""

from __future__ import annotations

import asyncio

import pytest

from metering.waits import wait_set


async def test_true_when_set_false_when_the_time_ran_out() -> None:
    event = asyncio.Event()
    assert not await wait_set(event, 0.01)
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_set(event, 5)
    assert await wait_set(event, 0)  # already set: no wait
    assert await wait_set(event, None)


async def _poll_loop(wake: asyncio.Event, rounds: list[int]) -> None:
    """The shape of the worker's loops: work, clear, wait for a wake-up or the poll period."""
    while True:
        rounds.append(1)
        wake.clear()
        await wait_set(wake, 30)


async def test_a_cancel_that_comes_with_the_wake_up_stops_the_loop() -> None:
    wake, rounds = asyncio.Event(), list[int]()
    task = asyncio.create_task(_poll_loop(wake, rounds))
    await asyncio.sleep(0.01)
    assert len(rounds) == 1  # waiting
    wake.set()
    task.cancel()  # the same iteration: the wake-up and the cancellation both arrive
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert task.cancelled()


async def test_a_cancel_that_comes_with_the_deadline_is_kept() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(wait_set(event, 0.05))
    await asyncio.sleep(0.05)  # the deadline is due about now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
