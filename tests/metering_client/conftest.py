"""SDK test helpers: the SDK's sync calls run in worker threads (asyncio.to_thread) so the session's
event loop keeps serving the real gRPC server; restart tests run their own MeteringServer on a
fixed port over the same database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from metering_client import lifecycle
from server.runtime.app import MeteringServer
from tests.conftest import MASTER_KEY


@pytest.fixture(autouse=True)
def journal_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Default journals go to the test's temp dir, never to ~/.local/state."""
    path = tmp_path / "journal"
    monkeypatch.setenv("METERING_JOURNAL_DIR", str(path))
    for name in ("METERING_TARGET", "METERING_API_KEY", "METERING_CLIENT_ID", "METERING_TLS", "METERING_ROOT_CERTS"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture(autouse=True)
def no_client_left_open() -> Iterator[None]:
    """Every client a test opens is closed by it (else the exit hook would deliver at process end)."""
    before = set(lifecycle._hooks)
    yield
    leaked = set(lifecycle._hooks) - before
    assert not leaked, f"{len(leaked)} metering client(s) left open"


@pytest.fixture
def target(server: MeteringServer) -> str:
    return f"127.0.0.1:{server.port}"


ServerFactory = Callable[[int], Awaitable[MeteringServer]]


@pytest.fixture
async def own_server(database_url: str) -> AsyncIterator[ServerFactory]:
    """Factory: start a MeteringServer on `port` (same test database); all are stopped at the end."""
    started: list[MeteringServer] = []

    async def start(port: int) -> MeteringServer:
        srv = MeteringServer(database_url, f"127.0.0.1:{port}", MASTER_KEY, pool_size=4)
        await srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        if srv.server is not None and srv.pool is not None and not srv.pool.is_closing():
            await srv.stop(grace=0)


async def event_counts(db: asyncpg.Pool, organization_id: str) -> tuple[int, int]:
    """(rows in events, distinct request_ids) for an organization."""
    row = await db.fetchrow(
        "select count(*) as n, count(distinct e.request_id) as d from events e"
        " join organizations o using (org_id) where o.id = $1",
        organization_id,
    )
    assert row is not None
    return row["n"], row["d"]
