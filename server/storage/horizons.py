"""Retention horizons: from which event time an organization keeps its raw events and
payloads (migrations/0014_retention.sql, docs/storage.md "Retention"). The organization's
settings, else the global defaults (METERING_RETENTION_DAYS, METERING_PAYLOAD_RETENTION_DAYS;
0 or unset: for ever), and never before the floor of the months already dropped. Ingest
refuses events before the event horizon, reads answer NOT_FOUND for them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Mapping

import asyncpg

from server.core.config import ConfigError
from server.storage.db import q

OUTSIDE_RETENTION = "OUTSIDE_RETENTION"
MAX_DAYS = 100 * 366
CACHE_SECONDS = 5.0  # how long a process keeps an organization's horizons (changes that shorten
# retention take this long to reach every process; the drop waits a day past the horizon)


@dataclasses.dataclass(frozen=True)
class Retention:
    """Days kept; None: for ever. payload_days <= event_days."""

    event_days: int | None
    payload_days: int | None


def _days(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "")
    if not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of days, got {raw!r}") from None
    if not 0 <= value <= MAX_DAYS:
        raise ConfigError(f"{name} must be between 0 and {MAX_DAYS} days, got {value}")
    return value or None


def retention_defaults(env: Mapping[str, str] | None = None) -> Retention:
    """The global defaults: METERING_RETENTION_DAYS (raw events) and
    METERING_PAYLOAD_RETENTION_DAYS (payloads, default and at most the events')."""
    env = os.environ if env is None else env
    events = _days(env, "METERING_RETENTION_DAYS")
    payloads = _days(env, "METERING_PAYLOAD_RETENTION_DAYS")
    if events is not None and payloads is not None and payloads > events:
        raise ConfigError("METERING_PAYLOAD_RETENTION_DAYS must be at most METERING_RETENTION_DAYS")
    return Retention(events, payloads if payloads is not None else events)


def effective(event_days: int | None, payload_days: int | None, defaults: Retention) -> Retention:
    """An organization's retention from its settings (None: the default; 0: for ever)."""
    events = defaults.event_days if event_days is None else (event_days or None)
    if payload_days is None:
        payloads = defaults.payload_days
    else:
        payloads = payload_days or None
    if events is not None and (payloads is None or payloads > events):
        payloads = events  # payloads never outlive their events
    return Retention(events, payloads)


@dataclasses.dataclass(frozen=True)
class Horizon:
    """Event times before these are gone for the organization (None: nothing is)."""

    events: dt.datetime | None
    payloads: dt.datetime | None


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None else max(a, b)


def horizon(retention: Retention, floor_events: dt.datetime | None, floor_payloads: dt.datetime | None,
            now: dt.datetime) -> Horizon:
    events = None if retention.event_days is None else now - dt.timedelta(days=retention.event_days)
    payloads = None if retention.payload_days is None else now - dt.timedelta(days=retention.payload_days)
    events = _later(events, floor_events)
    return Horizon(events, _later(_later(payloads, floor_payloads), events))


class Horizons:
    """Each organization's horizon, read from Postgres and kept CACHE_SECONDS."""

    def __init__(self, pool: asyncpg.Pool, defaults: Retention | None = None) -> None:
        self.pool = pool
        self.defaults = retention_defaults() if defaults is None else defaults
        self._cache: dict[int, tuple[float, Retention, dt.datetime | None, dt.datetime | None]] = {}

    async def of(self, org_id: int, now: dt.datetime | None = None) -> Horizon:
        now = dt.datetime.now(dt.UTC) if now is None else now
        cached = self._cache.get(org_id)
        if cached is None or cached[0] < time.monotonic():
            row = await self.pool.fetchrow(q("retention_of"), org_id)
            assert row is not None
            if len(self._cache) >= 10_000:
                self._cache.clear()
            retention = effective(row["event_days"], row["payload_days"], self.defaults)
            cached = self._cache[org_id] = (time.monotonic() + CACHE_SECONDS, retention,
                                            row["events_before"], row["payloads_before"])
        _, retention, floor_events, floor_payloads = cached
        return horizon(retention, floor_events, floor_payloads, now)

    def forget(self, org_id: int | None = None) -> None:
        """After a change made by this process: read again at the next call."""
        if org_id is None:
            self._cache.clear()
        else:
            self._cache.pop(org_id, None)
