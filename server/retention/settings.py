"""An organization's retention settings: read, validate and store (AdminService's
GetRetention and UpdateRetention are thin adapters over this)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from server.core.errors import InvalidArgument
from server.storage.db import q
from server.storage.horizons import MAX_DAYS, Horizon, Horizons, Retention, effective


@dataclasses.dataclass(frozen=True)
class RetentionView:
    """The organization's own settings (None: the default; 0: for ever), what is in force
    and from which event time raw events and payloads are kept now."""

    event_days: int | None
    payload_days: int | None
    effective: Retention
    horizon: Horizon


def _days(field: str, value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_DAYS:
        raise InvalidArgument(field, f"must be between 0 (for ever) and {MAX_DAYS} days")
    return value


class RetentionSettings:
    def __init__(self, horizons: Horizons) -> None:
        self.horizons = horizons
        self.pool = horizons.pool

    async def get(self, org_id: int) -> RetentionView:
        row = await self.pool.fetchrow(q("retention_of"), org_id)
        assert row is not None
        return await self._view(org_id, row["event_days"], row["payload_days"])

    async def put(self, org_id: int, event_days: int | None, payload_days: int | None) -> RetentionView:
        """Replaces the organization's settings; None puts a field back to the default."""
        _days("event_days", event_days)
        _days("payload_days", payload_days)
        defaults = self.horizons.defaults
        events = effective(event_days, None, Retention(defaults.event_days, None)).event_days
        if payload_days is not None and events is not None:
            if payload_days == 0:
                raise InvalidArgument("payload_days", f"0 keeps payloads for ever, past the events' {events} days")
            if payload_days > events:
                raise InvalidArgument("payload_days", f"must be at most the events' retention, {events} days")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("retention_lock"))
            await conn.execute(q("put_retention"), org_id, event_days, payload_days)
        self.horizons.forget(org_id)
        return await self._view(org_id, event_days, payload_days)

    async def _view(self, org_id: int, event_days: int | None, payload_days: int | None) -> RetentionView:
        now = dt.datetime.now(dt.UTC)
        return RetentionView(event_days, payload_days, effective(event_days, payload_days, self.horizons.defaults),
                             await self.horizons.of(org_id, now))
