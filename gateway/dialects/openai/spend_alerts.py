"""OpenAI's spend alerts, served on AlertService's spend alerts (DESIGN §11-12):

    GET | POST               /v1/organization/spend_alerts
    GET | POST | DELETE      /v1/organization/spend_alerts/{alert_id}
    GET | POST               /v1/organization/projects/{project_id}/spend_alerts
    GET | POST | DELETE      /v1/organization/projects/{project_id}/spend_alerts/{alert_id}

as the official SDK declares them (`client.admin.organization.spend_alerts` and
`client.admin.organization.projects.spend_alerts`: create, retrieve, update (POST to the
alert), list with after/before/limit/order, delete). An alert is `{"id", "object":
"organization.spend_alert" | "project.spend_alert", "threshold_amount": <cents>, "currency":
"USD", "interval": "month", "notification_channel": {"type": "email", "recipients",
"subject_prefix"}}`; a list is `{"object": "list", "data", "has_more", "first_id", "last_id"}`.
Each alert is a monthly usd budget in ALERT mode with one threshold at 100% (server/alerts/
spend_alerts.py): its crossing is detected once per month and emailed to the recipients by the
worker. Organization admin keys only (403); errors in OpenAI's shape (common.render_error).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dialects.common import call
from gateway.dialects.openai.common import bad_param, render_error, validate
from gateway.dialects.openai.spend_limits import LIMIT_ERRORS, MAX_CENTS, require_admin
from gateway.http.errors import renders_errors
from gateway.http.json_body import loads
from gateway.http.json_response import JSONResponse
from gateway.http.openapi import Doc, documented
from gateway.upstream.client import upstream
from metering.v1 import alerts_pb2

ORGANIZATION_PATH = "/v1/organization/spend_alerts"
PROJECT_PATH = "/v1/organization/projects/{project_id}/spend_alerts"
TAG = "OpenAI spend alerts"
ALERTS = alerts_pb2.DESCRIPTOR.services_by_name["AlertService"]


class NotificationChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["email"] = Field(description="Only `email`.")
    recipients: list[StrictStr] = Field(min_length=1, max_length=20, description="Email addresses.")
    subject_prefix: StrictStr | None = Field(default=None, max_length=100)


class SpendAlertBody(BaseModel):
    """The body of create and update: every field required, no other field accepted."""

    model_config = ConfigDict(extra="forbid")
    currency: Literal["USD"]
    interval: Literal["month"]
    notification_channel: NotificationChannel
    threshold_amount: StrictInt = Field(ge=1, le=MAX_CENTS, description="The alert threshold amount, in cents.")


class SpendAlertOut(BaseModel):
    id: str
    object: Literal["organization.spend_alert", "project.spend_alert"]
    currency: Literal["USD"]
    interval: Literal["month"]
    notification_channel: NotificationChannel
    threshold_amount: int


class SpendAlertDeleted(BaseModel):
    id: str
    deleted: bool
    object: Literal["organization.spend_alert.deleted", "project.spend_alert.deleted"]


class SpendAlertList(BaseModel):
    object: Literal["list"]
    data: list[SpendAlertOut]
    has_more: bool
    first_id: str | None
    last_id: str | None


def rendered(kind: str, alert: alerts_pb2.SpendAlert) -> dict[str, Any]:
    return {
        "id": alert.alert_id, "object": f"{kind}.spend_alert", "currency": "USD", "interval": "month",
        "threshold_amount": alert.threshold_amount,
        "notification_channel": {"type": "email", "recipients": list(alert.recipients),
                                 "subject_prefix": alert.subject_prefix or None},
    }


async def _rpc(request: Request, name: str, message: Any) -> Any:
    reply_type = getattr(alerts_pb2, ALERTS.methods_by_name[name].output_type.name)
    method = upstream(request).unary(f"/{ALERTS.full_name}/{name}", reply_type)
    return await call(request, method, message)


async def _body(request: Request, project_id: str, alert_id: str = "") -> alerts_pb2.SpendAlert:
    raw = await request.body()
    try:
        data = loads(raw) if raw.strip() else None
    except ValueError:
        raise bad_param(None, "We could not parse the JSON body of your request.") from None
    if not isinstance(data, dict):
        raise bad_param(None, "The request body must be a JSON object.")
    body = validate(SpendAlertBody, data)
    channel = body.notification_channel
    return alerts_pb2.SpendAlert(alert_id=alert_id, project_id=project_id, threshold_amount=body.threshold_amount,
                                 recipients=channel.recipients, subject_prefix=channel.subject_prefix or "")


@dataclasses.dataclass(frozen=True)
class Level:
    kind: str  # "organization" / "project"
    path: str

    async def create(self, request: Request, project_id: str) -> Response:
        alert = await _body(request, project_id)
        made = await _rpc(request, "CreateSpendAlert", alerts_pb2.CreateSpendAlertRequest(alert=alert))
        return JSONResponse(rendered(self.kind, made))

    async def retrieve(self, request: Request, project_id: str) -> Response:
        found = await _rpc(request, "GetSpendAlert", alerts_pb2.GetSpendAlertRequest(
            alert_id=request.path_params["alert_id"], project_id=project_id))
        return JSONResponse(rendered(self.kind, found))

    async def update(self, request: Request, project_id: str) -> Response:
        alert = await _body(request, project_id, request.path_params["alert_id"])
        updated = await _rpc(request, "UpdateSpendAlert", alerts_pb2.UpdateSpendAlertRequest(alert=alert))
        return JSONResponse(rendered(self.kind, updated))

    async def delete(self, request: Request, project_id: str) -> Response:
        alert_id = request.path_params["alert_id"]
        await _rpc(request, "DeleteSpendAlert", alerts_pb2.DeleteSpendAlertRequest(alert_id=alert_id,
                                                                                    project_id=project_id))
        return JSONResponse({"id": alert_id, "deleted": True, "object": f"{self.kind}.spend_alert.deleted"})

    async def list(self, request: Request, project_id: str) -> Response:
        params = request.query_params
        order = params.get("order", "asc")
        if order not in ("asc", "desc"):
            raise bad_param("order", "order must be 'asc' or 'desc'.")
        raw_limit = params.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            raise bad_param("limit", "limit must be an integer from 1 to 100.")
        reply = await _rpc(request, "ListSpendAlerts", alerts_pb2.ListSpendAlertsRequest(
            project_id=project_id, after=params.get("after", ""), before=params.get("before", ""),
            limit=int(raw_limit), descending=order == "desc"))
        data = [rendered(self.kind, a) for a in reply.alerts]
        return JSONResponse({"object": "list", "data": data, "has_more": reply.has_more,
                             "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None})

    def route(self, suffix: str, verb: str, method: Callable[[Request, str], Awaitable[Response]],
              summary: str, response: type[BaseModel]) -> Route:
        doc = Doc(summary, tags=(TAG,), body=SpendAlertBody if verb == "POST" else None, response=response,
                  errors=LIMIT_ERRORS)

        @documented(doc)
        @renders_errors(render_error)
        async def endpoint(request: Request) -> Response:
            await require_admin(request)
            return await method(request, request.path_params.get("project_id", ""))

        name = f"{method.__name__}_{self.kind}_spend_alert{'s' if not suffix else ''}"
        endpoint.__name__ = endpoint.__qualname__ = name
        return Route(self.path + suffix, endpoint, methods=[verb], name=name)


LEVELS = (Level("organization", ORGANIZATION_PATH), Level("project", PROJECT_PATH))


def routes() -> list[Route]:
    made = []
    for level in LEVELS:
        whose = "the organization's" if level.kind == "organization" else "a project's"
        one = "/{alert_id}"
        made += [
            level.route("", "GET", level.list, f"List {whose} spend alerts.", SpendAlertList),
            level.route("", "POST", level.create, f"Create one of {whose} spend alerts.", SpendAlertOut),
            level.route(one, "GET", level.retrieve, f"Get one of {whose} spend alerts.", SpendAlertOut),
            level.route(one, "POST", level.update, f"Update one of {whose} spend alerts.", SpendAlertOut),
            level.route(one, "DELETE", level.delete, f"Delete one of {whose} spend alerts.", SpendAlertDeleted),
        ]
    return made
