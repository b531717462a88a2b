"""/openapi.json, built from the routes themselves, and a self-contained /docs page.

A native route documents itself from its method descriptor (`route.openapi(spec)`);
a dialect endpoint carries a `Doc` (set with `@documented(...)`) naming its pydantic
models. A route with neither still appears, with its docstring as summary.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeAlias, TypeVar

from google.protobuf import descriptor as pb_descriptor
from pydantic import BaseModel, TypeAdapter
from starlette.routing import BaseRoute, Route

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

    def add(self, path: str, method: str, operation: dict[str, Any]) -> None:
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
        self.schemas[desc.full_name] = {
            "type": "object",
            "properties": {f.name: self.field_schema(f) for f in desc.fields},
        }
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
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
        }


def build(routes: Iterable[BaseRoute], *, title: str, version: str, description: str = "") -> dict[str, Any]:
    spec = Spec(title, version, description)
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
        responses["200"] = {"description": "OK"}
    else:
        if doc.description:
            op["description"] = doc.description
        if doc.tags:
            op["tags"] = list(doc.tags)
        if doc.security:
            op["security"] = [{"bearer": []}]
        if doc.query is not None:
            schema = spec._merge_defs(doc.query.model_json_schema(ref_template=REF))  # enums go to components
            required = set(schema.get("required", ()))
            for name, prop in schema["properties"].items():
                params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
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


def docs_page(spec: dict[str, Any]) -> str:
    """The spec as one HTML page, no scripts and no external assets."""
    esc = html.escape
    rows = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            params = ", ".join(
                f"{esc(p['name'])} <i>({esc(p['in'])}{'' if p.get('required') else ', optional'})</i>"
                for p in op.get("parameters", ())
            )
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            codes = ", ".join(esc(code) for code in op.get("responses", {}))
            rows.append(
                f"<tr><td class=m>{esc(method.upper())}</td><td><code>{esc(path)}</code></td>"
                f"<td>{esc(op.get('summary', ''))}<div class=d>{esc(op.get('description', ''))}</div></td>"
                f"<td>{params}</td><td>{_schema_name(body)}</td><td>{codes}</td></tr>"
            )
    schemas = []
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        props = schema.get("properties", {})
        fields = "".join(f"<li><code>{esc(k)}</code>: {_schema_name(v)}</li>" for k, v in props.items())
        schemas.append(f"<section id='{esc(name)}'><h3>{esc(name)}</h3><ul>{fields}</ul></section>")
    info = spec.get("info", {})
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{esc(info.get('title', 'API'))}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.4em;vertical-align:top;text-align:left}} code{{font-size:13px}}
.m{{font-weight:bold;font-family:monospace}} .d{{color:#666;font-size:12px}} section{{display:inline-block;
vertical-align:top;margin:0 2em 1em 0}} h3{{margin:.2em 0;font-size:14px}} ul{{margin:0;padding-left:1.2em}}
</style></head><body>
<h1>{esc(info.get('title', 'API'))} <small>{esc(info.get('version', ''))}</small></h1>
<p>{esc(info.get('description', ''))} Machine-readable: <a href="openapi.json">openapi.json</a>.</p>
<table><tr><th>Method</th><th>Path</th><th>Summary</th><th>Parameters</th><th>Body</th><th>Responses</th></tr>
{''.join(rows)}</table>
<h2>Schemas</h2>{''.join(schemas)}
</body></html>"""


def _schema_name(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"<a href='#{html.escape(name)}'>{html.escape(name)}</a>"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_schema_name(s) for s in schema[key])
    if schema.get("type") == "array":
        return _schema_name(schema.get("items")) + "[]"
    if schema.get("type") == "object" and "additionalProperties" in schema:
        return "map&lt;string, " + _schema_name(schema["additionalProperties"]) + "&gt;"
    kind = schema.get("type", "any")
    text = "|".join(kind) if isinstance(kind, list) else str(kind)
    if "format" in schema:
        text += f" ({schema['format']})"
    return html.escape(text)

