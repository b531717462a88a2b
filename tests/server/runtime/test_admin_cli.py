"""The admin verbs reach the service that is running (issue 15, item 8): without --target or a
data dir they find the one `metering up` of this user; with nothing running they refuse, saying how
to point at a service, and never start an embedded database of their own. `up` prints where the
master key is kept, not the key."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bench.stress import up as stress_up
from metering.v1 import admin_pb2, admin_pb2_grpc
from tests.server.runtime import up_process
from tests.support import services

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def scratch() -> Iterator[Path]:
    with up_process.scratch_dir("metering-cli-") as path:
        yield path


def metering(home: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """The `metering` command as a user types it: no METERING_* settings unless given."""
    return subprocess.run([sys.executable, "-m", "server.runtime.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, env=up_process.clean_env(home, **settings), timeout=120, check=False)


async def key_works(grpc_addr: str, key: str) -> bool:
    async with grpc.aio.insecure_channel(grpc_addr) as channel:
        try:
            await admin_pb2_grpc.AdminServiceStub(channel).ListApiKeys(
                admin_pb2.ListApiKeysRequest(organization="default"), metadata=(("authorization", f"Bearer {key}"),),
                timeout=10)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
            return False
    return True


async def test_admin_verbs_find_the_running_up_or_refuse(scratch: Path) -> None:
    home, data_dir = scratch / "home", scratch / "data"
    home.mkdir()
    default_dir = home / ".local" / "share" / "metering"
    admin = services.postgres_admin_dsn()
    dsn = await services.create_test_database(admin)
    up = stress_up.start_up(data_dir, up_process.clean_env(
        home, METERING_DATABASE_URL=dsn, METERING_REDIS_URL=services.redis_url(),
        METERING_QUEUE_NAME="metering:test-cli:" + data_dir.parent.name))
    procs = []
    try:
        await stress_up.wait_ready(up)
        procs = stress_up.stack(up)
        master_file = data_dir / "master_key"
        assert master_file.stat().st_mode & 0o777 == 0o600
        assert master_file.read_text().strip() not in up.output  # never printed
        assert f"master key: {master_file}" in up.output, up.output

        created = metering(home, "keys", "create", "--org", "default")  # no data dir, no target
        assert created.returncode == 0, created.stderr
        assert await key_works(up.grpc_addr, created.stdout.strip().split("\n")[-1])
        named = metering(home, "--data-dir", str(data_dir), "keys", "create", "--org", "default")
        assert named.returncode == 0, named.stderr
        assert await key_works(up.grpc_addr, named.stdout.strip().split("\n")[-1])
        assert not default_dir.exists()

        up.proc.send_signal(signal.SIGINT)
        assert await stress_up.wait_exit(up) == 0, up.output[-3000:]
        for args in ((), ("--data-dir", str(data_dir))):  # that data dir holds no database: up used another
            refused = metering(home, *args, "keys", "create", "--org", "default")
            assert refused.returncode != 0 and not refused.stdout
            assert "--target" in refused.stderr and "--data-dir" in refused.stderr, refused.stderr
        assert not default_dir.exists()
        assert not (data_dir / "postgres").exists()
    finally:
        stress_up.kill_all(procs)
        await services.drop_test_database(admin, dsn)
