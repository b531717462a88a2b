"""`GET /v1/organization/costs` (seed 004): cost buckets of the organization, one UTC day each,
from the server's cost RPC (metering.v1.CostService/GetCosts, over the one query engine).

Parameters: `start_time` (required), `end_time`, `bucket_width` (`1d` only), `project_ids`,
`group_by` (`project_id`, `line_item`) as in the seed, plus what the official SDK sends:
`api_key_ids`, `line_items`, and `user_id`, `api_key_id`, `api_source` in `group_by`; `limit` 1..180,
default 7; `page`. Results: `{"object": "organization.costs.result", "amount": {"value": <JSON number,
exact>, "currency"}, "line_item", "project_id", "user_id", "api_key_id", "api_source", "quantity",
"quantity_unit"}`: one per combination of the grouped keys and currency; keys not grouped on, and
`quantity` / `quantity_unit` without `line_item` grouping, are null.

`api_source` is `agents_api` for usage whose events carry the label `api_source=agents_api` and
`unlabeled` for all other usage. `line_items` keeps only the costs of those exact line items
(`"<model>, <usage type>"`, e.g. `"gpt-4o, input"`): the server is asked for line items, the others
are dropped and the rest summed per requested group. A line item holds ", ", so in the comma form
(`line_items=a,b`) a comma splits values only where no space follows it.

`quantity_unit` uses OpenAI's words where one applies: `tokens`, `images`, `characters`,
`duration_seconds` (seconds), `gibibyte_hours` (storage: the price book's GB-days, 10^9 bytes for a
day, converted exactly to GiB-hours along with the quantity); and null where none does (sessions,
calls, requests, units, caller-given costs without a quantity).

A server without the cost RPC (built before metering/v1/prices.proto) is answered 501
(`not_implemented`) in the dialect's error shape, after the parameters are checked.
"""

from __future__ import annotations

import decimal
import functools
import importlib
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import grpc
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError
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
RESULT_KEYS = ("line_item", "project_id", "user_id", "api_key_id", "api_source")
ARRAYS = frozenset({"project_ids", "api_key_ids", "line_items", "group_by"})
SPACED = frozenset({"line_items"})  # their values hold ", "
SUMMARY = "Get costs details for the organization."
NOT_YET = ("GET /v1/organization/costs needs the server's cost RPC (metering.v1.CostService/GetCosts), "
           "which this server does not have")
_EXACT = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])
GIB_HOURS_PER_GB_DAY = _EXACT.divide(24 * 10**9, 2**30)  # exactly 22.351741790771484375
# The price book's units (server/pricing/rules.py) -> OpenAI's quantity_unit, with the factor that
# converts the quantity; a unit not here has no OpenAI word (quantity_unit null, quantity as it is).
UNITS: dict[str, tuple[str, decimal.Decimal]] = {
    "tokens": ("tokens", decimal.Decimal(1)), "images": ("images", decimal.Decimal(1)),
    "characters": ("characters", decimal.Decimal(1)), "seconds": ("duration_seconds", decimal.Decimal(1)),
    "gb_days": ("gibibyte_hours", GIB_HOURS_PER_GB_DAY),
}
QuantityUnit = Literal["tokens", "1000_tokens", "duration_seconds", "duration_minutes", "duration_hours",
                       "gibibyte_hours", "images", "characters"]


def _line_item(item: str) -> str:
    model, sep, usage = item.partition(", ")
    if not (sep and model.strip() and usage.strip()):
        raise PydanticCustomError("line_item", "{item} is not a line item (\"<model>, <usage type>\", e.g. "
                                  "\"gpt-4o, input\")", {"item": repr(item[:100])})
    return item


LineItem = Annotated[str, AfterValidator(_line_item)]
GroupKey = Literal["project_id", "user_id", "line_item", "api_key_id", "api_source"]
CostsQuery = create_model(
    "CostsQuery", __config__=ConfigDict(extra="forbid"),
    **range_fields(("1d",)),
    project_ids=(list[str], Field(default_factory=list, description="Return only costs for these projects.")),
    api_key_ids=(list[str], Field(default_factory=list, description="Return only costs for these API keys.")),
    line_items=(list[LineItem], Field(default_factory=list, description=(
        'Return only costs for these exact line items ("<model>, <usage type>", e.g. "gpt-4o, input").'))),
    group_by=(list[GroupKey], Field(
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
    user_id: str | None
    api_key_id: str | None
    api_source: Literal["agents_api", "unlabeled"] | None
    quantity: float | None
    quantity_unit: QuantityUnit | None


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


def quantity(r: Any) -> tuple[decimal.Decimal | None, str | None]:
    """A CostResult's quantity and quantity_unit in OpenAI's words (exact)."""
    amount = decimal.Decimal(r.quantity) if r.HasField("quantity") else None
    unit, factor = UNITS.get(r.quantity_unit, (None, decimal.Decimal(1)))
    if amount is not None and factor != 1:
        amount = _EXACT.multiply(amount, factor).normalize(_EXACT)
    return amount, unit


def result(r: Any) -> dict[str, Any]:
    """A CostResult as OpenAI's costs result; money and quantities exact JSON numbers."""
    amount, unit = quantity(r)
    out: dict[str, Any] = {"object": RESULT, "amount": {"value": decimal.Decimal(r.amount.value),
                                                        "currency": r.amount.currency}}
    out.update((key, getattr(r, key) if r.HasField(key) else None) for key in RESULT_KEYS)
    out["quantity"] = amount
    out["quantity_unit"] = unit
    return out


def only_line_items(results: Sequence[dict[str, Any]], line_items: set[str],
                    line_grouped: bool) -> list[dict[str, Any]]:
    """The results of those line items; without line_item grouping (the server grouped by it for the
    filter), summed per remaining key and currency, without quantity."""
    kept = [r for r in results if r["line_item"] in line_items]
    if line_grouped:
        return kept
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in kept:
        key = (*(r[k] for k in RESULT_KEYS if k != "line_item"), r["amount"]["currency"])
        if key in merged:
            total = merged[key]["amount"]
            total["value"] = _EXACT.add(total["value"], r["amount"]["value"])
        else:
            merged[key] = {**r, "amount": dict(r["amount"]), "line_item": None, "quantity": None,
                           "quantity_unit": None}
    return list(merged.values())


@documented(Doc(SUMMARY, tags=(TAG,), query=CostsQuery, response=page_model("Costs", CostsResult),
                errors={**ERRORS, 501: ("The server has no cost RPC", ERRORS[400][1])}))
@renders_errors(render_error)
async def costs(request: Request) -> Response:
    args: Any = validate(CostsQuery, query_arguments(request.query_params, ARRAYS, spaced=SPACED))
    win = window(args.start_time, args.end_time, args.bucket_width, args.limit, args.page, LIMITS)
    rpc = cost_rpc()
    if rpc is None:
        raise GatewayError(grpc.StatusCode.UNIMPLEMENTED, NOT_YET)
    path, prices_pb2 = rpc
    group_by = list(dict.fromkeys(args.group_by))
    line_items = set(args.line_items)
    line_grouped = "line_item" in group_by
    message = prices_pb2.GetCostsRequest(
        start_time=win.start_stamp(), end_time=win.end_stamp(), bucket_width=win.width, time_zone="UTC",
        group_by=group_by + ["line_item"] if line_items and not line_grouped else group_by,
        project_ids=list(dict.fromkeys(args.project_ids)), api_key_ids=list(dict.fromkeys(args.api_key_ids)),
        page_size=win.limit, page_token=win.token,
    )
    reply = await call(request, upstream(request).unary(path, prices_pb2.GetCostsResponse), message)
    data = []
    for b in reply.buckets:
        results = [result(r) for r in b.results]
        if line_items:
            results = only_line_items(results, line_items, line_grouped)
        data.append(bucket(b.start_time.seconds, b.end_time.seconds, results))
    return JSONResponse(page(data, win, reply.next_page_token))


def routes() -> list[Route]:
    return [Route(PATH, costs, methods=["GET"], name="costs")]
