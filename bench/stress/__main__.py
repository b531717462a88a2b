"""python -m bench.stress: the slow proofs of the guarantees (docs/guarantees.md); the scenarios
are in bench/stress/ (this package's __init__, up.py, replicas.py, soak.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import bench.stress as stress
from bench.stress import concurrency, fresh_database, postgres_restart, redis_outage, report, worker_kills
from bench.stress.processes import PrivateRedis
from bench.stress.replicas import replicas
from bench.stress.soak import Settings, soak
from bench.stress.up import kill_up

SCENARIOS = ("worker-kill", "redis-outage", "postgres-restart", "concurrency", "kill-up", "replicas", "soak")
BY_DEFAULT = SCENARIOS[:-1]  # the soak runs only when asked for


async def main(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.only or BY_DEFAULT:
        started = time.monotonic()
        try:
            if name == "postgres-restart":
                result = await postgres_restart(args.pg_down, restarts=args.pg_restarts)
            elif name == "kill-up":
                result = await kill_up(args.up_kills)
            elif name == "soak":
                result = await soak(soak_settings(args))
            else:
                async with fresh_database() as dsn:
                    if name == "worker-kill":
                        redis = PrivateRedis()
                        redis.start()
                        try:
                            result = await worker_kills(dsn, redis.url, args.kills)
                        finally:
                            redis.stop()
                    elif name == "replicas":
                        redis = PrivateRedis()
                        redis.start()
                        try:
                            result = await replicas(dsn, redis.url, before=args.replica_before,
                                                    after=args.replica_before)
                        finally:
                            redis.stop()
                    elif name == "redis-outage":
                        result = await redis_outage(dsn, args.redis_down)
                    else:
                        result = await concurrency(dsn)
            report(name, ok=True, seconds=round(time.monotonic() - started, 1), **result)
        except Exception as exc:  # report and go on with the next scenario
            failed += 1
            report(name, ok=False, seconds=round(time.monotonic() - started, 1), error=repr(exc)[:2000])
    return 1 if failed else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.stress", description=(stress.__doc__ or "").split("\n")[0])
    p.add_argument("--only", action="append", choices=SCENARIOS)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--redis-down", type=float, default=30.0)
    p.add_argument("--pg-down", type=float, default=5.0)
    p.add_argument("--pg-restarts", type=int, default=2)
    p.add_argument("--up-kills", type=int, default=5)
    p.add_argument("--replica-before", type=float, default=10.0,
                   help="replicas: seconds of ingest before the SIGKILL, and after it")
    p.add_argument("--rate", type=float, default=2000.0, help="soak: events a second")
    p.add_argument("--minutes", type=float, default=30.0, help="soak: minutes of load")
    p.add_argument("--payload-bytes", type=int, default=0, help="soak: request + response JSON an event (0: none)")
    p.add_argument("--queries", type=float, default=3.0, help="soak: QueryUsage calls a second")
    p.add_argument("--checks", type=float, default=1.0, help="soak: budget Checks a second (REST)")
    p.add_argument("--sample-every", type=float, default=10.0, help="soak: seconds between samples")
    p.add_argument("--warmup", type=float, default=120.0, help="soak: seconds left out of the verdict")
    p.add_argument("--quick", action="store_true",
                   help="3 worker kills, Redis down 3 s, Postgres down 2 s once, up killed once, replicas 4 s + 4 s, "
                        "soak 60 s (10 s warm-up, a sample every 5 s)")
    args = p.parse_args(argv)
    if args.quick:
        args.kills, args.redis_down, args.pg_down, args.pg_restarts, args.up_kills = 3, 3.0, 2.0, 1, 1
        args.replica_before = 4.0
        args.minutes, args.warmup, args.sample_every = 1.0, 10.0, 5.0
    return args


def soak_settings(args: argparse.Namespace) -> Settings:
    """The soak's Settings from the command line (bench/stress/soak.py)."""
    return Settings(rate=args.rate, seconds=args.minutes * 60, payload_bytes=args.payload_bytes,
                    queries=args.queries, checks=args.checks, sample_every=args.sample_every,
                    row_seconds=60.0 if args.minutes >= 5 else 10.0, warmup=args.warmup,
                    query_phase=20.0 if args.minutes >= 5 else 5.0)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
