"""Coalesced single-event ingest (gateway/upstream/ingest_batcher.py) behind seed 002's POST /usage: exactly
once under concurrent retries, each request its own answer in a mixed batch, callers never mixed,
the reply built without reading the record back. Real server and Postgres; bursts are fired with
asyncio.gather, so the requests reach the batcher in the same turn of the event loop and share calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from gateway.app import create_app
from gateway.http.errors import GatewayError
from gateway.upstream.client import Upstream
from gateway.upstream.ingest_batcher import IngestBatcher, lane_key
from metering.v1 import admin_pb2, event_pb2, ingest_pb2
from server.tenants.credentials import random_text
from tests.conftest import MASTER, asgi_lifespan, bearer

BODY = {"api_name": "llm_query", "endpoint": "/chat", "units_used": 346, "cost_usd": 0.0043}


@contextlib.asynccontextmanager
async def gateway(server: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Upstream]]:
    """A gateway of its own (fresh batcher statistics and identity cache) on the test server."""
    app = create_app(f"127.0.0.1:{server.port}")
    async with asgi_lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                     base_url="http://testserver") as http:
        yield http, app.state.upstream


async def stored(db: Any, request_id: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events WHERE request_id = $1", request_id))


async def test_concurrent_retries_of_one_request_record_once(server, db, new_tenant):
    t = await new_tenant()
    key = "retry-" + random_text(10)
    headers = {**t.member.headers, "Idempotency-Key": key}
    async with gateway(server) as (http, up):
        first_burst = await asyncio.gather(*(http.post("/usage", json=BODY, headers=headers) for _ in range(25)))
        second_burst = await asyncio.gather(*(http.post("/usage", json=BODY, headers=headers) for _ in range(5)))
        assert up.ingest.stats.calls < 30  # coalesced: the 25 concurrent requests shared a call
    replies = first_burst + second_burst
    assert [r.status_code for r in replies] == [200] * 30, [r.text for r in replies if r.status_code != 200]
    records = [r.json() for r in replies]
    assert all(record == records[0] for record in records)  # the recorded one and every duplicate alike
    assert await stored(db, key) == 1
    got = await http_get_record(server, t.member.headers, records[0]["usage_id"])
    assert got == records[0]


async def http_get_record(server: Any, headers: dict[str, str], usage_id: str) -> dict[str, Any]:
    async with gateway(server) as (http, _):
        reply = await http.get(f"/usage/{usage_id}", headers=headers)
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()
        return data


async def project_member_key(stubs: Any, organization: str) -> str:
    """A key bound to a project and no user, role member: it may record usage only under its own
    api_key_id, so naming another api_key_used is PERMISSION_DENIED (server/ingest/validation.py)."""
    project = "p-" + random_text(6).lower()
    await stubs.admin.CreateProject(admin_pb2.CreateProjectRequest(organization=organization, name=project,
                                                                   project_id=project), metadata=MASTER)
    reply = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
        organization=organization, project_id=project, role=admin_pb2.ROLE_MEMBER, name=project), metadata=MASTER)
    return str(reply.key)


async def test_mixed_batch_answers_each_request_on_its_own(server, db, stubs, new_tenant):
    t = await new_tenant()
    key = await project_member_key(stubs, t.org.organization_id)
    headers = {"Authorization": f"Bearer {key}"}
    prefix = "mixed-" + random_text(8)
    # (body overrides, expected status, expected loc) in one burst of one caller.
    cases: list[tuple[dict[str, Any], int, list[str] | None]] = [
        ({}, 200, None),
        ({"cost_usd": "0.1234567890123456789"}, 422, ["body", "cost_usd"]),  # the server's rule: 18 decimals
        ({"api_name": "nul\x00name"}, 422, ["body", "api_name"]),  # the server's rule: no NUL
        ({"api_key_used": "key_someone_else"}, 403, None),  # outside the key's scope
        ({"units_used": 7}, 200, None),
        ({"units_used": -1}, 422, ["body", "units_used"]),  # the gateway's own check: never sent
    ]
    async with gateway(server) as (http, up):
        replies = await asyncio.gather(*(
            http.post("/usage", json={**BODY, **body}, headers={**headers, "Idempotency-Key": f"{prefix}-{i}"})
            for i, (body, _, _) in enumerate(cases)))
        assert (up.ingest.stats.calls, up.ingest.stats.events) == (1, 5)  # one call carried all five
    for i, ((body, status, loc), reply) in enumerate(zip(cases, replies, strict=True)):
        assert reply.status_code == status, (i, reply.text)
        if status == 200:
            assert reply.json()["units_used"] == {**BODY, **body}["units_used"]
            assert reply.json()["api_key_used"].startswith("key_")  # defaulted to the caller's own key
        elif status == 403:
            assert set(reply.json()) == {"detail"} and "api_key_id" in reply.json()["detail"]
        else:
            assert loc is not None
            error = reply.json()["detail"][0]
            assert error["loc"] == loc, reply.text
            assert isinstance(error["msg"], str) and not error["msg"].startswith(loc[1])
        assert await stored(db, f"{prefix}-{i}") == (1 if status == 200 else 0)  # bad input writes nothing


async def test_callers_are_never_mixed_in_one_call(server, db, new_tenant):
    one, two = await new_tenant(), await new_tenant()
    callers = [one.member, two.member, one.admin, two.admin]
    async with gateway(server) as (http, up):
        replies = await asyncio.gather(*(
            http.post("/usage", json={**BODY, "units_used": i}, headers=callers[i % 4].headers) for i in range(40)))
        bad = await asyncio.gather(
            http.post("/usage", json=BODY, headers={"Authorization": "Bearer not-a-key"}),
            http.post("/usage", json=BODY, headers=one.member.headers))
        assert up.ingest.stats.calls == 4 + 2  # one per caller in the burst, then the bad key and one.member
        assert up.ingest.stats.largest == 10
    assert all(r.status_code == 200 for r in replies)
    for i, reply in enumerate(replies):
        assert reply.json()["user_id"] == callers[i % 4].user_id and reply.json()["units_used"] == i
    assert bad[0].status_code == 401 and bad[1].status_code == 200  # a failed call fails only its own caller

    async with gateway(server) as (http, _):
        for tenant, stranger in ((one, two), (two, one)):
            mine = {r.json()["usage_id"] for i, r in enumerate(replies) if callers[i % 4] in (tenant.member,
                                                                                              tenant.admin)}
            listed = (await http.get("/usage?limit=1000", headers=tenant.admin.headers)).json()
            assert {r["usage_id"] for r in listed} >= mine
            assert {r["usage_id"] for r in listed}.isdisjoint(
                {r.json()["usage_id"] for r in replies} - mine)  # nothing of the other organization
            for usage_id in list(mine)[:3]:
                assert (await http.get(f"/usage/{usage_id}", headers=stranger.admin.headers)).status_code == 404


async def test_created_at_comes_without_reading_the_record_back(server, new_tenant, caplog):
    t = await new_tenant()
    caplog.set_level(logging.INFO, logger="metering.access")
    async with gateway(server) as (http, _):
        created = await http.post("/usage", json=BODY, headers={**t.member.headers, "X-Request-Id": "trace-post-1"})
    assert created.status_code == 200, created.text
    rpcs = [r.getMessage() for r in caplog.records if r.name == "metering.access"]
    assert any("RecordEvents" in line and "request_id=trace-post-1" in line for line in rpcs), rpcs
    assert not any("GetEvent" in line for line in rpcs), rpcs
    record = created.json()
    assert record["created_at"].endswith("Z") and record["user_id"] == t.member.user_id
    # ... and it is what every later read of the record says, to the microsecond.
    assert await http_get_record(server, t.member.headers, record["usage_id"]) == record


@pytest.mark.parametrize("who", ["member", "admin", "org_admin", "login"])
async def test_reply_equals_the_stored_record(server, http, new_tenant, who):
    t = await new_tenant()
    if who == "login":
        from tests.gateway.conftest import PASSWORD
        token = (await http.post("/v1/login", json={"username": t.member.username, "password": PASSWORD})).json()
        headers = {"Authorization": f"Bearer {token['token']}"}
    else:
        headers = t.org_admin if who == "org_admin" else getattr(t, who).headers
    for body in (BODY, {**BODY, "api_key_used": "pk_live_abc123", "cost_usd": 1.50}, {**BODY, "cost_usd": 0}):
        created = await http.post("/usage", json=body, headers=headers)
        assert created.status_code == 200, created.text
        got = await http.get(f"/usage/{created.json()['usage_id']}", headers=headers)
        assert got.json() == created.json() and got.text == created.text


async def test_deadlines_stay_per_request(server, new_tenant):
    t = await new_tenant()
    async with gateway(server) as (http, _):
        hasty = await http.post("/usage", json=BODY, headers={**t.member.headers, "Grpc-Timeout": "1n"})
        assert hasty.status_code == 504 and set(hasty.json()) == {"detail"}
        fine = await http.post("/usage", json=BODY, headers=t.member.headers)
        assert fine.status_code == 200


async def test_batcher_sends_a_burst_as_one_call_per_caller(stubs, new_org, db):
    """The batcher on its own, over the real server: one call per caller for a burst, each
    submitter its own result, in order, and an idle request sent at once on its own."""
    a, b = await new_org(), await new_org()
    calls: list[tuple[tuple[tuple[str, str], ...], int]] = []

    async def send(meta: Any, timeout: float, events: Any) -> ingest_pb2.RecordEventsResponse:
        calls.append((lane_key(meta), len(events)))
        try:
            reply: ingest_pb2.RecordEventsResponse = await stubs.ingest.RecordEvents(
                ingest_pb2.RecordEventsRequest(events=events), metadata=meta, timeout=timeout)
        except grpc.aio.AioRpcError as err:
            raise GatewayError.from_rpc(err) from None
        return reply

    batcher = IngestBatcher(send, max_batch=8)
    prefix = "unit-" + random_text(8)

    def meta(org: Any, i: int) -> tuple[tuple[str, str], ...]:
        return (*bearer(org.admin_key), ("x-request-id", f"r{i}"))

    def event(i: int) -> event_pb2.UsageEvent:
        return event_pb2.UsageEvent(kind="api_call", request_id=f"{prefix}-{i}", units_used=i,
                                    status="bogus" if i % 5 == 4 else "")

    results = await asyncio.gather(*(batcher.submit(event(i), meta(a if i % 2 else b, i), 10) for i in range(20)))
    assert sorted(n for _, n in calls) == [2, 2, 8, 8]  # 10 per caller, at most 8 per call
    assert {key for key, _ in calls} == {lane_key(bearer(a.admin_key)), lane_key(bearer(b.admin_key))}
    for i, result in enumerate(results):
        assert result.request_id == f"{prefix}-{i}"
        if i % 5 == 4:
            assert result.outcome == ingest_pb2.OUTCOME_REJECTED and result.field == "status"
        else:
            assert result.outcome == ingest_pb2.OUTCOME_RECORDED and result.received_at.seconds > 0
    owner = dict(await db.fetch(
        "SELECT e.request_id, o.id FROM events e JOIN organizations o ON o.org_id = e.org_id "
        "WHERE e.request_id LIKE $1", prefix + "-%"))
    assert owner == {f"{prefix}-{i}": (a if i % 2 else b).organization_id for i in range(20) if i % 5 != 4}

    calls.clear()
    alone = await batcher.submit(event(100), meta(a, 100), 10)
    assert alone.outcome == ingest_pb2.OUTCOME_RECORDED and calls == [(lane_key(bearer(a.admin_key)), 1)]
