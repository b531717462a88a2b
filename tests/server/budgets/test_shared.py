"""SharedReads: a caller gets a reading that started after it came; the callers that come
while one runs share the next one."""

from __future__ import annotations

import asyncio

import pytest

from server.budgets.shared import SharedReads


class Reads:
    """make() for the tests: each call is numbered and waits until released."""

    def __init__(self) -> None:
        self.started = 0
        self.release = asyncio.Event()
        self.fail: BaseException | None = None

    async def make(self) -> int:
        self.started += 1
        number = self.started
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return number


async def _until(condition) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_callers_arriving_during_a_reading_share_the_next_one():
    shared: SharedReads[int] = SharedReads()
    reads = Reads()
    first = asyncio.create_task(shared.read("k", reads.make))
    await _until(lambda: reads.started == 1)
    later = [asyncio.create_task(shared.read("k", reads.make)) for _ in range(5)]
    other_key = asyncio.create_task(shared.read("other", reads.make))
    await _until(lambda: reads.started == 2)  # another key reads at once
    reads.release.set()
    assert await first == 1
    assert await other_key == 2
    assert await asyncio.gather(*later) == [3] * 5  # one reading, started after they all came
    assert reads.started == 3


async def test_a_failed_reading_fails_its_sharers_and_a_cancelled_one_does_not():
    shared: SharedReads[int] = SharedReads()
    reads = Reads()
    first = asyncio.create_task(shared.read("k", reads.make))
    await _until(lambda: reads.started == 1)
    leader = asyncio.create_task(shared.read("k", reads.make))
    follower = asyncio.create_task(shared.read("k", reads.make))
    await asyncio.sleep(0)
    leader.cancel()  # its caller gave up while waiting for its turn
    reads.release.set()
    assert await first == 1
    assert await follower == 2  # read for itself
    with pytest.raises(asyncio.CancelledError):
        await leader

    reads.release.clear()
    reads.fail = RuntimeError("no database")
    failing = asyncio.create_task(shared.read("k", reads.make))
    await _until(lambda: reads.started == 3)
    sharers = [asyncio.create_task(shared.read("k", reads.make)) for _ in range(2)]
    await asyncio.sleep(0)
    reads.release.set()
    with pytest.raises(RuntimeError):
        await failing
    for sharer in sharers:  # the next reading, which they shared, failed too
        with pytest.raises(RuntimeError):
            await sharer
    assert reads.started == 4
