"""Running the service: `metering up` (everything), `serve` and `migrate`.

`up` starts embedded Postgres and Redis under the data dir when no
METERING_DATABASE_URL / METERING_REDIS_URL is set, applies migrations, then runs
the gRPC server, the gateway and the worker as child processes. Ctrl-C (or
SIGTERM) stops the children, then the embedded servers. If a child exits or an
embedded server dies, `up` stops the rest and exits 1, naming it, so a supervisor
can restart it (runtime/supervise.py).

If `up` itself dies (kill -9, OOM), nothing of its stack outlives it: its children
get SIGKILL from the kernel (runtime/lifeline.py) and its guardian stops the
embedded servers (runtime/guardian.py); a new `up` on the same data dir waits for
that, then starts clean. One `up` per data dir (runtime/running.py), whose state
file lets the admin verbs find it. The master key is never printed: `up` prints
the file it is kept in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from server.core.config import Settings
from server.runtime.ports import AddressInUse, ensure_free
from server.runtime.supervise import Watched, start_child, stop_on_signals, supervise

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from server.runtime.guardian import Guardian
    from server.runtime.running import Claim

log = logging.getLogger(__name__)
MASTER_KEY_FILE = "master_key"
METRICS_ADDR = "METERING_METRICS_ADDR"  # the server's metrics (the worker's: METERING_WORKER_METRICS_ADDR)


@dataclasses.dataclass
class Backing:
    dsn: str
    redis_url: str | None
    embedded: dict[str, Watched]  # "embedded postgres" / "embedded redis": those started here


@contextlib.contextmanager
def backing_services(settings: Settings, *, redis: bool = True) -> Iterator[Backing]:
    """The database DSN and Redis URL, starting embedded servers for what is not configured."""
    from server.runtime.embedded_postgres import EmbeddedPostgres
    from server.runtime.embedded_redis import EmbeddedRedis

    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    backing = Backing("", settings.redis_url, {})
    try:
        if settings.database_url is None:
            pg = EmbeddedPostgres(settings.data_dir)
            started.append(pg)
            backing.dsn = pg.start()
            backing.embedded["embedded postgres"] = pg
        else:
            backing.dsn = settings.database_url
        if redis and settings.redis_url is None:
            rd = EmbeddedRedis(settings.data_dir)
            started.append(rd)
            backing.redis_url = rd.start()
            backing.embedded["embedded redis"] = rd
        yield backing
    finally:
        for service in reversed(started):
            service.stop()


def master_key(settings: Settings) -> str:
    """METERING_MASTER_KEY, or one generated once and kept (0600) in the data dir."""
    if settings.master_key:
        return settings.master_key
    path = settings.data_dir / MASTER_KEY_FILE
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

    with backing_services(settings, redis=False) as backing:
        applied = asyncio.run(migrate_dsn(backing.dsn))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def serve(settings: Settings, *, reuse_port: bool = False) -> int:
    """reuse_port: this is one of the processes of a multi-process serve (runtime/ports.py)."""
    if settings.server_processes > 1 and not reuse_port:
        return _serve_processes(settings)  # a light supervisor: no grpc in this process
    import uvloop  # grpc.aio and asyncpg both run on it; asyncpg's round trips get much cheaper

    from server.core.metrics import REGISTRY
    from server.runtime.app import run

    with _metrics(lambda: REGISTRY), backing_services(settings) as backing:
        try:
            uvloop.run(run(backing.dsn, settings.grpc_addr, master_key(settings), settings.pool_size,
                           backing.redis_url, reuse_port=reuse_port))
        except AddressInUse as exc:
            raise SystemExit(f"metering serve: {exc} (METERING_GRPC_ADDR)") from None
    return 0


@contextlib.contextmanager
def _metrics(registry: Callable[[], CollectorRegistry]) -> Iterator[None]:
    """METERING_METRICS_ADDR, when set: `registry()` served there while the block runs."""
    from metering.metrics import metrics_addr, serve_metrics

    try:
        addr = metrics_addr(METRICS_ADDR)
        served = serve_metrics(addr, registry(), METRICS_ADDR) if addr else None
    except (ValueError, OSError) as exc:
        raise SystemExit(f"metering serve: {exc}") from None
    try:
        yield
    finally:
        if served is not None:
            served.close()


def _serve_processes(settings: Settings) -> int:
    """METERING_SERVER_PROCESSES > 1: that many single-process servers bound to the
    same address with SO_REUSEPORT, once a plain bind showed the address is free, so
    the kernel spreads incoming connections over them and over nothing else (a client
    with one connection talks to one process). Each process has its own pool, caches
    and group commit; every guarantee holds across them because it is enforced by the
    database (DESIGN §4)."""
    from server.storage.migrate import migrate_dsn

    if settings.grpc_addr.endswith(":0"):
        raise SystemExit("metering: METERING_SERVER_PROCESSES > 1 needs a fixed port in METERING_GRPC_ADDR")
    try:
        ensure_free(settings.grpc_addr, "METERING_GRPC_ADDR")
    except AddressInUse as exc:
        raise SystemExit(f"metering serve: {exc}") from None
    from metering.metrics import MULTIPROC_ENV, aggregated_registry, multiprocess_dir

    stop = stop_on_signals()
    # Metrics: each process keeps its values in files under one directory, and this process
    # serves their sum on METERING_METRICS_ADDR (metering/metrics.py).
    with multiprocess_dir() as values, _metrics(lambda: aggregated_registry(values)), \
            backing_services(settings) as backing:
        asyncio.run(migrate_dsn(backing.dsn))  # once, before the processes race for it
        env = {**os.environ, "METERING_DATABASE_URL": backing.dsn, "METERING_REDIS_URL": backing.redis_url or "",
               "METERING_MASTER_KEY": master_key(settings), MULTIPROC_ENV: values, METRICS_ADDR: ""}
        if not os.environ.get(METRICS_ADDR):
            del env[MULTIPROC_ENV]  # nobody reads the values: each process keeps them in memory
        children = {
            f"server {i + 1}": start_child(["server.runtime.cli", "serve", "--reuse-port"], env)
            for i in range(settings.server_processes)
        }
        return supervise(children, stop, backing.embedded)


def up(settings: Settings) -> int:
    from server.runtime.guardian import Guardian
    from server.runtime.running import AlreadyRunning, claim

    try:
        with claim(settings.data_dir) as held:  # first: it waits for the guardian of an up that died here
            ensure_free(settings.grpc_addr, "METERING_GRPC_ADDR")
            ensure_free(settings.http_addr, "METERING_HTTP_ADDR")
            guardian = Guardian(settings.data_dir, held.lock_fd)
            try:
                return _run_up(settings, held, guardian)
            finally:
                guardian.done()
    except (AddressInUse, AlreadyRunning) as exc:
        raise SystemExit(f"metering up: {exc}") from None


def _run_up(settings: Settings, held: Claim, guardian: Guardian) -> int:
    from server.storage.migrate import migrate_dsn

    stop = stop_on_signals()
    with backing_services(settings) as backing:
        applied = asyncio.run(migrate_dsn(backing.dsn))
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        key = master_key(settings)
        env = {
            **os.environ,
            "METERING_DATABASE_URL": backing.dsn,
            "METERING_REDIS_URL": backing.redis_url or "",
            "METERING_MASTER_KEY": key,
            "METERING_DATA_DIR": str(settings.data_dir),
        }
        children = {}
        for name, argv in {
            "server": ["server.runtime.cli", "serve"],  # METERING_SERVER_PROCESSES of them
            "gateway": ["gateway"],
            "worker": ["worker"],
        }.items():
            children[name] = start_child(argv, env, own_session=True)
            guardian.watch(children[name].pid)
        key_file = None if settings.master_key else settings.data_dir / MASTER_KEY_FILE
        held.publish(settings.grpc_addr, settings.http_addr, key_file)
        print(
            f"metering is up: gRPC {settings.grpc_addr}, REST http://{settings.http_addr}\n"
            f"master key: {key_file or 'from METERING_MASTER_KEY'}"
            f"{' (mode 0600; the admin verbs read it there)' if key_file else ''}\n"
            f"data dir: {settings.data_dir}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        return supervise(children, stop, backing.embedded)
