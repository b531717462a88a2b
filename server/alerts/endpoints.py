"""Webhook endpoints: create (with a signing secret shown once), read, list, update,
delete, and rotate the secret with an overlap during which both secrets sign."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import asyncpg

from server.alerts import pages, safety
from server.alerts.rules import EVENT_TYPES
from server.alerts.signing import new_secret
from server.core.convert import Row
from server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from server.storage.db import q
from server.tenants.credentials import random_text

MAX_ENDPOINTS = 100  # per organization
MAX_DESCRIPTION = 500
DEFAULT_OVERLAP = dt.timedelta(hours=24)
MAX_OVERLAP = dt.timedelta(days=7)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    url: str
    event_types: tuple[str, ...]
    description: str
    disabled: bool
    secret: str  # shown only by create and rotate
    previous_expires_at: dt.datetime | None
    create_time: dt.datetime
    update_time: dt.datetime


@dataclasses.dataclass(frozen=True)
class Fields:
    """What a caller writes."""

    url: str
    event_types: tuple[str, ...]
    description: str
    disabled: bool


def _endpoint(row: Row) -> Endpoint:
    previous = row["previous_expires_at"]
    return Endpoint(row["endpoint_id"], row["url"], tuple(row["event_types"]), row["description"], row["disabled"],
                    row["secret"], previous if previous is not None and row["previous_secret"] else None,
                    row["create_time"], row["update_time"])


def _not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"webhook endpoint {endpoint_id[:64]!r} not found")


async def validated(fields: Fields, *, private_allowed: bool) -> Fields:
    try:
        await safety.check(fields.url, private_allowed=private_allowed)
    except safety.UnsafeUrl as err:
        raise InvalidArgument("url", str(err)) from None
    unknown = sorted(set(fields.event_types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidArgument("event_types", f"unknown event type {unknown[0][:64]!r}; known: {', '.join(EVENT_TYPES)}")
    if len(fields.description) > MAX_DESCRIPTION or "\x00" in fields.description:
        raise InvalidArgument("description", f"at most {MAX_DESCRIPTION} characters, no NUL")
    return dataclasses.replace(fields, event_types=tuple(sorted(set(fields.event_types))))


def overlap_of(value: dt.timedelta | None) -> dt.timedelta:
    if value is None:
        return DEFAULT_OVERLAP
    if not dt.timedelta(0) <= value <= MAX_OVERLAP:
        raise InvalidArgument("overlap", "between 0s and 7 days")
    return value


class Endpoints:
    def __init__(self, pool: asyncpg.Pool, *, private_allowed: bool | None = None) -> None:
        """private_allowed: None reads METERING_WEBHOOK_ALLOW_PRIVATE on every write."""
        self.pool = pool
        self._private_allowed = private_allowed

    @property
    def private_allowed(self) -> bool:
        return safety.allow_private() if self._private_allowed is None else self._private_allowed

    async def create(self, org_id: int, fields: Fields) -> Endpoint:
        fields = await validated(fields, private_allowed=self.private_allowed)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("lock_alert_rule"), org_id, "webhook_endpoints")  # serializes the count
            count = await conn.fetchval(q("count_webhook_endpoints"), org_id)
            if count >= MAX_ENDPOINTS:
                raise FailedPrecondition(f"an organization has at most {MAX_ENDPOINTS} webhook endpoints")
            row = await conn.fetchrow(q("insert_webhook_endpoint"), org_id, "we_" + random_text(20), fields.url,
                                      list(fields.event_types), fields.description, fields.disabled, new_secret())
        assert row is not None
        return _endpoint(row)

    async def get(self, org_id: int, endpoint_id: str) -> Endpoint:
        row = await self.pool.fetchrow(q("get_webhook_endpoint"), org_id, endpoint_id)
        if row is None:
            raise _not_found(endpoint_id)
        return _endpoint(row)

    async def page(self, org_id: int, page_size: int, token: str, binding: str) -> tuple[list[Endpoint], str]:
        size = pages.size(page_size)
        rows = await self.pool.fetch(q("list_webhook_endpoints"), org_id, *pages.after(token, binding), size + 1)
        found = [_endpoint(r) for r in rows[:size]]
        last = (found[-1].create_time, found[-1].endpoint_id) if len(rows) > size else None
        return found, pages.next_token(last, binding)

    async def update(self, org_id: int, endpoint_id: str, fields: Fields, mask: Sequence[str]) -> Endpoint:
        current = await self.get(org_id, endpoint_id)
        merged = Fields(*(getattr(fields if not mask or name in mask else current, name)
                          for name in ("url", "event_types", "description", "disabled")))
        merged = await validated(merged, private_allowed=self.private_allowed)
        row = await self.pool.fetchrow(q("update_webhook_endpoint"), org_id, endpoint_id, merged.url,
                                       list(merged.event_types), merged.description, merged.disabled)
        if row is None:
            raise _not_found(endpoint_id)
        return _endpoint(row)

    async def rotate(self, org_id: int, endpoint_id: str, overlap: dt.timedelta | None) -> Endpoint:
        row = await self.pool.fetchrow(q("rotate_webhook_secret"), org_id, endpoint_id, new_secret(),
                                       overlap_of(overlap))
        if row is None:
            raise _not_found(endpoint_id)
        return _endpoint(row)

    async def delete(self, org_id: int, endpoint_id: str) -> None:
        if await self.pool.fetchval(q("delete_webhook_endpoint"), org_id, endpoint_id) is None:
            raise _not_found(endpoint_id)
