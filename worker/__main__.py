"""`python -m worker`: run the rollup worker until SIGINT/SIGTERM (see worker/settings.py), logging
as METERING_LOG_* say (metering/logs.py), its metrics on METERING_WORKER_METRICS_ADDR when set
(worker/metrics.py)."""

from __future__ import annotations

import asyncio
import sys

from arq.worker import run_worker

from metering.logs import configure_logging
from metering.metrics import metrics_addr, serve_metrics
from worker.metrics import METRICS_ADDR, REGISTRY
from worker.settings import worker_settings


def main() -> int:
    try:
        configure_logging()
        settings = worker_settings()
        addr = metrics_addr(METRICS_ADDR)
        served = serve_metrics(addr, REGISTRY, METRICS_ADDR) if addr else None
    except (ValueError, OSError) as exc:  # ConfigError too: the message names the variable
        print(f"metering worker: {exc}", file=sys.stderr)
        return 2
    try:
        run_worker(settings)
    except asyncio.CancelledError:
        # a job still running SHUTDOWN_WAIT seconds after the signal was cancelled (it runs again
        # later: passes are idempotent); arq's close() raises that cancellation
        print("metering worker: stopped; a job still running was cancelled and will run again", file=sys.stderr)
    finally:
        if served is not None:
            served.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
