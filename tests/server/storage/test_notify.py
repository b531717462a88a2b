"""Invalidations by LISTEN/NOTIFY (server/storage/notify.py): a change is heard by every listener
when its transaction commits and never when it rolls back; a listener that lost its connection
says so (mark/unbroken, on_state), reconnects with backoff and then tells its subscribers to drop
everything; and a price book changed through one server is reloaded by another at once.

Listeners reach Postgres through a proxy of the test's own (tests/support/pg_proxy.py), so
cutting one never touches the shared Postgres."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from metering.v1 import prices_pb2
from server.runtime.app import MeteringServer
from server.storage import notify
from server.storage.notify import Change, Listener, Topic
from tests.conftest import MASTER_KEY
from tests.support.pg_proxy import PgProxy

DEADLINE = 10.0


async def until(condition: Callable[[], bool], deadline: float = DEADLINE) -> float:
    """Polls `condition` until it holds; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline, "condition never held"
        await asyncio.sleep(0.001)
    return time.monotonic() - started


@pytest.fixture
async def listener(proxy: PgProxy, server: MeteringServer) -> AsyncIterator[Listener]:
    listener = Listener(proxy.dsn, ping_seconds=0.2, ping_timeout=1.0, backoff=(0.01, 0.1))
    await listener.start()
    assert listener.connected
    yield listener
    await listener.close()


def heard(listener: Listener, topic: Topic) -> list[Change]:
    changes: list[Change] = []
    listener.subscribe(topic, changes.append)
    return changes


def test_payloads_round_trip():
    for change in (Change(Topic.API_KEY, 7, "key_abc"), Change(Topic.PRICE_BOOK, 7), Change(Topic.BUDGETS, None)):
        assert Change.parse(change.payload()) == change
    assert Change.parse("no such topic:1:") is None and Change.parse("api_key:x:") is None


async def test_a_change_is_heard_when_its_transaction_commits(listener, db):
    keys, books = heard(listener, Topic.API_KEY), heard(listener, Topic.PRICE_BOOK)
    async with db.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await notify.send(conn, Topic.API_KEY, 41, "key_rolled_back")
                raise RuntimeError("roll back")
        async with conn.transaction():
            await notify.send(conn, Topic.API_KEY, 42, "key_1")
            await notify.send(conn, Topic.PRICE_BOOK, 42)
            await asyncio.sleep(0.05)
            assert keys == [] and books == []  # not before the commit
    await until(lambda: len(keys) == 1 and len(books) == 1)
    assert keys == [Change(Topic.API_KEY, 42, "key_1")] and books == [Change(Topic.PRICE_BOOK, 42)]


async def test_a_lost_connection_is_reported_and_everything_dropped_after(listener, proxy, db):
    keys = heard(listener, Topic.API_KEY)
    states: list[bool] = []

    async def observe(up: bool) -> None:
        states.append(up)

    listener.on_state(observe)
    mark = listener.mark()
    assert listener.unbroken(mark)

    proxy.down()  # Postgres unreachable: the connection drops, reconnecting fails
    await until(lambda: not listener.connected)
    assert states == [False] and not listener.unbroken(mark) and listener.mark() is None
    async with db.acquire() as conn, conn.transaction():
        await notify.send(conn, Topic.API_KEY, 43, "key_missed")  # sent while nobody listens through the proxy

    proxy.up()
    await until(lambda: listener.connected)
    assert states == [False, True]
    assert not listener.unbroken(mark)  # a new connection: what was missed in between is not known
    assert Change(Topic.API_KEY, None) in keys  # ... so subscribers dropped everything
    assert Change(Topic.API_KEY, 43, "key_missed") not in keys
    assert listener.unbroken(listener.mark())


async def test_a_silent_connection_is_found_dead_by_its_ping(listener, proxy):
    """A connection that stops answering without closing (a silent network failure) is given up
    when its ping gets no answer within ping_timeout, and replaced."""
    first = listener.mark()
    states: list[bool] = []

    async def observe(up: bool) -> None:
        states.append(up)

    listener.on_state(observe)
    proxy.freeze()
    took = await until(lambda: listener.mark() not in (first, None))
    assert states == [False, True] and proxy.accepted >= 2
    assert took < listener.ping_seconds + listener.ping_timeout + 1.0


async def test_a_price_book_changed_on_one_server_is_reloaded_by_another_at_once(database_url, server, pstubs,
                                                                                  new_org, db):
    """No batch is priced on the other server meanwhile: the notification alone reloads its book."""
    org = await new_org()
    org_id = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    other = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY, pool_size=2)
    await other.start()
    try:
        assert other.ingest is not None and other.pool is not None
        pricer = other.ingest.writer.pricer
        await pricer.refresh(other.pool, [org_id])  # the other server holds this organization's book
        before = pricer.book(org_id).revision
        await pstubs.prices.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(versions=[
            prices_pb2.NewPriceVersion(model="notify-model", prices=[
                prices_pb2.Price(usage_type="input", unit_price="0.001")])]), metadata=org.auth)
        took = await until(lambda: pricer.book(org_id).revision > before, deadline=0.1)
        assert "notify-model" in {v.model for v in pricer.book(org_id).by_name.values()}
        print(f"price book reloaded by the other server {took * 1000:.1f} ms after the change returned")
    finally:
        await other.stop(grace=1)
