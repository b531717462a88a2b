"""The OpenAI organization usage and costs dialect (seed 004): what its endpoints share.

Parameters come in the query string. Arrays arrive as `k=a&k=b`, `k[]=a&k[]=b` (also
percent-encoded, `k%5B%5D=a`, which the official SDK sends), `k[0]=a`, or `k=a,b`, in any mix.
Each endpoint validates them against its own pydantic model, which also documents them in
/openapi.json. Unknown parameters are refused (400), so a misspelled filter never silently
widens a report. An empty scalar (`end_time=`) counts as absent.

`start_time` (Unix seconds, inclusive) is required; `end_time` (exclusive) defaults to now,
rounded up to a whole second; `limit` counts buckets, its default and maximum depend on
`bucket_width`. Pages are `{"object": "page", "data": [...], "has_more", "next_page"}` of
buckets `{"object": "bucket", "start_time", "end_time", "results"}` (UTC-aligned, the first and
last clipped to the range, empty ones with `results: []`).

`next_page` is opaque: the server's page token plus the end of the range as the first page
resolved it, so a defaulted end ("now") stays put while a client pages. Pages are contiguous:
each starts where the previous one ended, no bucket is skipped or repeated.

Errors: `{"error": {"message", "type", "param", "code"}}`, HTTP status from the gRPC -> HTTP table.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Collection, Mapping
from typing import Any, Literal, TypeVar

import grpc
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from pydantic import BaseModel, Field, ValidationError, create_model
from starlette.datastructures import QueryParams
from starlette.responses import Response

from gateway.http.errors import GatewayError
from gateway.http.json_response import JSONResponse
from metering import page_token as tokens

PREFIX = "/v1/organization/"
TAG = "OpenAI usage"
MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the last second a Timestamp holds
# bucket_width -> (default limit, max limit)
USAGE_LIMITS: Mapping[str, tuple[int, int]] = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
# The server's request fields, as this dialect names them.
PARAM_OF_FIELD = {"start_time": "start_time", "end_time": "end_time", "width": "bucket_width",
                  "page_size": "limit", "page_token": "page", "group_by": "group_by"}
_INDEXED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(\d*)\]$")
_SPACED_COMMA = re.compile(r",(?! )")
M = TypeVar("M", bound=BaseModel)
BucketObject = Literal["bucket"]
PageObject = Literal["page"]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS: dict[int, tuple[str, Any]] = {
    400: ("Invalid parameters", ErrorResponse),
    401: ("Missing or invalid API key", ErrorResponse),
}


def bad_param(param: str | None, message: str) -> GatewayError:
    """A 400 naming the parameter (as a BadRequest field violation, like the server's own)."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=param or "", description=message, reason="INVALID_VALUE")
    ]))
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, message, [detail])


def _type_and_code(status: int) -> tuple[str, str | None]:
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status == 429:
        return "requests", "rate_limit_exceeded"
    if status == 501:
        return "server_error", "not_implemented"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


def render_error(err: GatewayError) -> Response:
    param: str | None = None
    message = err.message
    violations = err.field_violations()
    if violations and violations[0].field:
        field = violations[0].field
        param = PARAM_OF_FIELD.get(field, None if field.startswith("filters") else field)
        if message.startswith(field + ": "):  # the server's "page_token: malformed page token"
            message = f"Invalid value for '{param or field}': {message[len(field) + 2:]}."
    kind, code = _type_and_code(err.http_status)
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=err.http_status, headers=err.headers)


def query_arguments(params: QueryParams, arrays: Collection[str], spaced: Collection[str] = ()) -> dict[str, Any]:
    """The query string by bare parameter name: arrays as lists in any of the encodings, other
    parameters as their last value. In the arrays of `spaced`, whose values hold ", " (line items:
    "gpt-4o, input"), a comma splits values only where no space follows it."""
    data: dict[str, Any] = {}
    for key, value in params.multi_items():
        indexed = _INDEXED.match(key)
        name = indexed.group(1) if indexed else key
        if "\x00" in value:  # no stored value or cursor has one (Postgres text cannot hold it)
            raise bad_param(name, f"Invalid value for '{name}': it contains a NUL character.")
        if name in arrays:
            parts = _SPACED_COMMA.split(value) if name in spaced else value.split(",")
            data.setdefault(name, []).extend(part for part in parts if part)
        elif indexed:
            raise bad_param(name, f"Invalid value for '{name}': it is not an array.")
        elif value:
            data[name] = value
        else:
            data.pop(name, None)
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        param = str(first["loc"][0]) if first["loc"] else None
        if first["type"] == "missing":
            message = f"Missing required parameter: '{param}'."
        elif first["type"] == "extra_forbidden":
            message = f"Unrecognized request argument supplied: {param}"
        else:
            message = f"Invalid value for '{param}': {first['msg']}."
        raise bad_param(param, message) from None


def range_fields(widths: tuple[str, ...]) -> dict[str, Any]:
    """The parameters every endpoint has, as create_model field definitions."""
    width_type: Any = Literal[widths]
    return {
        "start_time": (int, Field(ge=0, le=MAX_SECONDS,
                                  description="Start time (Unix seconds) of the query time range, inclusive.")),
        "end_time": (int | None, Field(None, ge=0, le=MAX_SECONDS,
                                       description="End time (Unix seconds) of the query time range, exclusive.")),
        "bucket_width": (width_type, Field("1d", description="Width of each time bucket in response.")),
        "limit": (int | None, Field(None, description="The number of buckets to return.")),
        "page": (str | None, Field(None, description="The `next_page` cursor of the previous response.")),
    }


def page_model(name: str, result: type[BaseModel]) -> type[BaseModel]:
    """`{name}Page` of `{name}Bucket`s holding `result`s, for /openapi.json."""
    # The models are made at run time: mypy cannot take a variable as a type (valid-type).
    bucket = create_model(
        f"{name}Bucket", object=(BucketObject, ...), start_time=(int, ...), end_time=(int, ...),
        results=(list[result], ...),  # type: ignore[valid-type]
    )
    return create_model(
        f"{name}Page", object=(PageObject, ...), data=(list[bucket], ...),  # type: ignore[valid-type]
        has_more=(bool, ...), next_page=(str | None, ...),
    )


@dataclasses.dataclass(frozen=True)
class Window:
    """The range of one page request: [start, end) in Unix seconds, `limit` buckets of `width`
    from `token` (the server's page token; empty for the first page)."""

    start: int
    end: int
    width: str
    limit: int
    token: str

    def start_stamp(self) -> timestamp_pb2.Timestamp:
        return timestamp_pb2.Timestamp(seconds=self.start)

    def end_stamp(self) -> timestamp_pb2.Timestamp:
        return timestamp_pb2.Timestamp(seconds=self.end)


def window(start_time: int, end_time: int | None, width: str, limit: int | None, page: str | None,
           limits: Mapping[str, tuple[int, int]]) -> Window:
    default, maximum = limits[width]
    if limit is None:
        limit = default
    elif not 1 <= limit <= maximum:
        raise bad_param("limit", f"Invalid value for 'limit': must be between 1 and {maximum} "
                                 f"for bucket_width={width}.")
    end, token = decode_cursor(page) if page else (None, "")
    if end_time is not None:
        end = end_time
    elif end is None:
        end = math.ceil(time.time())
    if end <= start_time:
        raise bad_param("end_time", "Invalid value for 'end_time': must be after start_time.")
    return Window(start_time, end, width, limit, token)


def encode_cursor(end: int, token: str) -> str:
    """The `next_page` cursor (metering/page_token.py): not bound to a request itself, the
    server's token inside it is (a cursor sent with another request is refused by the server)."""
    return tokens.encode({"e": end, "t": token})


def decode_cursor(page: str) -> tuple[int, str]:
    try:
        fields = tokens.decode(page)
        return fields.integer("e"), fields.text("t")
    except tokens.PageTokenError:
        raise bad_param("page", "Invalid value for 'page': not a cursor this API returned.") from None


def bucket(start: int, end: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "bucket", "start_time": start, "end_time": end, "results": results}


def page(buckets: list[dict[str, Any]], window: Window, next_token: str) -> dict[str, Any]:
    return {
        "object": "page",
        "data": buckets,
        "has_more": bool(next_token),
        "next_page": encode_cursor(window.end, next_token) if next_token else None,
    }
