"""What every process's Prometheus metrics share (prometheus-client): the latency buckets, a
registry with the process's own collectors, serving a registry on METERING_*METRICS_ADDR, and the
multi-process mode of a server run as several processes (METERING_SERVER_PROCESSES).

Multi-process: prometheus-client keeps every value in a file per process under the directory
named by PROMETHEUS_MULTIPROC_DIR, read when prometheus_client is first imported. The parent of
the server processes makes that directory, gives it to its children, and serves one registry
whose MultiProcessCollector adds up their files: one scrape shows the sum over the processes
(gauges: the sum over live processes, `multiprocess_mode="livesum"`).

The metrics themselves are listed in docs/metrics.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    start_http_server,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The gateway's gRPC user agent: the server counts the events of its calls as path "rest".
GATEWAY_USER_AGENT = "metering-gateway"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: from a cached answer or one small write (~1 ms) to a month's report (seconds).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Long jobs (rollup passes, sweeps): up to the worker's 300 s job timeout.
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def query_cache_lookups(registry: CollectorRegistry, cache: str) -> dict[str, Counter]:
    """result (hit, miss) -> the counter of `cache`'s lookups: the server's encoded buckets
    (server_buckets) and the gateway's rendered answers (gateway_answers) count the same way."""
    counter = Counter("metering_query_cache_lookups", "Lookups of kept query answers by etag, by cache "
                      "(server_buckets, gateway_answers) and result (hit, miss).", ["cache", "result"],
                      registry=registry)
    return {result: counter.labels(cache, result) for result in ("hit", "miss")}


def multiprocess_mode() -> bool:
    """True in a process whose values prometheus-client keeps in files (PROMETHEUS_MULTIPROC_DIR)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def new_registry() -> CollectorRegistry:
    """A registry with the process's own metrics (process_*, python_gc_*, python_info), which
    prometheus-client gives only a single-process registry. The metrics made after it carry no
    `_created` series (a second series per counter and histogram that dashboards do not use)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    if not multiprocess_mode():
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    return registry


def aggregated_registry(path: str) -> CollectorRegistry:
    """The sum over the processes whose files are under `path`."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format of `registry` (content type CONTENT_TYPE)."""
    return generate_latest(registry)


def metrics_addr(name: str, env: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """(host, port) of the variable `name` (HOST:PORT, port 0: any free port), None when unset;
    ValueError naming the variable for anything else."""
    env = os.environ if env is None else env
    value = env.get(name) or ""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{name} must look like HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class MetricsServer:
    """A registry served over HTTP (any path) from a daemon thread."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self.httpd = httpd
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def serve_metrics(addr: tuple[str, int], registry: CollectorRegistry, name: str) -> MetricsServer:
    """Serve `registry` on `addr` (from the variable `name`, named in the error when the address
    cannot be bound)."""
    try:
        httpd, thread = start_http_server(addr[1], addr[0], registry)
    except OSError as exc:
        raise OSError(f"{name}: cannot listen on {addr[0]}:{addr[1]}: {exc.strerror or exc}") from None
    return MetricsServer(httpd, thread)


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """A fresh directory for the value files of a group of processes, removed afterwards."""
    path = tempfile.mkdtemp(prefix="metering-metrics-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
