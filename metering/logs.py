"""Logging for every process (server, gateway, worker): one `configure_logging`, read from the
environment, used by all three entry points.

    METERING_LOG_LEVEL   DEBUG | INFO (default) | WARNING | ERROR
    METERING_LOG_FORMAT  text (default): `time LEVEL logger message`, or json: one JSON object
                         per line with time, level, logger, message, the request id where one is
                         known, the exception when there is one, and an access line's fields
    METERING_ACCESS_LOG  off (default) | on: one line per request (gateway) and per RPC (server)
                         on the `metering.access` logger, whatever METERING_LOG_LEVEL says

Request ids: whoever handles a request sets `request_id` (the gRPC server's interceptor, the
gateway's request-id middleware); every line logged while handling it carries that id.

Access lines are off by default: under load they are most of what a process writes (uvicorn's
43,000 lines in 30 s of ingest), and the request rates, latencies and statuses they would show
are in the metrics (docs/metrics.md). Errors are logged either way.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

NO_REQUEST_ID = "-"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NO_REQUEST_ID)
ACCESS_LOGGER = "metering.access"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_ON = {"1", "on", "true", "yes"}
_OFF = {"0", "off", "false", "no", ""}
# The attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


@dataclasses.dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    json: bool = False
    access: bool = False


def log_settings(env: Mapping[str, str] | None = None) -> LogSettings:
    """The settings of METERING_LOG_*; ValueError naming the variable for a value we cannot use."""
    env = os.environ if env is None else env
    level = (env.get("METERING_LOG_LEVEL") or "INFO").upper()
    if level not in LEVELS:
        raise ValueError(f"METERING_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    form = (env.get("METERING_LOG_FORMAT") or "text").lower()
    if form not in FORMATS:
        raise ValueError(f"METERING_LOG_FORMAT must be text or json, got {form!r}")
    access = (env.get("METERING_ACCESS_LOG") or "").lower()
    if access not in _ON | _OFF:
        raise ValueError(f"METERING_ACCESS_LOG must be on or off, got {access!r}")
    return LogSettings(level=level, json=form == "json", access=access in _ON)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601, milliseconds), level, logger, message,
    request_id (when known), exception (the traceback, when there is one), and the record's
    extra fields (an access line's method, route, status, duration_ms, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid != NO_REQUEST_ID:
            line["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(settings: LogSettings | None = None) -> LogSettings:
    """Configure the root logger on stderr (replacing its handlers) and the access logger, from
    `settings` or the environment; returns the settings used."""
    settings = settings or log_settings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    # Access lines are logged at INFO: shown when on, whatever the level of the rest.
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO if settings.access else logging.WARNING)
    return settings


def access_logger() -> logging.Logger:
    return logging.getLogger(ACCESS_LOGGER)
