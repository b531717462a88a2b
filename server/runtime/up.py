"""Running the service: `metering up` (everything), `serve` and `migrate`.

`up` starts embedded Postgres and Redis under the data dir when no
METERING_DATABASE_URL / METERING_REDIS_URL is set, applies migrations, then runs
the gRPC server, the gateway and the worker as child processes. Ctrl-C (or
SIGTERM) stops the children, then the embedded servers. If a child dies, `up`
stops the rest and exits non-zero, so a supervisor can restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from server.core.config import Settings

log = logging.getLogger(__name__)
CHILD_STOP_SECONDS = 15.0


@contextlib.contextmanager
def backing_services(settings: Settings, *, redis: bool = True) -> Iterator[tuple[str, str | None]]:
    """(database DSN, redis URL), starting embedded servers for what is not configured."""
    from server.runtime.embedded_postgres import EmbeddedPostgres
    from server.runtime.embedded_redis import EmbeddedRedis

    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        dsn = settings.database_url
        if dsn is None:
            pg = EmbeddedPostgres(settings.data_dir)
            started.append(pg)
            dsn = pg.start()
        redis_url = settings.redis_url
        if redis and redis_url is None:
            rd = EmbeddedRedis(settings.data_dir)
            started.append(rd)
            redis_url = rd.start()
        yield dsn, redis_url
    finally:
        for service in reversed(started):
            service.stop()


def master_key(settings: Settings) -> str:
    """METERING_MASTER_KEY, or one generated once and kept (0600) in the data dir."""
    if settings.master_key:
        return settings.master_key
    path = settings.data_dir / "master_key"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = "mk_master_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def migrate(settings: Settings) -> int:
    from server.storage.migrate import migrate_dsn

    with backing_services(settings, redis=False) as (dsn, _):
        applied = asyncio.run(migrate_dsn(dsn))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def serve(settings: Settings) -> int:
    if settings.server_processes > 1:
        return _serve_processes(settings)  # a light supervisor: no grpc in this process
    import uvloop  # grpc.aio and asyncpg both run on it; asyncpg's round trips get much cheaper

    from server.runtime.app import run

    with backing_services(settings) as (dsn, redis_url):
        uvloop.run(run(dsn, settings.grpc_addr, master_key(settings), settings.pool_size, redis_url))
    return 0


def _serve_processes(settings: Settings) -> int:
    """METERING_SERVER_PROCESSES > 1: that many single-process servers bound to
    the same address. gRPC sets SO_REUSEPORT, so the kernel spreads incoming
    connections over them (a client with one connection talks to one process).
    Each process has its own pool, caches and group commit; every guarantee
    holds across them because it is enforced by the database (DESIGN §4)."""
    from server.storage.migrate import migrate_dsn

    if settings.grpc_addr.endswith(":0"):
        raise SystemExit("metering: METERING_SERVER_PROCESSES > 1 needs a fixed port in METERING_GRPC_ADDR")
    stop = _stop_on_signals()
    with backing_services(settings) as (dsn, redis_url):
        asyncio.run(migrate_dsn(dsn))  # once, before the processes race for it
        env = {**os.environ, "METERING_DATABASE_URL": dsn, "METERING_REDIS_URL": redis_url or "",
               "METERING_MASTER_KEY": master_key(settings), "METERING_SERVER_PROCESSES": "1"}
        children = {
            f"server {i + 1}": subprocess.Popen([sys.executable, "-m", "server.runtime.cli", "serve"], env=env)
            for i in range(settings.server_processes)
        }
        return _supervise(children, stop)


def up(settings: Settings) -> int:
    from server.storage.migrate import migrate_dsn

    stop = _stop_on_signals()
    with backing_services(settings) as (dsn, redis_url):
        applied = asyncio.run(migrate_dsn(dsn))
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        key = master_key(settings)
        env = {
            **os.environ,
            "METERING_DATABASE_URL": dsn,
            "METERING_REDIS_URL": redis_url or "",
            "METERING_MASTER_KEY": key,
            "METERING_DATA_DIR": str(settings.data_dir),
        }
        children = {
            name: subprocess.Popen([sys.executable, "-m", *argv], env=env, start_new_session=True)
            for name, argv in {
                "server": ["server.runtime.cli", "serve"],  # METERING_SERVER_PROCESSES of them
                "gateway": ["gateway"],
                "worker": ["worker"],
            }.items()
        }
        print(
            f"metering is up: gRPC {settings.grpc_addr}, REST http://{settings.http_addr}\n"
            f"master key: {'(from METERING_MASTER_KEY)' if settings.master_key else key}\n"
            f"data dir: {settings.data_dir if not (settings.database_url and settings.redis_url) else '(external)'}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        return _supervise(children, stop)


def _stop_on_signals() -> dict[str, int]:
    """SIGINT/SIGTERM set stop["signal"] instead of interrupting (children are stopped in order)."""
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def _supervise(children: dict[str, subprocess.Popen[bytes]], stop: dict[str, int]) -> int:
    """Wait for a stop signal or a child's exit, then stop every child: 0, or 1 if a child died."""
    failed = ""
    while not stop["signal"] and not failed:
        time.sleep(0.2)
        failed = next((n for n, p in children.items() if p.poll() is not None), "")
    if failed:
        log.error("%s exited with code %s; stopping", failed, children[failed].returncode)
    _stop_children(children)
    return 1 if failed else 0


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_SECONDS
    for name, proc in children.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
            proc.kill()
            proc.wait()

