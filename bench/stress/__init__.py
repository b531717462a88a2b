"""python -m bench.stress: fault injection under load, on loopback, bounded in time.

Scenarios (all by default; `--only NAME` to pick one, `--quick` for short versions):

- `worker-kill`: ingest continuously while the rollup worker (`python -m worker`, a real
  process) is killed with SIGKILL at random points, `--kills` times (default 20), restarted each
  time. Afterwards the remaining dirty windows are settled and every rollup row must equal its
  raw events, and every total the acknowledged events.
- `redis-outage`: a private `redis-server` on its own port is stopped for `--redis-down` seconds
  (default 30) during ingest, then started again. Ingest must keep acknowledging (an ack means
  committed to Postgres; Redis only carries rollup jobs), and the worker's sweep must settle every
  window afterwards.
- `postgres-restart`: a private EmbeddedPostgres (temp dir, never the machine's Postgres) is
  stopped and started again while the Python SDK ingests with retries; afterwards every event the
  SDK recorded is stored exactly once.
- `concurrency`: concurrent UpdateEvent, VoidEvent and ingest on the same 15-minute window, then
  totals equal the expected ones exactly.
- `replicas`: two `metering serve` processes, two workers and two gateways sharing Postgres and a
  private Redis; the SDK and a REST client ingest through every server (gRPC multi-address targets)
  while one server, after `--replica-before` seconds (default 10), is frozen (SIGSTOP) for 0.5 s so that
  calls are in flight on it, then killed with SIGKILL: the other takes over; throughput before and after,
  and every total exact once rolled up (bench/stress/replicas.py).
- `kill-up`: `metering up` (a real process, embedded Postgres and Redis in a temp data dir) killed
  with SIGKILL under ingest `--up-kills` times (default 5): each time its whole stack is gone within
  5 s, and up restarted on the same data dir; afterwards every acknowledged event is stored exactly
  once (bench/stress/up.py).
- `soak` (only with `--only soak`): the stack as separate processes on a private Postgres and Redis, a
  steady `--rate` (default 2,000 events/s, `--payload-bytes` for payloads) plus a few QueryUsage and budget
  Checks a second, for `--minutes` (default 30); memory and CPU of every process, ack and query latency,
  rollup lag, table sizes, dead tuples and WAL sampled, a line a minute and a verdict (flat memory and
  latency, bytes per event against the capacity model of docs/capacity.md) (bench/stress/soak.py).

Needs a Postgres for the first, second, fourth and sixth scenario: METERING_STRESS_DATABASE_URL (an admin
DSN where a throwaway database is created), else postgres@127.0.0.1:5432. Exits non-zero on any
violated invariant and prints the numbers as JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import pathlib
import random
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import asyncpg
import grpc
from google.protobuf import field_mask_pb2

from bench.stress.processes import PrivateRedis, stop_process, worker_process
from metering.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
)
from server.rollups.recompute import dirty_days, recompute_day
from server.runtime.app import MeteringServer

ROOT = pathlib.Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get("METERING_STRESS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MASTER = "stress-master-" + secrets.token_hex(16)
WINDOW = dt.timedelta(minutes=15)


def report(name: str, **numbers: Any) -> None:
    print(json.dumps({"scenario": name, **numbers}, default=str), flush=True)


# --- stack ---------------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def fresh_database(admin_dsn: str = ADMIN_DSN) -> AsyncIterator[str]:
    name = "metering_stress_" + secrets.token_hex(4)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        base, _, _ = admin_dsn.partition("?")[0].rpartition("/")
        yield f"{base}/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@dataclasses.dataclass
class Tenant:
    server: MeteringServer
    channel: grpc.aio.Channel
    organization_id: str
    key: str

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@contextlib.asynccontextmanager
async def serve(dsn: str, redis_url: str | None = None, queue: str | None = None) -> AsyncIterator[Tenant]:
    server = MeteringServer(dsn, "127.0.0.1:0", MASTER, redis_url=redis_url, queue_name=queue, rollup_delay=0,
                            rate_limiter=None)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            master = (("authorization", f"Bearer {MASTER}"),)
            org = await admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(
                name="stress-" + secrets.token_hex(4)), metadata=master)
            key = await admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=org.organization_id),
                                           metadata=master)
            yield Tenant(server, channel, org.organization_id, key.key)
    finally:
        await server.stop(grace=1)


@dataclasses.dataclass
class Acked:
    events: int = 0
    input_tokens: int = 0
    errors: int = 0
    calls: int = 0


def _event(i: int, tag: str, now: dt.datetime, spread: dt.timedelta) -> event_pb2.UsageEvent:
    at = now - dt.timedelta(seconds=random.random() * spread.total_seconds())
    e = event_pb2.UsageEvent(request_id=f"{tag}-{i}", kind="completions", model=f"m{i % 5}",
                             input_tokens=1 + i % 97, output_tokens=i % 13, labels={"task": f"t{i % 3}"})
    e.timestamp.FromDatetime(at)
    return e


async def ingest_until(stop: asyncio.Event, tenant: Tenant, acked: Acked, *, batch: int = 200,
                       spread: dt.timedelta = dt.timedelta(hours=3), pause: float = 0.0) -> None:
    """Batches with fresh request ids until `stop`; counts only what the server acknowledged.
    A failed batch is sent again with the same ids (exactly-once makes that safe)."""
    stub = ingest_pb2_grpc.IngestServiceStub(tenant.channel)
    tag = secrets.token_hex(4)
    i = 0
    while not stop.is_set():
        events = [_event(i + j, tag, dt.datetime.now(dt.UTC), spread) for j in range(batch)]
        i += batch
        while True:
            acked.calls += 1
            try:
                reply = await stub.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=tenant.auth,
                                                timeout=30)
                break
            except grpc.aio.AioRpcError:
                acked.errors += 1
                await asyncio.sleep(0.2)
        for event, result in zip(events, reply.results, strict=True):
            if result.outcome == ingest_pb2.OUTCOME_RECORDED:
                acked.events += 1
                acked.input_tokens += event.input_tokens
        if pause:
            await asyncio.sleep(pause)


async def org_number(pool: asyncpg.Pool, organization_id: str) -> int:
    return int(await pool.fetchval("SELECT org_id FROM organizations WHERE id = $1", organization_id))


async def settle(pool: asyncpg.Pool, org: int) -> int:
    """Recompute what is still dirty (what the worker's sweep + job do), until nothing is."""
    passes = 0
    for _ in range(200):
        days = [d for o, d in await dirty_days(pool) if o == org]
        if not days:
            return passes
        for day in days:
            with contextlib.suppress(asyncpg.PostgresError):
                await recompute_day(pool, org, day)
            passes += 1
    raise AssertionError("dirty windows never settled")


async def wait_clean(pool: asyncpg.Pool, org: int, timeout: float) -> float:
    started = time.monotonic()
    while await pool.fetchval("SELECT count(*) FROM dirty_windows WHERE org_id = $1", org):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"the worker left dirty windows after {timeout}s")
        await asyncio.sleep(0.25)
    return time.monotonic() - started


class Caller(Protocol):
    """What check_totals calls QueryUsage with: a Tenant, or a cluster's (bench/stress/replicas.py)."""

    channel: grpc.aio.Channel

    @property
    def auth(self) -> tuple[tuple[str, str], ...]: ...


async def check_totals(pool: asyncpg.Pool, tenant: Caller, org: int, acked: Acked | None,
                       rollups: bool = True) -> dict[str, int]:
    """Raw events == acknowledged; QueryUsage == raw; rollups (once settled) == raw, per 15-min window."""
    raw = await pool.fetchrow("SELECT count(*) AS n, coalesce(sum(input_tokens), 0) AS t FROM events "
                              "WHERE org_id = $1 AND active", org)
    assert raw is not None  # an aggregate without GROUP BY returns one row
    if acked is not None:
        assert (raw["n"], raw["t"]) == (acked.events, acked.input_tokens), (dict(raw), acked)
    query = query_pb2_grpc.QueryServiceStub(tenant.channel)
    start = query_pb2.QueryUsageRequest(width="all")
    start.start_time.FromDatetime(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    start.end_time.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    reply = await query.QueryUsage(start, metadata=tenant.auth, timeout=60)
    text = str(reply)
    got_events = sum(int(g.metrics.events) for b in reply.buckets for g in b.groups)
    got_tokens = sum(int(g.metrics.input_tokens) for b in reply.buckets for g in b.groups)
    assert (got_events, got_tokens) == (raw["n"], raw["t"]), (got_events, got_tokens, dict(raw), text[:500])
    if rollups:
        assert not await pool.fetchval("SELECT count(*) FROM dirty_windows WHERE org_id = $1", org)
        diff = await pool.fetchval(
            """
            WITH raw AS (
                SELECT date_bin('15 minutes', ts, '2000-01-01') AS w, count(*) AS n, sum(input_tokens) AS t
                FROM events WHERE org_id = $1 AND active GROUP BY 1),
            rolled AS (
                SELECT window_start AS w, sum(events) AS n, sum(input_tokens) AS t
                FROM rollups_15m WHERE org_id = $1 GROUP BY 1 HAVING sum(events) > 0)
            SELECT count(*) FROM raw FULL JOIN rolled USING (w)
            WHERE raw.n IS DISTINCT FROM rolled.n OR raw.t IS DISTINCT FROM rolled.t
            """, org)
        assert diff == 0, f"{diff} rollup windows differ from the raw events"
        for table in ("rollups_1h", "rollups_1d"):
            totals = await pool.fetchrow(f"SELECT coalesce(sum(events), 0), coalesce(sum(input_tokens), 0) "
                                         f"FROM {table} WHERE org_id = $1", org)
            assert totals is not None
            n, t = totals
            assert (n, t) == (raw["n"], raw["t"]), (table, n, t, dict(raw))
    return {"events": int(raw["n"]), "input_tokens": int(raw["t"])}


# --- scenarios -----------------------------------------------------------------------------------

async def worker_kills(dsn: str, redis_url: str, kills: int = 20, *, up: tuple[float, float] = (0.3, 1.5),
                       batch: int = 200) -> dict[str, Any]:
    queue = "stress-" + secrets.token_hex(6)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        async with serve(dsn, redis_url, queue) as tenant:
            org = await org_number(pool, tenant.organization_id)
            acked, stop = Acked(), asyncio.Event()
            ingest = asyncio.create_task(ingest_until(stop, tenant, acked, batch=batch, pause=0.05))
            rolled_while_killing = 0
            for _ in range(kills):
                proc = worker_process(dsn, redis_url, queue)
                await asyncio.sleep(random.uniform(*up))
                stop_process(proc, signal.SIGKILL)
                rolled_while_killing = int(await pool.fetchval(
                    "SELECT coalesce(sum(events), 0) FROM rollups_15m WHERE org_id = $1", org))
            stop.set()
            await ingest
            mid = await check_totals(pool, tenant, org, acked, rollups=False)  # exact even with dirty windows
            passes = await settle(pool, org)
            final = await check_totals(pool, tenant, org, acked)
            return {"kills": kills, "acked_events": acked.events, "ingest_calls": acked.calls,
                    "ingest_errors": acked.errors, "rolled_up_before_settle": rolled_while_killing,
                    "settle_passes": passes, **final, "exact_before_settle": mid == final}
    finally:
        await pool.close()


async def redis_outage(dsn: str, down_seconds: float = 30.0, *, before: float = 2.0,
                       after: float = 3.0) -> dict[str, Any]:
    redis = PrivateRedis()
    redis.start()
    queue = "stress-" + secrets.token_hex(6)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    worker: subprocess.Popen[bytes] | None = None
    try:
        async with serve(dsn, redis.url, queue) as tenant:
            org = await org_number(pool, tenant.organization_id)
            worker = worker_process(dsn, redis.url, queue)
            acked, stop = Acked(), asyncio.Event()
            ingest = asyncio.create_task(ingest_until(stop, tenant, acked, batch=100, pause=0.02))
            await asyncio.sleep(before)
            redis.stop()
            at_stop = acked.events
            await asyncio.sleep(down_seconds)
            during = acked.events - at_stop
            redis.start()
            if worker.poll() is not None:  # arq's worker exits when Redis goes away for good: restart it
                worker = worker_process(dsn, redis.url, queue)
            await asyncio.sleep(after)
            stop.set()
            await ingest
            if worker.poll() is not None:
                worker = worker_process(dsn, redis.url, queue)
            settle_seconds = await wait_clean(pool, org, timeout=60 + down_seconds)
            final = await check_totals(pool, tenant, org, acked)
            assert during > 0, "ingest stopped acknowledging while Redis was down"
            return {"redis_down_s": down_seconds, "acked_events": acked.events, "acked_while_redis_down": during,
                    "ingest_errors": acked.errors, "worker_settled_after_s": round(settle_seconds, 2), **final}
    finally:
        if worker is not None:
            stop_process(worker)
        redis.stop()
        await pool.close()


def _sdk_ingest(target: str, key: str, stop: threading.Event, out: dict[str, Any], journal: str) -> None:
    from metering_client import MeteringClient

    client = MeteringClient(target, key, journal_path=journal, retry_budget=60)
    receipts = []
    i = 0
    tag = secrets.token_hex(4)
    while not stop.is_set():
        receipts.append(client.record(kind="completions", model="sdk", request_id=f"{tag}-{i}",
                                      input_tokens=1 + i % 50))
        i += 1
        time.sleep(0.001)
    client.flush()
    outcomes: dict[str, int] = {}
    for r in receipts:
        name = r.result(timeout=120).outcome.name
        outcomes[name] = outcomes.get(name, 0) + 1
    out.update(sent=i, outcomes=outcomes, tokens=sum(1 + j % 50 for j in range(i)),
               status=str(client.delivery_status()))
    client.close()


async def postgres_restart(down_seconds: float = 3.0, *, before: float = 2.0, after: float = 3.0,
                           restarts: int = 1) -> dict[str, Any]:
    from server.runtime.embedded_postgres import EmbeddedPostgres

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="metering-stress-pg-"))
    pg = EmbeddedPostgres(tmp)
    dsn = pg.start()
    try:
        async with serve(dsn) as tenant:
            stop = threading.Event()
            out: dict[str, Any] = {}  # filled by _sdk_ingest
            sdk = threading.Thread(target=_sdk_ingest, args=(tenant.target, tenant.key, stop, out,
                                                             str(tmp / "journal.jsonl")))
            sdk.start()
            for _ in range(restarts):
                await asyncio.sleep(before)
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(down_seconds)
                again = await asyncio.to_thread(pg.start)
                assert again == dsn, (again, dsn)
            await asyncio.sleep(after)
            stop.set()
            await asyncio.to_thread(sdk.join, 180)
            assert not sdk.is_alive(), "the SDK did not finish"
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
            try:
                org = await org_number(pool, tenant.organization_id)
                acked = Acked(events=out["sent"], input_tokens=out["tokens"])
                bad = {k: v for k, v in out["outcomes"].items() if "RECORDED" not in k and "DUPLICATE" not in k}
                assert not bad, out
                final = await check_totals(pool, tenant, org, acked, rollups=False)
            finally:
                await pool.close()
            return {"restarts": restarts, "pg_down_s": down_seconds, "sdk_sent": out["sent"],
                    "outcomes": out["outcomes"], **final}
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def concurrency(dsn: str, *, events: int = 400, rounds: int = 3) -> dict[str, Any]:
    """Updates, voids and ingest racing on one 15-minute window; totals must be exact."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        async with serve(dsn) as tenant:
            org = await org_number(pool, tenant.organization_id)
            ingest = ingest_pb2_grpc.IngestServiceStub(tenant.channel)
            records = records_pb2_grpc.RecordServiceStub(tenant.channel)
            window = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
            expected = 0
            for r in range(rounds):
                def ev(i: int, r: int = r) -> event_pb2.UsageEvent:
                    e = event_pb2.UsageEvent(request_id=f"c{r}-{i}", kind="completions", model="c", input_tokens=10)
                    e.timestamp.FromDatetime(window + dt.timedelta(seconds=i % 800))
                    return e

                seed = await ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=[ev(i) for i in range(events)]),
                                                 metadata=tenant.auth)
                ids = [x.event_id for x in seed.results]
                to_update, to_void = ids[: events // 3], ids[events // 3: 2 * events // 3]

                async def update(event_id: str) -> None:
                    await records.UpdateEvent(records_pb2.UpdateEventRequest(
                        event=event_pb2.UsageEvent(event_id=event_id, input_tokens=25),
                        update_mask=field_mask_pb2.FieldMask(paths=["input_tokens"]), reason="stress"),
                        metadata=tenant.auth, timeout=60)

                async def void(event_id: str) -> None:
                    await records.VoidEvent(records_pb2.VoidEventRequest(event_id=event_id, reason="stress"),
                                            metadata=tenant.auth, timeout=60)

                async def more(i: int) -> None:
                    await ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(events + i)), metadata=tenant.auth,
                                             timeout=60)

                calls = [update(x) for x in to_update] + [void(x) for x in to_void] + [more(i) for i in range(events)]
                random.shuffle(calls)
                await asyncio.gather(settle(pool, org), *calls)  # a rollup pass races the writers
                await settle(pool, org)
                expected += len(to_update) * 25 + (events - 2 * (events // 3)) * 10 + events * 10
            final = await check_totals(pool, tenant, org, None)
            assert final["input_tokens"] == expected, (final, expected)
            return {"rounds": rounds, "events_per_round": events, **final, "expected_input_tokens": expected}
    finally:
        await pool.close()
