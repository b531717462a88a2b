"""The isolation matrix over REST: the main routes of every dialect x every kind of caller."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Stubs
from tests.security.conftest import PRINCIPALS, World
from tests.security.test_isolation import HIDDEN, _fresh_event

A, M, ME, P, OTHER = "master", "org_admin", "member", "project_key", "other_org"
ALL = {A, M, ME, P, OTHER}
UNAUTHENTICATED = {"revoked", "no_key", "malformed", "expired"}
NOW = int(time.time())
DAY = f"start_time={NOW - 2 * 86400}&end_time={NOW + 3600}"


def headers(w: World, principal: str) -> dict[str, str]:
    out = {"x-metering-organization": w.org_a} if principal == "master" else {}
    secret = w.keys[principal]
    if principal == "malformed":
        out["Authorization"] = secret
    elif secret:
        out["Authorization"] = f"Bearer {secret}"
    return out


Target = Callable[[Stubs, World], Awaitable[tuple[str, str, Any]]]


def fixed(method: str, path: str, body: Any = None) -> Target:
    async def make(stubs: Stubs, w: World) -> tuple[str, str, Any]:
        return method, path.format(**w.events, org_a=w.org_a), body

    return make


def on_fresh(method: str, path: str, body: Any = None) -> Target:
    async def make(stubs: Stubs, w: World) -> tuple[str, str, Any]:
        return method, path.format(event=await _fresh_event(stubs, w)), body

    return make


ROUTES: dict[str, tuple[Target, set[str]]] = {
    "openai usage": (fixed("GET", f"/v1/organization/usage/completions?{DAY}&group_by=project_id&group_by=model"),
                     ALL),
    "openai costs": (fixed("GET", f"/v1/organization/costs?{DAY}&group_by=line_item"), ALL),
    "token usage": (fixed("GET", "/api/v2/usage/tokens?group_by=task"), ALL),
    "usage log list": (fixed("GET", "/usage?limit=1000"), ALL),
    "usage log create": (fixed("POST", "/usage", {"api_name": "a", "endpoint": "/e", "units_used": 1,
                                                   "cost_usd": 0.5}), ALL),
    "usage log read": (fixed("GET", "/usage/{member_pa}"), {A, M, ME, P}),
    "usage log update": (on_fresh("PUT", "/usage/{event}", {"units_used": 3}), {A, M, P}),
    "usage log void": (on_fresh("DELETE", "/usage/{event}"), {A, M, P}),
    "native list events": (fixed("GET", "/v1/events?page_size=1000"), ALL),
    "native get event": (fixed("GET", "/v1/events/{member_pa}"), {A, M, ME, P}),
    "native event history": (fixed("GET", "/v1/events/{member_pa}/history"), {A, M, ME, P}),
    "native users": (fixed("GET", "/v1/users?organization={org_a}"), {A, M}),
    "native usage": (fixed("GET", "/v1/usage?width=all&group_by=model&start_time=2000-01-01T00:00:00Z"), ALL),
    "native whoami": (fixed("GET", "/v1/whoami"), ALL),
}


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_rest_matrix(route: str, principal: str, world: World, stubs: Stubs, http: httpx.AsyncClient) -> None:
    target, allowed = ROUTES[route]
    method, path, body = await target(stubs, world)
    reply = await http.request(method, path, json=body, headers=headers(world, principal))
    if principal in UNAUTHENTICATED:
        assert reply.status_code == 401, (route, principal, reply.status_code, reply.text)
        return
    if principal in allowed:
        assert reply.status_code in (200, 201), (route, principal, reply.status_code, reply.text)
    else:
        assert reply.status_code in (403, 404), (route, principal, reply.status_code, reply.text)
    for name in HIDDEN[principal]:
        assert world.markers[name] not in reply.text, (route, principal, name)
    if principal == OTHER:
        assert world.org_a not in reply.text


@pytest.mark.parametrize("principal", PRINCIPALS)
async def test_querylake_tally_matrix(principal: str, world: World, http: httpx.AsyncClient) -> None:
    """QueryLake carries its credentials in the body."""
    secret = world.keys[principal]
    auth: Any = secret if secret.startswith("mlt.") else {"api_key": secret}
    body: dict[str, Any] = {"window": "day", "start_timestamp": NOW - 2 * 86400}
    if principal not in ("no_key",):
        body["auth"] = auth if principal != "malformed" else secret
    reply = await http.post("/api/get_usage_tally", json=body, headers=headers(world, "master") if
                            principal == "master" else {})
    if principal in UNAUTHENTICATED:
        assert reply.status_code in (401, 422) and reply.json()["success"] is False, reply.text
        return
    assert reply.status_code == 200 and reply.json()["success"] is True, reply.text
    for name in HIDDEN[principal]:
        assert world.markers[name] not in reply.text
    if principal == OTHER:
        assert world.org_a not in reply.text
