"""The QueryLake dialect (seed 000): per-window usage tallies, credentials inside the arguments.

    GET|POST /api/get_usage_tally  {"auth": AUTH, "window": "hour" | "day" | "month",
                                    "start_timestamp": int, "end_timestamp": int (optional, default now)}
    GET|POST /api/login            {"auth": {"username": ..., "password": ...}}  ->  the "oauth2" string

Arguments arrive as a JSON object in the body (on GET too) and/or as `?parameters=<JSON object>`;
when both are given the body wins key by key. AUTH is one of `{"api_key": "<key>"}`,
`{"username": ..., "password": ...}` (checked with AdminService.Login on every call), or the
"oauth2" string /api/login returns (an AdminService.Login token, valid for an hour).

Replies are `{"success": true, "result": ...}`; failures `{"success": false, "error": "<message>"}`
with the HTTP status of the gRPC -> HTTP table (401 bad credentials, 400 bad arguments, ...).

A tally is one (UTC window, user, API key) of QueryService.GetUsageTallies (all its pages, read
with one "now" for a defaulted end): whole windows whose start lies in [start_timestamp,
end_timestamp], only those with usage, each as
`{id, window, start_timestamp, api_key_id, user_id, organization_id, value}` with `value`
`{"llm": {model: {input_tokens, output_tokens}}, "embedding" | "rerank": {model: {tokens}}}`
(other kinds under their own name, with input_tokens and output_tokens).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import grpc
from google.protobuf import timestamp_pb2
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dialects.common import call, query_method
from gateway.http.errors import GatewayError, invalid_argument, renders_errors
from gateway.http.json_body import loads
from gateway.http.json_response import JSONResponse
from gateway.http.openapi import Doc, documented
from gateway.upstream.client import upstream
from metering.v1 import admin_pb2, query_pb2

PREFIX = "/api/"
TAG = "QueryLake"
PARAMETERS = "parameters"  # ?parameters=<JSON object>
TALLY_PAGE = 1000  # windows per GetUsageTallies call, the server's maximum
# Unix seconds the server can represent (google.protobuf.Timestamp: years 1..9999).
Seconds = Annotated[int, Field(ge=-62135596800, le=253402300799)]


class ApiKeyAuth(BaseModel):
    api_key: str


class PasswordAuth(BaseModel):
    username: str
    password: str


QueryLakeAuth = ApiKeyAuth | PasswordAuth | Annotated[str, Field(description="the oauth2 string from /api/login")]


class TallyArguments(BaseModel):
    model_config = ConfigDict(extra="ignore")

    window: Literal["hour", "day", "month"]
    start_timestamp: Seconds
    end_timestamp: Seconds | None = None


class TallyRequest(TallyArguments):
    auth: QueryLakeAuth


class LoginRequest(BaseModel):
    auth: PasswordAuth


class Tally(BaseModel):
    id: str
    window: Literal["hour", "day", "month"]
    start_timestamp: int
    api_key_id: str | None
    user_id: str | None
    organization_id: str | None
    value: dict[str, dict[str, dict[str, int]]]


class TallyReply(BaseModel):
    success: Literal[True]
    result: list[Tally]


class LoginReply(BaseModel):
    success: Literal[True]
    result: str


class Failure(BaseModel):
    success: Literal[False]
    error: str


class ParametersQuery(BaseModel):
    parameters: str | None = Field(None, description="the arguments as a JSON object, instead of (or under) a body")


def render_error(err: GatewayError) -> Response:
    return JSONResponse({"success": False, "error": err.message}, status_code=err.http_status, headers=err.headers)


ERRORS: dict[int, tuple[str, Any]] = {
    400: ("Invalid arguments", Failure),
    401: ("Missing or invalid credentials", Failure),
}


async def arguments(request: Request) -> dict[str, Any]:
    """`?parameters=` and the JSON body, merged (the body wins)."""
    merged: dict[str, Any] = {}
    raw_query = request.query_params.get(PARAMETERS)
    if raw_query:
        merged.update(_object(raw_query, f"'{PARAMETERS}'"))
    body = await request.body()
    if body.strip():
        merged.update(_object(body, "the request body"))
    return merged


def _object(raw: str | bytes, where: str) -> dict[str, Any]:
    try:
        data = loads(raw)
    except ValueError:
        raise invalid_argument("", f"{where} is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid_argument("", f"{where} must be a JSON object")
    return data


async def bearer_for(request: Request, auth: Any) -> str:
    """The credential a QueryLake `auth` stands for: an API key or login token as it is, a
    username and password exchanged for a login token."""
    if isinstance(auth, str) and auth:
        return auth
    if isinstance(auth, dict):
        if isinstance(auth.get("api_key"), str) and auth["api_key"]:
            return str(auth["api_key"])
        if isinstance(auth.get("username"), str) and isinstance(auth.get("password"), str):
            return await login(request, auth["username"], auth["password"])
    if auth is None:
        raise GatewayError(grpc.StatusCode.UNAUTHENTICATED, "auth is required")
    raise GatewayError(grpc.StatusCode.UNAUTHENTICATED,
                       'auth must be {"api_key": ...}, {"username": ..., "password": ...} or an oauth2 string')


async def login(request: Request, username: str, password: str) -> str:
    up = upstream(request)
    reply = await up.call(request, up.stubs.admin.Login,
                          admin_pb2.LoginRequest(username=username, password=password))
    return str(reply.token)


def _validated(model: type[TallyArguments], data: dict[str, Any]) -> TallyArguments:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        raise invalid_argument(field, first["msg"]) from None


def _timestamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


def tally(t: query_pb2.UsageTally) -> dict[str, Any]:
    return {
        "id": t.id,
        "window": t.window,
        "start_timestamp": t.start_time.seconds,
        "api_key_id": t.api_key_id or None,
        "user_id": t.user_id or None,
        "organization_id": t.organization_id or None,
        "value": {
            category: {model: dict(sorted(counts.counts.items())) for model, counts in sorted(c.models.items())}
            for category, c in sorted(t.value.items())
        },
    }


@documented(Doc(
    "Usage tallies per UTC window, user and API key", tags=(TAG,), body=TallyRequest, query=ParametersQuery,
    response=TallyReply, errors=ERRORS, security=False,
    description="Arguments as a JSON body (GET too) or ?parameters=<JSON>; credentials in `auth`.",
))
@renders_errors(render_error)
async def get_usage_tally(request: Request) -> Response:
    data = await arguments(request)
    args = _validated(TallyArguments, data)
    token = await bearer_for(request, data.get("auth"))
    end = args.end_timestamp if args.end_timestamp is not None else int(time.time())  # one "now" for every page
    message = query_pb2.GetUsageTalliesRequest(window=args.window, start_time=_timestamp(args.start_timestamp),
                                               end_time=_timestamp(end))
    paged = "page_token" in message.DESCRIPTOR.fields_by_name  # servers before tally pages answer in one reply
    if paged:
        message.page_size = TALLY_PAGE
    method = query_method(request, "GetUsageTallies")
    found: list[dict[str, Any]] = []
    while True:
        reply = await call(request, method, message, bearer=token)
        found.extend(tally(t) for t in reply.tallies)
        if not paged or not reply.next_page_token:
            return JSONResponse({"success": True, "result": found})
        message.page_token = reply.next_page_token


@documented(Doc(
    "Log in: username and password for the oauth2 string used as `auth`", tags=(TAG,), body=LoginRequest,
    query=ParametersQuery, response=LoginReply, errors=ERRORS, security=False,
))
@renders_errors(render_error)
async def login_route(request: Request) -> Response:
    auth = (await arguments(request)).get("auth")
    if not (isinstance(auth, dict) and isinstance(auth.get("username"), str)
            and isinstance(auth.get("password"), str)):
        raise GatewayError(grpc.StatusCode.UNAUTHENTICATED, 'auth must be {"username": ..., "password": ...}')
    return JSONResponse({"success": True, "result": await login(request, auth["username"], auth["password"])})


def routes() -> list[Route]:
    return [
        Route("/api/get_usage_tally", get_usage_tally, methods=["GET", "POST"]),
        Route("/api/login", login_route, methods=["GET", "POST"], name="querylake_login"),
    ]
