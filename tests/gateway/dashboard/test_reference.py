"""/openapi.json (the browser test of /docs is in test_dashboard.py): the document explains
authentication, applies the bearer scheme to every operation that needs a credential (and an empty one
to those that do not), types and describes every parameter, marks start_time of the usage queries
required (from the protos' field_behavior), documents /healthz's 503, and its examples are accepted by
the live service."""

from __future__ import annotations

import httpx

from gateway.http.openapi import EXAMPLES
from tests.gateway.dashboard.conftest import Usage


async def test_the_document_explains_auth_types_every_parameter_and_marks_required(http):
    spec = (await http.get("/openapi.json")).json()
    assert "Authorization: Bearer" in spec["info"]["description"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["security"] in ([], [{"bearer": []}]), (method, path)
            if method == "get" and "{" not in path and not path.startswith("/api/"):  # QueryLake: `auth` field
                anonymous = await http.get(path)
                refused = anonymous.status_code in (401, 403)
                # a secured route refuses a call without a credential (or finds its query bad first)
                assert (refused or anonymous.status_code in (400, 422)) if op["security"] else not refused, \
                    (path, anonymous.status_code)
            for param in op.get("parameters", ()):
                assert param.get("description") and param.get("schema"), (method, path, param["name"])
                assert param["schema"].get("type") or "$ref" in param["schema"] or "anyOf" in param["schema"] \
                    or "enum" in param["schema"] or "allOf" in param["schema"], (method, path, param)
    for path in ("/v1/usage", "/v1/usage/tallies"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert params["start_time"]["required"] is True and params["end_time"]["required"] is False
    health = spec["paths"]["/healthz"]["get"]["responses"]
    assert set(health) == {"200", "503"}


async def test_the_examples_are_accepted(live_gateway, usage: Usage):
    async with httpx.AsyncClient(base_url=live_gateway) as http:
        spec = (await http.get("/openapi.json")).json()
        for (method, path), body in EXAMPLES.items():
            content = spec["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]
            assert content["example"] == body
            if path == "/v1/login":
                continue  # alice is the docs' user; a login needs her password (tests/gateway/native)
            reply = await http.request(method, path, json=body, headers=usage.admin)
            assert reply.status_code == 200, (path, reply.text)
