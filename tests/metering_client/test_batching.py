"""The delivery core (metering_client/batching.py) as both batchers run it: on a thread and on the loop.

Where the two batchers used to differ, each test runs both and expects the same, correct outcome.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
from pathlib import Path

import grpc
import pytest

from metering.v1 import event_pb2
from metering_client import AsyncMeteringClient, DeliveryStatus, MeteringClient, Outcome, RejectedEventsError
from metering_client import channel as channels
from metering_client.aio_batcher import AsyncBatcher
from metering_client.batcher import Batcher
from metering_client.config import Settings, resolve
from metering_client.delivery import DeliveryOptions, Ledger
from metering_client.events import build_event
from metering_client.journal import Journal, read_all
from metering_client.results import ItemResult
from tests.metering_client.conftest import event_counts
from tests.support.services import free_port

FULL_DISK = Path("/dev/full")  # every write fails with ENOSPC: a journal that cannot be written
needs_full_disk = pytest.mark.skipif(not FULL_DISK.exists(), reason="needs /dev/full")
GIVE_UP = 0.2  # retry_budget and attempt_timeout: give up on an unreachable server quickly


def events(prefix: str, n: int) -> list[event_pb2.UsageEvent]:
    return [build_event({"request_id": f"{prefix}-{i}", "kind": "completions", "input_tokens": 1}) for i in range(n)]


def thread_batcher(settings: Settings, journal: Journal, options: DeliveryOptions) -> tuple[Batcher, Ledger]:
    """A Batcher sending over a real sync channel."""
    ledger = Ledger(journal, None)
    send = channels.sender(channels.sync_channel(settings), channels.metadata(settings))
    return Batcher(send, journal, ledger, options), ledger


def loop_batcher(settings: Settings, journal: Journal, options: DeliveryOptions) -> tuple[AsyncBatcher, Ledger]:
    """An AsyncBatcher sending over a real grpc.aio channel."""
    ledger = Ledger(journal, None)
    send = channels.aio_sender(channels.aio_channel(settings), channels.metadata(settings))
    return AsyncBatcher(send, journal, ledger, options), ledger


async def put_cancel_close(mode: str, settings: Settings, journal: Journal, options: DeliveryOptions,
                           batch: list[event_pb2.UsageEvent]) -> tuple[list[ItemResult | None], Ledger, int]:
    """Put `batch`, cancel the second event's future before it is sent, flush and close.
    Returns each event's result (None where cancelled), the ledger, and the events still buffered."""
    if mode == "thread":
        batcher, ledger = thread_batcher(settings, journal, options)

        def run() -> list[concurrent.futures.Future[ItemResult]]:
            futures = [batcher.put(event) for event in batch]
            assert futures[1].cancel()
            assert batcher.flush(timeout=10)
            batcher.close()
            return futures

        sync_futures = await asyncio.to_thread(run)
        return [None if f.cancelled() else f.result() for f in sync_futures], ledger, batcher.buffered()
    abatcher, ledger = loop_batcher(settings, journal, options)
    futures = [await abatcher.put(event) for event in batch]
    assert futures[1].cancel()
    assert await abatcher.flush(timeout=10)
    await abatcher.close()
    return [None if f.cancelled() else f.result() for f in futures], ledger, abatcher.buffered()


@pytest.mark.parametrize("mode", ["thread", "loop"])
async def test_a_cancelled_future_does_not_derail_the_rest_of_its_batch(mode, target, new_org, db, tmp_path):
    """The thread batcher set results without asking done(): the cancelled future raised InvalidStateError
    mid-batch, and the events after it were journaled although the server had recorded them."""
    org = await new_org()
    journal = Journal(tmp_path / "j.jsonl", org.admin_key)
    settings = resolve(target=target, api_key=org.admin_key)
    results, ledger, buffered = await put_cancel_close(mode, settings, journal, DeliveryOptions(max_delay=60),
                                                       events(mode, 3))
    assert [r.outcome if r else None for r in results] == [Outcome.RECORDED, None, Outcome.RECORDED]
    assert (ledger.recorded, ledger.journaled, buffered, journal.size()) == (3, 0, 0, 0)
    assert await event_counts(db, org.organization_id) == (3, 3)  # the cancelled one was sent all the same


@pytest.mark.parametrize("mode", ["thread", "loop"])
async def test_a_cancelled_future_is_still_journaled_while_the_server_is_down(mode, tmp_path):
    """Both batchers skipped events whose future was done when journaling: a cancelled one was never
    written anywhere and stayed buffered forever. What is resolved is the batcher's to say, not the future's."""
    journal = Journal(tmp_path / "j.jsonl", "mk_nobody")
    settings = resolve(target=f"127.0.0.1:{free_port()}", api_key="mk_nobody")
    options = DeliveryOptions(retry_budget=GIVE_UP, attempt_timeout=GIVE_UP)
    results, ledger, buffered = await put_cancel_close(mode, settings, journal, options, events(mode, 3))
    assert [r.outcome if r else None for r in results] == [Outcome.JOURNALED, None, Outcome.JOURNALED]
    assert (ledger.journaled, buffered) == (3, 0)
    assert [line["event"]["request_id"] for line in read_all(journal.path)] == [f"{mode}-{i}" for i in range(3)]


@needs_full_disk
@pytest.mark.parametrize("mode", ["thread", "loop"])
async def test_close_with_the_server_down_and_the_journal_unwritable_reports_the_events(mode):
    """Nowhere left to keep them: close() resolves them as UNDELIVERABLE and raises. The thread batcher left
    them pending forever when close() had no timeout; the loop batcher logged them lost and forgot them."""
    target = f"127.0.0.1:{free_port()}"
    if mode == "thread":
        client = MeteringClient(target, "mk_nobody", journal_path=FULL_DISK, retry_budget=GIVE_UP,
                                attempt_timeout=GIVE_UP)

        def run() -> tuple[ItemResult, RejectedEventsError, DeliveryStatus]:
            receipt = client.record(request_id="lost-1", kind="completions")
            with pytest.raises(RejectedEventsError) as raised:
                client.close()
            return receipt.result(timeout=5), raised.value, client.delivery_status()

        result, error, status = await asyncio.to_thread(run)
    else:
        aclient = AsyncMeteringClient(target, "mk_nobody", journal_path=FULL_DISK, retry_budget=GIVE_UP,
                                      attempt_timeout=GIVE_UP)
        areceipt = await aclient.record(request_id="lost-1", kind="completions")
        with pytest.raises(RejectedEventsError) as raised:
            await aclient.close()
        result, error, status = await asyncio.wait_for(areceipt, 5), raised.value, aclient.delivery_status()
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "UNDELIVERABLE")
    assert [f.request_id for f in error.failures] == ["lost-1"]
    assert (status.buffered, status.rejected, status.journaled) == (0, 1, 0)


async def test_a_blocked_put_notices_that_the_delivery_task_stopped(tmp_path):
    """Waiting for room in a full buffer, the thread batcher gives up once its thread is gone; the loop
    batcher waited forever for a task that had stopped. Every event accepted is still journaled."""
    journal = Journal(tmp_path / "j.jsonl", "mk_nobody")
    settings = resolve(target=f"127.0.0.1:{free_port()}", api_key="mk_nobody")  # the task hangs on its first send
    options = DeliveryOptions(max_buffer=1, batch_size=1, retry_budget=30, attempt_timeout=30)
    batcher, _ = loop_batcher(settings, journal, options)
    first, second, third = events("blocked", 3)
    await batcher.put(first)  # taken by the task, which then waits for the server
    await batcher.put(second)  # fills the buffer
    blocked = asyncio.ensure_future(batcher.put(third))
    while batcher.buffered() < 3:  # until the third put is accepted and waits for room
        await asyncio.sleep(0)
    assert batcher._task is not None and not blocked.done()
    batcher._task.cancel()  # the delivery task stops (the loop is shutting down, or a bug)
    with pytest.raises(RuntimeError, match="delivery task has stopped"):
        await asyncio.wait_for(blocked, 5)
    await batcher.close()
    assert [line["event"]["request_id"] for line in read_all(journal.path)] == ["blocked-0", "blocked-1", "blocked-2"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_probes_back_off_while_offline_and_a_successful_one_starts_over(own_server, new_org, db, tmp_path):
    """The journal's first chunk probes an unreachable server: reconnect_interval, doubling up to max_backoff;
    once a probe gets through the journal is replayed and the next outage starts from reconnect_interval."""
    org = await new_org()
    port = free_port()
    journal = Journal(tmp_path / "j.jsonl", org.admin_key)
    journal.append(events("probe", 2))
    clock = FakeClock()
    options = DeliveryOptions(reconnect_interval=1.0, max_backoff=5.0, probe_timeout=10)
    settings = resolve(target=f"127.0.0.1:{port}", api_key=org.admin_key)
    channel = channels.sync_channel(settings)
    ledger = Ledger(journal, None)
    batcher = Batcher(channels.sender(channel, channels.metadata(settings)), journal, ledger, options, start=False,
                      clock=clock)
    ledger.unreachable(None, 0)  # offline

    async def probe(timeout: float = 0.05) -> float:
        """One replay attempt (as at exit), for at most `timeout` seconds; the seconds until the next one."""
        await asyncio.to_thread(batcher.replay_now, timeout)
        wait = batcher.delivery.next_replay - clock.now
        clock.now += 100
        return wait

    try:
        assert [await probe() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]  # nobody listens yet
        assert (ledger.connected, ledger.replayed, len(read_all(journal.path))) == (False, 0, 2)

        server = await own_server(port)
        await asyncio.to_thread(grpc.channel_ready_future(channel).result, 10)
        assert await probe(10) == math.inf, ledger.last_error  # replayed, nothing left
        assert (ledger.connected, ledger.replayed, journal.size()) == (True, 2, 0)

        await server.stop(grace=0)
        journal.append(events("again", 1))
        ledger.unreachable(None, 0)
        assert [await probe() for _ in range(2)] == [1.0, 2.0]
    finally:
        channel.close()
    assert await event_counts(db, org.organization_id) == (2, 2)
