"""FastAPI-shaped request parsing and errors, shared by the dialects whose original
servers were FastAPI apps (usage log, token usage):

    422 {"detail": [{"type": ..., "loc": ["body", "units_used"], "msg": ..., "input": ...}]}
    4xx/5xx {"detail": "message"}

Their endpoints use gateway.http.errors.renders_errors with a renderer built on
`render_error`; a request FastAPI would refuse raises `RequestInvalid`, a GatewayError
that `render_error` answers as the 422.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping
from typing import Any, TypeVar

import grpc
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from gateway.http.errors import GatewayError
from gateway.http.json_body import loads
from gateway.http.json_response import JSONResponse

M = TypeVar("M", bound=BaseModel)
# How deep the `input` a 422 echoes goes; deeper containers are shown as "...". A body nested 400
# deep is refused like any other, and its echo stays small enough to encode.
MAX_ECHO_DEPTH = 16


class ErrorDetail(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(BaseModel):
    detail: list[ValidationErrorItem]


class RequestInvalid(GatewayError):
    """FastAPI's RequestValidationError: rendered as 422 with the list of errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, "request validation failed", http_status=422)
        self.errors = errors


def validation_response(errors: list[dict[str, Any]]) -> Response:
    return JSONResponse({"detail": errors}, status_code=422)


def render_error(
    err: GatewayError,
    *,
    location: str = "body",
    field_names: Mapping[str, str] | None = None,
    messages: Mapping[grpc.StatusCode, str] | None = None,
) -> Response:
    """A failed call as FastAPI would answer it. With `field_names` (proto field -> dialect field),
    INVALID_ARGUMENT naming a field becomes a 422 whose `loc` is [`location`, the dialect's name for
    that field]; `messages` replaces the server's message for some codes (e.g. NOT_FOUND -> "Usage
    record not found")."""
    if isinstance(err, RequestInvalid):
        return validation_response(err.errors)
    violations = err.field_violations() if err.code == grpc.StatusCode.INVALID_ARGUMENT else []
    if violations and field_names is not None:
        return validation_response([
            {
                "type": "value_error",
                "loc": [location, field_names.get(v.field, v.field)] if v.field else [location],
                "msg": _without_prefix(v.description or err.message, v.field),
                "input": None,
            }
            for v in violations
        ])
    message = (messages or {}).get(err.code, err.message)
    headers = dict(err.headers)
    if err.http_status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse({"detail": message}, status_code=err.http_status, headers=headers)


def pydantic_errors(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    """pydantic's errors with FastAPI's `loc` prefix (`body`, `query`, `path`), minus the docs URL."""
    out = []
    for error in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "type": error["type"], "loc": [where, *error["loc"]], "msg": error["msg"],
            "input": _jsonable(error.get("input")),
        }
        if "ctx" in error:
            item["ctx"] = {k: _jsonable(v) for k, v in error["ctx"].items()}
        out.append(item)
    return out


def validated(model: type[M], data: Any, where: str) -> M:
    """`data` as `model`; RequestInvalid (`loc` under `where`) if it is not one."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise RequestInvalid(pydantic_errors(err, where)) from None


async def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body as `model`. JSON numbers with a fraction are read as exact Decimals."""
    raw = await request.body()
    try:
        data = loads(raw or b"null", exact=True)
    except ValueError as err:
        position = getattr(err, "pos", 0)
        raise RequestInvalid([{
            "type": "json_invalid", "loc": ["body", position], "msg": "JSON decode error", "input": {},
            "ctx": {"error": getattr(err, "msg", str(err))},
        }]) from None
    if data is None:
        raise RequestInvalid([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}])
    return validated(model, data, "body")


def query_values(params: QueryParams, model: type[BaseModel]) -> dict[str, Any]:
    """The query parameters naming `model`'s fields: a list-typed field takes every value, any other the last."""
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        values = params.getlist(name)
        if values:
            origin = getattr(field.annotation, "__origin__", None)
            data[name] = values if origin in (list, tuple, set) else values[-1]
    return data


def parse_query(request: Request, model: type[M]) -> M:
    """Query parameters as `model` (see query_values)."""
    return validated(model, query_values(request.query_params, model), "query")


def path_text(request: Request, name: str) -> str:
    """A path parameter as text; one holding a NUL character (which no stored id has) is a 422 naming it."""
    value: str = request.path_params[name]
    if "\x00" in value:
        raise RequestInvalid([{"type": "string_pattern_mismatch", "loc": ["path", name],
                               "msg": "String should not contain a NUL character", "input": value}])
    return value


def _without_prefix(message: str, field: str) -> str:
    """The server writes "cost: must be >= 0"; the dialect's loc already names the field."""
    return message[len(field) + 2:] if field and message.startswith(field + ": ") else message


def _jsonable(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):  # JSON has no NaN or Infinity
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return value if value.is_finite() else str(value)
    if isinstance(value, (list, tuple, dict)) and depth >= MAX_ECHO_DEPTH:
        return "..."
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return str(value)
