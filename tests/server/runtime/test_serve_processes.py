"""`metering serve` with METERING_SERVER_PROCESSES=2: two server processes share
one port (SO_REUSEPORT), connections land on both, every event is stored exactly
once whichever process took it, and SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import grpc

from metering.v1 import admin_pb2, admin_pb2_grpc, event_pb2, ingest_pb2, ingest_pb2_grpc
from tests.conftest import MASTER, MASTER_KEY
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[3]


def _accepted(port: int) -> dict[int, int]:
    """Established connections to `port`, counted by the process holding them (from `ss`)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    held: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        held[int(pid)] = held.get(int(pid), 0) + 1
    return held


def _listening(port: int) -> set[int]:
    """The processes that listen on `port` (from `ss`)."""
    out = subprocess.run(["ss", "-Htlnp", f"( sport = :{port} )"], capture_output=True, text=True, check=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


async def test_two_processes_share_the_port_and_stop_together(database_url: str, server, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "METERING_DATABASE_URL": database_url, "METERING_REDIS_URL": "redis://127.0.0.1:1/0",
           "METERING_GRPC_ADDR": f"127.0.0.1:{port}", "METERING_MASTER_KEY": MASTER_KEY,
           "METERING_SERVER_PROCESSES": "2", "METERING_DATA_DIR": str(tmp_path), "METERING_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen([sys.executable, "-m", "server.runtime.cli", "serve"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (len(_children(proc.pid)) == 2 and _listening(port) >= set(_children(proc.pid))):
            assert time.monotonic() < deadline, (_children(proc.pid), _listening(port))
            time.sleep(0.1)  # both must listen before the connections are made, or one takes them all

        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(8)]
        for ch in channels:
            await ch.channel_ready()
        admin = admin_pb2_grpc.AdminServiceStub(channels[0])
        org = await admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name=f"procs-{port}"),
                                             metadata=MASTER)
        key = await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=org.organization_id),
                                       metadata=MASTER)
        auth = (("authorization", f"Bearer {key.key}"),)
        # the kernel spread the 8 connections over both processes
        held = _accepted(port)
        assert all(held.get(child, 0) > 0 for child in _children(proc.pid)), held
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
