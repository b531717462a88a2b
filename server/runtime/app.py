"""The gRPC server: services, health, reflection, graceful shutdown.

Health follows Postgres: SERVING while the process's listening connection (server/storage/
notify.py, which also carries the invalidations of cached keys and price books) answers its
pings, NOT_SERVING while Postgres cannot be reached."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from metering.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    alerts_pb2,
    alerts_pb2_grpc,
    budgets_pb2,
    budgets_pb2_grpc,
    exports_pb2,
    ingest_pb2,
    prices_pb2,
    prices_pb2_grpc,
    query_pb2,
    records_pb2,
    records_pb2_grpc,
)
from server.alerts.deliveries import Deliveries
from server.alerts.endpoints import Endpoints
from server.alerts.spend_alerts import SpendAlerts
from server.api.admin import AdminServicer
from server.api.alerts import AlertsServicer
from server.api.budgets import BudgetsServicer
from server.api.context import Core
from server.api.exports import ExportServicer
from server.api.ingest import IngestServicer
from server.api.interceptors import ServerInterceptor
from server.api.otlp import SERVICE as TRACE_SERVICE
from server.api.otlp import TraceServicer
from server.api.prices import CostServicer, PriceServicer
from server.api.query import QueryServicer
from server.api.ratelimit import RateLimiter
from server.api.ratelimit import from_env as rate_limiter_from_env
from server.api.records import RecordsServicer
from server.api.wire import add_service
from server.budgets.service import Budgets
from server.core.metrics import DB_POOL
from server.costs.report import CostQuery
from server.costs.reprice import Repricer
from server.ingest.writer import EventWriter
from server.pricing import catalog
from server.pricing.versions import PriceVersions
from server.query.engine import QueryEngine
from server.records.store import Records
from server.rollups.queue import RollupEnqueuer
from server.runtime.ports import ensure_free
from server.storage.db import create_pool, track_pool
from server.storage.migrate import migrate_dsn
from server.storage.notify import Listener
from server.tenants.auth import Authenticator
from server.tenants.store import Tenants

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVICE_NAMES = [
    ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
    records_pb2.DESCRIPTOR.services_by_name["RecordService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name,
    prices_pb2.DESCRIPTOR.services_by_name["PriceService"].full_name,
    prices_pb2.DESCRIPTOR.services_by_name["CostService"].full_name,
    budgets_pb2.DESCRIPTOR.services_by_name["BudgetService"].full_name,
    alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name,
    exports_pb2.DESCRIPTOR.services_by_name["ExportService"].full_name,
]
# The standard services served beside ours (OTLP/gRPC trace export: GenAI spans as usage), in
# health and reflection too.
STANDARD_SERVICE_NAMES = [TRACE_SERVICE.full_name]


class MeteringServer:
    """Owns the pool and the grpc.aio server. start() returns the bound port."""

    def __init__(
        self, dsn: str, addr: str, master_key: str | None, *, pool_size: int = 10,
        redis_url: str | None = None, queue_name: str | None = None, rollup_delay: float = 1.0,
        rate_limiter: RateLimiter | None | bool = True, reuse_port: bool = False, listen_dsn: str | None = None,
        default_prices: bool | None = None,
    ) -> None:
        """redis_url: where to enqueue rollup jobs after each write (None: don't; the
        worker's sweep still finds every dirty window). queue_name: default
        $METERING_QUEUE_NAME or "metering:rollups". rollup_delay: seconds a rollup
        job waits in the queue, so a burst of writes to one day costs one job.
        reuse_port: only for the processes of one multi-process serve (runtime/ports.py);
        otherwise binding an address something listens on fails with AddressInUse.
        listen_dsn: where to LISTEN for invalidations and ping Postgres (default dsn; a
        connection pooler in transaction mode cannot LISTEN: name Postgres itself then)."""
        self.dsn = dsn
        self.addr = addr
        self.master_key = master_key
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.listener = Listener(listen_dsn or dsn)
        self._health_lock = asyncio.Lock()
        self.ingest: IngestServicer | None = None
        self.budgets: Budgets | None = None
        self.enqueuer = RollupEnqueuer(redis_url, queue_name, defer=rollup_delay) if redis_url else None
        self._pool_metrics: asyncio.Task[None] | None = None
        self.port = 0
        self.reuse_port = reuse_port
        # True: from METERING_RATE_LIMIT / METERING_RATE_BURST (default off); None/False: off.
        self.rate_limiter = rate_limiter_from_env() if rate_limiter is True else (rate_limiter or None)
        # New organizations' books start as the price catalog (default: $METERING_DEFAULT_PRICES, "catalog").
        self.default_prices = catalog.default_prices() if default_prices is None else default_prices

    async def start(self) -> int:
        await migrate_dsn(self.dsn)
        self.pool = await create_pool(self.dsn, min_size=2, max_size=self.pool_size,
                                      application_name="metering-server")
        await self.listener.start()
        if self.default_prices:
            await catalog.install(self.pool)
        tenants = Tenants(self.pool, default_prices=self.default_prices)
        await tenants.token_secret()
        writer = EventWriter(self.pool)
        writer.pricer.follow(self.listener, self.pool)
        if self.enqueuer is not None:
            writer.after_commit = self.enqueuer.notify
        auth = Authenticator(tenants, self.master_key, listener=self.listener)
        core = Core(tenants=tenants, auth=auth, records=Records(writer))
        self.ingest = IngestServicer(core, writer)

        self.server = grpc.aio.server(
            interceptors=[ServerInterceptor(self.rate_limiter)],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
                # What a slow or idle client may hold (docs/operations.md): the HTTP/2 handshake
                # within 5 s; keepalive pings every 60 s find a dead peer within 80 s, even with no
                # data flowing; clients may ping every 10 s (more often: GOAWAY after 2 strikes); a
                # connection idle for 5 minutes, or open for an hour, is closed (GOAWAY; calls in
                # flight get 5 minutes more); at most 1,000 calls at once per connection.
                ("grpc.server_handshake_timeout_ms", 5_000),
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.keepalive_timeout_ms", 20_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.http2.max_ping_strikes", 2),
                ("grpc.max_connection_idle_ms", 300_000),
                ("grpc.max_connection_age_ms", 3_600_000),
                ("grpc.max_connection_age_grace_ms", 300_000),
                ("grpc.max_concurrent_streams", 1000),
            ],
        )
        # Ingest and query replies may be sent as bytes put together by hand (server/api/wire.py).
        add_service(self.server, ingest_pb2.DESCRIPTOR.services_by_name["IngestService"], self.ingest)
        records_pb2_grpc.add_RecordServiceServicer_to_server(RecordsServicer(core), self.server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(core), self.server)
        engine = QueryEngine(self.pool)
        query = QueryServicer(core, engine, core.records)
        add_service(self.server, query_pb2.DESCRIPTOR.services_by_name["QueryService"], query)
        add_service(self.server, exports_pb2.DESCRIPTOR.services_by_name["ExportService"], ExportServicer(core, query))
        prices_pb2_grpc.add_PriceServiceServicer_to_server(
            PriceServicer(core, PriceVersions(self.pool, writer.pricer), Repricer(writer), writer.pricer), self.server
        )
        prices_pb2_grpc.add_CostServiceServicer_to_server(
            CostServicer(core, CostQuery(engine, writer.pricer)), self.server
        )
        self.budgets = Budgets(self.pool, engine)
        budgets_pb2_grpc.add_BudgetServiceServicer_to_server(BudgetsServicer(core, self.budgets), self.server)
        alerts_pb2_grpc.add_AlertServiceServicer_to_server(AlertsServicer(
            core, Endpoints(self.pool), Deliveries(self.pool), SpendAlerts(self.pool, self.budgets.store)), self.server)
        add_service(self.server, TRACE_SERVICE, TraceServicer(core, self.ingest))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*SERVICE_NAMES, *STANDARD_SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME],
            self.server,
        )
        try:
            self.port = self.server.add_insecure_port(self.addr)
        except RuntimeError:  # grpc says only "Failed to bind": in use, or an address we cannot have
            await self.listener.close()
            await self.pool.close()
            ensure_free(self.addr)  # raises AddressInUse if that was the cause
            raise
        await self.server.start()
        self.budgets.start()
        self._pool_metrics = asyncio.create_task(track_pool(self.pool, DB_POOL))
        self.listener.on_state(self._publish_health)
        await self._publish_health()
        log.info("grpc server listening on %s", self.addr.rsplit(":", 1)[0] + f":{self.port}")
        return self.port

    async def _publish_health(self, _: bool = True) -> None:
        """Every service SERVING while Postgres answers, else NOT_SERVING."""
        async with self._health_lock:
            status = (health_pb2.HealthCheckResponse.SERVING if self.listener.connected
                      else health_pb2.HealthCheckResponse.NOT_SERVING)
            for name in ["", *SERVICE_NAMES, *STANDARD_SERVICE_NAMES]:
                await self.health.set(name, status)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(grace)
        if self.ingest is not None:
            await self.ingest.committer.close()
        if self.budgets is not None:
            await self.budgets.close()
        if self.enqueuer is not None:
            await self.enqueuer.close()
        if self._pool_metrics is not None:
            self._pool_metrics.cancel()
        await self.listener.close()
        if self.pool is not None:
            await self.pool.close()
        log.info("grpc server stopped")


async def run(dsn: str, addr: str, master_key: str | None, pool_size: int = 10, redis_url: str | None = None,
              reuse_port: bool = False) -> None:
    """Serve until SIGINT/SIGTERM, then stop gracefully."""
    server = MeteringServer(dsn, addr, master_key, pool_size=pool_size, redis_url=redis_url, reuse_port=reuse_port)
    await server.start()
    # Everything made while starting (modules, descriptors, caches) lives as long as the
    # process: kept out of the collector's generations, full collections stop scanning it
    # again and again (ingest allocates ~10 objects an event; the collector's share of a
    # batched event went from ~5.5 to ~1.8 µs in-process).
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
