"""`GET /v1/organization/costs` (seed 004): cost buckets of the organization, one UTC day each,
from the server's cost RPC (metering.v1.CostService/GetCosts, over the one query engine).

Parameters: `start_time` (required), `end_time`, `bucket_width` (`1d` only), `project_ids`,
`group_by` (`project_id`, `line_item`) as in the seed, plus `api_key_ids` and `api_key_id` in
`group_by` as DESIGN §7 and the official SDK have them; `limit` 1..180, default 7; `page`.
Results: `{"object": "organization.costs.result", "amount": {"value": <JSON number, exact>,
"currency"}, "line_item", "project_id", "api_key_id", "quantity", "quantity_unit"}`: one per
combination of the grouped keys and currency; keys not grouped on, and `quantity` /
`quantity_unit` without `line_item` grouping, are null. The SDK's `line_items` filter and
`user_id` / `api_source` grouping are not supported (400).

A server without the cost RPC (built before metering/v1/prices.proto) is answered 501
(`not_implemented`) in the dialect's error shape, after the parameters are checked.
"""

from __future__ import annotations

import decimal
import functools
import importlib
from typing import Any, Literal

import grpc
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dialects.common import call
from gateway.dialects.openai.common import (
    ERRORS,
    TAG,
    bucket,
    page,
    page_model,
    query_arguments,
    range_fields,
    render_error,
    validate,
    window,
)
from gateway.http.errors import GatewayError, renders_errors
from gateway.http.json_response import JSONResponse
from gateway.http.openapi import Doc, documented
from gateway.upstream.client import upstream

PATH = "/v1/organization/costs"
RESULT = "organization.costs.result"
LIMITS = {"1d": (7, 180)}
GROUP_KEYS = ("project_id", "line_item", "api_key_id")
ARRAYS = frozenset({"project_ids", "api_key_ids", "group_by"})
SUMMARY = "Get costs details for the organization."
NOT_YET = ("GET /v1/organization/costs needs the server's cost RPC (metering.v1.CostService/GetCosts), "
           "which this server does not have")

CostsQuery = create_model(
    "CostsQuery", __config__=ConfigDict(extra="forbid"),
    **range_fields(("1d",)),
    project_ids=(list[str], Field(default_factory=list, description="Return only costs for these projects.")),
    api_key_ids=(list[str], Field(default_factory=list, description="Return only costs for these API keys.")),
    group_by=(list[Literal[GROUP_KEYS]], Field(  # type: ignore[valid-type]
        default_factory=list, description="Group the costs by these fields, in any combination.")),
)


class CostAmount(BaseModel):
    value: float = Field(description="A JSON number, exact to the digit")
    currency: str


class CostsResult(BaseModel):
    object: Literal["organization.costs.result"]
    amount: CostAmount
    line_item: str | None
    project_id: str | None
    api_key_id: str | None
    quantity: float | None
    quantity_unit: str | None


@functools.cache
def cost_rpc() -> tuple[str, Any] | None:
    """(method path, prices_pb2) of CostService.GetCosts, or None on a server built without it."""
    try:
        prices_pb2 = importlib.import_module("metering.v1.prices_pb2")
    except ImportError:
        return None
    service = prices_pb2.DESCRIPTOR.services_by_name.get("CostService")
    if service is None or "GetCosts" not in service.methods_by_name:
        return None
    return f"/{service.full_name}/GetCosts", prices_pb2


def result(r: Any) -> dict[str, Any]:
    """A CostResult as OpenAI's costs result; money and quantities exact JSON numbers."""
    return {
        "object": RESULT,
        "amount": {"value": decimal.Decimal(r.amount.value), "currency": r.amount.currency},
        "line_item": r.line_item if r.HasField("line_item") else None,
        "project_id": r.project_id if r.HasField("project_id") else None,
        "api_key_id": r.api_key_id if r.HasField("api_key_id") else None,
        "quantity": decimal.Decimal(r.quantity) if r.HasField("quantity") else None,
        "quantity_unit": r.quantity_unit or None,
    }


@documented(Doc(SUMMARY, tags=(TAG,), query=CostsQuery, response=page_model("Costs", CostsResult),
                errors={**ERRORS, 501: ("The server has no cost RPC", ERRORS[400][1])}))
@renders_errors(render_error)
async def costs(request: Request) -> Response:
    args: Any = validate(CostsQuery, query_arguments(request.query_params, ARRAYS))
    win = window(args.start_time, args.end_time, args.bucket_width, args.limit, args.page, LIMITS)
    rpc = cost_rpc()
    if rpc is None:
        raise GatewayError(grpc.StatusCode.UNIMPLEMENTED, NOT_YET)
    path, prices_pb2 = rpc
    message = prices_pb2.GetCostsRequest(
        start_time=win.start_stamp(), end_time=win.end_stamp(), bucket_width=win.width, time_zone="UTC",
        group_by=list(dict.fromkeys(args.group_by)), project_ids=list(dict.fromkeys(args.project_ids)),
        api_key_ids=list(dict.fromkeys(args.api_key_ids)), page_size=win.limit, page_token=win.token,
    )
    reply = await call(request, upstream(request).unary(path, prices_pb2.GetCostsResponse), message)
    data = [bucket(b.start_time.seconds, b.end_time.seconds, [result(r) for r in b.results]) for b in reply.buckets]
    return JSONResponse(page(data, win, reply.next_page_token))


def routes() -> list[Route]:
    return [Route(PATH, costs, methods=["GET"], name="costs")]
