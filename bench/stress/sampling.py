"""What the `soak` scenario samples and how it judges it (bench/stress/soak.py).

A Probe samples, every few seconds: the memory and CPU of each process group (a root pid and its
descendants, from /proc through bench/cpu.py's Meter and psutil), and from the soak's private
Postgres the WAL written (pg_stat_wal: the whole cluster is the soak's own), each table's size
(pg_total_relation_size and pg_indexes_size over its partitions), live and dead tuples
(pg_stat_user_tables) and the rollup lag (the age of the organization's oldest dirty mark: how long
the oldest event not yet in the rollups has waited). Postgres memory is PSS (proportional set size:
its shared buffers counted once, not in every backend); the other groups' is RSS.

rows() turns the samples and the call latencies into one line per row period (a minute by
default), verdict() compares the end of the run with its beginning after the warm-up, and the sizes
with the capacity model (docs/capacity.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterable
from typing import Any

import asyncpg
import psutil

from bench.cpu import Meter, cpu_seconds

TABLES = ("events", "event_payloads", "request_keys", "series", "dirty_windows", "rollups_15m", "rollups_1h",
          "rollups_1d", "cubes_1h", "cubes_1d", "rollup_stamps", "rollup_hour_stamps")
# The capacity model's bytes on disk (docs/scaling.md "Capacity", python -m bench --only retention):
# per event for the raw tables, per row for the rollups; a payload's row is 1.19 times its text.
MODEL_PER_EVENT = {"events": 406, "request_keys": 102}
MODEL_PAYLOAD_FACTOR = 1.19
MODEL_PER_ROW = {"rollups_15m": 326, "rollups_1h": 333, "rollups_1d": 544, "cubes_1h": 354, "cubes_1d": 789}
GROUPS = ("server", "worker", "gateway", "postgres", "redis", "client")
# Postgres's CPU by whom its processes served (pg_stat_activity): the servers' backends (ingest, queries,
# checks), the workers' (rollups, sweeps), autovacuum, the background writers (WAL writer, checkpointer,
# background writer), and the rest: the postmaster, other clients, processes that exited between samples.
PG_ROLES = ("pg_server", "pg_worker", "pg_autovacuum", "pg_background", "pg_rest")


def pg_role(application_name: str, backend_type: str) -> str:
    if backend_type == "client backend":
        return {"metering-server": "pg_server", "metering-worker": "pg_worker"}.get(application_name, "pg_rest")
    if backend_type.startswith("autovacuum"):
        return "pg_autovacuum"
    return "pg_background" if backend_type in ("walwriter", "checkpointer", "background writer") else "pg_rest"
MB = 2**20

_TABLE_STATS = """
SELECT t.name, coalesce(sum(pg_total_relation_size(p.relid)), 0)::bigint AS bytes,
       coalesce(sum(pg_indexes_size(p.relid)), 0)::bigint AS index_bytes,
       coalesce(sum(s.n_live_tup), 0)::bigint AS live, coalesce(sum(s.n_dead_tup), 0)::bigint AS dead
FROM unnest($1::text[]) AS t(name)
CROSS JOIN LATERAL (SELECT relid FROM pg_partition_tree(t.name::regclass) WHERE isleaf
                    UNION SELECT t.name::regclass) AS p(relid)  -- the table itself, or its partitions
LEFT JOIN pg_stat_user_tables s ON s.relid = p.relid
GROUP BY t.name
"""


@dataclasses.dataclass(frozen=True)
class Table:
    bytes: int = 0  # heap, indexes and TOAST
    index_bytes: int = 0
    live: int = 0  # tuples, Postgres's estimate
    dead: int = 0


@dataclasses.dataclass(frozen=True)
class Sample:
    at: float  # seconds since the probe began
    events: int  # acknowledged so far
    queries: int  # QueryUsage and Check calls answered so far
    memory: dict[str, float]  # MB by group (postgres: PSS)
    cpu: dict[str, float]  # CPU seconds by group since the probe began; Postgres's also by role (PG_ROLES)
    wal_bytes: int  # since the probe began
    wal_fpi: int  # full-page images among them
    tables: dict[str, Table]
    db_bytes: int
    lag: float  # seconds
    dirty: int  # the organization's dirty marks
    load: float  # the machine's 1-minute load average


def memory_mb(root: int, proportional: bool = False) -> float:
    """RSS (or PSS) of a process and its descendants, in MB; 0 when it is gone."""
    try:
        top = psutil.Process(root)
        procs = [top, *top.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss if proportional else proc.memory_info().rss
    return total / MB


class Probe:
    """roots: group -> pid (counted with its descendants); "postgres" is the private postmaster."""

    def __init__(self, roots: dict[str, int], pool: asyncpg.Pool, org: int) -> None:
        self.roots, self.conn, self.org = roots, pool, org
        self.meter = Meter(roots, postgres=False, client=True)
        self.pg_cpu = dict.fromkeys(PG_ROLES[:-1], 0.0)  # CPU seconds by role since begin()
        self._pg_last: dict[int, float] = {}  # pid -> its CPU seconds at the last look
        self.started = 0.0
        self.wal0 = (0, 0)

    async def _wal(self) -> tuple[int, int]:
        row = await self.conn.fetchrow("SELECT wal_bytes::bigint, wal_fpi FROM pg_stat_wal")
        assert row is not None
        return int(row[0]), int(row[1])

    async def _postgres_roles(self) -> None:
        """Adds each live Postgres process's CPU since the last look (since its birth if new) to its role."""
        rows = await self.conn.fetch("SELECT pid, coalesce(application_name, ''), coalesce(backend_type, '') "
                                     "FROM pg_stat_activity")
        last, self._pg_last = self._pg_last, {}
        for pid, application_name, backend_type in rows:
            try:
                now = cpu_seconds(pid)
            except (OSError, ValueError, IndexError):  # gone meanwhile
                continue
            self._pg_last[pid] = now
            role = pg_role(application_name, backend_type)
            if role in self.pg_cpu:
                self.pg_cpu[role] += now - last.get(pid, 0.0)

    async def begin(self) -> None:
        self.wal0 = await self._wal()
        await self._postgres_roles()
        self.pg_cpu = dict.fromkeys(self.pg_cpu, 0.0)  # from now on
        self.meter.start()
        self.started = time.monotonic()

    async def sample(self, events: int, queries: int) -> Sample:
        self.meter.stop()  # CPU since begin(); the start snapshot is kept
        await self._postgres_roles()
        cpu = dict(self.meter.seconds) | self.pg_cpu
        cpu["pg_rest"] = cpu.get("postgres", 0.0) - sum(self.pg_cpu.values())
        memory = {name: memory_mb(pid, proportional=name == "postgres") for name, pid in self.roots.items()}
        memory["client"] = memory_mb(os.getpid())
        wal, fpi = await self._wal()
        rows = await self.conn.fetch(_TABLE_STATS, list(TABLES))
        tables = {name: Table() for name in TABLES} | {
            r["name"]: Table(r["bytes"], r["index_bytes"], r["live"], r["dead"]) for r in rows}
        lag = await self.conn.fetchrow(
            "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(marked_at)), 0)::float8, count(*) "
            "FROM dirty_windows WHERE org_id = $1", self.org)
        db = await self.conn.fetchval("SELECT pg_database_size(current_database())")
        assert lag is not None
        return Sample(time.monotonic() - self.started, events, queries, memory, cpu,
                      wal - self.wal0[0], fpi - self.wal0[1], tables, int(db), float(lag[0]), int(lag[1]),
                      os.getloadavg()[0])


# --- latencies ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Latencies:
    """Call latencies (seconds) by kind ("ingest", "query", "check"), each with when the call began."""

    calls: dict[str, list[tuple[float, float]]] = dataclasses.field(default_factory=dict)

    def add(self, kind: str, began: float, seconds: float) -> None:
        self.calls.setdefault(kind, []).append((began, seconds))

    def between(self, kind: str, start: float, end: float) -> list[float]:
        return [s for t, s in self.calls.get(kind, ()) if start <= t < end]


def quantile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:.0f}"  # NaN: no call


# --- the table ------------------------------------------------------------------------------------

HEADER = ("min", "ev/s", "ack p50", "ack p99", "qry p50", "qry p99", "chk p50", "lag s", "server", "worker",
          "gateway", "pg PSS", "redis", "WAL B/ev", "db MB", "dead", "µs/ev srv", "pg", "pg:srv", "pg:wrk", "wrk",
          "gw", "load")


def row(prev: Sample, cur: Sample, latencies: Latencies, index: int) -> tuple[str, ...]:
    """The line for the period between two samples: rates and CPU over it, memory and sizes at its end."""
    events = cur.events - prev.events
    seconds = max(cur.at - prev.at, 1e-9)
    acks = latencies.between("ingest", prev.at, cur.at)
    queries = latencies.between("query", prev.at, cur.at)
    checks = latencies.between("check", prev.at, cur.at)

    def us(group: str) -> str:
        return f"{(cur.cpu.get(group, 0) - prev.cpu.get(group, 0)) / events * 1e6:.0f}" if events else "-"

    return (str(index), f"{events / seconds:,.0f}", _ms(quantile(acks, 0.5)), _ms(quantile(acks, 0.99)),
            _ms(quantile(queries, 0.5)), _ms(quantile(queries, 0.99)), _ms(quantile(checks, 0.5)),
            f"{cur.lag:.1f}", *(f"{cur.memory.get(g, 0):.0f}" for g in ("server", "worker", "gateway", "postgres",
                                                                             "redis")),
            f"{(cur.wal_bytes - prev.wal_bytes) / events:,.0f}" if events else "-", f"{cur.db_bytes / MB:,.0f}",
            f"{sum(t.dead for t in cur.tables.values()):,}", *map(us, ("server", "postgres", "pg_server", "pg_worker",
                                                                         "worker", "gateway")), f"{cur.load:.1f}")


def table(lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


# --- the verdict ----------------------------------------------------------------------------------

def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 2:
        return 0.0
    mt = sum(t for t, _ in points) / len(points)
    mv = sum(v for _, v in points) / len(points)
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600 if var else 0.0


def bytes_per_event(first: Sample, last: Sample, payload_bytes: int) -> dict[str, dict[str, float]]:
    """Growth of each table per acknowledged event, and the model's figure where it has one; for the
    rollup and cube tables bytes per row (their rows grow with series and windows, not events)."""
    events = max(last.events - first.events, 1)
    out: dict[str, dict[str, float]] = {}
    for name in TABLES:
        a, b = first.tables[name], last.tables[name]
        entry: dict[str, float] = {"bytes_per_event": round((b.bytes - a.bytes) / events, 1),
                                   "index_bytes_per_event": round((b.index_bytes - a.index_bytes) / events, 1),
                                   "mb": round(b.bytes / MB, 1), "live": b.live, "dead": b.dead}
        if name in MODEL_PER_EVENT:
            entry["model"] = MODEL_PER_EVENT[name]
        if name == "event_payloads" and payload_bytes:
            entry["model"] = round(payload_bytes * MODEL_PAYLOAD_FACTOR)
        if name in MODEL_PER_ROW and b.live >= 1000:  # fewer rows: a page or two, mostly free space
            entry["bytes_per_row"] = round(b.bytes / b.live)
            entry["model_per_row"] = MODEL_PER_ROW[name]
        out[name] = entry
    return out


def verdict(samples: list[Sample], latencies: Latencies, warmup: float, payload_bytes: int) -> dict[str, object]:
    """After the warm-up: memory slope by group (flat: what the second half's slope adds over that half is at
    most 5 MB or 5%), latency of the last stretch against the first (5 minutes
    each, or a third of what is left if shorter), WAL and CPU per event, table growth against the model."""
    after = [s for s in samples if s.at >= warmup] or samples
    first, last = after[0], after[-1]
    span = last.at - first.at
    stretch = min(300.0, span / 3) if span > 0 else 0.0
    memory = {}
    for group in GROUPS:
        points = [(s.at, s.memory.get(group, 0.0)) for s in after]
        per_hour = slope_per_hour(points)
        start_mb, end_mb = points[0][1], points[-1][1]
        # judged on the second half: a cache filling (Postgres's shared buffers) levels off, a leak does not
        second = slope_per_hour(points[len(points) // 2:])
        memory[group] = {"start_mb": round(start_mb, 1), "end_mb": round(end_mb, 1),
                         "slope_mb_per_h": round(per_hour, 1), "second_half_mb_per_h": round(second, 1),
                         "flat": second * span / 2 / 3600 <= max(5.0, 0.05 * start_mb)}
    drift = {}
    for kind in ("ingest", "query", "check"):
        early = latencies.between(kind, first.at, first.at + stretch)
        late = latencies.between(kind, last.at - stretch, last.at)
        e50, l50, e99, l99 = (quantile(early, 0.5), quantile(late, 0.5), quantile(early, 0.99),
                              quantile(late, 0.99))
        drift[kind] = {"first_p50_ms": round(e50 * 1000, 1), "last_p50_ms": round(l50 * 1000, 1),
                       "first_p99_ms": round(e99 * 1000, 1), "last_p99_ms": round(l99 * 1000, 1),
                       "p50_ratio": round(l50 / e50, 2) if e50 else None}
    events = max(last.events - first.events, 1)
    sizes = bytes_per_event(first, last, payload_bytes)
    beyond = [name for name, e in sizes.items() if "model" in e and e["bytes_per_event"] > 1.25 * e["model"]]
    beyond += [name for name, e in sizes.items()
               if "model_per_row" in e and e["bytes_per_row"] > 1.5 * e["model_per_row"]]
    return {"after_warmup_s": round(span), "stretch_s": round(stretch), "events": last.events - first.events,
            "events_per_s": round((last.events - first.events) / span) if span else 0,
            "memory": memory, "latency": drift,
            "cpu_us_per_event": {g: round((last.cpu.get(g, 0) - first.cpu.get(g, 0)) / events * 1e6, 1)
                                 for g in GROUPS + PG_ROLES},
            "wal_bytes_per_event": round((last.wal_bytes - first.wal_bytes) / events, 1),
            "wal_fpi_share": round((last.wal_fpi - first.wal_fpi) / max(1, last.wal_bytes - first.wal_bytes)
                                   * 8192, 3),
            "tables": sizes, "beyond_model": beyond,
            "max_lag_s": round(max(s.lag for s in after), 1),
            "load_average": [round(min(s.load for s in samples), 1), round(max(s.load for s in samples), 1)]}


def summary(judged: dict[str, Any]) -> str:
    """The verdict in a few lines (the JSON report has all of it)."""
    memory = ", ".join(f"{g} {m['start_mb']:.0f}->{m['end_mb']:.0f} MB ({m['slope_mb_per_h']:+.0f} MB/h"
                       f"{', flat' if m['flat'] else ', GROWS'})" for g, m in judged["memory"].items())
    latency = ", ".join(f"{k} p50 {d['first_p50_ms']}->{d['last_p50_ms']} ms, p99 {d['first_p99_ms']}->"
                        f"{d['last_p99_ms']} ms" for k, d in judged["latency"].items())
    cpu = ", ".join(f"{g} {us}" for g, us in judged["cpu_us_per_event"].items())
    sizes = ", ".join(f"{name} {e['bytes_per_event']}" + (f" (model {e['model']})" if "model" in e else "")
                      for name, e in judged["tables"].items() if e["bytes_per_event"] >= 1)
    rows = ", ".join(f"{name} {e['bytes_per_row']} (model {e['model_per_row']})"
                     for name, e in judged["tables"].items() if "bytes_per_row" in e)
    return "\n".join([
        f"verdict over {judged['after_warmup_s']} s after the warm-up ({judged['events']:,} events, "
        f"{judged['events_per_s']:,}/s; first and last {judged['stretch_s']} s compared; load average "
        f"{judged['load_average'][0]}-{judged['load_average'][1]}):",
        f"  memory: {memory}", f"  latency: {latency}", f"  CPU µs/event (all load): {cpu}",
        f"  WAL bytes/event: {judged['wal_bytes_per_event']}; rollup lag at most {judged['max_lag_s']} s",
        f"  bytes/event: {sizes}", f"  bytes/row: {rows}",
        f"  beyond the model: {', '.join(judged['beyond_model']) or 'none'}"])
