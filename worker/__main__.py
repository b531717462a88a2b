"""`python -m worker`: run the rollup worker until SIGINT/SIGTERM (see worker/settings.py)."""

from __future__ import annotations

import logging
import os
import sys

from arq.worker import run_worker

from server.core.config import ConfigError
from worker.settings import worker_settings


def main() -> int:
    level = (os.environ.get("METERING_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=level if level in {"DEBUG", "INFO", "WARNING", "ERROR"} else "INFO",
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = worker_settings()
    except ConfigError as exc:
        print(f"metering worker: {exc}", file=sys.stderr)
        return 2
    run_worker(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
