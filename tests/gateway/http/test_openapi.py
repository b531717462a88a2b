import json
import re

from starlette.routing import Route

from gateway.app import create_app
from gateway.native.routes import NativeRoute


def served_routes():
    """(METHOD, path) of every route the app has."""
    found = set()
    for route in create_app("unused:1").routes:
        if isinstance(route, NativeRoute):
            found |= {(m, route.path) for m in route.methods}
        elif isinstance(route, Route):
            found |= {(m, route.path_format) for m in (route.methods or set()) - {"HEAD"}}
    return found


def refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def documented_path(path: str) -> str:
    """How the spec names a route: dotted path variables by their last name."""
    return re.sub(r"\{(?:[^{}]*\.)?([^{}.]+)\}", r"{\1}", path)


async def test_openapi_lists_every_route(http):
    reply = await http.get("/openapi.json")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    spec = json.loads(reply.text)
    assert spec["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    routes = {(method, documented_path(path)) for method, path in served_routes()}
    assert documented == routes
    assert {("POST", "/v1/events:batchRecord"), ("POST", "/v1/events/{event_id}:void"),
            ("PATCH", "/v1/events/{event_id}"), ("GET", "/usage/user/{user_id}"),
            ("DELETE", "/usage/{usage_id}"), ("GET", "/openapi.json"), ("GET", "/docs")} <= routes
    schemas = spec["components"]["schemas"]
    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    operation_ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))


async def test_native_operations_come_from_the_descriptors(http):
    spec = (await http.get("/openapi.json")).json()
    listing = spec["paths"]["/v1/events"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["kinds"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert params["start_time"]["schema"]["format"] == "date-time"
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/metering.v1.ListEventsResponse"}
    event = spec["components"]["schemas"]["metering.v1.UsageEvent"]["properties"]
    assert {k: event["input_tokens"][k] for k in ("type", "format")} == {"type": "integer", "format": "int64"}
    update = spec["paths"]["/v1/events/{event_id}"]["patch"]
    assert update["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("metering.v1.UsageEvent")
    assert "update_mask" in {p["name"] for p in update["parameters"]}
    assert spec["components"]["schemas"]["google.rpc.Status"]["properties"]["code"]["type"] == "integer"


async def test_usage_log_operations_use_the_seed_fields(http):
    spec = (await http.get("/openapi.json")).json()
    create = spec["paths"]["/usage"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/UsageCreate"}
    schemas = spec["components"]["schemas"]
    assert set(schemas["UsageCreate"]["properties"]) == {
        "api_name", "endpoint", "units_used", "cost_usd", "api_key_used"}
    assert set(schemas["UsageRecord"]["properties"]) == {
        "usage_id", "user_id", "api_name", "endpoint", "units_used", "cost_usd", "api_key_used", "status_active",
        "created_at"}
    listing = spec["paths"]["/usage"]["get"]
    assert {p["name"]: p["schema"]["maximum"] for p in listing["parameters"] if p["name"] == "limit"} == {"limit": 1000}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert "422" in listing["responses"] and "403" in spec["paths"]["/usage/user/{user_id}"]["get"]["responses"]
