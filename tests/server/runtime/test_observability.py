"""`metering serve` as operators run it: with METERING_SERVER_PROCESSES=2 one scrape of
METERING_METRICS_ADDR shows the sum over both processes; with METERING_LOG_FORMAT=json every
stderr line is a JSON object, and with METERING_ACCESS_LOG=on each RPC has an access line
carrying its request id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from metering.v1 import admin_pb2, admin_pb2_grpc, event_pb2, ingest_pb2, ingest_pb2_grpc
from tests.conftest import MASTER, MASTER_KEY
from tests.support.prometheus import scrape
from tests.support.serve_processes import accepted, children, listening, spread_channels
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[3]
RECORD = "/metering.v1.IngestService/RecordEvent"


async def test_two_processes_are_scraped_as_one_and_log_json(database_url: str, server, tmp_path: Path):
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "METERING_DATABASE_URL": database_url, "METERING_REDIS_URL": "redis://127.0.0.1:1/0",
           "METERING_GRPC_ADDR": f"127.0.0.1:{port}", "METERING_MASTER_KEY": MASTER_KEY,
           "METERING_SERVER_PROCESSES": "2", "METERING_DATA_DIR": str(tmp_path), "METERING_LOG_LEVEL": "INFO",
           "METERING_METRICS_ADDR": f"127.0.0.1:{metrics_port}", "METERING_LOG_FORMAT": "json",
           "METERING_ACCESS_LOG": "on"}
    proc = subprocess.Popen([sys.executable, "-m", "server.runtime.cli", "serve"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (len(children(proc.pid)) == 2 and listening(port) >= set(children(proc.pid))):
            assert time.monotonic() < deadline, (children(proc.pid), listening(port))
            time.sleep(0.1)
        channels = await spread_channels(port, children(proc.pid), 6)
        admin = admin_pb2_grpc.AdminServiceStub(channels[0])
        org = await admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name=f"obs-{port}"), metadata=MASTER)
        key = await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=org.organization_id),
                                       metadata=MASTER)
        held = accepted(port)
        assert all(held.get(child, 0) > 0 for child in children(proc.pid)), held
        for i, ch in enumerate(channels):
            await ingest_pb2_grpc.IngestServiceStub(ch).RecordEvent(
                ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(request_id=f"o{i}", kind="completions")),
                metadata=(("authorization", f"Bearer {key.key}"), ("x-request-id", f"obs-rid-{i}")), timeout=10)
        found = await scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        for ch in channels:
            await ch.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

    # the sum over both processes: every event once, every call once
    assert found.value("metering_events_ingested_total", path="grpc_unary", outcome="recorded") == len(channels)
    assert found.value("metering_grpc_server_handling_seconds_count", method=RECORD, code="OK") == len(channels)
    assert found.value("metering_db_pool_connections", state="max") == 2 * 10  # livesum of the two pools

    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    access = {line.get("request_id"): line for line in lines if line["logger"] == "metering.access"}
    assert set(access) >= {f"obs-rid-{i}" for i in range(len(channels))}
    assert access["obs-rid-0"]["method"] == RECORD and access["obs-rid-0"]["code"] == "OK"
    assert sum(line["message"] == "grpc server stopped" for line in lines) == 2
