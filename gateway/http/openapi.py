"""/openapi.json, built from the routes themselves (gateway/dashboard serves it at /docs with Swagger UI).

A native route documents itself from its method descriptor (`route.openapi(spec)`);
a dialect endpoint carries a `Doc` (set with `@documented(...)`) naming its pydantic
models. A route with neither still appears, with its docstring as summary.

Every parameter has a type and a description; an operation needing a credential names the `bearer`
scheme (`security`), one open to all says so with an empty list; a request field annotated
`(google.api.field_behavior) = REQUIRED` in the protos is a required parameter; EXAMPLES holds request
bodies that tests/gateway/dashboard/test_reference.py sends to a live gateway, so they stay valid.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeAlias, TypeVar

from google.api import field_behavior_pb2
from google.protobuf import descriptor as pb_descriptor
from pydantic import BaseModel, TypeAdapter
from starlette.routing import BaseRoute, Route

from metering.v1.comments import COMMENTS

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
FD: TypeAlias = pb_descriptor.FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    FD.TYPE_INT64: {"type": "integer", "format": "int64"},
    FD.TYPE_UINT64: {"type": "integer", "format": "uint64", "minimum": 0},
    FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    FD.TYPE_FIXED64: {"type": "integer", "format": "uint64", "minimum": 0},
    FD.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
    FD.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FD.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FD.TYPE_SFIXED64: {"type": "integer", "format": "int64"},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SINT64: {"type": "integer", "format": "int64"},
}
_WKT: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string", "description": "comma-separated field paths"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": True,
    },
    "google.protobuf.Int64Value": {"type": ["integer", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["integer", "null"], "format": "uint64"},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], "format": "uint32"},
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
    "google.protobuf.FloatValue": {"type": ["number", "null"]},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "format": "byte"},
}

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
AUTHENTICATION = """

## Authentication

Every route except the `meta` ones needs a credential, sent as `Authorization: Bearer <credential>`:

- an **API key** (`mk_…`), printed once by `metering keys create` or `POST /v1/api_keys`;
- a **login token** (`mlt.…`, 1 hour by default) from `POST /v1/login` with a username and password.

What a caller sees follows its key: an organization admin sees its organization, a member only its own
usage, a project key only its project. The master key may act in another organization with the
`X-Metering-Organization` header. The QueryLake dialect (`/api/...`) also takes the key as its `auth`
field. Use **Authorize** above to send a key with every "Try it out"; it stays in this page.
"""
# Request bodies shown as examples, each sent by tests/gateway/dashboard/test_reference.py.
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/events"): {
        "request_id": "req-0001", "kind": "completions", "model": "gpt-4o-mini", "provider": "openai",
        "input_tokens": 1200, "output_tokens": 350, "labels": {"feature": "chat"},
    },
    ("POST", "/v1/events:batchRecord"): {"events": [
        {"request_id": "req-0002", "kind": "completions", "model": "gpt-4o-mini", "input_tokens": 10},
        {"request_id": "req-0003", "kind": "embeddings", "model": "text-embedding-3-small", "input_tokens": 64},
    ]},
    ("POST", "/v1/usage:query"): {
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-02-01T00:00:00Z", "width": "1d",
        "time_zone": "Europe/Paris", "group_by": ["model"],
        "filters": [{"field": "kind", "values": ["completions"]}], "metrics": ["input_tokens", "cost"],
    },
    ("POST", "/v1/login"): {"username": "alice", "password": "s3cret-pw"},
}
_HINTS: dict[str, str] = {  # what a value of a JSON schema type looks like in a query string
    "date-time": "an RFC 3339 time, e.g. 2026-01-01T00:00:00Z",
    "int64": "an integer", "int32": "an integer", "uint32": "an integer >= 0", "uint64": "an integer >= 0",
    "double": "a number", "float": "a number",
}

F = TypeVar("F", bound=Callable[..., Any])
Mode: TypeAlias = Literal["validation", "serialization"]


@dataclasses.dataclass(frozen=True)
class Doc:
    """What /openapi.json says about a dialect endpoint."""

    summary: str
    description: str = ""
    tags: tuple[str, ...] = ()
    body: Any = None  # the JSON request body's type (a pydantic model)
    query: type[BaseModel] | None = None  # one query parameter per field
    response: Any = None  # the success reply's type
    status: int = 200
    errors: dict[int, tuple[str, Any]] = dataclasses.field(default_factory=dict)  # status -> (description, type)
    security: bool = True  # needs Authorization: Bearer


def documented(doc: Doc) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        fn.openapi_doc = doc  # type: ignore[attr-defined]
        return fn

    return mark


class Spec:
    def __init__(self, title: str, version: str, description: str = "") -> None:
        self.info = {"title": title, "version": version, "description": description}
        self.paths: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, Any] = {}
        self._models: dict[str, Any] = {}
        self._operation_ids: set[str] = set()

    def add(self, path: str, method: str, operation: dict[str, Any]) -> None:
        example = EXAMPLES.get((method.upper(), path))
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if example is not None and content is not None:
            content["example"] = example
        for param in operation.get("parameters", ()):
            param.setdefault("description", describe(param))
        op_id = operation.get("operationId", "")
        if op_id in self._operation_ids:  # two endpoints of one name: name this one by its path too
            operation["operationId"] = op_id = f"{op_id}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}"
        self._operation_ids.add(op_id)
        self.paths.setdefault(path, {})[method.lower()] = operation

    def type_schema(self, tp: Any, mode: Mode = "validation") -> dict[str, Any]:
        """A pydantic model or type as a schema; models go to components and are referenced."""
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            name = tp.__name__
            if self._models.setdefault(name, tp) is not tp:
                raise ValueError(f"two models named {name!r} in the OpenAPI document")
            if name not in self.schemas:
                self.schemas[name] = self._merge_defs(tp.model_json_schema(ref_template=REF, mode=mode))
            return {"$ref": REF.format(model=name)}
        schema = TypeAdapter(tp).json_schema(ref_template=REF, mode=mode)
        return self._merge_defs(schema)

    def _merge_defs(self, schema: dict[str, Any]) -> dict[str, Any]:
        for name, sub in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, sub)
        return schema

    def message_schema(self, desc: pb_descriptor.Descriptor) -> dict[str, Any]:
        """A protobuf message as a schema of its JSON form (proto names, int64 as integers)."""
        if desc.full_name in _WKT:
            return dict(_WKT[desc.full_name])
        ref = {"$ref": REF.format(model=desc.full_name)}
        if desc.full_name in self.schemas:
            return ref
        self.schemas[desc.full_name] = {}  # placeholder: recursive messages refer back to it
        properties = {}
        for f in desc.fields:
            properties[f.name] = self.field_schema(f)
            if comment(f.full_name):
                properties[f.name] = {**properties[f.name], "description": comment(f.full_name)}
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if comment(desc.full_name):
            schema["description"] = comment(desc.full_name)
        self.schemas[desc.full_name] = schema
        return ref

    def field_schema(self, field: FD) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single(value)}
        if field.is_repeated:
            return {"type": "array", "items": self._single(field)}
        schema = self._single(field)
        if field.message_type is not None and field.containing_oneof is None:  # unset messages render as null
            if "$ref" in schema:
                return {"anyOf": [schema, {"type": "null"}]}
            if isinstance(schema.get("type"), str):
                return {**schema, "type": [schema["type"], "null"]}
        return schema

    def _single(self, field: FD) -> dict[str, Any]:
        if field.message_type is not None:
            return self.message_schema(field.message_type)
        if field.enum_type is not None:
            return {"type": "string", "enum": list(field.enum_type.values_by_name)}
        return dict(_SCALARS[field.type])

    def document(self) -> dict[str, Any]:
        return {
            "openapi": OPENAPI_VERSION,
            "info": self.info,
            "paths": self.paths,
            "components": {
                "schemas": dict(sorted(self.schemas.items())),
                "securitySchemes": {"bearer": {
                    "type": "http", "scheme": "bearer",
                    "description": "An API key (mk_...) or a login token (mlt..., POST /v1/login).",
                }},
            },
        }


def build(routes: Iterable[BaseRoute], *, title: str, version: str, description: str = "") -> dict[str, Any]:
    spec = Spec(title, version, description + AUTHENTICATION)
    for route in routes:
        self_documenting = getattr(route, "openapi", None)
        if callable(self_documenting):
            self_documenting(spec)
        elif isinstance(route, Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                spec.add(route.path_format, method, _operation(spec, route, method))
    return spec.document()


def _operation(spec: Spec, route: Route, method: str) -> dict[str, Any]:
    doc: Doc | None = getattr(route.endpoint, "openapi_doc", None)
    summary = doc.summary if doc else (inspect.getdoc(route.endpoint) or route.name).split("\n", 1)[0]
    op: dict[str, Any] = {"operationId": f"{route.name}_{method.lower()}", "summary": summary}
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in route.param_convertors
    ]
    responses: dict[str, Any] = {}
    if doc is None:
        op["security"] = BEARER
        responses["200"] = {"description": "OK"}
    else:
        if doc.description:
            op["description"] = doc.description
        if doc.tags:
            op["tags"] = list(doc.tags)
        op["security"] = BEARER if doc.security else []
        if doc.query is not None:
            schema = spec._merge_defs(doc.query.model_json_schema(ref_template=REF))  # enums go to components
            required = set(schema.get("required", ()))
            for name, prop in schema["properties"].items():
                param = {"name": name, "in": "query", "required": name in required, "schema": prop}
                if prop.get("description"):
                    param["description"] = prop["description"]
                params.append(param)
        if doc.body is not None:
            op["requestBody"] = {
                "required": True, "content": {"application/json": {"schema": spec.type_schema(doc.body)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if doc.response is not None:
            ok["content"] = {"application/json": {"schema": spec.type_schema(doc.response, "serialization")}}
        responses[str(doc.status)] = ok
        for status, (text, tp) in sorted(doc.errors.items()):
            entry: dict[str, Any] = {"description": text}
            if tp is not None:
                entry["content"] = {"application/json": {"schema": spec.type_schema(tp, "serialization")}}
            responses[str(status)] = entry
    if params:
        op["parameters"] = params
    op["responses"] = responses
    return op


def required(field: FD) -> bool:
    """The proto marks the request field `(google.api.field_behavior) = REQUIRED`."""
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def comment(full_name: str) -> str:
    """The .proto comment of a message, field, service or method (metering/v1/comments.py), or ""."""
    return COMMENTS.get(full_name, "")


def field_doc(field: FD, param: dict[str, Any]) -> str:
    """A request field's parameter description: its .proto comment, then how to write its value."""
    text, hint = comment(field.full_name), value_hint(param)
    return f"{text} ({hint})" if text else describe(param)


def describe(param: dict[str, Any]) -> str:
    """A parameter's description from its name, place and schema, for one the route left undescribed."""
    if param.get("in") == "path":
        return f"`{param['name']}` of the resource, as the API returned it"
    return f"`{param['name']}`: {value_hint(param)}"


def value_hint(param: dict[str, Any]) -> str:
    """How to write a query parameter's value, from its schema."""
    schema = param.get("schema", {})
    kind = schema.get("type", "")
    kind = next((k for k in kind if k != "null"), "") if isinstance(kind, list) else kind
    if kind == "array":
        item = schema.get("items", {})
        hint = _HINTS.get(item.get("format", ""), "a string" if item.get("type") == "string" else "a value")
        return f"a list: repeat the parameter for each value, {hint} each"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "$ref" in schema or "anyOf" in schema or "allOf" in schema:
        return "see the schema"
    return _HINTS.get(schema.get("format", ""), {"string": "a string", "boolean": "true or false",
                                                 "integer": "an integer", "number": "a number"}.get(kind, "a value"))
