"""The `kill-up` scenario of `python -m bench.stress`: SIGKILL of `metering up` under ingest.

`metering up` runs as a real process on a temp data dir (embedded Postgres and Redis unless
the environment given names others), on free loopback ports. While a client ingests over gRPC
without pause, up is killed with SIGKILL `kills` times at random points; each time every
process of its stack (server, gateway, worker, guardian, the embedded Postgres with its
backends, Redis) must be gone within 5 s, and up is started again on the same data dir and
ports. A batch cut by a kill is sent again with the same request ids until it is answered, so
at the end every event sent was acknowledged: the database must hold each exactly once.

The process helpers (start, wait, find the stack, wait for it to die) serve the tests of up too
(tests/reliability/test_up.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.stack import free_port
from metering.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
STACK_GONE_WITHIN = 5.0  # seconds after the SIGKILL of up (issue 15, item 2)
READY_TIMEOUT = 90.0  # embedded Postgres (initdb on a first start, WAL replay after a kill) and migrations
EXIT_TIMEOUT = 60.0


# --- up as a process ------------------------------------------------------------------------------

@dataclasses.dataclass
class Up:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    grpc_addr: str
    http_addr: str
    log: Path  # stdout and stderr of up and its children

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def ports(self) -> tuple[int, int]:
        return int(self.grpc_addr.rpartition(":")[2]), int(self.http_addr.rpartition(":")[2])


def start_up(data_dir: Path, env: Mapping[str, str], *, grpc_port: int = 0, http_port: int = 0) -> Up:
    """`metering --data-dir DATA_DIR up` on free loopback ports (or the ones given); its
    output goes to a file beside the data dir (a pipe would be held open by its children)."""
    grpc_addr = f"127.0.0.1:{grpc_port or free_port()}"
    http_addr = f"127.0.0.1:{http_port or free_port()}"
    log = data_dir.parent / f"{data_dir.name}-up-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.runtime.cli", "--data-dir", str(data_dir), "up"],
            cwd=ROOT, env={**env, "METERING_GRPC_ADDR": grpc_addr, "METERING_HTTP_ADDR": http_addr},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    return Up(proc, data_dir, grpc_addr, http_addr, log)


def serving(grpc_addr: str) -> bool:
    """The gRPC health check says SERVING."""
    with grpc.insecure_channel(grpc_addr) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _healthy(http_addr: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{http_addr}/healthz", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


async def wait_ready(up: Up, timeout: float = READY_TIMEOUT) -> float:
    """Seconds until the gRPC server says SERVING and the gateway's /healthz answers 200."""
    started = time.monotonic()
    while not (await asyncio.to_thread(serving, up.grpc_addr) and await asyncio.to_thread(_healthy, up.http_addr)):
        if up.proc.poll() is not None:
            raise AssertionError(f"up exited with {up.proc.returncode}:\n{up.output[-3000:]}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"up not ready after {timeout}s:\n{up.output[-3000:]}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def wait_exit(up: Up, timeout: float = EXIT_TIMEOUT) -> int:
    """up's exit code; fails (and kills it) if it still runs after timeout."""
    deadline = time.monotonic() + timeout
    while up.proc.poll() is None:
        if time.monotonic() > deadline:
            up.proc.kill()
            up.proc.wait()
            raise AssertionError(f"up still running after {timeout}s:\n{up.output[-3000:]}")
        await asyncio.sleep(0.05)
    return up.proc.returncode


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def mentioning(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line names the data dir (postgres -D, redis-server's socket, up...)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(data_dir) in arg for arg in proc.info["cmdline"] or ()) and _alive(proc):
                found.append(proc)
    return found


def stack(up: Up) -> list[psutil.Process]:
    """Every process of up's stack: up and its descendants, the embedded postmaster and
    redis-server of its data dir with their children, and whatever else names the data dir."""
    procs: dict[int, psutil.Process] = {}
    roots = [psutil.Process(up.proc.pid)]
    for pid in (_pidfile(up.data_dir / "postgres" / "postmaster.pid"), _pidfile(up.data_dir / "redis" / "redis.pid")):
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                roots.append(psutil.Process(pid))
    for root in [*roots, *mentioning(up.data_dir)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs[root.pid] = root
            procs.update((child.pid, child) for child in root.children(recursive=True))
    return list(procs.values())


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            out.append(f"{proc.pid} {' '.join(proc.cmdline())[:160]}")
    return out


async def wait_all_gone(procs: list[psutil.Process], data_dir: Path, timeout: float) -> float:
    """Seconds until none of procs (nor any process naming data_dir) is alive; fails after timeout."""
    started = time.monotonic()
    while True:
        left = [p for p in procs if _alive(p)] + mentioning(data_dir)
        if not left:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"still alive {timeout}s later: {describe(left)}")
        await asyncio.sleep(0.02)


def kill_all(procs: list[psutil.Process]) -> None:
    """Cleanup after a failure: SIGKILL whatever is left."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if _alive(proc):
                proc.send_signal(signal.SIGKILL)


def kinds(procs: list[psutil.Process]) -> dict[str, int]:
    """How many processes of each part of the stack: up, server, gateway, worker, guardian, postgres, redis."""
    parts = {"server.runtime.cli serve": "server", "-m gateway": "gateway", "-m worker": "worker",
             "server.runtime.guardian": "guardian", "server.runtime.cli --data-dir": "up"}
    counted: dict[str, int] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            line, name = " ".join(proc.cmdline()), proc.name()
            kind = next((k for part, k in parts.items() if part in line), name if name != "python" else "other")
            counted[kind] = counted.get(kind, 0) + 1
    return counted


async def sigkill(up: Up, procs: list[psutil.Process]) -> float:
    """SIGKILL up; seconds until its whole stack (procs, found before) is gone; fails past STACK_GONE_WITHIN."""
    up.proc.send_signal(signal.SIGKILL)
    up.proc.wait()
    return await wait_all_gone(procs, up.data_dir, STACK_GONE_WITHIN)


# --- ingest and what was stored -------------------------------------------------------------------

@dataclasses.dataclass
class Ingest:
    """Batches of fresh request ids until stopped. A batch that fails is sent again with the
    same ids until it is answered, so when run() returns every event sent was acknowledged."""

    target: str
    master_key: str
    sent: int = 0  # events in answered batches
    input_tokens: int = 0
    failures: int = 0  # calls that failed (the stack was down)
    answered: int = 0  # batches

    async def run(self, stop: asyncio.Event, batch: int = 50) -> None:
        tag = secrets.token_hex(4)
        auth = (("authorization", f"Bearer {self.master_key}"),)
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            while not stop.is_set():
                events = [event_pb2.UsageEvent(request_id=f"{tag}-{self.sent + i}", kind="completions", model="m",
                                               input_tokens=1 + (self.sent + i) % 7) for i in range(batch)]
                while True:
                    try:
                        reply = await stub.RecordEvents(ingest_pb2.RecordEventsRequest(events=events),
                                                        metadata=auth, timeout=5)
                        break
                    except grpc.aio.AioRpcError:
                        self.failures += 1
                        await asyncio.sleep(0.05)
                assert reply.recorded + reply.duplicates == batch, reply
                self.sent += batch
                self.input_tokens += sum(e.input_tokens for e in events)
                self.answered += 1

    async def until(self, answered: int, up: Up) -> None:
        while self.answered < answered:
            if up.proc.poll() is not None:
                raise AssertionError(f"up exited with {up.proc.returncode}:\n{up.output[-3000:]}")
            await asyncio.sleep(0.02)


def embedded_dsn(data_dir: Path) -> str:
    """The DSN of the embedded Postgres, from its postmaster.pid (port, socket dir)."""
    lines = (data_dir / "postgres" / "postmaster.pid").read_text().split("\n")
    return f"postgresql://postgres@/metering?host={lines[4].strip()}&port={lines[3].strip()}"


async def stored(dsn: str) -> tuple[int, int, int]:
    """(events, distinct request ids, input tokens) in the database."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT count(*), count(DISTINCT request_id), coalesce(sum(input_tokens), 0) "
                                  "FROM events")
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


# --- the scenario ---------------------------------------------------------------------------------

def up_env(base: Mapping[str, str], master_key: str, **settings: str) -> dict[str, str]:
    """base less its METERING_* settings, with this master key and these settings."""
    env = {k: v for k, v in base.items() if not k.startswith("METERING_")}
    env.update(METERING_MASTER_KEY=master_key, METERING_LOG_LEVEL="WARNING", **settings)
    return env


async def kill_up(kills: int = 5, *, data_dir: Path | None = None, env: Mapping[str, str] | None = None,
                  between: tuple[int, int] = (5, 40)) -> dict[str, Any]:
    """kills SIGKILLs of up, each after a random number (`between`) of answered batches.
    env: up's environment, with METERING_MASTER_KEY (default: this one less METERING_*, so
    embedded Postgres and Redis); data_dir: default a temp dir, removed afterwards."""
    master_key = (env or {}).get("METERING_MASTER_KEY") or "stress-master-" + secrets.token_hex(16)
    env = dict(env) if env is not None else up_env(os.environ, master_key)
    tmp = None
    if data_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="metering-stress-up-")).resolve()
        data_dir = tmp / "data"
    up = start_up(data_dir, env)
    gone: list[float] = []
    killed: dict[str, int] = {}
    ready = [await wait_ready(up)]
    ingest, stop = Ingest(up.grpc_addr, master_key), asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    try:
        for _ in range(kills):
            await ingest.until(ingest.answered + random.randint(*between), up)
            procs = stack(up)
            killed = killed or kinds(procs)
            gone.append(await sigkill(up, procs))
            grpc_port, http_port = up.ports
            up = start_up(data_dir, env, grpc_port=grpc_port, http_port=http_port)
            ready.append(await wait_ready(up))
        await ingest.until(ingest.answered + 5, up)  # the batch cut by the last kill, answered
        stop.set()
        await task
        dsn = env.get("METERING_DATABASE_URL") or embedded_dsn(data_dir)
        events, distinct, tokens = await stored(dsn)
        assert (events, distinct, tokens) == (ingest.sent, ingest.sent, ingest.input_tokens), (
            events, distinct, tokens, ingest)
        procs = stack(up)
        up.proc.send_signal(signal.SIGINT)
        code = await wait_exit(up)
        assert code == 0, up.output[-3000:]
        await wait_all_gone(procs, data_dir, 30)
        return {"kills": kills, "acked_events": ingest.sent, "ingest_calls": ingest.answered + ingest.failures,
                "ingest_errors": ingest.failures, "stack_gone_max_s": round(max(gone, default=0), 2),
                "restart_ready_max_s": round(max(ready[1:], default=0), 2), "first_ready_s": round(ready[0], 2),
                "events": events, "input_tokens": tokens, "exactly_once": events == distinct, "stack": killed}
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if up.proc.poll() is None:
            kill_all(stack(up))
        kill_all(mentioning(data_dir))
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
