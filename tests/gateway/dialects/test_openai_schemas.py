"""Every OpenAI usage and costs endpoint against the JSON schemas OpenAI publishes, validated with
jsonschema_rs (JSON Schema 2020-12, the dialect of OpenAPI 3.1):

- tests/gateway/fixtures/openai_openapi_usage.json: an excerpt of openai/openai-openapi's
  openapi.yaml (the result schemas, UsageResponse, and every parameter of every endpoint);
- tests/gateway/fixtures/openai_sdk_3_51_additions.json: what the SDK pinned in the test extras
  (openai 3.51.0, generated from a newer spec) declares beyond it: the decisions endpoint, api_source,
  the 12-hour / 30-minute cache writes, costs by user_id and api_source, the line_items filter.
  test_the_sdk_fixture_is_what_the_installed_sdk_declares keeps it true to the SDK's own types.

Each page must be valid as published (UsageResponse; decisions, not in the published spec, against
the SDK's schema) and strictly: every result against its schema plus the SDK's additions with every
property required and no other allowed (the dialect always writes every key), pages and buckets with
exactly their properties, quantity_unit one of OpenAI's suggested units or null. Each endpoint is read
without group_by, with each group_by value alone and with all of them, with every filter it declares;
every parameter the spec or the SDK declares is accepted."""

import copy
import datetime as dt
import importlib
import json
import pathlib
import typing
from typing import Any

import jsonschema_rs
import pytest

from gateway.dialects.openai.usage import ENDPOINTS
from metering.v1 import admin_pb2, prices_pb2
from tests.conftest import MASTER, bearer
from tests.gateway.conftest import module_org
from tests.gateway.usage_events import UTC, at, event, record, unix

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"
PUBLISHED = json.loads((FIXTURES / "openai_openapi_usage.json").read_text())
SDK = json.loads((FIXTURES / "openai_sdk_3_51_additions.json").read_text())
DAY = dt.datetime(2024, 6, 3, tzinfo=UTC)
START, END = unix(DAY), unix(DAY + dt.timedelta(days=2))
DRAFT = "https://json-schema.org/draft/2020-12/schema"
COSTS = "/organization/costs"
PATHS: dict[str, dict[str, Any]] = {**PUBLISHED["paths"], **SDK["paths"]}
BY_PATH = {f"/organization/usage/{e.name}": e for e in ENDPOINTS}
UNITS = ["tokens", "1000_tokens", "duration_seconds", "duration_minutes", "duration_hours", "gibibyte_hours",
         "images", "characters"]


def parameters(path: str) -> list[dict[str, Any]]:
    """The path's parameters as the spec and the SDK declare them (group_by with the SDK's values)."""
    params = copy.deepcopy(PATHS[path]["parameters"]) + SDK["parameters"].get(path, [])
    for p in params:
        if p["name"] == "group_by":
            enum = p["schema"]["items"]["enum"]
            enum.extend(v for v in SDK["group_by"].get(path, []) if v not in enum)
    return params


def group_by_values(path: str) -> list[str]:
    [group_by] = [p for p in parameters(path) if p["name"] == "group_by"]
    return list(group_by["schema"]["items"]["enum"])


def schemas_by_object() -> dict[str, dict[str, Any]]:
    """Result `object` -> its strict schema."""
    found = {}
    for name, schema in {**PUBLISHED["schemas"], **SDK["schemas"]}.items():
        if not name.endswith("Result"):
            continue
        strict = copy.deepcopy(schema)
        strict["properties"].update(copy.deepcopy(SDK["properties"].get(name, {})))
        if name == "CostsResult":
            # OpenAI's suggested units or null: the published anyOf also allows any string.
            [enum] = [b for b in schema["properties"]["quantity_unit"]["anyOf"] if "enum" in b]
            assert enum["enum"] == UNITS
            strict["properties"]["quantity_unit"] = {"anyOf": [enum, {"type": "null"}]}
            amount = strict["properties"]["amount"]
            amount["required"], amount["additionalProperties"] = list(amount["properties"]), False
        strict["required"] = list(strict["properties"])
        strict["additionalProperties"] = False
        [obj] = schema["properties"]["object"]["enum"]
        found[obj] = strict
    return found


STRICT = schemas_by_object()


def published_page_validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for({"$schema": DRAFT, "$ref": "#/components/schemas/UsageResponse",
                                        "components": {"schemas": PUBLISHED["schemas"]}})


def strict_page_validator(result: dict[str, Any]) -> jsonschema_rs.Validator:
    bucket = copy.deepcopy(PUBLISHED["schemas"]["UsageTimeBucket"])
    bucket["properties"]["results"] = {"type": "array", "items": result}
    bucket["additionalProperties"] = False
    page = copy.deepcopy(PUBLISHED["schemas"]["UsageResponse"])
    page["properties"]["data"] = {"type": "array", "items": bucket}
    page["additionalProperties"] = False
    return jsonschema_rs.validator_for({"$schema": DRAFT, **page})


PUBLISHED_PAGE = published_page_validator()


def check(path: str, page: dict[str, Any]) -> int:
    """Validates a page of `path` as published and strictly; the number of results it holds."""
    obj = "organization.costs.result" if path == COSTS else BY_PATH[path].result
    if obj in {r["properties"]["object"]["enum"][0] for r in PUBLISHED["schemas"].values()
               if "object" in r.get("properties", {}) and "enum" in r["properties"]["object"]}:
        errors = [f"{e.instance_path}: {e.message}" for e in PUBLISHED_PAGE.iter_errors(page)]
        assert not errors, (path, "published", errors[:5])
    strict = strict_page_validator(STRICT[obj])
    errors = [f"{e.instance_path}: {e.message}" for e in strict.iter_errors(page)]
    assert not errors, (path, "strict", errors[:5])
    return sum(len(b["results"]) for b in page["data"])


@pytest.fixture(scope="module")
async def org(stubs, pstubs):
    return await record_usage(stubs, pstubs, "schemas")


async def record_usage(stubs, pstubs, prefix: str) -> tuple[str, dict[str, list[str]]]:
    """A new organization with usage of every kind over two days (several models, projects, users,
    keys and labels, 12-hour cache writes), priced by a price book with every unit, plus caller-given
    costs: its admin key, and the values of every filter."""
    made = await module_org(stubs, prefix)
    key = made.admin_key
    projects = [(await stubs.admin.CreateProject(admin_pb2.CreateProjectRequest(
        organization=made.organization_id, name=f"p{i}"), metadata=MASTER)).project_id for i in range(2)]
    keys = []
    for i in range(2):
        user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
            organization=made.organization_id, username=f"u{i}-{made.name}", password="correct horse battery",
            role=admin_pb2.ROLE_MEMBER), metadata=MASTER)
        keys.append((user.user_id, (await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
            organization=made.organization_id, user_id=user.user_id, name=f"u{i}"), metadata=MASTER)).key))
    prices = {"input": "0.000002", "cached_input": "0.000001", "cache_write": "0.0000025", "output": "0.000008",
              "image": "0.04", "character": "0.000015", "second": "0.0001", "gb_day": "0.1", "session": "0.03",
              "call": "0.01"}
    await pstubs.prices.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(versions=[
        prices_pb2.NewPriceVersion(model=model, effective_from=at(DAY - dt.timedelta(days=1)),
                                   prices=[prices_pb2.Price(usage_type=k, unit_price=v) for k, v in prices.items()])
        for model in ("m-a", "m-b")]), metadata=bearer(key))
    labels = [{"size": "1024x1024", "source": "image.generation", "vector_store_id": "vs_1", "context_level": "low",
               "api_source": "agents_api"},
              {"size": "512x512", "source": "image.edit", "vector_store_id": "vs_2", "context_level": "high"}]
    for i, (_, user_key) in enumerate(keys):
        events = []
        for e in ENDPOINTS:
            for d in range(2):
                n = 10 * (d + 1) + i
                events.append(event(
                    e.kind, DAY + dt.timedelta(days=d, hours=i + 1), model=("m-a", "m-b")[(i + d) % 2],
                    project_id=projects[(i + d) % 2], batch=d == 1, service_tier=("default", "flex")[i],
                    labels=labels[i],
                    input_tokens=10 * n, input_cached_tokens=3 * n, input_cache_write_tokens=2 * n,
                    counters={"input_cache_write_12h_tokens": n}, output_tokens=n, input_text_tokens=5 * n,
                    output_text_tokens=n, images=1, characters=n, seconds=n, usage_bytes=n * 10**8, num_sessions=1,
                    num_requests=2))
        events.append(event("completions", DAY + dt.timedelta(hours=5), model="given", input_tokens=7,
                            project_id=projects[0], service_tier="default", input_cost="0.25", output_cost="0.5",
                            cost="1"))  # caller-given: input, output, other
        await record(stubs, user_key, *events)
    key_ids = [(await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(k))).api_key_id for _, k in keys]
    values = {"project_ids": projects, "user_ids": [u for u, _ in keys], "api_key_ids": key_ids,
              "models": ["m-a", "m-b", "given"], "vector_store_ids": ["vs_1", "vs_2"],
              "line_items": ["m-a, input", "m-b, cached input", "m-a, images", "given, other"]}
    return key, values


async def get_page(http, key, path, params):
    reply = await http.get(f"/v1{path}", params=params, headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200, (path, params, reply.text)
    return reply.json()


def filters(path: str, values: dict[str, list[str]]) -> dict[str, Any]:
    """Every filter the path declares, with values that keep all of the usage."""
    found: dict[str, Any] = {}
    for p in parameters(path):
        items = p["schema"].get("items", {})
        if p["schema"].get("type") != "array" or p["name"] == "group_by":
            continue
        found[p["name"]] = items["enum"] if "enum" in items else values[p["name"]]
    return found


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_every_grouping_validates_against_the_schemas(http, org, path):
    key, values = org
    keys = group_by_values(path)
    base: dict[str, Any] = {"start_time": START, "end_time": END}
    if path == COSTS:  # every line item, so that the filter keeps everything
        lines = await get_page(http, key, path, {**base, "group_by": "line_item"})
        values = {**values, "line_items": sorted({r["line_item"] for b in lines["data"] for r in b["results"]})}
        assert set(values["line_items"]) > set(org[1]["line_items"])
    counts = {}
    for group_by in ([], *([k] for k in keys), keys):
        page = await get_page(http, key, path, {**base, "group_by": group_by})
        counts[tuple(group_by)] = check(path, page)
        for b in page["data"]:
            for r in b["results"]:
                for k in keys:  # a grouping key is set exactly when grouped on (all usage here has every key)
                    assert (r[k] is not None) == (k in group_by), (path, group_by, k, r)
                if "input_uncached_tokens" in r:
                    assert r["input_tokens"] == (r["input_cached_tokens"] + r["input_cache_write_tokens"]
                                                 + r["input_uncached_tokens"])
                    assert r["input_cache_write_tokens"] == (r["input_cache_write_30m_tokens"]
                                                             + r["input_cache_write_12h_tokens"])
        filtered = await get_page(http, key, path, {**base, "group_by": group_by, **filters(path, values)})
        assert check(path, filtered) == counts[tuple(group_by)], (path, group_by)  # the filters keep everything
    assert counts[()] == 2 and counts[tuple(keys)] > 2, counts  # one result a day, several when grouped


def value_of(path: str, param: dict[str, Any], values: dict[str, list[str]]) -> Any:
    schema, name = param["schema"], param["name"]
    if name == "start_time":
        return START
    if name == "end_time":
        return unix(DAY + dt.timedelta(days=4))
    if name == "limit":
        return 2
    if "enum" in schema:
        return schema["enum"][-1]
    if schema.get("type") == "boolean":
        return "true"
    if schema.get("type") == "array":
        items = schema["items"]
        return items["enum"] if "enum" in items else values[name]
    raise AssertionError(f"no value for {path} {name}: {schema}")


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_every_declared_parameter_is_accepted(http, org, path):
    key, values = org
    assert {p["name"] for p in parameters(path) if p.get("required")} == {"start_time"}
    params = {p["name"]: value_of(path, p, values) for p in parameters(path) if p["name"] != "page"}
    first = await get_page(http, key, path, params)
    assert first["has_more"] and check(path, first) > 0
    page = await get_page(http, key, path, {**params, "page": first["next_page"]})
    check(path, page)
    assert [b["start_time"] for b in page["data"]] == [unix(DAY + dt.timedelta(days=d)) for d in (2, 3)]
    [width] = [p for p in parameters(path) if p["name"] == "bucket_width"]
    for w in width["schema"]["enum"]:
        check(path, await get_page(http, key, path, {"start_time": START + 3600, "end_time": START + 3 * 3600,
                                                      "bucket_width": w, "limit": 2}))


def sdk_result_type(module: str, obj: str) -> Any:
    m = importlib.import_module(f"openai.types.admin.organization.{module}")
    for attr in dir(m):
        cls = getattr(m, attr)
        fields = getattr(cls, "model_fields", None)
        if isinstance(cls, type) and fields and "object" in fields and obj in typing.get_args(
                fields["object"].annotation):
            return cls
    raise AssertionError(f"no result type for {obj} in {module}")


def literals(annotation: Any) -> list[str]:
    """The values of the Literals inside a type (Optional[List[Literal["a", "b"]]]: a, b)."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [value for arg in typing.get_args(annotation) for value in literals(arg)]


@pytest.mark.parametrize("path", sorted(PATHS))
def test_the_sdk_fixture_is_what_the_installed_sdk_declares(path):
    """The published spec plus the additions fixture is exactly what the installed SDK's own types
    declare: every result field (and which are required), every parameter, every group_by value."""
    name = "costs" if path == COSTS else path.rsplit("/", 1)[1]
    obj = "organization.costs.result" if path == COSTS else BY_PATH[path].result
    cls = sdk_result_type(f"usage_{name}_response", obj)
    strict = STRICT[obj]
    assert set(cls.model_fields) == set(strict["properties"])
    schema_name = next(n for n, s in {**PUBLISHED["schemas"], **SDK["schemas"]}.items()
                       if s.get("properties", {}).get("object", {}).get("enum") == [obj])
    declared = {**PUBLISHED["schemas"], **SDK["schemas"]}[schema_name]["required"]
    assert {k for k, f in cls.model_fields.items() if f.is_required()} == set(declared)
    module = importlib.import_module(f"openai.types.admin.organization.usage_{name}_params")
    [params_type] = [getattr(module, a) for a in dir(module) if a.startswith("Usage") and a.endswith("Params")]
    hints = typing.get_type_hints(params_type)
    assert set(hints) == {p["name"] for p in parameters(path)}
    assert sorted(literals(hints["group_by"])) == sorted(group_by_values(path))
    if path != COSTS:
        assert set(BY_PATH[path].keys) == set(group_by_values(path))
