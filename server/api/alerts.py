"""AlertService: webhook endpoints, the delivery log and redelivery, and spend alerts;
all of them an organization admin's (a member or a project key is refused)."""

from __future__ import annotations

import datetime as dt

from metering import page_token
from metering.v1 import alerts_pb2, alerts_pb2_grpc
from server.alerts.deliveries import Deliveries, Delivery
from server.alerts.endpoints import Endpoint, Endpoints, Fields
from server.alerts.spend_alerts import SpendAlert, SpendAlerts
from server.api.context import Context, Core, caller, in_organization
from server.core import convert
from server.core.errors import InvalidArgument, PermissionDenied
from server.core.principal import Principal

STATES = {"pending": alerts_pb2.DELIVERY_STATE_PENDING, "delivered": alerts_pb2.DELIVERY_STATE_DELIVERED,
          "failed": alerts_pb2.DELIVERY_STATE_FAILED}
MASKABLE = ("url", "event_types", "description", "disabled")


def _required(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, "required", reason="REQUIRED")
    return value


def endpoint_pb(e: Endpoint, *, with_secret: bool = False) -> alerts_pb2.WebhookEndpoint:
    msg = alerts_pb2.WebhookEndpoint(endpoint_id=e.endpoint_id, url=e.url, event_types=e.event_types,
                                     description=e.description, disabled=e.disabled,
                                     secret=e.secret if with_secret else "")
    msg.create_time.CopyFrom(convert.timestamp(e.create_time))
    msg.update_time.CopyFrom(convert.timestamp(e.update_time))
    if e.previous_expires_at is not None:
        msg.previous_secret_expire_time.CopyFrom(convert.timestamp(e.previous_expires_at))
    return msg


def delivery_pb(d: Delivery) -> alerts_pb2.Delivery:
    msg = alerts_pb2.Delivery(delivery_id=d.delivery_id, event_id=d.event_id, event_type=d.event_type,
                              channel=d.channel, endpoint_id=d.endpoint_id, state=STATES[d.state], attempts=d.attempts)
    msg.create_time.CopyFrom(convert.timestamp(d.create_time))
    if d.state == "pending":
        msg.next_attempt_time.CopyFrom(convert.timestamp(d.next_attempt_at))
    for a in d.log:
        attempt = msg.log.add(attempt=a["attempt"], status_code=a["status_code"] or 0, latency_ms=a["latency_ms"],
                              response_excerpt=a["response_excerpt"], error=a["error"])
        attempt.start_time.CopyFrom(convert.timestamp(dt.datetime.fromisoformat(a["start_time"])))
    return msg


def alert_pb(a: SpendAlert) -> alerts_pb2.SpendAlert:
    msg = alerts_pb2.SpendAlert(alert_id=a.alert_id, project_id=a.project_id, threshold_amount=a.threshold_cents,
                                recipients=a.recipients, subject_prefix=a.subject_prefix)
    if a.create_time is not None:
        msg.create_time.CopyFrom(convert.timestamp(a.create_time))
    return msg


def _fields(e: alerts_pb2.WebhookEndpoint) -> Fields:
    return Fields(e.url, tuple(e.event_types), e.description, e.disabled)


def _spend_alert(a: alerts_pb2.SpendAlert) -> SpendAlert:
    return SpendAlert(a.alert_id, a.project_id, a.threshold_amount, tuple(a.recipients), a.subject_prefix)


class AlertsServicer(alerts_pb2_grpc.AlertServiceServicer):
    def __init__(self, core: Core, endpoints: Endpoints, deliveries: Deliveries, spend_alerts: SpendAlerts) -> None:
        self.core = core
        self.endpoints = endpoints
        self.deliveries = deliveries
        self.spend_alerts = spend_alerts

    async def _admin(self, context: Context, organization: str) -> Principal:
        principal = await in_organization(self.core, await caller(self.core, context), organization)
        if not principal.is_admin or principal.project_id is not None:
            raise PermissionDenied("alerts are managed by an organization admin")
        return principal

    async def CreateWebhookEndpoint(self, request: alerts_pb2.CreateWebhookEndpointRequest,
                                    context: Context) -> alerts_pb2.WebhookEndpoint:
        principal = await self._admin(context, request.organization)
        made = await self.endpoints.create(principal.org_id, _fields(request.endpoint))
        return endpoint_pb(made, with_secret=True)

    async def GetWebhookEndpoint(self, request: alerts_pb2.GetWebhookEndpointRequest,
                                 context: Context) -> alerts_pb2.WebhookEndpoint:
        principal = await self._admin(context, request.organization)
        return endpoint_pb(await self.endpoints.get(principal.org_id, _required("endpoint_id", request.endpoint_id)))

    async def ListWebhookEndpoints(self, request: alerts_pb2.ListWebhookEndpointsRequest,
                                   context: Context) -> alerts_pb2.ListWebhookEndpointsResponse:
        principal = await self._admin(context, request.organization)
        binding = page_token.request_digest(principal.org_id, "webhook_endpoints")
        found, token = await self.endpoints.page(principal.org_id, request.page_size, request.page_token, binding)
        return alerts_pb2.ListWebhookEndpointsResponse(endpoints=[endpoint_pb(e) for e in found],
                                                       next_page_token=token)

    async def UpdateWebhookEndpoint(self, request: alerts_pb2.UpdateWebhookEndpointRequest,
                                    context: Context) -> alerts_pb2.WebhookEndpoint:
        principal = await self._admin(context, request.organization)
        endpoint_id = _required("endpoint.endpoint_id", request.endpoint.endpoint_id)
        unknown = sorted(set(request.update_mask.paths) - set(MASKABLE))
        if unknown:
            raise InvalidArgument("update_mask", f"{unknown[0][:64]!r} cannot be updated; one of {', '.join(MASKABLE)}")
        updated = await self.endpoints.update(principal.org_id, endpoint_id, _fields(request.endpoint),
                                              list(request.update_mask.paths))
        return endpoint_pb(updated)

    async def DeleteWebhookEndpoint(self, request: alerts_pb2.DeleteWebhookEndpointRequest,
                                    context: Context) -> alerts_pb2.DeleteWebhookEndpointResponse:
        principal = await self._admin(context, request.organization)
        await self.endpoints.delete(principal.org_id, _required("endpoint_id", request.endpoint_id))
        return alerts_pb2.DeleteWebhookEndpointResponse()

    async def RotateWebhookSecret(self, request: alerts_pb2.RotateWebhookSecretRequest,
                                  context: Context) -> alerts_pb2.WebhookEndpoint:
        principal = await self._admin(context, request.organization)
        overlap = request.overlap.ToTimedelta() if request.HasField("overlap") else None
        rotated = await self.endpoints.rotate(principal.org_id, _required("endpoint_id", request.endpoint_id), overlap)
        return endpoint_pb(rotated, with_secret=True)

    async def ListDeliveries(self, request: alerts_pb2.ListDeliveriesRequest,
                             context: Context) -> alerts_pb2.ListDeliveriesResponse:
        principal = await self._admin(context, request.organization)
        binding = page_token.request_digest(principal.org_id, "deliveries", request.endpoint_id)
        found, token = await self.deliveries.page(principal.org_id, request.endpoint_id, request.page_size,
                                                  request.page_token, binding)
        return alerts_pb2.ListDeliveriesResponse(deliveries=[delivery_pb(d) for d in found], next_page_token=token)

    async def Redeliver(self, request: alerts_pb2.RedeliverRequest, context: Context) -> alerts_pb2.Delivery:
        principal = await self._admin(context, request.organization)
        return delivery_pb(await self.deliveries.redeliver(principal.org_id,
                                                           _required("delivery_id", request.delivery_id)))

    async def CreateSpendAlert(self, request: alerts_pb2.CreateSpendAlertRequest,
                               context: Context) -> alerts_pb2.SpendAlert:
        principal = await self._admin(context, request.organization)
        return alert_pb(await self.spend_alerts.create(principal.org_id, _spend_alert(request.alert)))

    async def GetSpendAlert(self, request: alerts_pb2.GetSpendAlertRequest, context: Context) -> alerts_pb2.SpendAlert:
        principal = await self._admin(context, request.organization)
        return alert_pb(await self.spend_alerts.get(principal.org_id, request.project_id,
                                                    _required("alert_id", request.alert_id)))

    async def ListSpendAlerts(self, request: alerts_pb2.ListSpendAlertsRequest,
                              context: Context) -> alerts_pb2.ListSpendAlertsResponse:
        principal = await self._admin(context, request.organization)
        found, more = await self.spend_alerts.page(principal.org_id, request.project_id, after=request.after,
                                                   before=request.before, limit=request.limit,
                                                   descending=request.descending)
        return alerts_pb2.ListSpendAlertsResponse(alerts=[alert_pb(a) for a in found], has_more=more)

    async def UpdateSpendAlert(self, request: alerts_pb2.UpdateSpendAlertRequest,
                               context: Context) -> alerts_pb2.SpendAlert:
        principal = await self._admin(context, request.organization)
        _required("alert.alert_id", request.alert.alert_id)
        return alert_pb(await self.spend_alerts.update(principal.org_id, _spend_alert(request.alert)))

    async def DeleteSpendAlert(self, request: alerts_pb2.DeleteSpendAlertRequest,
                               context: Context) -> alerts_pb2.DeleteSpendAlertResponse:
        principal = await self._admin(context, request.organization)
        await self.spend_alerts.delete(principal.org_id, request.project_id, _required("alert_id", request.alert_id))
        return alerts_pb2.DeleteSpendAlertResponse()
