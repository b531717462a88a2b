"""`python -m gateway` logging as operators configure it: METERING_LOG_FORMAT=json writes one
JSON object per line, METERING_ACCESS_LOG=on one access line per request with its route, status
and request id, and uvicorn's own access lines are never written (the default, no access line at
all, is tests/metering/test_logs.py's)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from server.runtime.app import MeteringServer
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def gateway(server: MeteringServer, log: Path, **settings: str) -> AsyncIterator[str]:
    """`python -m gateway` with `settings` in its environment, stderr into `log`; yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERING_")}
    env |= {"METERING_GRPC_ADDR": f"127.0.0.1:{server.port}", "METERING_HTTP_ADDR": f"127.0.0.1:{port}", **settings}
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                assert proc.poll() is None, log.read_text()
                await asyncio.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


async def requests(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/v1/events/e-1", headers={"x-request-id": "rid-7"})).status_code == 401
        assert (await http.get("/nowhere", headers={"x-request-id": "rid-8"})).status_code == 404


async def test_json_lines_with_access_lines(server: MeteringServer, tmp_path: Path):
    log = tmp_path / "gateway.log"
    async with gateway(server, log, METERING_LOG_FORMAT="json", METERING_ACCESS_LOG="on") as url:
        await requests(url)

    lines = [json.loads(line) for line in log.read_text().splitlines()]  # every line a JSON object
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's own lines too, as JSON
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    access = {line["request_id"]: line for line in lines if line["logger"] == "metering.access"}
    polled = {rid for rid, line in access.items() if line["route"] == "/healthz"}
    assert polled and all(len(rid) == 32 for rid in polled)  # no X-Request-Id: the gateway made one up
    assert set(access) - polled == {"rid-7", "rid-8"}
    assert {k: access["rid-7"][k] for k in ("method", "path", "route", "status")} == \
        {"method": "GET", "path": "/v1/events/e-1", "route": "/v1/events/{event_id}", "status": 401}
    assert access["rid-8"]["route"] == "unmatched" and access["rid-8"]["level"] == "INFO"
