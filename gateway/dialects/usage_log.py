"""The usage-log dialect (seed 002): `/usage` CRUD over the records API.

    POST   /usage                  record one api_call event; reply the stored record
    GET    /usage?skip&limit       the caller's visible api_call records, newest first
    GET    /usage/user/{user_id}   the same for one user: admin, or the user itself (else 403)
    GET    /usage/{usage_id}       one record (any kind); a member sees only its own (else 404)
    PUT    /usage/{usage_id}       admin: adjust the fields present (UpdateEvent + update_mask)
    DELETE /usage/{usage_id}       admin: void the record (VoidEvent); see `delete_usage`

A deleted (voided) record is gone for this dialect: GET, PUT and DELETE on it answer 404 and no list
shows it. It stays in the store, auditable through the native API (ListEvents with include_voided).

Field mapping (seed -> UsageEvent): usage_id = event_id, user_id = user_id (from the
token: the server defaults it to the caller's own user, whose id is a uuid), api_name, endpoint,
units_used, cost_usd = cost (exact decimal string on the wire, JSON number here),
api_key_used = api_key_id (omitted: the caller's own key), status_active = active,
created_at = received_at in the seed's form, whole seconds in UTC (`2025-07-04T12:00:00Z`).
Every event this dialect writes has kind "api_call".
Errors are FastAPI's: `{"detail": "..."}`, validation failures 422 with a `loc`.

`POST /usage` is the hot path (one event per request). It does not call RecordEvent: the event
goes to the gateway's IngestBatcher, which coalesces concurrent requests of the same caller into
RecordEvents calls (gateway/upstream/ingest_batcher.py), and the reply is built from the request, the
item's result (event id, received_at) and the caller's cached identity (gateway/upstream/identities.py)
instead of being read back. Only a duplicate (an Idempotency-Key seen before) reads the original
record with GetEvent. Replies are rendered with orjson (json_response.fast_json), decimals kept exact.
"""

from __future__ import annotations

import decimal
from typing import Annotated, Any

import grpc
from google.protobuf import field_mask_pb2, timestamp_pb2
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dialects.fastapi_style import (
    ErrorDetail,
    HTTPValidationError,
    RequestInvalid,
    parse_body,
    parse_query,
    path_text,
)
from gateway.dialects.fastapi_style import render_error as fastapi_error
from gateway.http.errors import GatewayError, renders_errors
from gateway.http.json_response import fast_json
from gateway.http.openapi import Doc, documented
from gateway.upstream.client import deadline, metadata, upstream
from gateway.upstream.ingest_batcher import rejected_error
from metering.v1 import admin_pb2, event_pb2, ingest_pb2, records_pb2

KIND = "api_call"
TAG = "usage log"
MAX_LIMIT = 1000
IDEMPOTENCY_HEADER = "idempotency-key"  # optional: becomes the event's request_id, so a retried POST records once
# Seed field -> UsageEvent field (for update masks), and back (for the `loc` of server-side validation errors).
TO_PROTO = {"api_name": "api_name", "endpoint": "endpoint", "units_used": "units_used",
            "cost_usd": "cost", "api_key_used": "api_key_id"}
FROM_PROTO = {proto: seed for seed, proto in TO_PROTO.items()}
NOT_FOUND = "Usage record not found"
FORBIDDEN = "Not enough permissions"

Units = Annotated[int, Field(ge=0, le=2**63 - 1)]
Money = Annotated[decimal.Decimal, Field(ge=0, allow_inf_nan=False, json_schema_extra={"type": "number"})]
Text = Annotated[str, Field(max_length=256)]


class UsageCreate(BaseModel):
    api_name: Text
    endpoint: Text
    units_used: Units
    cost_usd: Money
    api_key_used: Text | None = None


class UsageUpdate(BaseModel):
    """Only the fields present change; `null` clears one (a cleared cost is repriced by the server)."""

    api_name: Text | None = None
    endpoint: Text | None = None
    units_used: Units | None = None
    cost_usd: Money | None = None
    api_key_used: Text | None = None


class UsageRecord(BaseModel):
    usage_id: str
    user_id: str | None
    api_name: str | None
    endpoint: str | None
    units_used: int
    cost_usd: Money | None  # null: no cost given and none in the price book
    api_key_used: str | None
    status_active: bool
    created_at: Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Page(BaseModel):
    skip: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    limit: Annotated[int, Field(ge=0, le=MAX_LIMIT)] = 100


def render_error(err: GatewayError) -> Response:
    return fastapi_error(err, field_names=FROM_PROTO)


def _by_id_error(err: GatewayError) -> Response:
    return fastapi_error(err, field_names=FROM_PROTO, messages={grpc.StatusCode.NOT_FOUND: NOT_FOUND})


ERRORS: dict[int, tuple[str, Any]] = {
    401: ("Missing or invalid credentials", ErrorDetail),
    422: ("Validation error", HTTPValidationError),
}


def record(event: event_pb2.UsageEvent) -> dict[str, Any]:
    """A stored event as the seed's record (the fields of UsageRecord, in order)."""
    return _record(
        event.event_id, event.user_id, event.api_name, event.endpoint, event.units_used,
        decimal.Decimal(event.cost) if event.HasField("cost") else None, event.api_key_id, event.active,
        created_at(event.received_at),
    )


def created_at(stamp: timestamp_pb2.Timestamp) -> str:
    """The seed's form: `2025-07-04T12:00:00Z`, whole seconds (the fraction dropped), UTC."""
    return timestamp_pb2.Timestamp(seconds=stamp.seconds).ToJsonString()


def _record(usage_id: str, user_id: str, api_name: str, endpoint: str, units_used: int,
            cost: decimal.Decimal | None, api_key_id: str, active: bool, created_at: str) -> dict[str, Any]:
    # A plain dict rather than UsageRecord(...).model_dump(): same fields, without validating our own output.
    return {"usage_id": usage_id, "user_id": user_id or None, "api_name": api_name or None,
            "endpoint": endpoint or None, "units_used": units_used, "cost_usd": cost,
            "api_key_used": api_key_id or None, "status_active": active, "created_at": created_at}


def _money(value: decimal.Decimal) -> str:
    return format(value, "f")


def _as_stored(cost: str) -> decimal.Decimal:
    """The cost as GetEvent would return it once stored (server/core/convert.py `money`): trailing zeros
    of the fraction dropped, -0 as 0; so the POST reply equals every later read of the record."""
    text = format(decimal.Decimal(cost), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    value = decimal.Decimal(text or "0")
    return value if value else decimal.Decimal(0)


@documented(Doc("Log usage manually", tags=(TAG,), body=UsageCreate, response=UsageRecord, errors=ERRORS))
@renders_errors(render_error)
async def create_usage(request: Request) -> Response:
    body = await parse_body(request, UsageCreate)
    cost = _money(body.cost_usd)
    event = event_pb2.UsageEvent(
        kind=KIND, api_name=body.api_name, endpoint=body.endpoint, units_used=body.units_used,
        cost=cost, api_key_id=body.api_key_used or "", request_id=request.headers.get(IDEMPOTENCY_HEADER, ""),
    )
    up = upstream(request)
    meta = metadata(request)
    result = await up.ingest.submit(event, meta, deadline(request, up.timeout))
    if result.outcome == ingest_pb2.OUTCOME_REJECTED:
        raise rejected_error(result)  # 422 naming the seed's field, or 403 (a field outside the key's scope)
    if result.outcome != ingest_pb2.OUTCOME_RECORDED or not result.HasField("received_at"):
        # A duplicate: the reply is the original record, whatever this request's body says.
        stored = await up.call(request, up.stubs.records.GetEvent,
                               records_pb2.GetEventRequest(event_id=result.event_id))
        return fast_json(record(stored))
    # Recorded: what was just stored is this body plus what the server filled in: user_id and, when
    # api_key_used is omitted, api_key_id, both the caller's own (DESIGN §2; server/ingest/validation.py).
    me = await up.identities.of(meta)
    return fast_json(_record(
        result.event_id, me.user_id, body.api_name, body.endpoint, body.units_used, _as_stored(cost),
        body.api_key_used or me.api_key_id, True, created_at(result.received_at),
    ))


@documented(Doc("All usage logs the caller may see, newest first", tags=(TAG,), query=Page,
                response=list[UsageRecord], errors=ERRORS))
@renders_errors(render_error)
async def list_usage(request: Request) -> Response:
    return await _list(request, parse_query(request, Page), [])


@documented(Doc("Usage logs of one user (admin or self)", tags=(TAG,), query=Page, response=list[UsageRecord],
                errors={**ERRORS, 403: ("Neither an admin nor this user", ErrorDetail)}))
@renders_errors(render_error)
async def user_usage(request: Request) -> Response:
    user_id = path_text(request, "user_id")
    page = parse_query(request, Page)
    up = upstream(request)
    me = await up.call(request, up.stubs.admin.WhoAmI, admin_pb2.WhoAmIRequest())
    if me.role != admin_pb2.ROLE_ADMIN and me.user_id != user_id:
        raise GatewayError(grpc.StatusCode.PERMISSION_DENIED, FORBIDDEN)
    return await _list(request, page, [user_id])


async def _list(request: Request, page: Page, user_ids: list[str]) -> Response:
    if page.limit == 0:
        return fast_json([])
    up = upstream(request)
    reply = await up.call(request, up.stubs.records.ListEvents, records_pb2.ListEventsRequest(
        kinds=[KIND], user_ids=user_ids, skip=page.skip, page_size=page.limit,
    ))
    return fast_json([record(e) for e in reply.events])


@documented(Doc("One usage record", tags=(TAG,), response=UsageRecord,
                errors={**ERRORS, 404: ("No such record visible to the caller", ErrorDetail)}))
@renders_errors(_by_id_error)
async def get_usage(request: Request) -> Response:
    return fast_json(record(await _live(request, path_text(request, "usage_id"))))


async def _live(request: Request, usage_id: str, *, admin: bool = False) -> event_pb2.UsageEvent:
    """The record `usage_id` while it is not deleted (NOT_FOUND, this dialect's 404, once it is).
    admin: for PUT and DELETE, refused with 403 first to anyone else, whatever the record."""
    up = upstream(request)
    if admin and (await up.identities.of(metadata(request))).role != admin_pb2.ROLE_ADMIN:
        raise GatewayError(grpc.StatusCode.PERMISSION_DENIED, FORBIDDEN)
    event: event_pb2.UsageEvent = await up.call(request, up.stubs.records.GetEvent,
                                                records_pb2.GetEventRequest(event_id=usage_id))
    if not event.active:
        raise GatewayError(grpc.StatusCode.NOT_FOUND, NOT_FOUND)
    return event


@documented(Doc("Adjust a usage record (admin): refunds, billing corrections", tags=(TAG,), body=UsageUpdate,
                response=UsageRecord, errors={**ERRORS, 403: ("Not an admin", ErrorDetail),
                                               404: ("No such record", ErrorDetail)}))
@renders_errors(_by_id_error)
async def update_usage(request: Request) -> Response:
    usage_id = path_text(request, "usage_id")
    body = await parse_body(request, UsageUpdate)
    present = [name for name in TO_PROTO if name in body.model_fields_set]
    if not present:
        raise RequestInvalid([{"type": "missing", "loc": ["body"], "input": {},
                               "msg": f"Name at least one of {', '.join(TO_PROTO)}"}])
    patch = event_pb2.UsageEvent(event_id=usage_id)
    for name in present:
        value = getattr(body, name)
        if value is None:
            continue  # present in the mask, absent in the patch: cleared
        if name == "cost_usd":
            patch.cost = _money(value)
        else:
            setattr(patch, TO_PROTO[name], value)
    await _live(request, usage_id, admin=True)  # a deleted record cannot be adjusted: 404
    up = upstream(request)
    event = await up.call(request, up.stubs.records.UpdateEvent, records_pb2.UpdateEventRequest(
        event=patch, update_mask=field_mask_pb2.FieldMask(paths=[TO_PROTO[n] for n in present]),
        reason=f"PUT /usage/{patch.event_id}",
    ))
    return fast_json(record(event))


@documented(Doc("Delete (void) a usage record (admin)", tags=(TAG,), response=UsageRecord,
                description="The record is voided: it stops counting in every total, and GET, PUT and DELETE on it "
                            "answer 404 and no list shows it from then on. The reply is the record as deleted, with "
                            "status_active false. It stays auditable through the native API (GET /v1/events with "
                            "include_voided).",
                errors={**ERRORS, 403: ("Not an admin", ErrorDetail), 404: ("No such record", ErrorDetail)}))
@renders_errors(_by_id_error)
async def delete_usage(request: Request) -> Response:
    """Voids the record (VoidEvent). Reply: the voided record (`status_active: false`), so a client
    sees what was removed from the totals; deleting it again answers 404 like any read of it."""
    up = upstream(request)
    usage_id = path_text(request, "usage_id")
    await _live(request, usage_id, admin=True)
    event = await up.call(request, up.stubs.records.VoidEvent,
                          records_pb2.VoidEventRequest(event_id=usage_id, reason=f"DELETE /usage/{usage_id}"))
    return fast_json(record(event))


def routes() -> list[Route]:
    return [
        Route("/usage", create_usage, methods=["POST"]),
        Route("/usage", list_usage, methods=["GET"]),
        Route("/usage/user/{user_id}", user_usage, methods=["GET"]),
        Route("/usage/{usage_id}", get_usage, methods=["GET"]),
        Route("/usage/{usage_id}", update_usage, methods=["PUT"]),
        Route("/usage/{usage_id}", delete_usage, methods=["DELETE"]),
    ]
