"""A revoked API key is refused at once by every server process (issue 15, item 7; DESIGN §10):
each caches keys, and the revocation's notification (server/storage/notify.py) drops the key from
every cache when it commits. Two servers on one database are two processes for this purpose; one
test runs two real `metering serve` processes. With the notifications not heard, the short TTL
still refuses the key within CACHE_SECONDS.

The second server listens through a proxy of the test's own (tests/support/pg_proxy.py), so its
listener can be cut while its pool still reaches Postgres."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest

from metering.v1 import admin_pb2, admin_pb2_grpc
from server.runtime.app import MeteringServer
from server.storage import notify
from server.tenants.auth import CACHE_SECONDS
from tests.conftest import MASTER, MASTER_KEY, Org, bearer
from tests.support.pg_proxy import PgProxy
from tests.support.serve_processes import accepted as connections_held
from tests.support.serve_processes import listening, spread_channels
from tests.support.services import free_port

AT_ONCE = 0.1  # seconds: "refused by both within 100 ms"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def admins(server: MeteringServer, database_url: str, proxy: PgProxy
                 ) -> AsyncIterator[list[admin_pb2_grpc.AdminServiceStub]]:
    """AdminService stubs of two servers on the test database: the session's, and one that
    listens for notifications through the proxy."""
    other = MeteringServer(database_url, "127.0.0.1:0", MASTER_KEY, pool_size=2, listen_dsn=proxy.dsn)
    await other.start()
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in (server, other)]
    yield [admin_pb2_grpc.AdminServiceStub(ch) for ch in channels]
    for ch in channels:
        await ch.close()
    proxy.up()
    await other.stop(grace=1)


async def accepted(admin: admin_pb2_grpc.AdminServiceStub, key: str) -> bool:
    try:
        await admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(key))
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
        return False
    return True


async def refused_after(admins: Sequence[admin_pb2_grpc.AdminServiceStub], key: str, since: float,
                        deadline: float) -> list[float]:
    """Polls each server until it refuses `key`: the seconds from `since` each took (at most `deadline`)."""

    async def one(admin: admin_pb2_grpc.AdminServiceStub) -> float:
        while await accepted(admin, key):
            assert time.monotonic() - since < deadline, "the revoked key is still accepted"
            await asyncio.sleep(0.002)
        return time.monotonic() - since

    return list(await asyncio.gather(*(one(admin) for admin in admins)))


async def member_key(admin: admin_pb2_grpc.AdminServiceStub, org: Org) -> admin_pb2.CreateApiKeyResponse:
    return await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        organization=org.organization_id, role=admin_pb2.ROLE_MEMBER, name="revoked-soon"), metadata=MASTER)


async def warmed(admins: Sequence[admin_pb2_grpc.AdminServiceStub], key: str) -> None:
    """Every server has the key in its cache."""
    for admin in admins:
        assert await accepted(admin, key)


@pytest.mark.parametrize("through", [0, 1], ids=["first-server", "second-server"])
async def test_a_key_revoked_through_one_server_is_refused_by_both_at_once(admins, new_org, through):
    org = await new_org()
    key = await member_key(admins[0], org)
    await warmed(admins, key.key)
    await warmed(admins, key.key)  # still cached: accepted again
    started = time.monotonic()
    await admins[through].RevokeApiKey(admin_pb2.RevokeApiKeyRequest(
        organization=org.organization_id, api_key_id=key.api_key.api_key_id), metadata=org.auth)
    returned = time.monotonic()
    took = await refused_after(admins, key.key, returned, AT_ONCE)
    print(f"revoked through server {through} in {(returned - started) * 1000:.1f} ms; refused "
          f"{', '.join(f'{t * 1000:.1f}' for t in took)} ms after")


async def test_a_key_revoked_in_sql_with_its_notification_is_refused_by_both_at_once(admins, new_org, db):
    """What any writer of api_keys outside the servers must do: notify in the same transaction."""
    org = await new_org()
    key = await member_key(admins[0], org)
    await warmed(admins, key.key)
    async with db.acquire() as conn, conn.transaction():
        org_id = await conn.fetchval(
            "update api_keys set revoke_time = now() where api_key_id = $1 returning org_id", key.api_key.api_key_id)
        await notify.send(conn, notify.Topic.API_KEY, org_id, key.api_key.api_key_id)
    committed = time.monotonic()
    took = await refused_after(admins, key.key, committed, AT_ONCE)
    print(f"revoked in SQL; refused {', '.join(f'{t * 1000:.1f}' for t in took)} ms after the commit")


async def test_without_notifications_the_short_ttl_still_refuses_the_key(admins, new_org, proxy):
    org = await new_org()
    key = await member_key(admins[0], org)
    proxy.down()  # the second server's listener is cut; its pool still reaches Postgres
    await warmed(admins, key.key)  # cached now, while nothing can be heard
    read = time.monotonic()
    await admins[0].RevokeApiKey(admin_pb2.RevokeApiKeyRequest(
        organization=org.organization_id, api_key_id=key.api_key.api_key_id), metadata=org.auth)
    assert not await accepted(admins[0], key.key)
    assert await accepted(admins[1], key.key)  # not heard: the second server still trusts its copy ...
    [took] = await refused_after(admins[1:], key.key, read, CACHE_SECONDS + 1.0)
    assert took >= CACHE_SECONDS - 0.5  # ... until its short TTL ends
    print(f"without notifications: refused {took:.2f} s after the key was cached")


# --- two `metering serve` processes ----------------------------------------------------------------

async def test_two_serve_processes_refuse_a_revoked_key_at_once(database_url, server, new_org, tmp_path):
    port = free_port()
    env = {**os.environ, "METERING_DATABASE_URL": database_url, "METERING_REDIS_URL": "redis://127.0.0.1:1/0",
           "METERING_GRPC_ADDR": f"127.0.0.1:{port}", "METERING_MASTER_KEY": MASTER_KEY,
           "METERING_SERVER_PROCESSES": "2", "METERING_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "server.runtime.cli", "serve"], cwd=ROOT, env=env,
                            stderr=subprocess.DEVNULL)
    channels: list[grpc.aio.Channel] = []
    try:
        deadline = time.monotonic() + 30
        while len(listening(port)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "two processes never listened"
            await asyncio.sleep(0.05)
        channels = await spread_channels(port, sorted(listening(port)), 8)
        assert set(connections_held(port)) == listening(port), "the connections did not reach both processes"
        admins = [admin_pb2_grpc.AdminServiceStub(ch) for ch in channels]
        org = await new_org()
        key = await member_key(admins[0], org)
        await warmed(admins, key.key)  # every connection: both processes
        await admins[0].RevokeApiKey(admin_pb2.RevokeApiKeyRequest(
            organization=org.organization_id, api_key_id=key.api_key.api_key_id), metadata=org.auth)
        took = await refused_after(admins, key.key, time.monotonic(), AT_ONCE)
        print(f"two serve processes: refused {max(took) * 1000:.1f} ms after the revocation returned (slowest)")
    finally:
        for ch in channels:
            await ch.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
