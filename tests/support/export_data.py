"""Usage for the export tests: an organization with an admin key and two members, and events
over three days recorded through RecordEvents (by the admin for anyone, and by each member as
itself); and events written straight into the events table, fast, for the large exports."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg
from google.protobuf import timestamp_pb2

from metering.v1 import admin_pb2, event_pb2, ingest_pb2
from server.tenants.credentials import random_text
from tests.conftest import MASTER, Stubs, bearer

DAY = dt.datetime(2024, 3, 9, tzinfo=dt.UTC)  # a Saturday; New York's DST starts on the 10th
MODELS = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")
PROJECTS = ("proj-a", "proj-b")


def at(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


@dataclasses.dataclass
class Tenant:
    organization_id: str
    admin_key: str
    member_id: str
    member_key: str
    other_id: str
    other_key: str
    events: int  # recorded in all

    @property
    def admin(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.admin_key)

    @property
    def member(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.member_key)


async def _person(stubs: Stubs, org: str, role: admin_pb2.Role) -> tuple[str, str]:
    name = "u-" + random_text(8).lower()
    user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
        organization=org, username=name, password="correct horse battery", role=role), metadata=MASTER)
    key = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        organization=org, user_id=user.user_id, name=name), metadata=MASTER)
    return user.user_id, key.key


def _event(i: int, **fields: Any) -> event_pb2.UsageEvent:
    when = DAY + dt.timedelta(minutes=37 * i)  # ~2.3 days from DAY
    model = MODELS[i % 3]
    extra: dict[str, Any] = {"labels": {"size": ["s", "m", "l, \"quoted\""][i % 3]}} if i % 2 else {}
    if i % 5 == 0:
        extra["counters"] = {"inference": i}
    if i % 7:  # the others unpriced (no price book entry for these models in a fresh org)
        extra["input_cost"], extra["output_cost"] = f"0.00{i:03d}", "0.0000001"
    return event_pb2.UsageEvent(
        request_id=f"x-{i}", timestamp=at(when), kind="embeddings" if model.startswith("text") else "completions",
        model=model, provider="openai", project_id=PROJECTS[i % 2], input_tokens=10 * i + 1, output_tokens=i % 13,
        **extra, **fields)


async def tenant(stubs: Stubs, events: int = 90) -> Tenant:
    """`events` events: a third by the admin for no user, a third by each member as itself."""
    org = await stubs.admin.CreateOrganization(
        admin_pb2.CreateOrganizationRequest(name="export-" + random_text(8)), metadata=MASTER)
    admin = await stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(organization=org.organization_id, name="admin"), metadata=MASTER)
    member_id, member_key = await _person(stubs, org.organization_id, admin_pb2.ROLE_MEMBER)
    other_id, other_key = await _person(stubs, org.organization_id, admin_pb2.ROLE_MEMBER)
    keys = [admin.key, member_key, other_key]
    for who, key in enumerate(keys):
        batch = [_event(i, request_raw=f"raw,{i}\n\"line two\"") for i in range(events) if i % 3 == who]
        reply = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=batch), metadata=bearer(key))
        assert reply.recorded == len(batch), [r.message for r in reply.results]
    return Tenant(org.organization_id, admin.key, member_id, member_key, other_id, other_key, events)


async def org_id(pool: asyncpg.Pool, organization_id: str) -> int:
    found: int = await pool.fetchval("select org_id from organizations where id = $1", organization_id)
    return found


async def bulk_events(pool: asyncpg.Pool, organization_id: str, count: int, start: dt.datetime,
                      span: dt.timedelta, input_tokens: str = "(i % 5000)") -> None:
    """`count` completions events spread evenly over [start, start + span) written by Postgres itself
    (INSERT ... SELECT, as bench/query_data.py loads its data set) in one series per (model, project),
    every 15-minute window of the span marked dirty so queries read them raw (exact, no worker).
    `input_tokens`: an SQL expression of the event number i."""
    org = await org_id(pool, organization_id)
    tag = uuid.uuid4().hex[:8]
    async with pool.acquire() as conn:
        months = {(start + span * k / 4).replace(day=1, hour=0, minute=0, second=0, microsecond=0) for k in range(5)}
        for month in months:
            await conn.execute("select metering_ensure_partition($1)", month)
        series = await conn.fetch(
            """insert into series (org_id, fingerprint, kind, project_id, user_id, api_key_id, model, provider,
                                   batch, status, currency, labels)
               select $1, sha256(convert_to(format('export|%s|%s|%s', $2::text, m, p), 'UTF8')), 'completions',
                      'proj-' || p, null, null, 'model-' || m, 'openai', false, 'success', 'usd', '{}'
               from generate_series(0, 2) m, generate_series(0, 1) p
               returning series_id""", org, tag)
        ids = [r["series_id"] for r in series]
        await conn.execute(
            f"""insert into events (org_id, ts, event_id, series_id, request_id, received_at, updated_at,
                                   input_tokens, output_tokens, num_model_requests, cost)
               select $1, ts, (lpad(to_hex((extract(epoch from ts) * 1000)::bigint), 12, '0') || '7'
                               || substr(md5($5 || i::text), 1, 19))::uuid,
                      ($4::bigint[])[i % 6 + 1], $5 || '-' || i, ts, ts, {input_tokens}, i % 2000, 1,
                      (i % 1000)::numeric / 100000
               from (select i, $2::timestamptz + (i * extract(epoch from $3::interval) / $6) * interval '1 second'
                            as ts
                     from generate_series(0, $6 - 1) i) g""",
            org, start, span, ids, tag, count)
        await conn.execute(
            """insert into dirty_windows (org_id, window_start)
               select $1, w from generate_series(date_bin('15 minutes', $2::timestamptz, 'epoch'),
                                                 $2::timestamptz + $3::interval, interval '15 minutes') w""",
            org, start, span)
        await conn.execute("analyze events, series")  # as autovacuum would: the listing's plan reads the key backwards
