"""The token-usage dialect (seed 001): `GET /api/v2/usage/tokens`, on the wire as the original FastAPI app.

Query: `start_time` (inclusive) and `end_time` (exclusive) in ISO 8601 as FastAPI parses them
(`Z`, `+00:00`, `+0000`, fractions of a second, a date alone, Unix seconds; no offset means UTC;
a `+` sent unencoded, which arrives as a space, is taken as the `+` it was), by default the
current UTC day; `group_by` repeated, values `rule_type` and `task`, default `rule_type`.
Authorization: Bearer <API key or login token>.

Reply: a JSON list of `{rule_type, task_id, count: {inference, eval_prompt, eval_completion,
user_input, prompt, completion}}`, one per group; a key not grouped on is null. An empty range
(end at or before start, as in the seed's example) answers `[]`.
Errors are FastAPI's: 422 `{"detail": [{"type", "loc": ["query", ...], "msg", "input"}]}` for
invalid parameters, `{"detail": "..."}` otherwise (401 with WWW-Authenticate: Bearer).
The numbers are QueryService.GetTokenUsage's: the extra counters of those names, grouped on the
`rule_type` and `task_id` labels.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Any

from google.protobuf import timestamp_pb2
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dialects.common import call, query_method
from gateway.dialects.fastapi_style import (
    ErrorDetail,
    HTTPValidationError,
    RequestInvalid,
    query_values,
    validated,
)
from gateway.dialects.fastapi_style import render_error as fastapi_error
from gateway.http.errors import GatewayError, renders_errors
from gateway.http.json_response import JSONResponse
from gateway.http.openapi import Doc, documented
from gateway.upstream.client import upstream
from metering.v1 import admin_pb2, query_pb2

PREFIX = "/api/v2/"
TAG = "token usage"
COUNTS = ("inference", "eval_prompt", "eval_completion", "user_input", "prompt", "completion")
DAY = dt.timedelta(days=1)
# "2013-10-20T19:20:30 01:00": an offset whose "+" was not percent-encoded.
_SPACED_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)$")


class TokenUsageScope(enum.StrEnum):
    RULE_TYPE = "rule_type"
    TASK = "task"


class TokenUsageQuery(BaseModel):
    start_time: dt.datetime | None = Field(
        None,
        description="Inclusive start date in ISO8601 string format. Defaults to the beginning of the current day.")
    end_time: dt.datetime | None = Field(
        None, description="Exclusive end date in ISO8601 string format. Defaults to the end of the current day.")
    group_by: list[TokenUsageScope] = Field(
        default_factory=lambda: [TokenUsageScope.RULE_TYPE], description="Entities to group token counts on.")


class TokenCount(BaseModel):
    inference: int
    eval_prompt: int
    eval_completion: int
    user_input: int
    prompt: int
    completion: int


class TokenUsageResponse(BaseModel):
    rule_type: str | None
    task_id: str | None
    count: TokenCount


def render_error(err: GatewayError) -> Response:
    """The server's field violations become a 422 naming the query parameter."""
    return fastapi_error(err, location="query", field_names={})


def parse(request: Request) -> TokenUsageQuery:
    data = query_values(request.query_params, TokenUsageQuery)
    for name in ("start_time", "end_time"):
        if name in data:
            data[name] = _SPACED_OFFSET.sub(r"\1+\2", data[name])
    return validated(TokenUsageQuery, data, "query")


def _utc(value: dt.datetime, name: str) -> dt.datetime:
    try:
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise RequestInvalid([{"type": "value_error", "loc": ["query", name], "msg": "Value error, out of range",
                               "input": value.isoformat()}]) from None


def _timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def row(usage: query_pb2.TokenUsage) -> dict[str, Any]:
    return {
        "rule_type": usage.rule_type if usage.HasField("rule_type") else None,
        "task_id": usage.task_id if usage.HasField("task_id") else None,
        "count": {name: usage.count.get(name, 0) for name in COUNTS},
    }


@documented(Doc("Get Token Usage", description="Get token usage.", tags=(TAG,), query=TokenUsageQuery,
                response=list[TokenUsageResponse],
                errors={401: ("Missing or invalid credentials", ErrorDetail),
                        422: ("Validation Error", HTTPValidationError)}))
@renders_errors(render_error)
async def get_token_usage(request: Request) -> Response:
    query = parse(request)
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = _utc(query.start_time, "start_time") if query.start_time is not None else today
    end = _utc(query.end_time, "end_time") if query.end_time is not None else today + DAY
    if end <= start:  # nothing can be in the range; still only for a caller the server accepts
        up = upstream(request)
        await up.call(request, up.stubs.admin.WhoAmI, admin_pb2.WhoAmIRequest())
        return JSONResponse([])
    message = query_pb2.GetTokenUsageRequest(
        start_time=_timestamp(start), end_time=_timestamp(end),
        group_by=list(dict.fromkeys(scope.value for scope in query.group_by)),
    )
    reply = await call(request, query_method(request, "GetTokenUsage"), message)
    return JSONResponse([row(u) for u in reply.usage])


def routes() -> list[Route]:
    return [Route("/api/v2/usage/tokens", get_token_usage, methods=["GET"])]
