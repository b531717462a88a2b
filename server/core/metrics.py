"""The server's Prometheus metrics (docs/metrics.md lists them), in one registry served on
METERING_METRICS_ADDR (summed over the processes of a multi-process serve: metering/metrics.py).

Defined here, in core, so that every layer can count without importing another: the interceptor
(RPC latency), ingest (events by path and outcome, group-commit sizes), storage (the pool), the
query cache; the worker adds its own (worker/metrics.py) and shares the pool gauge's definition.
Labels take only values from small fixed sets (a method, a status code, a path, an outcome), never
an organization, a key or a request id.

Counting must stay cheap on the ingest path: children of labelled metrics are looked up once
(`ingested`), and a batch counts its events with one increment per outcome.
"""

from __future__ import annotations

import contextvars

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from metering.metrics import LATENCY_BUCKETS, new_registry, query_cache_lookups

REGISTRY = new_registry()

# How events arrive: the gRPC calls a client makes, or the REST gateway on a caller's behalf
# (its calls carry the gateway's user agent; `via_gateway` is set per call by the interceptor).
PATHS = ("grpc_unary", "grpc_batch", "grpc_stream", "rest", "otlp")
OUTCOMES = ("recorded", "duplicate", "rejected", "failed")
via_gateway: contextvars.ContextVar[bool] = contextvars.ContextVar("via_gateway", default=False)

EVENTS = Counter(
    "metering_events_ingested", "Usage events received, by how they came (path) and what became of them "
    "(recorded, duplicate, rejected by validation, failed: their write failed and nothing was stored).",
    ["path", "outcome"], registry=REGISTRY)
RPC_SECONDS = Histogram(
    "metering_grpc_server_handling_seconds", "Time to handle a gRPC call, by method and status code "
    "(its _count: calls handled).", ["method", "code"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
GROUP_COMMIT_SIZE = Histogram(
    "metering_group_commit_batch_size", "Items written by one group-commit transaction (concurrent calls "
    "coalesced), by committer (ingest: single events of unary calls and streams).", ["committer"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=REGISTRY)


def db_pool_gauge(registry: CollectorRegistry) -> Gauge:
    """Connections of the process's Postgres pool by state (in_use, idle, max), sampled."""
    return Gauge("metering_db_pool_connections", "Connections of the Postgres pool by state: in_use, idle "
                 "(open, free), max (the pool's size limit). Summed over the server processes.", ["state"],
                 registry=registry, multiprocess_mode="livesum")


DB_POOL = db_pool_gauge(REGISTRY)


def children(metric: Counter, label: str, values: tuple[str, ...], **fixed: str) -> dict[str, Counter]:
    """The children of `metric` for each of `values` of `label` (other labels `fixed`), looked up once."""
    return {value: metric.labels(**fixed, **{label: value}) for value in values}


def ingested(path: str) -> dict[str, Counter]:
    """outcome -> the EVENTS counter of `path`."""
    return children(EVENTS, "outcome", OUTCOMES, path=path)


INGESTED = {path: ingested(path) for path in PATHS}
SERVER_CACHE = query_cache_lookups(REGISTRY, "server_buckets")


def ingest_path(grpc_path: str) -> dict[str, Counter]:
    """The counters of this call's events: `grpc_path` (grpc_unary, grpc_batch, grpc_stream), or
    rest when the gateway made the call."""
    return INGESTED["rest" if via_gateway.get() else grpc_path]
