"""python -m bench: start a stack, run every benchmark beside its baseline, print a table.

    python -m bench                      # everything, 10M-event query data set (~15 min)
    python -m bench --quick              # smaller sizes, a couple of minutes
    python -m bench --only ingest,rest   # some sections: ingest, rest, freshness, query, budgets, dashboard

Each result is printed next to a baseline measured in the same run on the same
machine, so the ratio holds on a noisy box. README "Performance" has the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time

from bench import cpu, ingest
from bench.stack import Stack, stack
from bench.stats import latency_note

SECTIONS = ("ingest", "rest", "freshness", "query", "budgets", "dashboard", "retention", "otlp", "prices", "exports",
            "alerts")
Row = tuple[str, str, str]  # benchmark, result, notes


async def ingest_rows(st: Stack, n: int) -> list[Row]:
    rows: list[Row] = []
    # CPU per event of each process group over each timed part (bench/cpu.py)
    m_batched, m_copy, m_unary, m_floor = cpu.stack_meter(st), cpu.Meter({}), cpu.stack_meter(st), cpu.stack_meter(st)
    batched = await ingest.batched_grpc(st, n, cpu=m_batched)
    copy = await ingest.raw_copy(st.dsn, n, cpu=m_copy)
    rows.append(("ingest: gRPC RecordEvents, 1,000/batch, 4 connections", f"{batched:,.0f} events/s",
                 f"durable, dedupe on; {m_batched.note(n)}"))
    rows.append(("  baseline: raw asyncpg COPY of the rows + keys, same indexes", f"{copy:,.0f} rows/s",
                 f"ingest is {batched / copy:.0%} of it; {m_copy.note(n, 'row')}"))
    unary_n = max(2000, n // 10)
    unary, lat = await ingest.unary_grpc(st, unary_n, cpu=m_unary)
    raw = await ingest.raw_inserts(st.dsn, max(1000, unary_n // 4))
    floor, floor_lat = await ingest.health_grpc(st, unary_n, cpu=m_floor)
    rows.append(("ingest: gRPC RecordEvent, 64 callers, 8 connections", f"{unary:,.0f} events/s",
                 f"{latency_note(lat)}; {m_unary.note(unary_n)}"))
    rows.append(("  baseline: raw INSERT per row, one connection", f"{raw:,.0f} rows/s", f"ratio {unary / raw:.1f}x"))
    rows.append(("  ceiling: gRPC Health/Check, same server and callers", f"{floor:,.0f} calls/s",
                 f"{latency_note(floor_lat)}; {m_floor.note(unary_n, 'call')}"))
    return rows


async def rest_rows(st: Stack, n: int) -> list[Row]:
    from bench.sections import rest

    rps, lat = await rest.post_usage(st, n, concurrency=64)
    return [("REST POST /usage (seed 002), 64 concurrent clients", f"{rps:,.0f} requests/s", latency_note(lat))]


async def main(args: argparse.Namespace) -> None:
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections: {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    rows: list[Row] = []
    started = time.monotonic()
    # A fresh stack (database, server processes, gateway, worker) per section, so
    # one section's data never slows another's (queries read what ingest left).
    if "ingest" in sections or "rest" in sections:
        async with stack(server_processes=args.processes) as st:
            if "ingest" in sections:
                rows += await ingest_rows(st, args.events)
            if "rest" in sections:
                rows += await rest_rows(st, max(5000, args.events // 10))
            rows.append(("server peak RSS under that load (all server processes)",
                         f"{ingest.server_rss(st):.0f} MB", ""))
    if "freshness" in sections:
        from bench.sections import freshness

        async with stack(server_processes=args.processes) as st:
            rows += await freshness.run(st, rate=args.rate, seconds=10 if args.quick else 20)
    if "query" in sections:
        from bench.sections import query

        reuse = os.environ.get("METERING_BENCH_QUERY_DSN")  # keep the loaded data set between runs
        async with stack(server_processes=args.processes, database=reuse) as st:
            rows += await query.run(st, args.query_events)
    if "dashboard" in sections:
        from bench.sections import dashboard

        dsn, day0, data_rows = await dashboard.data_set(args.query_events)  # loaded or reused before the stack
        async with stack(server_processes=args.processes, database=dsn) as st:
            rows += data_rows + await dashboard.run(st, day0)
    if "budgets" in sections:
        from bench import budgets

        async with stack(server_processes=args.processes) as st:
            rows += await budgets.run(st, args.quick)
    if "retention" in sections:
        from bench.sections import retention

        async with stack(server_processes=args.processes) as st:
            rows += await retention.run(st, args.events)
    if "otlp" in sections:
        from bench.sections import otlp

        async with stack(server_processes=args.processes) as st:
            rows += await otlp.run(st, args.events)
    if "prices" in sections:
        from bench.sections import prices

        async with stack(server_processes=1) as st:
            rows += await prices.run(st, args.quick)
    if "exports" in sections:
        from bench.sections import exports

        async with stack(server_processes=1) as st:  # one server process: its RSS is the server's
            rows += await exports.run(st, args.events * 5)
    if "alerts" in sections:
        from bench.sections import alerts

        os.environ["METERING_WEBHOOK_ALLOW_PRIVATE"] = "1"  # the receiver is on loopback
        async with stack(server_processes=args.processes) as st:
            rows += await alerts.run(st, args.quick)
    print_table(rows, args, time.monotonic() - started)


def print_table(rows: list[Row], args: argparse.Namespace, seconds: float) -> None:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, load average {load:.1f}; "
          f"server processes: {args.processes}; ingest events: {args.events:,}; "
          f"query events: {args.query_events:,}; took {seconds:.0f} s\n")
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'benchmark':<{w0}}  {'result':>{w1}}  notes")
    for name, value, note in rows:
        print(f"{name:<{w0}}  {value:>{w1}}  {note}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events per ingest run")
    parser.add_argument("--query-events", type=int, default=10_000_000, help="events in the query data set")
    parser.add_argument("--rate", type=int, default=20_000, help="background ingest rate of the freshness run")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="METERING_SERVER_PROCESSES of the stack (default: the number of cores)")
    parser.add_argument("--only", default="", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: 50k ingest, 1M query events")
    args = parser.parse_args()
    if args.quick:
        args.events = min(args.events, 50_000)
        args.query_events = min(args.query_events, 1_000_000)
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
