"""Bad input (issue 15, item 5 and the corpus): malformed requests across the five REST dialects, sent
over real sockets to the gateway as `python -m gateway` serves it (uvicorn on loopback, the connection
guard) in front of the test server.

The corpus (`CASES`, ~200, generated from the tables below: each dialect's parameters crossed with the
bad values of their type, whole bodies, headers and credentials in every form) holds every request to:
a 4xx (never a 5xx, never 429), in the dialect's own error shape, naming the parameter where there is
one; no driver class, SQLSTATE or traceback in what the client sees; the organization's data as it was
(events, request keys, adjustments, projects, users, keys); and no ERROR or traceback in the logs of the
gateway, the server or uvicorn. Requests the HTTP parser itself refuses (dialect "http") are answered
by uvicorn in plain text. The cases of item 5 have their own tests at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from metering.v1 import (
    admin_pb2,
    event_pb2,
    ingest_pb2,
    prices_pb2,
    prices_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    records_pb2,
)
from server.runtime.app import MeteringServer
from server.tenants.credentials import random_text
from tests.conftest import MASTER, Stubs, bearer
from tests.gateway.conftest import module_org, serve_gateway

PASSWORD = "pw-" + random_text(16)
DEEP = "[" * 400 + "]" * 400
# What a client must never see: driver or Python exception classes, SQLSTATEs, SQL, tracebacks.
LEAK = re.compile(r"[A-Z][A-Za-z]+(Error|Exception)\b|SQLSTATE|asyncpg|Traceback|\bSELECT\b|\bINSERT\b")


@dataclasses.dataclass(frozen=True)
class Case:
    dialect: str  # querylake | token_usage | usage_log | openai | native | http (refused by the HTTP parser)
    name: str
    method: str
    target: str  # path and query, as sent (percent-encoded)
    body: Any = None  # bytes as they are, anything else as JSON; "$KEY" / "$EVENT" filled in when sent
    status: tuple[int, ...] = (400,)
    param: str | None = None  # what the error must name
    auth: str | bytes | None = "admin"  # a credential of the world, a raw Authorization value, or none
    headers: tuple[tuple[str, bytes], ...] = ()


# --- the tables -------------------------------------------------------------------------------

STRINGS: list[tuple[str, Any]] = [("nul", "a\u0000b"), ("lone-surrogate", "\ud800"), ("number", 7), ("null", None),
                                  ("list", ["a"]), ("object", {"a": 1}), ("deep", json.loads(DEEP))]
INTEGERS: list[tuple[str, Any]] = [("negative", -1), ("huge", 2**64), ("fraction", 1.5), ("text", "many"),
                                   ("null", None), ("list", [1]), ("inf", "#1e400#")]  # "#...#": a bare literal
RAW_BODIES: list[tuple[str, bytes]] = [("not-json", b"{"), ("bad-utf8", b'{"a": "\xff\xfe"}'),
                                       ("nan", b'{"a": NaN}'), ("deep", DEEP.encode()), ("array", b"[1]")]
QUERY_VALUES: list[tuple[str, str]] = [("nul", "%00"), ("word", "soon"), ("nan", "NaN"), ("huge", "9" * 40),
                                       ("bad-utf8", "%FF%FE")]
BAD_AUTH: list[tuple[str, bytes | None]] = [
    ("none", None), ("empty", b""), ("scheme-only", b"Bearer"), ("blank", b"Bearer   "),
    ("basic", b"Basic dXNlcjpwdw=="),
    ("garbage", b"Bearer mk_garbage_0000"), ("latin1", b"Bearer caf\xe9"), ("bad-utf8", b"Bearer \xff\xfe"),
    ("oversized", b"Bearer " + b"k" * 17000), ("revoked", b"Bearer $REVOKED"), ("two-words", b"Bearer a b"),
]


def querylake() -> Iterator[Case]:
    base = {"window": "day", "start_timestamp": 0, "auth": {"api_key": "$KEY"}}
    path = "/api/get_usage_tally"
    for name, value in [*STRINGS[:6], ("unknown", "week")]:
        yield Case("querylake", f"window-{name}", "POST", path, {**base, "window": value}, param="window")
    for field, values in (("start_timestamp", [*INTEGERS[1:], ("before-year-1", -62135596801)]),
                          ("end_timestamp", [INTEGERS[1], INTEGERS[3], ("before-year-1", -62135596801)])):
        for name, value in values:
            yield Case("querylake", f"{field}-{name}", "POST", path, {**base, field: value}, param=field)
    for name, auth in [("empty-key", {"api_key": ""}), ("nul-key", {"api_key": "\u0000"}), ("number", 5),
                       ("oversized-key", {"api_key": "k" * 17000}), ("garbage", "garbage"), ("null", None),
                       ("list", []), ("deep", json.loads(DEEP)), ("wrong-password", {"username": "n", "password": "x"}),
                       ("revoked", {"api_key": "$REVOKED"})]:
        yield Case("querylake", f"auth-{name}", "POST", path, {**base, "auth": auth}, (401,), auth=None)
    yield Case("querylake", "auth-nul-username", "POST", path,
               {**base, "auth": {"username": "\u0000", "password": "x"}}, param="username", auth=None)
    for name, raw in RAW_BODIES:
        yield Case("querylake", f"body-{name}", "POST", path, raw, auth=None)
    for name, value in [("nul", "%00"), ("not-json", "%7B"), ("array", "%5B%5D"), ("deep", "%5B" * 400 + "%5D" * 400)]:
        yield Case("querylake", f"parameters-{name}", "GET", f"{path}?parameters={value}", param="parameters",
                   auth=None)
    yield Case("querylake", "login-nul-username", "POST", "/api/login",
               {"auth": {"username": "\u0000", "password": "x"}}, param="username", auth=None)
    yield Case("querylake", "login-not-an-object", "POST", "/api/login", {"auth": "x"}, (401,), auth=None)
    yield Case("querylake", "method", "PUT", path, base, (405,), auth=None)


def token_usage() -> Iterator[Case]:
    path = "/api/v2/usage/tokens"
    for field, values in (("start_time", [*QUERY_VALUES, ("month-13", "2024-13-01"), ("year-0", "0000-01-01")]),
                          ("end_time", QUERY_VALUES[:2] + [("month-13", "2024-13-01")])):
        for name, value in values:
            yield Case("token_usage", f"{field}-{name}", "GET", f"{path}?{field}={value}", status=(422,), param=field)
    for name, value in [("nul", "%00"), ("unknown", "model"), ("bad-utf8", "%FF")]:
        yield Case("token_usage", f"group_by-{name}", "GET", f"{path}?group_by={value}", status=(422,),
                   param="group_by")
    for name, raw in BAD_AUTH[::2]:
        yield Case("token_usage", f"auth-{name}", "GET", path, status=(401,), auth=raw)


def usage_log() -> Iterator[Case]:
    base = {"api_name": "bad", "endpoint": "/x", "units_used": 1, "cost_usd": 0.5}
    strings = dict([*STRINGS, ("long", "x" * 257)])
    for field, names in (("api_name", list(strings)), ("endpoint", ["nul", "number", "long"]),
                         ("api_key_used", ["nul", "lone-surrogate", "long"])):
        for name in names:
            yield Case("usage_log", f"post-{field}-{name}", "POST", "/usage", {**base, field: strings[name]}, (422,),
                       field)
    for field in ("units_used", "cost_usd"):
        for name, value in [*INTEGERS, ("exponent", "#1e999999999#"), ("tiny", "#1e-999999999#")]:
            if field != "cost_usd" or name not in ("fraction", "text", "huge"):
                yield Case("usage_log", f"post-{field}-{name}", "POST", "/usage", {**base, field: value}, (422,), field)
    yield Case("usage_log", "post-cost_usd-digits", "POST", "/usage", {**base, "cost_usd": "1e30"}, (422,), "cost_usd")
    for name, raw in RAW_BODIES:
        yield Case("usage_log", f"post-body-{name}", "POST", "/usage", raw, (422,), "body")
    for name, value in [("deep", json.loads(DEEP)), ("nul", "\u0000"), ("negative", -1), ("empty", None)]:
        patch = {} if value is None else {"units_used" if name == "negative" else "api_name": value}
        yield Case("usage_log", f"put-{name}", "PUT", "/usage/$EVENT", patch, (422,), "body")
    for field, values in (("skip", ["-1", str(2**31), "x", "%00"]), ("limit", ["-1", "1001", "NaN", "1e400"])):
        for value in values:
            yield Case("usage_log", f"list-{field}-{value[:8]}", "GET", f"/usage?{field}={value}", status=(422,),
                       param=field)
    for method, path, param in (("GET", "/usage/user/%00", "user_id"), ("GET", "/usage/%00", "usage_id"),
                                ("PUT", "/usage/%00", "usage_id"), ("DELETE", "/usage/a%00b", "usage_id")):
        body = base if method == "PUT" else None
        yield Case("usage_log", f"path-{method}-{param}", method, path, body, (422,), param)
    yield Case("usage_log", "get-not-an-id", "GET", "/usage/not-an-id", status=(404,))
    for name, credential in BAD_AUTH[1::2]:
        yield Case("usage_log", f"auth-{name}", "GET", "/usage", status=(401,), auth=credential)
    yield Case("usage_log", "member-puts", "PUT", "/usage/$EVENT", {"units_used": 2}, (403,), auth="member")


def openai() -> Iterator[Case]:
    usage = "/v1/organization/usage/completions?start_time=0"
    for name, value in [*QUERY_VALUES, ("negative", "-1"), ("fraction", "1.5")]:
        yield Case("openai", f"start_time-{name}", "GET", f"/v1/organization/usage/embeddings?start_time={value}",
                   param="start_time")
    yield Case("openai", "start_time-missing", "GET", "/v1/organization/usage/embeddings", param="start_time")
    yield Case("openai", "end_time-before-start", "GET", f"{usage[:-1]}5&end_time=4", param="end_time")
    for field, values in (("end_time", ["%00", "x"]), ("bucket_width", ["2d", "%00"]),
                          ("limit", ["0", "-1", "100000", "NaN"]), ("page", ["garbage", "%00"]),
                          ("group_by", ["bogus", "%00"]), ("batch", ["maybe"])):
        for value in values:
            yield Case("openai", f"{field}-{value[:8]}", "GET", f"{usage}&{field}={value}", param=field)
    for field in ("models", "project_ids", "user_ids", "api_key_ids"):
        for value in ("%00", "ok,a%00b"):
            yield Case("openai", f"{field}-{value}", "GET", f"{usage}&{field}={value}", param=field)
    yield Case("openai", "unknown-parameter", "GET", f"{usage}&colour=red", param="colour")
    yield Case("openai", "scalar-as-array", "GET", "/v1/organization/usage/moderations?start_time[]=0",
               param="start_time")
    images = "/v1/organization/usage/images?start_time=0"
    yield Case("openai", "images-sources", "GET", f"{images}&sources=x", param="sources")
    yield Case("openai", "images-sizes", "GET", f"{images}&sizes=%00", param="sizes")
    for field, value in (("group_by", "bogus"), ("limit", "181"), ("bucket_width", "1h"), ("project_ids", "%00"),
                         ("api_key_ids", "a%00"), ("line_items", "x"), ("start_time", "%00")):
        yield Case("openai", f"costs-{field}", "GET", f"/v1/organization/costs?start_time=0&{field}={value}",
                   param=field)
    for name, raw in BAD_AUTH:
        yield Case("openai", f"auth-{name}", "GET", usage, status=(401,), auth=raw)


def native() -> Iterator[Case]:
    event = {"kind": "completions", "model": "m", "input_tokens": 1}
    for field, values in (("kind", STRINGS[:3]), ("model", STRINGS[:3]), ("input_tokens", INTEGERS[:4] + INTEGERS[6:]),
                          ("cost", [("nan", "NaN"), ("negative", "-1"), ("word", "cheap")]),
                          ("timestamp", [("word", "yesterday"), ("year-1", "0001-01-01T00:00:00Z")]),
                          ("labels", [("nul-key", {"\u0000": "x"}), ("nul-value", {"k": "\u0000"}),
                                      ("deep", {"k": json.loads(DEEP)})])):
        for name, value in values:
            yield Case("native", f"event-{field}-{name}", "POST", "/v1/events", {**event, field: value}, param=field)
    yield Case("native", "event-unknown-field", "POST", "/v1/events", {**event, "bogus": 1}, param="bogus")
    for name, raw in RAW_BODIES:
        yield Case("native", f"body-{name}", "POST", "/v1/events", raw)
    query = {"start_time": "2024-01-01T00:00:00Z"}
    for name, extra, param in (
        ("filter-nul", {"filters": [{"field": "model", "values": ["\u0000"]}]}, "model"),
        ("filter-field", {"filters": [{"field": "bogus", "values": ["x"]}]}, "filters.field"),
        ("filter-field-nul", {"filters": [{"field": "\u0000", "values": ["x"]}]}, "filters.field"),
        ("group_by", {"group_by": ["bogus"]}, "group_by"), ("width", {"width": "2d"}, "width"),
        ("time_zone-path", {"time_zone": "../../etc/passwd"}, "time_zone"),
        ("time_zone-nul", {"time_zone": "UTC\u0000"}, "time_zone"), ("start-word", {"start_time": "x"}, "start_time"),
        ("page_size", {"page_size": -1}, "page_size"), ("page_size-huge", {"page_size": 2**40}, "page_size"),
        ("metrics", {"metrics": ["bogus"]}, "metrics"), ("page_token", {"page_token": "\u0000"}, "page_token"),
    ):
        yield Case("native", f"query-{name}", "POST", "/v1/usage:query", {**query, **extra}, param=param)
    for param, value in (("models", "%00"), ("kinds", "a%00"), ("project_ids", "%00"), ("page_size", "-5"),
                         ("page_size", "abc"), ("page_token", "zz"), ("start_time", "garbage"),
                         ("include_voided", "maybe")):
        yield Case("native", f"list-{param}-{value}", "GET", f"/v1/events?{param}={value}", param=param)
    for name, method, path, body, param in (
        ("login-nul", "POST", "/v1/login", {"username": "\u0000", "password": "x"}, "username"),
        ("project-org-nul", "POST", "/v1/projects", {"organization": "\u0000", "name": "p"}, "organization"),
        ("key-project-nul", "POST", "/v1/api_keys", {"project_id": "\u0000"}, "project_id"),
        ("key-user-nul", "POST", "/v1/api_keys", {"user_id": "a\u0000"}, "user_id"),
        ("key-name-nul", "POST", "/v1/api_keys", {"name": "\u0000"}, "name"),
        ("user-nul", "POST", "/v1/users", {"username": "\u0000", "password": PASSWORD}, "username"),
        ("revoke-nul", "POST", "/v1/api_keys/%00:revoke", {}, "api_key_id"),
        ("client-nul", "GET", "/v1/clients/%00/usage", None, "client_id"),
        ("void-reason-nul", "POST", "/v1/events/$EVENT:void", {"reason": "\u0000"}, "reason"),
    ):
        yield Case("native", name, method, path, body, param=param)
    yield Case("native", "event-id-nul", "GET", "/v1/events/%00", status=(404,))
    for name, credential in BAD_AUTH:
        yield Case("native", f"auth-{name}", "GET", "/v1/whoami", status=(401,), auth=credential)
    yield Case("native", "metadata-oversized", "GET", "/v1/whoami", status=(431,),
               headers=(("grpc-metadata-note", b"n" * 7000),))


def transport() -> Iterator[Case]:
    """Requests uvicorn's parser refuses before the gateway sees them: answered in plain text."""
    for name, headers in (("nul-header", (("x-note", b"a\x00b"),)), ("control-header", (("x-note", b"a\x01b"),)),
                          ("huge-header", (("x-note", b"n" * 70000),)), ("nul-auth", (("authorization", b"\x00"),))):
        yield Case("http", name, "GET", "/v1/whoami", status=(400, 431), headers=headers, auth=None)
    for name, target in (("space-in-path", "/v1/who ami"), ("no-slash", "v1/whoami"), ("nul-path", "/v1/\x00")):
        yield Case("http", name, "GET", target, auth=None)
    yield Case("http", "bad-method", "GE(T", "/v1/whoami", auth=None)
    for dialect, path in (("querylake", "/api/get_usage_tally"), ("usage_log", "/usage"), ("native", "/v1/events")):
        yield Case(dialect, "body-over-16MiB", "POST", path, status=(413,),
                   headers=(("content-length", str(16 * 1024 * 1024 + 1).encode()),))


CASES = [*querylake(), *token_usage(), *usage_log(), *openai(), *native(), *transport()]


# --- the world and the wire -------------------------------------------------------------------

@dataclasses.dataclass
class World:
    base: str
    org_id: int  # organizations.org_id
    credentials: dict[str, str]  # admin, member, revoked
    event_id: str


@pytest.fixture(scope="module")
async def world(server: MeteringServer, stubs: Stubs, db: asyncpg.Pool) -> AsyncIterator[World]:
    org = await module_org(stubs, "bad")
    credentials = {"org_admin": org.admin_key}
    for role, name in ((admin_pb2.ROLE_ADMIN, "admin"), (admin_pb2.ROLE_MEMBER, "member")):
        user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
            organization=org.organization_id, username=f"bad-{name}-{random_text(8).lower()}", password=PASSWORD,
            role=role), metadata=MASTER)
        credentials[name] = (await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
            organization=org.organization_id, user_id=user.user_id), metadata=MASTER)).key
    revoked = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(organization=org.organization_id),
                                             metadata=MASTER)
    await stubs.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(
        organization=org.organization_id, api_key_id=revoked.api_key.api_key_id), metadata=MASTER)
    credentials["revoked"] = revoked.key
    reply = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        kind="api_call", api_name="seed", units_used=1)), metadata=bearer(credentials["admin"]))
    org_id = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    async with serve_gateway(server) as base:
        yield World(base, org_id, credentials, reply.event_id)


async def snapshot(db: asyncpg.Pool, org_id: int) -> tuple[Any, ...]:
    row = await db.fetchrow("""
        select (select count(*) from events where org_id = $1), (select max(updated_at) from events where org_id = $1),
               (select count(*) from request_keys where org_id = $1),
               (select count(*) from event_adjustments where org_id = $1),
               (select count(*) from projects where org_id = $1), (select count(*) from users where org_id = $1),
               (select count(*) from api_keys where org_id = $1), (select count(*) from organizations)""", org_id)
    assert row is not None
    return tuple(row)


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        for name, secret in world.credentials.items():
            value = value.replace(f"${name.upper()}", secret)
        return value.replace("$KEY", world.credentials["admin"]).replace("$EVENT", world.event_id)
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


def raw_request(case: Case, world: World) -> bytes:
    body = b"" if case.body is None else case.body if isinstance(case.body, bytes) else re.sub(
        r'"#([^"#]*)#"', r"\1", json.dumps(_fill(case.body, world))).encode()
    lines = [f"{case.method} {_fill(case.target, world)} HTTP/1.1".encode(), b"Host: gateway", b"Connection: close"]
    if isinstance(case.auth, str):
        lines.append(f"Authorization: Bearer {world.credentials[case.auth]}".encode())
    elif isinstance(case.auth, bytes):
        lines.append(b"Authorization: " + _fill(case.auth.decode("latin-1"), world).encode("latin-1"))
    lines += [name.encode() + b": " + value for name, value in case.headers]
    if not any(name == "content-length" for name, _ in case.headers):
        lines.append(f"Content-Length: {len(body)}".encode())
        if case.body is not None:
            lines.append(b"Content-Type: application/json")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def send(base: str, raw: bytes) -> Reply:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        async with asyncio.timeout(10):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in header_lines)}
    return Reply(int(status_line.split(" ")[1]), headers, body.decode("utf-8", "replace"))


# --- the shapes -------------------------------------------------------------------------------

def named(param: str, *texts: str) -> bool:
    return any(param in text for text in texts)


def check_shape(case: Case, reply: Reply) -> None:
    """The dialect's error shape, naming `case.param`."""
    if case.dialect == "http":
        assert reply.headers.get("content-type", "").startswith("text/plain"), reply.text
        return
    body = reply.json()
    param = case.param
    if case.dialect == "querylake":
        assert set(body) == {"success", "error"} and body["success"] is False and isinstance(body["error"], str)
        assert param is None or named(param, body["error"]), body
    elif case.dialect in ("token_usage", "usage_log"):
        assert set(body) == {"detail"}, body
        if reply.status == 422:
            assert all({"loc", "msg", "type"} <= set(item) for item in body["detail"]), body
            locs = [str(part) for item in body["detail"] for part in item["loc"]]
            assert param is None or param in locs or named(param, *(i["msg"] for i in body["detail"])), body
        else:
            assert isinstance(body["detail"], str), body
        if reply.status == 401:
            assert reply.headers.get("www-authenticate") == "Bearer"
    elif case.dialect == "openai":
        error = body["error"]
        assert set(body) == {"error"} and set(error) == {"message", "type", "param", "code"}, body
        assert error["type"] == "invalid_request_error" and isinstance(error["message"], str)
        assert param is None or error["param"] == param or named(param, error["message"]), body
        if reply.status == 401:
            assert error["code"] == "invalid_api_key"
    elif case.dialect == "native":
        assert set(body) == {"code", "message", "details"} and isinstance(body["code"], int), body
        fields = [v.get("field", "") for d in body["details"] for v in d.get("field_violations", [])]
        assert param is None or named(param, body["message"], *fields), body


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The ERROR records and tracebacks logged so far in the test, by anything (gateway, server, uvicorn)."""
    caplog.set_level(logging.WARNING)
    return lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def _id(case: Case) -> str:
    return f"{case.dialect}-{case.name}"


def test_the_corpus_is_the_size_asked_for() -> None:
    assert 200 <= len(CASES) <= 260
    assert len({_id(c) for c in CASES}) == len(CASES)
    assert {c.dialect for c in CASES} == {"querylake", "token_usage", "usage_log", "openai", "native", "http"}


@pytest.mark.parametrize("case", CASES, ids=_id)
async def test_bad_input(case: Case, world: World, db: asyncpg.Pool, logged: Callable[[], list[str]]) -> None:
    before = await snapshot(db, world.org_id)
    reply = await send(world.base, raw_request(case, world))
    assert reply.status in case.status, (reply.status, reply.text[:400])
    assert 400 <= reply.status < 500 and reply.status != 429
    assert not LEAK.search(reply.text), reply.text[:400]
    check_shape(case, reply)
    assert await snapshot(db, world.org_id) == before
    await asyncio.sleep(0)  # anything the request logs after its reply
    assert logged() == []


# --- issue 15, item 5, case by case (the NUL, oversized-credential and nesting cases of the issue are
# also in the corpus: usage_log-path-GET-user_id, openai-models-%00, openai-project_ids-%00,
# native-query-filter-nul, *-auth-oversized, querylake-auth-oversized-key, usage_log-post-*-deep) ---

async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> Reply:
    """One request and its response on a keep-alive connection."""
    writer.write(raw)
    async with asyncio.timeout(10):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.strip().split("\r\n")
        headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
        body = await reader.readexactly(int(headers["content-length"]))
    return Reply(int(status_line.split(" ")[1]), headers, body.decode())


@pytest.mark.parametrize("method, path", [("POST", "/usage"), ("PUT", "/usage/$EVENT")])
async def test_json_nested_400_deep_is_a_422_on_a_connection_that_stays_open(
    method: str, path: str, world: World, db: asyncpg.Pool, logged: Callable[[], list[str]],
) -> None:
    host, port = world.base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    before = await snapshot(db, world.org_id)
    try:
        for body in (DEEP.encode(), json.dumps({"api_name": json.loads(DEEP)}).encode()):
            case = Case("usage_log", "deep", method, path, body, auth="admin")
            reply = await exchange(reader, writer, raw_request(case, world).replace(b"Connection: close", b"X: y"))
            assert reply.status == 422 and reply.headers.get("connection") != "close"
            assert reply.json()["detail"][0]["loc"][0] == "body"
        listed = await exchange(reader, writer, raw_request(Case("usage_log", "list", "GET", "/usage"), world))
        assert listed.status == 200  # the same connection, still serving
    finally:
        writer.close()
    assert await snapshot(db, world.org_id) == before
    assert logged() == []


def _violations(err: grpc.aio.AioRpcError) -> list[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            found: list[str] = []
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    found.extend(v.field for v in bad.field_violations)
            return found
    return []


SERVER_NUL_CASES: list[tuple[str, str, Any, str]] = [
    # (service, method, request, the field named)
    ("query", "QueryUsage", query_pb2.QueryUsageRequest(
        filters=[query_pb2.Filter(field="model", values=["ok", "a\x00"])]), "filters.values"),
    ("query", "GetClientUsage", query_pb2.GetClientUsageRequest(client_id="\x00"), "filters.values"),
    ("records", "ListEvents", records_pb2.ListEventsRequest(user_ids=["\x00"]), "user_ids"),
    ("records", "ListEvents", records_pb2.ListEventsRequest(models=["m", "\x00"]), "models"),
    ("records", "GetEvent", records_pb2.GetEventRequest(request_id="r\x00"), "request_id"),
    ("records", "GetEventHistory", records_pb2.GetEventHistoryRequest(request_id="r\x00"), "request_id"),
    ("records", "VoidEvent", records_pb2.VoidEventRequest(event_id="$EVENT", reason="\x00"), "reason"),
    ("records", "UpdateEvent", records_pb2.UpdateEventRequest(
        event=event_pb2.UsageEvent(event_id="$EVENT", units_used=3), reason="\x00"), "reason"),
    ("admin", "Login", admin_pb2.LoginRequest(username="\x00", password="x"), "username"),
    ("admin", "ListProjects", admin_pb2.ListProjectsRequest(organization="\x00"), "organization"),
    ("admin", "CreateApiKey", admin_pb2.CreateApiKeyRequest(project_id="\x00"), "project_id"),
    ("admin", "CreateApiKey", admin_pb2.CreateApiKeyRequest(user_id="\x00"), "user_id"),
    ("admin", "CreateApiKey", admin_pb2.CreateApiKeyRequest(name="\x00"), "name"),
    ("admin", "RevokeApiKey", admin_pb2.RevokeApiKeyRequest(api_key_id="\x00"), "api_key_id"),
    ("prices", "ListPriceVersions", prices_pb2.ListPriceVersionsRequest(model="\x00"), "model"),
    ("prices", "ListPriceVersions", prices_pb2.ListPriceVersionsRequest(provider="p\x00"), "provider"),
    ("prices", "PreviewRepricing", prices_pb2.PreviewRepricingRequest(models=["m", "\x00"]), "models"),
    ("prices", "PreviewRepricing", prices_pb2.PreviewRepricingRequest(providers=["\x00"]), "providers"),
    ("prices", "ListUnpricedEvents", prices_pb2.ListUnpricedEventsRequest(models=["\x00"]), "models"),
    ("costs", "GetCosts", prices_pb2.GetCostsRequest(models=["\x00"]), "models"),
]


@pytest.mark.parametrize("service, method, request_, field", SERVER_NUL_CASES,
                         ids=[f"{c[1]}-{c[3]}" for c in SERVER_NUL_CASES])
async def test_the_server_refuses_nul_before_any_sql(
    service: str, method: str, request_: Any, field: str, world: World, channel: grpc.aio.Channel,
    stubs: Stubs, db: asyncpg.Pool, logged: Callable[[], list[str]],
) -> None:
    """Straight over gRPC: INVALID_ARGUMENT naming the field, in words (no driver class, no SQLSTATE)."""
    message = type(request_)()
    message.CopyFrom(request_)
    for name in ("event_id",):
        if getattr(message, name, None) == "$EVENT":
            setattr(message, name, world.event_id)
    if message.DESCRIPTOR.name == "UpdateEventRequest":
        message.event.event_id = world.event_id
        message.update_mask.paths.append("units_used")
    if message.DESCRIPTOR.name in ("QueryUsageRequest", "PreviewRepricingRequest", "ListUnpricedEventsRequest",
                                   "GetCostsRequest"):
        message.start_time.seconds = 946684800
    stub = {"query": query_pb2_grpc.QueryServiceStub(channel), "records": stubs.records, "admin": stubs.admin,
            "prices": prices_pb2_grpc.PriceServiceStub(channel),
            "costs": prices_pb2_grpc.CostServiceStub(channel)}[service]
    before = await snapshot(db, world.org_id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(message, metadata=bearer(world.credentials["org_admin"]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert field in _violations(caught.value) and "NUL" in (caught.value.details() or "")
    assert not LEAK.search(caught.value.details() or "")
    assert await snapshot(db, world.org_id) == before
    assert logged() == []
