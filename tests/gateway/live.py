"""The gateway served by uvicorn on an ephemeral loopback port, for clients that need a real
HTTP server (the official openai SDK, urllib). Import the fixture into a test module:
`from tests.gateway.live import live_gateway  # noqa: F401`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn

from gateway.app import create_app
from server.runtime.app import MeteringServer


class LoopbackServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner keeps its own signal handlers
        yield


@pytest.fixture(scope="module")
async def live_gateway(server: MeteringServer) -> AsyncIterator[str]:
    """The gateway's base URL, in front of the test gRPC server."""
    config = uvicorn.Config(create_app(f"127.0.0.1:{server.port}"), host="127.0.0.1", port=0, log_config=None,
                            access_log=False, lifespan="on")
    srv = LoopbackServer(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    await task
