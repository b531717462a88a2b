"""The isolation matrix: every gRPC RPC (enumerated from the service descriptors, so a new RPC
fails here until it is given its row) x every kind of caller -> allowed or denied, and no data of
another organization (or, for scoped callers, outside their scope) in any answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2, message_factory, text_format, timestamp_pb2
from google.protobuf import message as pb_message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from metering.v1 import (
    admin_pb2,
    alerts_pb2,
    alerts_pb2_grpc,
    budgets_pb2,
    budgets_pb2_grpc,
    event_pb2,
    exports_pb2,
    ingest_pb2,
    prices_pb2,
    query_pb2,
    records_pb2,
)
from server.runtime.app import SERVICE_NAMES, STANDARD_SERVICE_NAMES
from server.tenants.credentials import random_text
from tests.conftest import MASTER, Stubs
from tests.security.conftest import PRINCIPALS, World

MODULES = (admin_pb2, ingest_pb2, records_pb2, query_pb2, prices_pb2, budgets_pb2, alerts_pb2, exports_pb2,
           trace_service_pb2)
SERVED = {*SERVICE_NAMES, *STANDARD_SERVICE_NAMES}
AUTHENTICATED = ["master", "org_admin", "member", "project_key", "other_org"]
UNAUTHENTICATED = ["revoked", "no_key", "malformed", "expired"]
DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}


def _methods() -> dict[str, Any]:
    found = {}
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            if service.full_name in SERVED:
                for method in service.methods:
                    found[method.name] = method
    return found


METHODS = _methods()


def _ts(when: dt.datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(when)
    return t


START = _ts(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


def _end() -> timestamp_pb2.Timestamp:
    return _ts(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))


def _recent() -> timestamp_pb2.Timestamp:
    return _ts(dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=2))


async def _fresh_event(stubs: Stubs, w: World) -> str:
    reply = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        kind="completions", model="victim", input_tokens=1, project_id="pa", user_id=w.users["member"])),
        metadata=(*MASTER, ("x-metering-organization", w.org_a)))
    return reply.event_id


async def _fresh_key(stubs: Stubs, w: World) -> str:
    reply = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=w.org_a), metadata=MASTER)
    return reply.api_key.api_key_id


Builder = Callable[[Stubs, World], Awaitable[pb_message.Message]]


def _const(make: Callable[[World], pb_message.Message]) -> Builder:
    async def build(stubs: Stubs, w: World) -> pb_message.Message:
        return make(w)

    return build


def _event(**kw: Any) -> event_pb2.UsageEvent:
    return event_pb2.UsageEvent(kind="completions", model="iso-probe", input_tokens=1, **kw)


async def _update(stubs: Stubs, w: World) -> pb_message.Message:
    event_id = await _fresh_event(stubs, w)
    return records_pb2.UpdateEventRequest(event=event_pb2.UsageEvent(event_id=event_id, input_tokens=7),
                                          update_mask=field_mask_pb2.FieldMask(paths=["input_tokens"]), reason="t")


async def _void(stubs: Stubs, w: World) -> pb_message.Message:
    return records_pb2.VoidEventRequest(event_id=await _fresh_event(stubs, w), reason="t")


async def _revoke(stubs: Stubs, w: World) -> pb_message.Message:
    return admin_pb2.RevokeApiKeyRequest(organization=w.org_a, api_key_id=await _fresh_key(stubs, w))


def _price(w: World) -> prices_pb2.NewPriceVersion:
    return prices_pb2.NewPriceVersion(model="iso-p-" + random_text(8),
                                      prices=[prices_pb2.Price(usage_type="input", unit_price="0.001")])


_budget_stub: list[budgets_pb2_grpc.BudgetServiceStub] = []
_alert_stub: list[alerts_pb2_grpc.AlertServiceStub] = []
_pool: list[asyncpg.Pool] = []


@pytest.fixture(autouse=True, scope="module")
def _budgets(channel: grpc.aio.Channel, db: asyncpg.Pool) -> None:
    _budget_stub[:] = [budgets_pb2_grpc.BudgetServiceStub(channel)]
    _alert_stub[:] = [alerts_pb2_grpc.AlertServiceStub(channel)]
    _pool[:] = [db]


HOOK_URL = "https://93.184.216.34/hook"  # a public address literal: no name to resolve


async def _endpoint_of(w: World) -> str:
    created = await _alert_stub[0].CreateWebhookEndpoint(alerts_pb2.CreateWebhookEndpointRequest(
        organization=w.org_a, endpoint=alerts_pb2.WebhookEndpoint(url=HOOK_URL)), metadata=MASTER)
    return created.endpoint_id


async def _endpoint_request(stubs: Stubs, w: World) -> pb_message.Message:
    return alerts_pb2.GetWebhookEndpointRequest(organization=w.org_a, endpoint_id=await _endpoint_of(w))


async def _update_endpoint(stubs: Stubs, w: World) -> pb_message.Message:
    endpoint = alerts_pb2.WebhookEndpoint(endpoint_id=await _endpoint_of(w), description="d")
    return alerts_pb2.UpdateWebhookEndpointRequest(organization=w.org_a, endpoint=endpoint,
                                                   update_mask=field_mask_pb2.FieldMask(paths=["description"]))


async def _delete_endpoint(stubs: Stubs, w: World) -> pb_message.Message:
    return alerts_pb2.DeleteWebhookEndpointRequest(organization=w.org_a, endpoint_id=await _endpoint_of(w))


async def _rotate(stubs: Stubs, w: World) -> pb_message.Message:
    return alerts_pb2.RotateWebhookSecretRequest(organization=w.org_a, endpoint_id=await _endpoint_of(w))


async def _redeliver(stubs: Stubs, w: World) -> pb_message.Message:
    """A failed delivery of organization A (written as detection would: its event, then the delivery)."""
    endpoint_id, suffix = await _endpoint_of(w), random_text(12)
    async with _pool[0].acquire() as conn, conn.transaction():
        org_id = await conn.fetchval("select org_id from organizations where id = $1 or name = $1", w.org_a)
        await conn.execute("insert into alert_events (org_id, event_id, type, payload)"
                           " values ($1, $2, 'usage.unpriced', '{}'::jsonb)", org_id, "evt_iso_" + suffix)
        await conn.execute("insert into alert_deliveries (org_id, delivery_id, event_id, channel, endpoint_id, state)"
                           " values ($1, $2, $3, 'webhook', $4, 'failed')",
                           org_id, "dlv_iso_" + suffix, "evt_iso_" + suffix, endpoint_id)
    return alerts_pb2.RedeliverRequest(organization=w.org_a, delivery_id="dlv_iso_" + suffix)


async def _spend_alert_of(w: World) -> str:
    created = await _alert_stub[0].CreateSpendAlert(alerts_pb2.CreateSpendAlertRequest(
        organization=w.org_a, alert=alerts_pb2.SpendAlert(threshold_amount=500, recipients=["a@example.com"])),
        metadata=MASTER)
    return created.alert_id


async def _get_spend_alert(stubs: Stubs, w: World) -> pb_message.Message:
    return alerts_pb2.GetSpendAlertRequest(organization=w.org_a, alert_id=await _spend_alert_of(w))


async def _update_spend_alert(stubs: Stubs, w: World) -> pb_message.Message:
    alert = alerts_pb2.SpendAlert(alert_id=await _spend_alert_of(w), threshold_amount=700,
                                  recipients=["b@example.com"])
    return alerts_pb2.UpdateSpendAlertRequest(organization=w.org_a, alert=alert)


async def _delete_spend_alert(stubs: Stubs, w: World) -> pb_message.Message:
    return alerts_pb2.DeleteSpendAlertRequest(organization=w.org_a, alert_id=await _spend_alert_of(w))


def _genai_span() -> trace_service_pb2.ExportTraceServiceRequest:
    def attribute(key: str, **value: Any) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(**value))

    now = int(dt.datetime.now(dt.UTC).timestamp() * 1e9)
    span = Span(trace_id=random_text(16).encode()[:16], span_id=random_text(8).encode()[:8], name="chat iso-probe",
                start_time_unix_nano=now - 1_000_000, end_time_unix_nano=now, attributes=[
                    attribute("gen_ai.operation.name", string_value="chat"),
                    attribute("gen_ai.request.model", string_value="iso-probe"),
                    attribute("gen_ai.usage.input_tokens", int_value=1)])
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])


async def _budget_of(w: World, user: str = "", project: str = "") -> str:
    scope = [query_pb2.Filter(field=f, values=[v]) for f, v in (("user_id", user), ("project_id", project)) if v]
    created = await _budget_stub[0].CreateBudget(budgets_pb2.CreateBudgetRequest(
        organization=w.org_a, budget=budgets_pb2.Budget(limit="5", scope=scope)), metadata=MASTER)
    return created.budget_id


async def _get_others_budget(stubs: Stubs, w: World) -> pb_message.Message:
    """A budget of the other member's usage: not the member's, nor the project key's (pa) to read."""
    return budgets_pb2.GetBudgetRequest(budget_id=await _budget_of(w, w.users["other"], "pb"))


async def _update_budget(stubs: Stubs, w: World) -> pb_message.Message:
    budget = budgets_pb2.Budget(budget_id=await _budget_of(w, w.users["member"], "pa"), limit="500")
    return budgets_pb2.UpdateBudgetRequest(budget=budget, update_mask=["limit"])


async def _delete_budget(stubs: Stubs, w: World) -> pb_message.Message:
    return budgets_pb2.DeleteBudgetRequest(budget_id=await _budget_of(w, w.users["member"], "pa"))


async def _release(stubs: Stubs, w: World) -> pb_message.Message:
    """A reservation the organization's admin key took."""
    taken = await _budget_stub[0].Check(budgets_pb2.CheckRequest(estimated_cost="0.01", reserve=True),
                                        metadata=(("authorization", f"Bearer {w.keys['org_admin']}"),))
    return budgets_pb2.ReleaseReservationRequest(reservation_id=taken.reservation_id)


A, M, ME, P, OTHER = "master", "org_admin", "member", "project_key", "other_org"
ALL = {A, M, ME, P, OTHER}
ADMINS = {A, M}  # organization-wide admins of A

# RPC -> (request builder, the authenticated callers allowed). Everyone else is denied
# (PERMISSION_DENIED or NOT_FOUND); unauthenticated callers always get UNAUTHENTICATED.
MATRIX: dict[str, tuple[Builder, set[str]]] = {
    # ingest: everyone records, in its own organization and scope
    "RecordEvent": (_const(lambda w: ingest_pb2.RecordEventRequest(event=_event())), ALL),
    "RecordEvents": (_const(lambda w: ingest_pb2.RecordEventsRequest(events=[_event(), _event()])), ALL),
    "StreamEvents": (_const(lambda w: ingest_pb2.StreamEventsRequest(sequence=1, event=_event())), ALL),
    # records
    "GetEvent": (_const(lambda w: records_pb2.GetEventRequest(event_id=w.events["member_pa"])), {A, M, ME, P}),
    "GetEventHistory": (_const(lambda w: records_pb2.GetEventHistoryRequest(event_id=w.events["member_pa"])),
                        {A, M, ME, P}),
    "ListEvents": (_const(lambda w: records_pb2.ListEventsRequest(page_size=1000, include_voided=True)), ALL),
    "UpdateEvent": (_update, {A, M, P}),  # admins only; the project key is an admin of its project
    "VoidEvent": (_void, {A, M, P}),
    # admin
    "CreateOrganization": (_const(lambda w: admin_pb2.CreateOrganizationRequest(name="x-" + random_text(10))), {A}),
    "ListOrganizations": (_const(lambda w: admin_pb2.ListOrganizationsRequest()), ALL),
    "CreateProject": (_const(lambda w: admin_pb2.CreateProjectRequest(organization=w.org_a,
                                                                      name="p-" + random_text(8))), ADMINS),
    "ListProjects": (_const(lambda w: admin_pb2.ListProjectsRequest(organization=w.org_a)), ADMINS),
    "CreateUser": (_const(lambda w: admin_pb2.CreateUserRequest(
        organization=w.org_a, username="u-" + random_text(10).lower(), password="pw-" + random_text(12))), ADMINS),
    "ListUsers": (_const(lambda w: admin_pb2.ListUsersRequest(organization=w.org_a)), ADMINS),
    "CreateApiKey": (_const(lambda w: admin_pb2.CreateApiKeyRequest(organization=w.org_a)), ADMINS),
    "ListApiKeys": (_const(lambda w: admin_pb2.ListApiKeysRequest(organization=w.org_a)), ADMINS),
    "RevokeApiKey": (_revoke, ADMINS),
    "Login": (_const(lambda w: admin_pb2.LoginRequest(username=w.usernames["member"], password=w.passwords[0])),
              ALL),
    "WhoAmI": (_const(lambda w: admin_pb2.WhoAmIRequest()), ALL),
    "GetRetention": (_const(lambda w: admin_pb2.GetRetentionRequest(organization=w.org_a)), ADMINS),
    "UpdateRetention": (_const(lambda w: admin_pb2.UpdateRetentionRequest(organization=w.org_a)), ADMINS),
    "GetOrganizationSettings": (_const(lambda w: admin_pb2.GetOrganizationSettingsRequest(organization=w.org_a)),
                                {A, M, ME, P}),
    "UpdateOrganizationSettings": (_const(lambda w: admin_pb2.UpdateOrganizationSettingsRequest(
        organization=w.org_a, time_zone="UTC")), ADMINS),
    # queries: everyone, scoped
    "QueryUsage": (_const(lambda w: query_pb2.QueryUsageRequest(
        start_time=START, end_time=_end(), width="all", group_by=["model", "client_id", "user_id"])), ALL),
    "GetUsageTallies": (_const(lambda w: query_pb2.GetUsageTalliesRequest(
        window="day", start_time=_recent(), end_time=_end())), ALL),
    "GetTokenUsage": (_const(lambda w: query_pb2.GetTokenUsageRequest(start_time=_recent(), end_time=_end())), ALL),
    "GetClientUsage": (_const(lambda w: query_pb2.GetClientUsageRequest(
        client_id="client-" + w.markers["other_pb"], recent_limit=10)), ALL),
    # prices: the book is read by the organization, managed by its admins
    "CreatePriceVersions": (_const(lambda w: prices_pb2.CreatePriceVersionsRequest(
        organization=w.org_a, versions=[_price(w)])), ADMINS),
    "ListPriceVersions": (_const(lambda w: prices_pb2.ListPriceVersionsRequest(organization=w.org_a)),
                          {A, M, ME, P}),
    "GetPriceVersion": (_const(lambda w: prices_pb2.GetPriceVersionRequest(organization=w.org_a,
                                                                           version=w.price_version)), {A, M, ME, P}),
    "PreviewRepricing": (_const(lambda w: prices_pb2.PreviewRepricingRequest(
        organization=w.org_a, start_time=_recent(), end_time=_end())), ADMINS),
    "ApplyRepricing": (_const(lambda w: prices_pb2.ApplyRepricingRequest(
        organization=w.org_a, start_time=_recent(), end_time=_end(), models=["no-such-model"], reason="t")), ADMINS),
    "ListUnpricedEvents": (_const(lambda w: prices_pb2.ListUnpricedEventsRequest(
        start_time=START, end_time=_end(), page_size=1000)), ALL),
    "GetCosts": (_const(lambda w: prices_pb2.GetCostsRequest(start_time=_recent(), end_time=_end(),
                                                             group_by=["project_id", "api_key_id"])), ALL),
    # budgets: organization admins write; a scoped caller reads only budgets inside its scope;
    # every key checks its own usage
    "CreateBudget": (_const(lambda w: budgets_pb2.CreateBudgetRequest(
        organization=w.org_a, budget=budgets_pb2.Budget(limit="5"))), ADMINS),
    "GetBudget": (_get_others_budget, ADMINS),
    "ListBudgets": (_const(lambda w: budgets_pb2.ListBudgetsRequest(page_size=1000)), ALL),
    "UpdateBudget": (_update_budget, ADMINS),
    "DeleteBudget": (_delete_budget, ADMINS),
    "Check": (_const(lambda w: budgets_pb2.CheckRequest(estimated_cost="0.01")), ALL),
    "ReleaseReservation": (_release, ADMINS),
    # alerts: organization admins only
    "CreateWebhookEndpoint": (_const(lambda w: alerts_pb2.CreateWebhookEndpointRequest(
        organization=w.org_a, endpoint=alerts_pb2.WebhookEndpoint(url=HOOK_URL))), ADMINS),
    "GetWebhookEndpoint": (_endpoint_request, ADMINS),
    "ListWebhookEndpoints": (_const(lambda w: alerts_pb2.ListWebhookEndpointsRequest(organization=w.org_a)), ADMINS),
    "UpdateWebhookEndpoint": (_update_endpoint, ADMINS),
    "DeleteWebhookEndpoint": (_delete_endpoint, ADMINS),
    "RotateWebhookSecret": (_rotate, ADMINS),
    "ListDeliveries": (_const(lambda w: alerts_pb2.ListDeliveriesRequest(organization=w.org_a)), ADMINS),
    "Redeliver": (_redeliver, ADMINS),
    "CreateSpendAlert": (_const(lambda w: alerts_pb2.CreateSpendAlertRequest(
        organization=w.org_a, alert=alerts_pb2.SpendAlert(threshold_amount=500, recipients=["a@example.com"]))),
        ADMINS),
    "GetSpendAlert": (_get_spend_alert, ADMINS),
    "ListSpendAlerts": (_const(lambda w: alerts_pb2.ListSpendAlertsRequest(organization=w.org_a)), ADMINS),
    "UpdateSpendAlert": (_update_spend_alert, ADMINS),
    "DeleteSpendAlert": (_delete_spend_alert, ADMINS),
    # exports: the pages of QueryUsage and ListEvents, scoped as they are
    "ExportUsage": (_const(lambda w: query_pb2.QueryUsageRequest(
        start_time=START, end_time=_end(), width="all", group_by=["model", "client_id", "user_id"])), ALL),
    "ExportEvents": (_const(lambda w: records_pb2.ListEventsRequest(page_size=1000, include_voided=True)), ALL),
    # OTLP: every key records its spans, in its own organization and scope
    "Export": (_const(lambda w: _genai_span()), ALL),
}
NO_CREDENTIALS_NEEDED = {"Login"}

# What each caller must never see (markers of events outside its reach).
HIDDEN = {
    A: ["b_event"], M: ["b_event"],
    ME: ["other_pb", "admin_pa", "b_event"],
    P: ["other_pb", "b_event"],
    OTHER: ["member_pa", "other_pb", "admin_pa"],
}


def test_every_rpc_has_a_row() -> None:
    assert set(METHODS) == set(MATRIX), "add the new RPC to MATRIX with who may call it"
    assert {m.containing_service.full_name for m in METHODS.values()} == SERVED


def _without_echo(reply: pb_message.Message) -> pb_message.Message:
    """GetClientUsage echoes the client id it was asked about: not a leak."""
    if "client_id" in reply.DESCRIPTOR.fields_by_name and reply.DESCRIPTOR.name == "ClientUsage":
        reply = type(reply).FromString(reply.SerializeToString())
        reply.ClearField("client_id")
    return reply


async def _call(channel: grpc.aio.Channel, method: Any, request: pb_message.Message,
                metadata: tuple[tuple[str, str], ...]) -> list[pb_message.Message]:
    path = f"/{method.containing_service.full_name}/{method.name}"
    reply_cls = message_factory.GetMessageClass(method.output_type)
    if method.client_streaming:
        stream: grpc.aio.StreamStreamMultiCallable[pb_message.Message, pb_message.Message] = channel.stream_stream(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=reply_cls.FromString)
        return [r async for r in stream(iter([request]), metadata=metadata, timeout=20)]
    if method.server_streaming:
        chunks: grpc.aio.UnaryStreamMultiCallable[pb_message.Message, pb_message.Message] = channel.unary_stream(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=reply_cls.FromString)
        return [r async for r in chunks(request, metadata=metadata, timeout=20)]
    unary: grpc.aio.UnaryUnaryMultiCallable[pb_message.Message, pb_message.Message] = channel.unary_unary(
        path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=reply_cls.FromString)
    return [await unary(request, metadata=metadata, timeout=20)]


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("rpc", sorted(MATRIX))
async def test_isolation_matrix(rpc: str, principal: str, world: World, stubs: Stubs,
                                channel: grpc.aio.Channel) -> None:
    build, allowed = MATRIX[rpc]
    request = await build(stubs, world)
    metadata = world.metadata(principal)
    try:
        replies = await _call(channel, METHODS[rpc], request, metadata)
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as err:
        code, replies = err.code(), []
        detail = err.details()
    if principal in UNAUTHENTICATED and rpc not in NO_CREDENTIALS_NEEDED:
        assert code == grpc.StatusCode.UNAUTHENTICATED, (rpc, principal, code)
        return
    if principal in allowed or rpc in NO_CREDENTIALS_NEEDED:
        assert code == grpc.StatusCode.OK, (rpc, principal, code, detail)  # detail: set when the call failed
    else:
        assert code in DENIED, (rpc, principal, code)
    text = "".join(text_format.MessageToString(_without_echo(r)) for r in replies)
    for name in HIDDEN.get(principal, []):
        assert world.markers[name] not in text, (rpc, principal, name)
    if principal == OTHER and rpc not in NO_CREDENTIALS_NEEDED:  # Login answers for the user logging in
        assert world.org_a not in text, (rpc, principal)
    if principal in {ME, P}:  # ingest by a scoped key stays in scope
        for reply in replies:
            for result in getattr(reply, "results", []):
                assert getattr(result, "outcome", ingest_pb2.OUTCOME_RECORDED) == ingest_pb2.OUTCOME_RECORDED


async def test_visibility_is_not_vacuous(world: World, channel: grpc.aio.Channel) -> None:
    """The leak checks above would pass on empty answers: show what each caller does see."""
    request = records_pb2.ListEventsRequest(page_size=1000)
    seen = {}
    for principal in (M, ME, P, OTHER):
        [reply] = await _call(channel, METHODS["ListEvents"], request, world.metadata(principal))
        seen[principal] = text_format.MessageToString(reply)
    assert all(world.markers[n] in seen[M] for n in ("member_pa", "other_pb", "admin_pa"))
    assert world.markers["member_pa"] in seen[ME]
    assert world.markers["member_pa"] in seen[P] and world.markers["admin_pa"] in seen[P]
    assert world.markers["b_event"] in seen[OTHER]
    usage_request = query_pb2.QueryUsageRequest(start_time=START, end_time=_end(), width="all", group_by=["model"])
    [usage] = await _call(channel, METHODS["QueryUsage"], usage_request, world.metadata(ME))
    text = text_format.MessageToString(usage)
    assert world.markers["member_pa"] in text and world.markers["other_pb"] not in text


async def test_other_org_cannot_target_org_a_by_header(world: World, channel: grpc.aio.Channel) -> None:
    """x-metering-organization is honoured for the master key only."""
    for principal in (M, ME, P, OTHER):
        target = world.org_b if principal != OTHER else world.org_a
        metadata = (*world.metadata(principal), ("x-metering-organization", target))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(channel, METHODS["ListEvents"], records_pb2.ListEventsRequest(), metadata)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
