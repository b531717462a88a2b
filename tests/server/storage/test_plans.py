"""The keyset listings are planned for their actual arguments on every call (server/storage/db.py
planned_per_call): a generic plan cannot see the page's cursor nor which filters are off.

The connection here plans every prepared statement generically unless told otherwise, as Postgres
does on its own after five executions once it judges the generic plan cheaper (a member's listings
made list_unpriced_events generic on a pooled connection, and the admin's pages then read every
event of the organization). Each listing walks more than five pages on that one connection: every
row once, in order, and its statement planned for its arguments each time, never generically."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest

from metering.v1 import event_pb2, ingest_pb2, records_pb2
from server.alerts.deliveries import Deliveries
from server.core.principal import Principal
from server.costs.unpriced import list_unpriced
from server.ingest.writer import EventWriter
from server.pricing.pricer import Pricer
from server.records.store import Records
from server.storage.db import create_pool, q

EVENTS = 7  # pages of one: more than the five executions after which Postgres may go generic


@pytest.fixture
async def generic_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=1,
                             server_settings={"plan_cache_mode": "force_generic_plan"})
    yield pool
    await pool.close()


async def plans(pool: asyncpg.Pool, name: str) -> tuple[int, int]:
    """(generic, custom) plans made for the named statement on the pool's one connection."""
    row = await pool.fetchrow("select generic_plans, custom_plans from pg_prepared_statements where statement = $1",
                              q(name))
    assert row is not None, f"{name} was not prepared on this connection"
    return row["generic_plans"], row["custom_plans"]


async def recorded(stubs, new_org, db) -> tuple[Principal, list[str]]:
    """An organization's admin and EVENTS unpriced events (no price book), their ids newest first."""
    org = await new_org()
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    events = []
    for i in range(EVENTS):
        event = event_pb2.UsageEvent(request_id=f"r-{i}", kind="completions", model="m", input_tokens=i + 1)
        event.timestamp.FromDatetime(base - dt.timedelta(seconds=i // 2))  # two a second: the id breaks ties
        events.append(event)
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert resp.recorded == EVENTS
    org_id = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    ids = await db.fetch("select event_id from events where org_id = $1 order by ts desc, event_id desc", org_id)
    return Principal(org_id=org_id, organization_id=org.organization_id, role="admin"), [str(r[0]) for r in ids]


async def test_list_events_is_planned_per_call(stubs, new_org, db, generic_pool):
    admin, ids = await recorded(stubs, new_org, db)
    records, token, seen = Records(EventWriter(generic_pool)), "", []
    for _ in range(EVENTS):
        page = await records.list(admin, records_pb2.ListEventsRequest(page_size=1, page_token=token))
        seen += [e.event_id for e in page.events]
        token = page.next_page_token
    assert seen == ids and not token
    assert await plans(generic_pool, "list_events") == (0, EVENTS)


async def test_list_unpriced_events_is_planned_per_call(stubs, new_org, db, generic_pool):
    admin, ids = await recorded(stubs, new_org, db)
    pricer, token, seen = Pricer(), "", []
    for _ in range(EVENTS):
        page = await list_unpriced(generic_pool, pricer, admin, None, None, page_size=1, page_token=token)
        seen += [event.event_id for event, _ in page.events]
        token = page.next_page_token
    assert seen == ids and not token
    assert await plans(generic_pool, "list_unpriced_events") == (0, EVENTS)


async def test_list_deliveries_is_planned_per_call(stubs, new_org, db, generic_pool):
    admin, _ = await recorded(stubs, new_org, db)
    org_id = admin.org_id
    await db.execute(
        "insert into alert_events (org_id, event_id, type, payload, create_time) "
        "select $1, 'evt_' || i, 'budget.threshold.triggered', '{}', now() - i * interval '1 minute' "
        "from generate_series(1, $2) i", org_id, EVENTS)
    await db.execute(  # delivered: no worker takes them up
        "insert into alert_deliveries (org_id, delivery_id, event_id, channel, endpoint_id, state, create_time) "
        "select $1, 'dlv_' || i, 'evt_' || i, 'webhook', 'we_' || (i % 2), 'delivered', "
        "now() - i * interval '1 minute' from generate_series(1, $2) i", org_id, EVENTS)
    deliveries, token, seen = Deliveries(generic_pool), "", []
    for _ in range(EVENTS):
        found, token = await deliveries.page(org_id, "", 1, token, "binding")
        seen += [d.delivery_id for d in found]
    assert seen == [f"dlv_{i}" for i in range(EVENTS, 0, -1)] and not token  # oldest first
    assert (await deliveries.get(org_id, "dlv_3")).event_id == "evt_3"
    assert await plans(generic_pool, "list_deliveries") == (0, EVENTS + 1)
