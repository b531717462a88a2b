"""The key cache of the Authenticator (server/tenants/auth.py) on a fake clock: an entry is trusted
for WATCHED_CACHE_SECONDS while every notification since it was read has been heard, and only for
CACHE_SECONDS once the listener lost its connection; a change heard drops it at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from server.core.errors import Unauthenticated
from server.runtime.app import MeteringServer
from server.storage import notify
from server.storage.notify import Listener
from server.tenants.auth import CACHE_SECONDS, WATCHED_CACHE_SECONDS, Authenticator
from server.tenants.store import Tenants
from tests.support.pg_proxy import PgProxy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def listener(proxy: PgProxy, server: MeteringServer) -> AsyncIterator[Listener]:
    listener = Listener(proxy.dsn, backoff=(0.01, 0.1))
    await listener.start()
    assert listener.connected
    yield listener
    await listener.close()


async def until(condition) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < 10, "condition never held"
        await asyncio.sleep(0.005)


async def new_key(tenants: Tenants) -> tuple[int, str, str]:
    org = await tenants.create_organization("cache-" + str(time.monotonic_ns()))
    row, key = await tenants.create_api_key(org["org_id"])
    return org["org_id"], row["api_key_id"], key


async def revoke_silently(db, api_key_id: str) -> None:
    """A change nobody is told of (no notification): only the TTLs can catch it."""
    await db.execute("update api_keys set revoke_time = now() where api_key_id = $1", api_key_id)


async def test_trusted_longer_while_notifications_are_heard(db, listener):
    clock = Clock()
    tenants = Tenants(db)
    auth = Authenticator(tenants, None, listener=listener, clock=clock)
    org_id, key_id, key = await new_key(tenants)
    await auth.principal_for(key)
    await revoke_silently(db, key_id)
    clock.now += CACHE_SECONDS * 2
    assert (await auth.principal_for(key)).api_key_id == key_id  # no DB read: the change was never told
    clock.now += WATCHED_CACHE_SECONDS
    with pytest.raises(Unauthenticated, match="revoked"):
        await auth.principal_for(key)


async def test_a_change_heard_drops_the_key(db, listener):
    tenants = Tenants(db)
    auth = Authenticator(tenants, None, listener=listener, clock=Clock())
    org_id, key_id, key = await new_key(tenants)
    _, other_id, other = await new_key(tenants)
    await auth.principal_for(key)
    await auth.principal_for(other)
    await revoke_silently(db, key_id)
    await revoke_silently(db, other_id)
    async with db.acquire() as conn, conn.transaction():
        await notify.send(conn, notify.Topic.API_KEY, org_id, key_id)

    async def refused(secret: str) -> bool:
        try:
            await auth.principal_for(secret)
        except Unauthenticated:
            return True
        return False

    started = time.monotonic()
    while not await refused(key):
        assert time.monotonic() - started < 0.1
        await asyncio.sleep(0.001)
    assert not await refused(other)  # another key (of another organization) is left alone


async def test_the_short_ttl_once_the_listener_is_cut(db, listener, proxy):
    clock = Clock()
    tenants = Tenants(db)
    auth = Authenticator(tenants, None, listener=listener, clock=clock)
    _, key_id, key = await new_key(tenants)
    _, late_id, late = await new_key(tenants)
    await auth.principal_for(key)  # read while heard
    proxy.down()
    await until(lambda: not listener.connected)
    await auth.principal_for(late)  # read while not heard
    await revoke_silently(db, key_id)
    await revoke_silently(db, late_id)
    clock.now += CACHE_SECONDS - 0.1
    assert (await auth.principal_for(key)).api_key_id == key_id
    assert (await auth.principal_for(late)).api_key_id == late_id
    clock.now += 0.2
    for secret in (key, late):
        with pytest.raises(Unauthenticated, match="revoked"):
            await auth.principal_for(secret)
