"""Retention settings through AdminService (organization admins only, one organization's
settings invisible to another), and what they do at once: ingest refuses events before the
horizon naming the field, reads answer NOT_FOUND (OUTSIDE_RETENTION) past it, and payloads
past the payload horizon are neither returned nor stored."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf import timestamp_pb2

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, records_pb2
from server.core.config import ConfigError
from server.storage.horizons import Retention, effective, horizon, retention_defaults
from tests.conftest import bearer
from tests.server.ingest.test_validation import details, rich_status
from worker.settings import worker_settings

UTC = dt.UTC


def at(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def refused(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code
    infos, _ = details(rich_status(err.value))
    return infos[0].reason if infos else ""


async def test_admins_set_their_own_organization_only(stubs, new_org):
    org, other = await new_org(), await new_org()
    got = await stubs.admin.GetRetention(admin_pb2.GetRetentionRequest(), metadata=org.auth)
    assert not got.HasField("event_days") and got.effective_event_days == 0  # the default: for ever
    assert not got.HasField("events_kept_from")

    put = await stubs.admin.UpdateRetention(admin_pb2.UpdateRetentionRequest(event_days=90, payload_days=7),
                                            metadata=org.auth)
    assert (put.event_days, put.payload_days, put.effective_event_days, put.effective_payload_days) == (90, 7, 90, 7)
    kept_from = put.events_kept_from.ToDatetime(UTC)
    assert abs(kept_from - (dt.datetime.now(UTC) - dt.timedelta(days=90))) < dt.timedelta(minutes=1)
    assert put.payloads_kept_from.ToDatetime(UTC) > kept_from
    again = await stubs.admin.GetRetention(admin_pb2.GetRetentionRequest(), metadata=org.auth)
    again.ClearField("events_kept_from")
    again.ClearField("payloads_kept_from")
    assert again == admin_pb2.Retention(organization_id=org.organization_id, event_days=90, payload_days=7,
                                        effective_event_days=90, effective_payload_days=7)

    user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
        username="ret-" + org.organization_id, password="pw-123456789", role=admin_pb2.ROLE_MEMBER),
        metadata=org.auth)
    member = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(user_id=user.user_id), metadata=org.auth)
    for call in (stubs.admin.GetRetention(admin_pb2.GetRetentionRequest(), metadata=bearer(member.key)),
                 stubs.admin.UpdateRetention(admin_pb2.UpdateRetentionRequest(event_days=1),
                                             metadata=bearer(member.key))):
        await refused(call, grpc.StatusCode.PERMISSION_DENIED)
    for call in (stubs.admin.GetRetention(admin_pb2.GetRetentionRequest(organization=other.organization_id),
                                          metadata=org.auth),
                 stubs.admin.UpdateRetention(admin_pb2.UpdateRetentionRequest(
                     organization=other.organization_id, event_days=1), metadata=org.auth)):
        await refused(call, grpc.StatusCode.PERMISSION_DENIED)
    untouched = await stubs.admin.GetRetention(admin_pb2.GetRetentionRequest(), metadata=other.auth)
    assert not untouched.HasField("event_days")
    assert (await stubs.admin.GetRetention(admin_pb2.GetRetentionRequest(), metadata=org.auth)).event_days == 90


@pytest.mark.parametrize(("event_days", "payload_days", "field"), [
    (-1, None, "event_days"), (10, 11, "payload_days"), (10, 0, "payload_days"), (None, -3, "payload_days"),
    (40_000, None, "event_days"),
])
async def test_bad_settings_name_the_field(stubs, new_org, event_days, payload_days, field):
    org = await new_org()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.admin.UpdateRetention(admin_pb2.UpdateRetentionRequest(
            event_days=event_days, payload_days=payload_days), metadata=org.auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in (err.value.details() or "")


async def test_horizons_apply_at_once(stubs, new_org):
    org = await new_org()
    now = dt.datetime.now(UTC)
    ten_days = event_pb2.UsageEvent(request_id="p-1", kind="completions", model="m",
                                    timestamp=at(now - dt.timedelta(days=10)), input_tokens=1, request_json='{"a": 1}')
    recorded = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ten_days), metadata=org.auth)
    await stubs.admin.UpdateRetention(admin_pb2.UpdateRetentionRequest(event_days=30, payload_days=7),
                                      metadata=org.auth)

    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=recorded.event_id), metadata=org.auth)
    assert got.input_tokens == 1 and got.request_json == ""  # past the payload horizon
    listed = await stubs.records.ListEvents(records_pb2.ListEventsRequest(include_payload=True), metadata=org.auth)
    assert [e.request_json for e in listed.events] == [""]

    ten_days.request_id = "p-2"  # a new event 10 days old: kept, its payload not stored
    second = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ten_days), metadata=org.auth)
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=second.event_id), metadata=org.auth)
    assert got.request_json == "" and got.input_tokens == 1

    old = event_pb2.UsageEvent(request_id="p-3", kind="completions", model="m",
                               timestamp=at(now - dt.timedelta(days=31)))
    reason = await refused(stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=old), metadata=org.auth),
                           grpc.StatusCode.INVALID_ARGUMENT)
    assert reason == "OUTSIDE_RETENTION"

    await stubs.admin.UpdateRetention(admin_pb2.UpdateRetentionRequest(event_days=9), metadata=org.auth)
    reason = await refused(stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=recorded.event_id),
                                                  metadata=org.auth), grpc.StatusCode.NOT_FOUND)
    assert reason == "OUTSIDE_RETENTION"
    reason = await refused(stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=recorded.event_id),
                                                   metadata=org.auth), grpc.StatusCode.NOT_FOUND)
    assert reason == "OUTSIDE_RETENTION"
    assert (await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=org.auth)).events == []


def test_effective_retention_and_horizons():
    defaults = Retention(400, 30)
    assert effective(None, None, defaults) == Retention(400, 30)
    assert effective(10, None, defaults) == Retention(10, 10)  # payloads never outlive events
    assert effective(0, None, defaults) == Retention(None, 30)
    assert effective(0, 0, defaults) == Retention(None, None)
    now = dt.datetime(2026, 5, 1, tzinfo=UTC)
    floor = dt.datetime(2026, 3, 1, tzinfo=UTC)
    kept = horizon(Retention(None, 7), floor, floor, now)
    assert (kept.events, kept.payloads) == (floor, now - dt.timedelta(days=7))
    assert retention_defaults({}) == Retention(None, None)
    assert retention_defaults({"METERING_RETENTION_DAYS": "90"}) == Retention(90, 90)
    with pytest.raises(ConfigError, match="METERING_PAYLOAD_RETENTION_DAYS"):
        retention_defaults({"METERING_RETENTION_DAYS": "9", "METERING_PAYLOAD_RETENTION_DAYS": "10"})


def test_the_worker_runs_the_sweep_hourly_and_checks_the_defaults_at_start():
    env = {"METERING_DATABASE_URL": "postgresql://x/y", "METERING_REDIS_URL": "redis://127.0.0.1:1/0",
           "METERING_RETENTION_DAYS": "400", "METERING_PAYLOAD_RETENTION_DAYS": "30"}
    settings = worker_settings(env)
    [sweep] = [job for job in settings["cron_jobs"] if job.name == "metering:retention"]
    assert sweep.minute == 17 and sweep.unique
    assert settings["ctx"]["retention_defaults"] == Retention(400, 30)
    with pytest.raises(ConfigError, match="METERING_RETENTION_DAYS"):
        worker_settings({**env, "METERING_RETENTION_DAYS": "soon"})
