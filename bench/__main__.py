"""python -m bench [--events N]: start a stack, run every benchmark, print a table."""

from __future__ import annotations

import argparse
import asyncio
import os

from bench import ingest
from bench.stack import stack


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] * 1000


async def main(n: int) -> None:
    rows: list[tuple[str, str, str]] = []
    async with stack() as st:
        batched = await ingest.batched_grpc(st, n)
        copy = await ingest.raw_copy(st.dsn, n)
        rows.append(("ingest: gRPC RecordEvents, 1000/batch, 4 concurrent", f"{batched:,.0f} events/s", ""))
        rows.append(("  baseline: raw asyncpg COPY, same rows, same indexes", f"{copy:,.0f} rows/s",
                     f"ratio {batched / copy:.0%}"))
        unary_n = max(2000, n // 10)
        unary, lat = await ingest.unary_grpc(st, unary_n)
        raw = await ingest.raw_inserts(st.dsn, unary_n // 4)
        rows.append(("ingest: gRPC RecordEvent, 64 concurrent callers", f"{unary:,.0f} events/s",
                     f"p50 {_pct(lat, .5):.1f} ms p95 {_pct(lat, .95):.1f} ms p99 {_pct(lat, .99):.1f} ms"))
        rows.append(("  baseline: raw INSERT per row, one connection", f"{raw:,.0f} rows/s", f"ratio {unary / raw:.1f}x"))
        rows.append(("server peak RSS", f"{ingest.server_rss(st):.0f} MB", ""))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"\nmachine: {os.cpu_count()} cores, {mem:.0f} GiB; events per ingest run: {n:,}\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'result':>18}  notes")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>18}  {note}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--events", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().events))
