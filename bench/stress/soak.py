"""The `soak` scenario of `python -m bench.stress`: a steady rate for a long time, sampled.

The stack runs as separate processes on loopback (bench/stress/replicas.py's cluster with one of
each: `metering serve`, `python -m worker`, `python -m gateway`) on a private Postgres (an
EmbeddedPostgres in a temp dir, so its WAL, CPU and memory are the soak's alone) and a private
Redis. For `seconds` it drives:

- ingest at a steady `rate`: `RecordEvents` batches of `batch` events, each sent when due (batch k at
  k * batch / rate seconds), `inflight` at most at once; a failed batch is sent again with the same
  request ids. Events are of now, 5 models x 3 task labels (15 series); with `payload_bytes` each
  carries a request and a response JSON of about that many bytes together;
- `queries` QueryUsage calls a second over gRPC (alternately the 24 hours by hour and model, and the 7
  days by day and task label, up to the start of the current 15-minute window: a range that ends now reads
  that window's raw events, a cost that grows with the events of the organization in it, see
  docs/capacity.md; these read the rollups, and the raw events of windows still dirty);
- `checks` budget Checks a second through the gateway's REST route (`POST /v1/budgets:check`).

Every `sample_every` seconds a Probe (bench/stress/sampling.py) samples memory and CPU by process,
WAL, table sizes, dead tuples and the rollup lag; every `row_seconds` a line of the table is
printed. After the load the worker settles what is dirty, the machine idles `query_phase` seconds
(the idle CPU of each process), then one caller runs QueryUsage for `query_phase` seconds (CPU per
query), every total is checked against the acknowledged events, and the verdict is printed: memory
slope, latency drift (last stretch against the first after the warm-up), CPU and WAL per event,
bytes per event per table against the capacity model (docs/capacity.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import pathlib
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import grpc
import httpx

from bench.cpu import Meter
from bench.stress import Acked, check_totals, org_number, wait_clean
from bench.stress.processes import PrivateRedis
from bench.stress.replicas import Tenant, cluster, tenant
from bench.stress.sampling import (
    HEADER,
    Latencies,
    Probe,
    Sample,
    bytes_per_event,
    quantile,
    row,
    summary,
    table,
    verdict,
)
from metering.v1 import budgets_pb2, budgets_pb2_grpc, event_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from server.core.windows import WINDOW, floor_to
from server.runtime.embedded_postgres import EmbeddedPostgres


@dataclasses.dataclass(frozen=True)
class Settings:
    rate: float = 2000.0  # events a second
    seconds: float = 1800.0
    payload_bytes: int = 0  # 0: no payloads
    queries: float = 3.0  # QueryUsage a second
    checks: float = 1.0  # budget Checks a second (REST, through the gateway)
    batch: int = 100
    inflight: int = 4
    sample_every: float = 10.0
    row_seconds: float = 60.0
    warmup: float = 120.0
    query_phase: float = 20.0
    settle_timeout: float = 300.0


@dataclasses.dataclass
class Load:
    """The three loads, their counts and latencies (seconds since t0, the probe's start)."""

    settings: Settings
    who: Tenant
    http_url: str
    t0: float
    end: float
    latencies: Latencies = dataclasses.field(default_factory=Latencies)
    acked: Acked = dataclasses.field(default_factory=Acked)
    answered: int = 0  # queries and checks
    failed: int = 0
    most_behind: float = 0.0  # seconds a batch was sent after it was due
    _next: int = 0
    _tag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(4))

    def _events(self, k: int) -> list[event_pb2.UsageEvent]:
        now = dt.datetime.now(dt.UTC)
        text = secrets.token_hex(max(0, self.settings.payload_bytes - 90) // 6)  # ~1/3 request, 2/3 response
        out = []
        for j in range(self.settings.batch):
            i = k * self.settings.batch + j
            e = event_pb2.UsageEvent(request_id=f"soak-{self._tag}-{i}", kind="completions", model=f"m{i % 5}",
                                     input_tokens=1 + i % 97, output_tokens=i % 13, labels={"task": f"t{i % 3}"})
            if self.settings.payload_bytes:
                e.request_json = f'{{"model": "m", "messages": [{{"role": "user", "content": "{text}"}}]}}'
                e.response_json = f'{{"choices": [{{"message": {{"content": "{text[::-1]}{text}"}}}}]}}'
            e.timestamp.FromDatetime(now)
            out.append(e)
        return out

    async def ingest(self) -> None:
        await asyncio.gather(*(self._sender() for _ in range(self.settings.inflight)))

    async def _sender(self) -> None:
        stub = ingest_pb2_grpc.IngestServiceStub(self.who.channel)
        per_batch = self.settings.batch / self.settings.rate
        while True:
            k, self._next = self._next, self._next + 1
            due = self.t0 + k * per_batch
            if due >= self.end:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            events = self._events(k)
            began = time.monotonic()
            self.most_behind = max(self.most_behind, began - due)
            while True:
                self.acked.calls += 1
                try:
                    reply = await stub.RecordEvents(ingest_pb2.RecordEventsRequest(events=events),
                                                    metadata=self.who.auth, timeout=30)
                    break
                except grpc.aio.AioRpcError:
                    self.acked.errors += 1
                    await asyncio.sleep(0.2)
            self.latencies.add("ingest", began - self.t0, time.monotonic() - began)
            for event, result in zip(events, reply.results, strict=True):
                if result.outcome in (ingest_pb2.OUTCOME_RECORDED, ingest_pb2.OUTCOME_DUPLICATE):
                    self.acked.events += 1
                    self.acked.input_tokens += event.input_tokens

    async def query(self, i: int) -> None:
        now = dt.datetime.now(dt.UTC)
        request = query_pb2.QueryUsageRequest(width="1h" if i % 2 == 0 else "1d",
                                              group_by=["model"] if i % 2 == 0 else ["labels.task"],
                                              metrics=["input_tokens", "output_tokens"])
        end = floor_to(now, WINDOW)  # settled windows: a range ending now reads the current window raw
        request.start_time.FromDatetime(end - dt.timedelta(days=1 if i % 2 == 0 else 7))
        request.end_time.FromDatetime(end)
        began = time.monotonic()
        await query_pb2_grpc.QueryServiceStub(self.who.channel).QueryUsage(request, metadata=self.who.auth,
                                                                          timeout=30)
        self.latencies.add("query", began - self.t0, time.monotonic() - began)
        self.answered += 1

    async def check(self, http: httpx.AsyncClient) -> None:
        began = time.monotonic()
        reply = await http.post(f"{self.http_url}/v1/budgets:check", json={"kind": "completions", "model": "m1"},
                                headers={"authorization": f"Bearer {self.who.key}"})
        reply.raise_for_status()
        self.latencies.add("check", began - self.t0, time.monotonic() - began)
        self.answered += 1

    async def paced(self, per_second: float, call: Callable[[int], Any]) -> None:
        """call(i) every 1/per_second seconds until the end; a failure is counted, not raised."""
        if per_second <= 0:
            return
        i = 0
        while (due := self.t0 + i / per_second) < self.end:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                await call(i)
            except (grpc.aio.AioRpcError, httpx.HTTPError):
                self.failed += 1
            i += 1


async def _budget(who: Tenant) -> None:
    """A budget on the organization's monthly input tokens, for the Checks to read."""
    budget = budgets_pb2.Budget(name="soak", metric="input_tokens", limit="1000000000000",
                                period=budgets_pb2.BUDGET_PERIOD_MONTH, mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    await budgets_pb2_grpc.BudgetServiceStub(who.channel).CreateBudget(
        budgets_pb2.CreateBudgetRequest(budget=budget), metadata=who.auth, timeout=30)


async def _sampling(probe: Probe, load: Load, settings: Settings, samples: list[Sample],
                    out: Callable[[str], None]) -> None:
    """A sample every sample_every seconds until the end; a line each row_seconds."""
    lines: list[tuple[str, ...]] = [HEADER]
    out(table(lines))
    marks = [samples[0]]
    n = 1
    while (due := load.t0 + n * settings.sample_every) <= load.end + 1e-6:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        sample = await probe.sample(load.acked.events, load.answered)
        samples.append(sample)
        if sample.at + 1e-6 >= len(marks) * settings.row_seconds:
            lines.append(row(marks[-1], sample, load.latencies, len(marks)))
            marks.append(sample)
            out(table(lines).rsplit("\n", 1)[-1])  # widths may differ from the header's: fine for a log
        n += 1


def say(line: str) -> None:
    print(line, flush=True)  # a line a minute, seen as it comes when the output goes to a file


async def soak(settings: Settings, out: Callable[[str], None] = say) -> dict[str, Any]:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="metering-soak-"))
    pg = EmbeddedPostgres(tmp)
    redis = PrivateRedis()
    dsn = pg.start()
    redis.start()
    master_key = "stress-master-" + secrets.token_hex(16)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
        try:
            async with cluster(dsn, redis.url, master_key, replicas=1) as running, \
                    tenant(running.target, master_key) as who:
                await _budget(who)
                org = await org_number(pool, who.organization_id)
                assert pg.pid is not None and redis.proc is not None
                roots = {"server": running.servers[0].pid, "worker": running.workers[0].pid,
                         "gateway": running.gateways[0].pid, "postgres": pg.pid, "redis": redis.proc.pid}
                probe = Probe(roots, pool, org)
                await probe.begin()
                samples = [await probe.sample(0, 0)]
                load = Load(settings, who, running.http_urls[0], probe.started,
                            probe.started + settings.seconds)
                async with httpx.AsyncClient(timeout=30) as http:
                    await asyncio.gather(
                        load.ingest(), load.paced(settings.queries, load.query),
                        load.paced(settings.checks, lambda i: load.check(http)),
                        _sampling(probe, load, settings, samples, out))
                    settled = await wait_clean(pool, org, settings.settle_timeout)
                    ended = await probe.sample(load.acked.events, load.answered)
                    phases = await _phases(load, roots, settings.query_phase, http)
                final = await check_totals(pool, who, org, load.acked)
                judged = verdict(samples, load.latencies, settings.warmup, settings.payload_bytes)
                alive = all(p.poll() is None for p in running.processes())
                assert alive, running.output()
        finally:
            await pool.close()
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"settings": dataclasses.asdict(settings), "acked_events": load.acked.events,
              "ingest_errors": load.acked.errors, "failed_queries_or_checks": load.failed,
              "most_behind_s": round(load.most_behind, 2), "settled_after_s": round(settled, 1),
              "db_mb_settled": round(ended.db_bytes / 2**20, 1),
              "tables_whole_run": bytes_per_event(samples[0], ended, settings.payload_bytes), **phases, **final}
    judged["ingest_cpu_us_per_event"] = ingest_only(judged, phases, load, settings)
    out(summary(judged))
    out(f"  CPU µs/event less the queries and checks: {judged['ingest_cpu_us_per_event']}; per QueryUsage: "
        f"{phases.get('query_phase', {}).get('cpu_us')}; per Check: {phases.get('check_phase', {}).get('cpu_us')}")
    return {**result, "verdict": judged}


async def _phases(load: Load, roots: dict[str, int], seconds: float, http: httpx.AsyncClient) -> dict[str, Any]:
    """Once settled: `seconds` idle (CPU a second of each group), then `seconds` of QueryUsage by one caller,
    then `seconds` of budget Checks by one caller (CPU per call of each group, less the idle rate)."""
    if seconds <= 0:
        return {}
    meter = Meter(roots, postgres=False, client=True)
    meter.start()
    await asyncio.sleep(seconds)
    meter.stop()
    idle = {group: spent / seconds for group, spent in meter.seconds.items()}
    found: dict[str, Any] = {"idle_cpu_cores": {g: round(v, 3) for g, v in idle.items()}}
    soaked = load.latencies
    for kind, call in (("query", load.query), ("check", lambda i: load.check(http))):
        load.latencies = Latencies()
        calls = 0
        meter.start()
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            await call(calls)
            calls += 1
        took = time.monotonic() - began
        meter.stop()
        found[f"{kind}_phase"] = {
            "calls": calls, "p50_ms": round(quantile(load.latencies.between(kind, -1e9, 1e9), 0.5) * 1000, 1),
            "cpu_us": {g: round(max(0.0, spent - idle[g] * took) / max(calls, 1) * 1e6)
                       for g, spent in meter.seconds.items()}}
    load.latencies = soaked
    return found


def ingest_only(judged: dict[str, Any], phases: dict[str, Any], load: Load, settings: Settings) -> dict[str, float]:
    """CPU µs per event of each group less what the soak's queries and checks cost (at their phases' price)."""
    if not phases:
        return {}
    stretch = judged["after_warmup_s"]
    calls = {kind: rate * stretch for kind, rate in (("query", settings.queries), ("check", settings.checks))}
    events = max(judged["events"], 1)
    # the calls' Postgres CPU is spent by the servers' backends
    return {g: round(us - sum(calls[k] * phases[f"{k}_phase"]["cpu_us"].get("postgres" if g == "pg_server" else g, 0)
                              for k in calls) / events, 1)
            for g, us in judged["cpu_us_per_event"].items()}
