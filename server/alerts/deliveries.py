"""The delivery log: every delivery with every attempt, and redelivery (the same event and
webhook-id, due now, with a fresh retry horizon)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import asyncpg

from server.alerts import pages
from server.core.errors import NotFound
from server.storage.db import planned_per_call, q


@dataclasses.dataclass(frozen=True)
class Delivery:
    delivery_id: str
    event_id: str
    event_type: str
    channel: str
    endpoint_id: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    create_time: dt.datetime
    log: list[dict[str, Any]]  # alert_attempts rows, by attempt


class Deliveries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def page(self, org_id: int, endpoint_id: str, page_size: int, token: str,
                   binding: str, delivery_id: str = "") -> tuple[list[Delivery], str]:
        size = pages.size(page_size)
        async with planned_per_call(self.pool) as conn:
            rows = await conn.fetch(q("list_deliveries"), org_id, endpoint_id, *pages.after(token, binding), size + 1,
                                    delivery_id)
        found = [Delivery(r["delivery_id"], r["event_id"], r["type"], r["channel"], r["endpoint_id"] or "", r["state"],
                          r["attempts"], r["next_attempt_at"], r["create_time"], list(r["log"])) for r in rows[:size]]
        last = (found[-1].create_time, found[-1].delivery_id) if len(rows) > size else None
        return found, pages.next_token(last, binding)

    async def redeliver(self, org_id: int, delivery_id: str) -> Delivery:
        if await self.pool.fetchrow(q("redeliver"), org_id, delivery_id) is None:
            raise NotFound(f"delivery {delivery_id[:64]!r} not found")
        return await self.get(org_id, delivery_id)

    async def get(self, org_id: int, delivery_id: str) -> Delivery:
        found, _ = await self.page(org_id, "", 1, "", "", delivery_id)
        if not found:
            raise NotFound(f"delivery {delivery_id[:64]!r} not found")
        return found[0]
