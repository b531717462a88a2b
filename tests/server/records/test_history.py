"""RecordService.GetEventHistory: an event's recording, then its adjustments, void and repricing
in order, each with when, who, why and the fields it changed; read with GetEvent's scope."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf import field_mask_pb2

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, records_pb2
from tests.conftest import MASTER, bearer
from tests.server.costs.test_repricing import apply
from tests.server.pricing.test_prices import T0, ev, new_version, record, set_prices

Change = records_pb2.EventChange


def fields(change: records_pb2.EventChange) -> list[tuple[str, str | None, str | None]]:
    return [(f.field, f.before if f.HasField("before") else None, f.after if f.HasField("after") else None)
            for f in change.fields]


async def history(stubs, auth, event_id: str = "", request_id: str = "") -> records_pb2.EventHistory:
    return await stubs.records.GetEventHistory(
        records_pb2.GetEventHistoryRequest(event_id=event_id, request_id=request_id), metadata=auth)


async def test_recorded_updated_voided_in_order(stubs, new_org):
    org = await new_org()
    me = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=org.auth)
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="h-1", kind="completions", model="m-a", input_tokens=10, cost="1.5",
        labels={"size": "S", "team": "x"})), metadata=org.auth)
    fresh = await history(stubs, org.auth, rec.event_id)
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=rec.event_id), metadata=org.auth)
    assert fresh.event_id == rec.event_id
    assert [(c.action, c.time, c.actor, c.reason, fields(c)) for c in fresh.changes] == [
        (Change.ACTION_RECORDED, got.received_at, "", "", [])]

    await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
        event=event_pb2.UsageEvent(event_id=rec.event_id, input_tokens=0, output_tokens=3, cost="2",
                                   labels={"size": "L"}),
        update_mask=field_mask_pb2.FieldMask(paths=["input_tokens", "output_tokens", "cost", "labels.size",
                                                    "labels.team"]),
        reason="corrected by the provider's invoice"), metadata=org.auth)
    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=rec.event_id, reason="a test call"),
                                  metadata=org.auth)
    trail = await history(stubs, org.auth, rec.event_id)
    assert [(c.action, c.actor, c.reason) for c in trail.changes] == [
        (Change.ACTION_RECORDED, "", ""),
        (Change.ACTION_UPDATED, me.api_key_id, "corrected by the provider's invoice"),
        (Change.ACTION_VOIDED, me.api_key_id, "a test call"),
    ]
    recorded, updated, voided = trail.changes
    assert recorded.time == got.received_at
    assert got.received_at.ToDatetime() <= updated.time.ToDatetime() <= voided.time.ToDatetime()
    assert fields(updated) == [  # UsageEvent's field order, map entries by name; input_tokens 0: not unset
        ("input_tokens", "10", "0"), ("output_tokens", "0", "3"),
        ("labels.size", "S", "L"), ("labels.team", "x", None), ("cost", "1.5", "2")]
    assert fields(voided) == [("active", "true", "false")]
    # by request_id, with event_id empty or "-"
    assert await history(stubs, org.auth, request_id="h-1") == trail
    assert await history(stubs, org.auth, "-", "h-1") == trail


async def test_a_repricing_lists_the_costs_and_version_it_moved(stubs, pstubs, new_org):
    org = await new_org()
    [v1] = [r.version for r in await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.001"}))]
    [event_id] = await record(stubs, org.auth, ev("rp-1", "m", T0 + dt.timedelta(hours=1), input_tokens=100))
    [v2] = [r.version for r in await set_prices(pstubs.prices, org.auth, new_version("m", {"input": "0.002"}))]
    await apply(pstubs, org)
    me = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=org.auth)
    recorded, repriced = (await history(stubs, org.auth, event_id)).changes
    assert (recorded.action, repriced.action, repriced.actor, repriced.reason) == (
        Change.ACTION_RECORDED, Change.ACTION_REPRICED, me.api_key_id, "list price correction")
    assert fields(repriced) == [("input_cost", "0.1", "0.2"), ("cost", "0.1", "0.2"),
                                ("price_version", v1.version, v2.version)]


async def test_read_with_get_events_scope(stubs, new_org):
    """A member reads the history of its own events only; another organization's is NOT_FOUND."""
    org = await new_org()
    members = []
    for name in ("amy", "bob"):
        user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
            organization=org.organization_id, username=f"{org.name}-{name}", password="password-1"), metadata=MASTER)
        key = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
            organization=org.organization_id, user_id=user.user_id), metadata=MASTER)
        members.append(bearer(key.key))
    amy, bob = members
    mine = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="amy-1", kind="completions", input_tokens=1)), metadata=amy)
    assert [c.action for c in (await history(stubs, amy, mine.event_id)).changes] == [Change.ACTION_RECORDED]
    assert len((await history(stubs, org.auth, mine.event_id)).changes) == 1  # the organization's admin
    stranger = await new_org()
    for auth, event_id, request_id in ((bob, mine.event_id, ""), (bob, "", "amy-1"), (stranger.auth, mine.event_id, ""),
                                       (org.auth, "00000000-0000-0000-0000-000000000000", ""),
                                       (org.auth, "not-an-id", "")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await history(stubs, auth, event_id, request_id)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, (event_id, request_id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await history(stubs, org.auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("event_id")


async def test_over_rest(stubs, new_org, http):
    org = await new_org()
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="rest-h", kind="completions", input_tokens=4)), metadata=org.auth)
    await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=rec.event_id, reason="dup"),
                                  metadata=org.auth)
    headers = {"Authorization": f"Bearer {org.admin_key}"}
    reply = await http.get(f"/v1/events/{rec.event_id}/history", headers=headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["event_id"] == rec.event_id
    assert [(c["action"], c["reason"]) for c in body["changes"]] == [("ACTION_RECORDED", ""), ("ACTION_VOIDED", "dup")]
    assert body["changes"][1]["fields"] == [{"field": "active", "before": "true", "after": "false"}]
    by_request = await http.get("/v1/events/-/history", params={"request_id": "rest-h"}, headers=headers)
    assert by_request.json() == body
    missing = await http.get("/v1/events/00000000-0000-0000-0000-000000000000/history", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == grpc.StatusCode.NOT_FOUND.value[0]

