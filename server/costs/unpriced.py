"""Unpriced usage, listed: active events without a cost that the price book could
not price, newest first (AIP-158 pages), each with the reason today's book gives.
(Counted by the query engine: filter price_version = "unpriced".)"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import asyncpg

from metering import page_token as tokens
from metering.v1 import event_pb2
from server.core import convert
from server.core.errors import InvalidArgument
from server.core.events import COUNTER_FIELDS
from server.core.principal import Principal
from server.pricing.pricer import Pricer
from server.records.store import after_event, event_token
from server.storage.db import planned_per_call, q

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclasses.dataclass
class UnpricedPage:
    events: list[tuple[event_pb2.UsageEvent, str]]  # (event, reason)
    next_page_token: str


async def list_unpriced(
    pool: asyncpg.Pool, pricer: Pricer, principal: Principal, start: dt.datetime | None, end: dt.datetime | None,
    models: Sequence[str] = (), page_size: int = 0, page_token: str = "",
) -> UnpricedPage:
    size = page_size or DEFAULT_PAGE_SIZE
    if not 0 < size <= MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"between 1 and {MAX_PAGE_SIZE}")
    wanted = sorted(set(models)) or None
    digest = tokens.request_digest(start and start.isoformat(), end and end.isoformat(), wanted, principal.org_id,
                                   principal.read_scope())
    after_ts, after_id = after_event(page_token, digest) if page_token else (None, None)
    async with planned_per_call(pool) as conn:
        rows = await conn.fetch(q("list_unpriced_events"), principal.org_id, start, end, after_ts, after_id,
                                *principal.read_scope(), wanted, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    await pricer.refresh(pool, [principal.org_id])
    events = [
        (convert.event(r, principal.organization_id), pricer.why_unpriced(
            principal.org_id, r["provider"], r["model"], r["currency"], r["ts"], [r[n] for n in COUNTER_FIELDS],
            r["labels"]))
        for r in rows
    ]
    token = event_token(rows[-1]["ts"], rows[-1]["event_id"], digest) if more else ""
    return UnpricedPage(events, token)
