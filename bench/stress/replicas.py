"""The `replicas` scenario of `python -m bench.stress`: N servers, N workers and N gateways on one box.

Every part is a real process of its own on loopback (`metering serve` on its own port, `python -m
worker`, `python -m gateway`), sharing one Postgres and one Redis. The gateways and the SDK are
given every server in one gRPC target, `ipv4:127.0.0.1:P1,127.0.0.1:P2`, which they balance round
robin (metering_client/channel.py, gateway/app.py). Two clients ingest at once: the Python SDK
(MeteringClient, its own retries and journal) and a REST client posting batches to the native route
`POST /v1/events:batchRecord`, alternating between the gateways; a batch answered with an error is
posted again with the same request ids. One server is killed with SIGKILL mid-run: the other takes
over; afterwards the workers roll everything up and every total must equal the acknowledged events,
each stored exactly once.

The cluster helpers serve the test of the same (tests/reliability/test_replicas.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import free_port
from bench.stress import Acked, check_totals, org_number, wait_clean
from bench.stress.processes import worker_process
from bench.stress.up import serving
from metering.v1 import admin_pb2, admin_pb2_grpc
from metering.waits import wait_set

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 60.0


# --- the cluster ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Cluster:
    """servers[i] listens on grpc_addrs[i]; every gateway calls `target` (all the servers)."""

    servers: list[subprocess.Popen[bytes]]
    grpc_addrs: list[str]
    gateways: list[subprocess.Popen[bytes]]
    http_urls: list[str]
    workers: list[subprocess.Popen[bytes]]
    logs: Path  # one file per process: its stderr
    metrics_urls: list[str]  # servers[i]'s Prometheus metrics
    server_envs: list[dict[str, str]]

    @property
    def target(self) -> str:
        """Every server in gRPC's multi-address syntax."""
        return "ipv4:" + ",".join(self.grpc_addrs)

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [*self.servers, *self.gateways, *self.workers]

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(self.logs.iterdir()))

    def recorded(self, i: int) -> dict[str, int]:
        """Events server i recorded, by path: "grpc_batch" (the SDK), "rest" (the gateways); none
        while it does not answer (starting)."""
        try:
            text = httpx.get(self.metrics_urls[i], timeout=5).text
        except httpx.TransportError:
            return {}
        found: dict[str, int] = {}
        for family in text_string_to_metric_families(text):
            if family.name == "metering_events_ingested":
                for sample in family.samples:
                    if sample.labels.get("outcome") == "recorded" and sample.value:
                        found[sample.labels["path"]] = int(sample.value)
        return found

    def restart_server(self, i: int) -> None:
        """servers[i] started again, on the same address."""
        self.servers[i] = _spawn(["-m", "server.runtime.cli", "serve"], self.server_envs[i],
                                 self.logs / f"server-{i}-{time.monotonic_ns()}.log")

    def kill_server(self, i: int) -> None:
        self.servers[i].send_signal(signal.SIGKILL)
        self.servers[i].wait()


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGTERM to every process at once, then SIGKILL to those still running after `timeout`."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _gateway_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _wait_ready(cluster: Cluster) -> None:
    started = time.monotonic()
    for addr in cluster.grpc_addrs:
        while not await asyncio.to_thread(serving, addr):
            await _alive_or_fail(cluster, started)
    for url in cluster.http_urls:
        while not await asyncio.to_thread(_gateway_ready, url):
            await _alive_or_fail(cluster, started)


async def _alive_or_fail(cluster: Cluster, started: float) -> None:
    if any(p.poll() is not None for p in cluster.processes()) or time.monotonic() - started > READY_TIMEOUT:
        raise AssertionError(f"the cluster did not come up:\n{cluster.output()}")
    await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def cluster(dsn: str, redis_url: str, master_key: str, *, replicas: int = 2,
                  workers: bool = True) -> AsyncIterator[Cluster]:
    """`replicas` servers (migrating the database, one at a time under their lock), workers (unless
    `workers` is false) and gateways, all on one queue of their own; stopped (SIGKILL what SIGTERM
    does not end) on exit."""
    queue = "metering:replicas-" + secrets.token_hex(4)
    logs = Path(tempfile.mkdtemp(prefix="metering-replicas-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("METERING_")}
    base.update(METERING_DATABASE_URL=dsn, METERING_REDIS_URL=redis_url, METERING_QUEUE_NAME=queue,
                METERING_MASTER_KEY=master_key, METERING_LOG_LEVEL="WARNING", METERING_DATA_DIR=str(logs),
                METERING_DEFAULT_PRICES="none")
    grpc_addrs = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
    metrics_addrs = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
    server_envs = [{**base, "METERING_GRPC_ADDR": addr, "METERING_METRICS_ADDR": metrics_addrs[i]}
                   for i, addr in enumerate(grpc_addrs)]
    servers = [_spawn(["-m", "server.runtime.cli", "serve"], env, logs / f"server-{i}.log")
               for i, env in enumerate(server_envs)]
    target = "ipv4:" + ",".join(grpc_addrs)
    http_addrs = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
    gateways = [_spawn(["-m", "gateway"], {**base, "METERING_GRPC_ADDR": target, "METERING_HTTP_ADDR": addr},
                       logs / f"gateway-{i}.log") for i, addr in enumerate(http_addrs)]
    rollups = [worker_process(dsn, redis_url, queue) for _ in range(replicas if workers else 0)]
    found = Cluster(servers, grpc_addrs, gateways, [f"http://{a}" for a in http_addrs], rollups, logs,
                    [f"http://{a}/metrics" for a in metrics_addrs], server_envs)
    try:
        await _wait_ready(found)
        yield found
    finally:
        stop_all(found.processes())
        for log in logs.iterdir():
            log.unlink()
        logs.rmdir()


@dataclasses.dataclass
class Tenant:
    """An organization and its admin key, with a channel to every server (what check_totals calls)."""

    channel: grpc.aio.Channel
    organization_id: str
    key: str

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)


@contextlib.asynccontextmanager
async def tenant(target: str, master_key: str) -> AsyncIterator[Tenant]:
    async with grpc.aio.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")]) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        master = (("authorization", f"Bearer {master_key}"),)
        org = await admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(
            name="replicas-" + secrets.token_hex(4)), metadata=master)
        key = await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=org.organization_id),
                                       metadata=master)
        yield Tenant(channel, org.organization_id, key.key)


# --- ingest through the gateways ------------------------------------------------------------------

@dataclasses.dataclass
class RestIngest:
    """Batches of fresh request ids to POST /v1/events:batchRecord, alternating between the gateways.
    A batch answered with an error (or not at all) is posted again, same ids, to the next gateway,
    until it is answered: when run() returns every event sent was acknowledged."""

    urls: list[str]
    key: str
    sent: int = 0
    input_tokens: int = 0
    failures: int = 0
    answered: int = 0

    async def run(self, stop: asyncio.Event, *, batch: int = 50, posters: int = 3) -> None:
        """`posters` clients at once, each waiting for its answer before it posts its next batch."""
        async with httpx.AsyncClient(timeout=30) as http:
            await asyncio.gather(*(self._post(http, stop, batch, turn) for turn in range(posters)))

    async def _post(self, http: httpx.AsyncClient, stop: asyncio.Event, batch: int, turn: int) -> None:
        tag, headers, n = secrets.token_hex(4), {"authorization": f"Bearer {self.key}"}, 0
        while not stop.is_set():
            events = [{"requestId": f"rest-{tag}-{n + i}", "kind": "completions", "model": "rest",
                       "inputTokens": str(1 + (n + i) % 7)} for i in range(batch)]
            n += batch
            while True:
                turn += 1
                try:
                    reply = await http.post(f"{self.urls[turn % len(self.urls)]}/v1/events:batchRecord",
                                            json={"events": events}, headers=headers)
                    if reply.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                self.failures += 1
                await asyncio.sleep(0.05)
            body = reply.json()
            assert body.get("recorded", 0) + body.get("duplicates", 0) == batch, body
            self.sent += batch
            self.input_tokens += sum(int(e["inputTokens"]) for e in events)
            self.answered += 1


# --- ingest through the SDK -----------------------------------------------------------------------

@dataclasses.dataclass
class SdkIngest:
    """MeteringClient given every server, recording one event at a time from a thread of its own."""

    target: str
    key: str
    journal: Path
    sent: int = 0
    input_tokens: int = 0
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)

    def run(self, stop: threading.Event, pace: float = 0.0005) -> None:
        from metering_client import MeteringClient

        client = MeteringClient(self.target, self.key, journal_path=str(self.journal), retry_budget=60,
                                max_delay=0.02)
        tag = secrets.token_hex(4)
        receipts = []
        try:
            while not stop.is_set():
                tokens = 1 + self.sent % 50
                receipts.append(client.record(kind="completions", model="sdk", request_id=f"sdk-{tag}-{self.sent}",
                                              input_tokens=tokens))
                self.sent += 1
                self.input_tokens += tokens
                time.sleep(pace)
            client.flush()
            for receipt in receipts:
                name = receipt.result(timeout=120).outcome.name
                self.outcomes[name] = self.outcomes.get(name, 0) + 1
        finally:
            client.close()


# --- what was stored ------------------------------------------------------------------------------

async def stored_by_sender(pool: asyncpg.Pool, org: int) -> dict[str, int]:
    """Events stored by who sent them: the first part of their request ids ("sdk-...", "rest-...")."""
    rows = await pool.fetch("SELECT split_part(request_id, '-', 1) AS sender, count(*) AS n FROM events "
                            "WHERE org_id = $1 GROUP BY 1", org)
    return {r["sender"]: int(r["n"]) for r in rows}


async def exactly_once(pool: asyncpg.Pool, org: int) -> bool:
    row = await pool.fetchrow("SELECT count(*), count(DISTINCT request_id) FROM events WHERE org_id = $1", org)
    assert row is not None
    return bool(row[0] == row[1])


@dataclasses.dataclass
class Timeline:
    """Events stored per sender, sampled every `every` seconds (the throughput before and after a kill)."""

    pool: asyncpg.Pool
    org: int
    every: float = 0.1
    samples: list[tuple[float, dict[str, int]]] = dataclasses.field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append((time.monotonic(), await stored_by_sender(self.pool, self.org)))
            await wait_set(stop, self.every)

    def rate(self, start: float, end: float, sender: str) -> float:
        """Events of `sender` stored per second between two moments (the samples nearest inside)."""
        inside = [(t, s.get(sender, 0)) for t, s in self.samples if start <= t <= end]
        if len(inside) < 2:
            return 0.0
        (t0, n0), (t1, n1) = inside[0], inside[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def resumed(self, since: float, sender: str) -> float:
        """Seconds from `since` until the stored count of `sender` grew past its value at `since`."""
        before = next((s.get(sender, 0) for t, s in reversed(self.samples) if t <= since), 0)
        for t, s in self.samples:
            if t > since and s.get(sender, 0) > before:
                return t - since
        return float("inf")


async def _each_served_both(running: Cluster, timeout: float, among: list[int] | None = None) -> list[dict[str, int]]:
    """Events each server (of `among`, default all) has recorded by path, once each has recorded
    some of both clients (round robin; the SDK's first call waits for its channel to connect)."""
    deadline = time.monotonic() + timeout
    while True:
        served = [await asyncio.to_thread(running.recorded, i) for i in among or range(len(running.servers))]
        if all({"grpc_batch", "rest"} <= set(s) for s in served):
            return served
        assert time.monotonic() < deadline, f"not every server took events of both clients: {served}"
        await asyncio.sleep(0.1)


# --- the scenario ---------------------------------------------------------------------------------

async def replicas(dsn: str, redis_url: str, *, before: float = 4.0, after: float = 4.0, freeze: float = 0.5,
                   rejoin: bool = True, settle_timeout: float = 60.0) -> dict[str, Any]:
    """Two of everything on a database of its own; then kill_one_under_ingest."""
    master_key = "stress-master-" + secrets.token_hex(16)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    try:
        async with cluster(dsn, redis_url, master_key) as running:
            return await kill_one_under_ingest(running, pool, master_key, before=before, after=after, freeze=freeze,
                                               rejoin=rejoin, settle_timeout=settle_timeout)
    finally:
        await pool.close()


async def kill_one_under_ingest(running: Cluster, pool: asyncpg.Pool, master_key: str, *, before: float = 4.0,
                                after: float = 4.0, freeze: float = 0.5, victim: int = 0, rejoin: bool = False,
                                settle_timeout: float = 60.0) -> dict[str, Any]:
    """A new organization; SDK and REST ingest through every server; SIGKILL of server `victim`
    after `before` seconds; `after` seconds more; then every total exact once the workers have
    rolled everything up. `freeze`: seconds the victim is stopped (SIGSTOP) before the SIGKILL, so
    that calls are surely in flight on it when it dies: round robin keeps sending to a server that
    hangs with its connections open, and each client's next call waits there for the answer.
    `rejoin`: then start the victim again on its address and wait until both clients' calls reach it."""
    async with tenant(running.target, master_key) as who:
        org = await org_number(pool, who.organization_id)
        stop, stop_sdk, stop_timeline = asyncio.Event(), threading.Event(), asyncio.Event()
        timeline = Timeline(pool, org)
        sampling = asyncio.create_task(timeline.run(stop_timeline))
        try:
            rest = RestIngest(running.http_urls, who.key)
            sdk = SdkIngest(running.target, who.key, running.logs / "journal.jsonl")
            rest_task = asyncio.create_task(rest.run(stop))
            sdk_thread = threading.Thread(target=sdk.run, args=(stop_sdk,))
            sdk_thread.start()
            try:
                started = time.monotonic()
                await asyncio.sleep(before)
                served_before = await _each_served_both(running, timeout=30)
                frozen_at = time.monotonic()
                if freeze:
                    running.servers[victim].send_signal(signal.SIGSTOP)
                    await asyncio.sleep(freeze)
                killed_at = time.monotonic()
                running.kill_server(victim)
                await asyncio.sleep(after)
                ran_until = time.monotonic()
                survivors = [i for i in range(len(running.servers)) if i != victim]
                served_after = {i: await asyncio.to_thread(running.recorded, i) for i in survivors}
                rejoined: dict[str, Any] = {}
                if rejoin:
                    restarted = time.monotonic()
                    running.restart_server(victim)
                    while not await asyncio.to_thread(serving, running.grpc_addrs[victim]):
                        await _alive_or_fail(running, restarted)
                    up_again = time.monotonic()
                    [served] = await _each_served_both(running, 60, [victim])
                    rejoined = {"restarted_serving_after_s": round(up_again - restarted, 2),
                                "both_clients_back_after_s": round(time.monotonic() - up_again, 2),
                                "rejoined_served": served}
            finally:
                stop.set()
                stop_sdk.set()
                await rest_task
                await asyncio.to_thread(sdk_thread.join, 180)
            assert not sdk_thread.is_alive(), "the SDK did not finish"
            bad = {k: v for k, v in sdk.outcomes.items() if k not in ("RECORDED", "DUPLICATE")}
            assert not bad and sum(sdk.outcomes.values()) == sdk.sent, sdk.outcomes
            settled_s = await wait_clean(pool, org, settle_timeout)
            stop_timeline.set()
            await sampling
            acked = Acked(events=sdk.sent + rest.sent, input_tokens=sdk.input_tokens + rest.input_tokens)
            final = await check_totals(pool, who, org, acked)
            assert await exactly_once(pool, org)
            alive = [p.poll() is None for p in running.processes() if p is not running.servers[victim]]
            assert all(alive), running.output()
            # round robin: each server took events from both clients (_each_served_both), the survivors
            # took the rest after the kill
            grew = {i: {path: n - served_before[i].get(path, 0) for path, n in served_after[i].items()}
                    for i in survivors}
            assert all(g.get("grpc_batch", 0) > 0 and g.get("rest", 0) > 0 for g in grew.values()), grew
            by_sender = await stored_by_sender(pool, org)
            assert by_sender == {"sdk": sdk.sent, "rest": rest.sent}, (by_sender, sdk.sent, rest.sent)
            # stored per second in the second half of the time before the freeze (caches warm), and after the kill
            windows = {"before": ((started + frozen_at) / 2, frozen_at), "after": (killed_at, ran_until)}
            rates = {f"{sender}_per_s_{when}": round(timeline.rate(a, b, sender))
                     for sender in ("sdk", "rest") for when, (a, b) in windows.items()}
            return {"servers": len(running.servers), "gateways": len(running.gateways),
                    "workers": len(running.workers), "killed_server_after_s": before, "ran_after_kill_s": after,
                    "sdk_events": sdk.sent, "sdk_outcomes": sdk.outcomes, "rest_events": rest.sent,
                    "rest_batches": rest.answered, "rest_failed_posts": rest.failures, **rates,
                    "recorded_by_server_before_kill": served_before, "recorded_by_survivors_after_kill": grew,
                    "frozen_s": freeze, "stored_while_frozen": {
                        sender: round(timeline.rate(frozen_at + 0.2, killed_at, sender) * (killed_at - frozen_at - 0.2))
                        for sender in ("sdk", "rest")} if freeze > 0.2 else {},
                    "sdk_resumed_after_s": round(timeline.resumed(killed_at, "sdk"), 2),
                    "rest_resumed_after_s": round(timeline.resumed(killed_at, "rest"), 2),
                    **rejoined, "rolled_up_within_s": round(settled_s, 2), **final, "exactly_once": True}
        finally:
            stop_timeline.set()
            with contextlib.suppress(Exception):
                await sampling
