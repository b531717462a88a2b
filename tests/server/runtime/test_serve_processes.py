"""`metering serve` with METERING_SERVER_PROCESSES=2: two server processes share
one port (SO_REUSEPORT), connections land on both, every event is stored exactly
once whichever process took it, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from metering.v1 import admin_pb2, admin_pb2_grpc, event_pb2, ingest_pb2, ingest_pb2_grpc
from tests.conftest import MASTER, MASTER_KEY
from tests.support.serve_processes import accepted, children, listening, spread_channels
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[3]


async def test_two_processes_share_the_port_and_stop_together(database_url: str, server, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "METERING_DATABASE_URL": database_url, "METERING_REDIS_URL": "redis://127.0.0.1:1/0",
           "METERING_GRPC_ADDR": f"127.0.0.1:{port}", "METERING_MASTER_KEY": MASTER_KEY,
           "METERING_SERVER_PROCESSES": "2", "METERING_DATA_DIR": str(tmp_path), "METERING_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen([sys.executable, "-m", "server.runtime.cli", "serve"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (len(children(proc.pid)) == 2 and listening(port) >= set(children(proc.pid))):
            assert time.monotonic() < deadline, (children(proc.pid), listening(port))
            time.sleep(0.1)  # both must listen before the connections are made, or one takes them all

        channels = await spread_channels(port, children(proc.pid), 8)
        admin = admin_pb2_grpc.AdminServiceStub(channels[0])
        org = await admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name=f"procs-{port}"),
                                             metadata=MASTER)
        key = await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=org.organization_id),
                                       metadata=MASTER)
        auth = (("authorization", f"Bearer {key.key}"),)
        # the connections (8 or more) reach both processes
        held = accepted(port)
        assert all(held.get(child, 0) > 0 for child in children(proc.pid)), held
        for round_ in range(2):  # the second round repeats every request_id: all duplicates
            for i, ch in enumerate(channels):
                reply = await ingest_pb2_grpc.IngestServiceStub(ch).RecordEvent(
                    ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
                        request_id=f"r{i}", kind="completions", model="m", input_tokens=i)),
                    metadata=auth, timeout=10)
                expected = ingest_pb2.OUTCOME_RECORDED if round_ == 0 else ingest_pb2.OUTCOME_DUPLICATE
                assert reply.outcome == expected
        for ch in channels:
            await ch.close()

        conn = await asyncpg.connect(database_url)
        try:
            stored = await conn.fetchval(
                "select count(*) from events e join organizations o using (org_id) where o.id = $1",
                org.organization_id)
        finally:
            await conn.close()
        assert stored == len(channels)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err.count("grpc server stopped") == 2
