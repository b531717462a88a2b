"""Native REST routes, derived at runtime from the protos' google.api.http options
(grpc-gateway semantics): one route per binding of every registered service.

Request: path variables and query parameters fill the fields they name; `body: "*"`
decodes the JSON body into the whole request, `body: "<field>"` into that field
(and a PATCH without update_mask gets one listing the body's fields). Reply: the
response message as JSON (proto names, every field present, int64 as numbers).
Errors: `{"code": <gRPC code>, "message": ..., "details": [...]}` with the HTTP
status of errors.HTTP_STATUS.

One deliberate difference from grpc-gateway's defaults: unknown JSON body fields
are rejected (INVALID_ARGUMENT naming the field) rather than discarded, so a
misspelled counter never silently records zero. Unknown query parameters are
ignored, as grpc-gateway does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message as pb_message
from google.rpc import status_pb2
from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from gateway.http import openapi
from gateway.http.errors import Endpoint, GatewayError, invalid_argument, renders_errors
from gateway.http.json_body import loads
from gateway.http.json_response import JSONResponse
from gateway.native import protojson
from gateway.native.httprule import Binding, bindings
from gateway.upstream.client import upstream
from metering.v1 import admin_pb2, alerts_pb2, budgets_pb2, ingest_pb2, prices_pb2, query_pb2, records_pb2

# The services exposed as native REST.
SERVICES: list[pb_descriptor.ServiceDescriptor] = [
    ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
    records_pb2.DESCRIPTOR.services_by_name["RecordService"],
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
    query_pb2.DESCRIPTOR.services_by_name["QueryService"],
    budgets_pb2.DESCRIPTOR.services_by_name["BudgetService"],
    prices_pb2.DESCRIPTOR.services_by_name["PriceService"],
    prices_pb2.DESCRIPTOR.services_by_name["CostService"],
    alerts_pb2.DESCRIPTOR.services_by_name["AlertService"],
]
PREFIX = "/v1/"  # unmatched paths under here get this dialect's error shape
UPDATE_MASK = "update_mask"


def render_error(err: GatewayError) -> Response:
    body = {"code": err.grpc_code, "message": err.message, "details": err.details_json()}
    return JSONResponse(body, status_code=err.http_status, headers=err.headers)


class NativeRoute(BaseRoute):
    """A route matching one binding's path template and HTTP method."""

    def __init__(self, binding: Binding, allowed: Sequence[str]) -> None:
        self.binding = binding
        self.allowed = ", ".join(allowed)  # every method bound to the same template, for 405s
        self.name = binding.operation_id
        self.path = binding.template.openapi_path
        self.methods = {binding.http_method}
        field_names = {f.split(".", 1)[0] for f in binding.template.variables}
        # Query parameters never set the body or a path variable (grpc-gateway's filter).
        self._not_from_query = field_names | ({binding.body} if binding.body else set())
        self._mask_body = _auto_mask_body(binding)
        self.endpoint: Endpoint = renders_errors(render_error)(self.answer)

    def __repr__(self) -> str:
        return f"NativeRoute({self.binding.http_method} {self.path} -> {self.binding.rpc_path})"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        params = self.binding.template.match(_route_path(scope))
        if params is None:
            return Match.NONE, {}
        child = {"endpoint": self.endpoint, "path_params": params}
        return (Match.FULL if scope["method"] == self.binding.http_method else Match.PARTIAL), child

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        if name != self.name or set(path_params) != set(self.binding.template.variables):
            raise NoMatchFound(name, path_params)
        path = self.path
        for field, value in path_params.items():
            path = path.replace("{" + field + "}", str(value))
        return URLPath(path=path, protocol="http")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != self.binding.http_method:
            response = render_error(GatewayError.from_http(405, "Method Not Allowed", {"Allow": self.allowed}))
        else:
            response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        """The call the binding names, from this request; `endpoint` is this rendering its failures."""
        binding = self.binding
        message: pb_message.Message = binding.input_type()
        body: Any = None
        if binding.body:
            body = await _json_body(request)
            if body is not None:
                target = message if binding.body == "*" else getattr(message, binding.body)
                protojson.parse_body(body, target, "" if binding.body == "*" else binding.body)
        for path, value in request.path_params.items():
            protojson.set_path(message, path, [value], ignore_unknown=False)
        if binding.body != "*":
            for key, values in protojson.group_params(request.query_params.multi_items()).items():
                if key.split(".", 1)[0].split("[", 1)[0] not in self._not_from_query:
                    protojson.set_path(message, key, values, ignore_unknown=True)
        if self._mask_body is not None and not getattr(message, UPDATE_MASK).paths:
            getattr(message, UPDATE_MASK).paths.extend(protojson.field_mask_paths(body, self._mask_body))
        up = upstream(request)
        reply = await up.call(request, up.unary(binding.rpc_path, binding.output_type), message)
        if binding.response_body:
            field = binding.method.output_type.fields_by_name[binding.response_body]
            data = protojson.to_json(reply)[field.name]
        else:
            data = protojson.to_json(reply)
        if isinstance(message, query_pb2.QueryUsageRequest) and message.metrics:
            _asked_metrics_only(data, message.metrics)
        return JSONResponse(data)

    def openapi(self, spec: openapi.Spec) -> None:
        binding = self.binding
        method, input_type = binding.method, binding.method.input_type
        # A dotted variable ("event.event_id") is documented by its last name: OpenAPI tools
        # reject dots in path parameter names, and the path then merges with its GET twin.
        params: list[dict[str, Any]] = [
            {"name": f.rsplit(".", 1)[-1], "in": "path", "required": True, "description": f"request field `{f}`",
             "schema": _path_schema(spec, input_type, f)}
            for f in binding.template.variables
        ]
        doc_path = self.path
        for f in binding.template.variables:
            doc_path = doc_path.replace("{" + f + "}", "{" + f.rsplit(".", 1)[-1] + "}")
        if binding.body != "*":
            params.extend(_query_params(spec, input_type, self._not_from_query))
        reply: dict[str, Any] = spec.message_schema(method.output_type)
        if binding.response_body:
            reply = spec.field_schema(method.output_type.fields_by_name[binding.response_body])
        op: dict[str, Any] = {
            "operationId": binding.operation_id,
            "summary": f"{binding.service.name}.{method.name}",
            "description": openapi.comment(method.full_name),
            "tags": [binding.service.name],
            "security": [{"bearer": []}],
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": reply}}},
                "default": {
                    "description": "An error: {code (gRPC), message, details}",
                    "content": {"application/json": {"schema": spec.message_schema(status_pb2.Status.DESCRIPTOR)}},
                },
            },
        }
        if binding.body:
            body_field = input_type.fields_by_name.get(binding.body)  # None: "*", the whole request
            if body_field is None:
                body_schema = spec.message_schema(input_type)
            elif body_field.message_type is not None:
                body_schema = spec.message_schema(body_field.message_type)
            else:
                body_schema = spec.field_schema(body_field)
            op["requestBody"] = {
                "required": binding.body != "*",
                "content": {"application/json": {"schema": body_schema}},
            }
        spec.add(doc_path, binding.http_method, op)


def routes(services: Iterable[pb_descriptor.ServiceDescriptor] = SERVICES) -> list[NativeRoute]:
    found = bindings(services)
    methods_by_template: dict[str, list[str]] = {}
    for b in found:
        methods_by_template.setdefault(b.template.regex.pattern, []).append(b.http_method)
    return [NativeRoute(b, sorted(set(methods_by_template[b.template.regex.pattern]))) for b in found]


def _asked_metrics_only(reply: dict[str, Any], asked: Iterable[str]) -> None:
    """QueryUsage with `metrics`: the metrics not asked for are left out of the JSON (the proto's "left
    unset"), so a 0 always means zero; `events` is always there."""
    keep = {*asked, "events"}
    for bucket in reply.get("buckets", ()):
        for group in bucket.get("groups", ()):
            metrics = group.get("metrics")
            if isinstance(metrics, dict):
                group["metrics"] = {name: value for name, value in metrics.items() if name in keep}


def _auto_mask_body(binding: Binding) -> pb_descriptor.Descriptor | None:
    """The body's message type where a PATCH without update_mask gets one listing the body's fields."""
    if binding.http_method != "PATCH" or binding.body in ("", "*"):
        return None
    fields = binding.method.input_type.fields_by_name
    mask = fields.get(UPDATE_MASK)
    if mask is None or mask.message_type is None or mask.message_type.full_name != "google.protobuf.FieldMask":
        return None
    return fields[binding.body].message_type


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return loads(raw)
    except ValueError as err:
        raise invalid_argument("", f"request body is not valid JSON: {err}") from None


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root + "/") else path


def _path_schema(spec: openapi.Spec, desc: pb_descriptor.Descriptor, path: str) -> dict[str, Any]:
    *parents, last = path.split(".")
    for part in parents:
        nested = desc.fields_by_name[part].message_type
        if nested is None:  # httprule refuses such a binding
            raise ValueError(f"path variable {path!r}: {part!r} is not a message")
        desc = nested
    return spec.field_schema(desc.fields_by_name[last])


def _query_params(
    spec: openapi.Spec, desc: pb_descriptor.Descriptor, skip: set[str], prefix: str = "", depth: int = 0
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for field in desc.fields:
        if not prefix and field.name in skip:
            continue
        name = prefix + field.name
        nested = field.message_type
        if nested is not None and nested.GetOptions().map_entry:
            params.append({"name": f"{name}[key]", "in": "query", "required": False,
                           "schema": spec.field_schema(nested.fields_by_name["value"]),
                           "description": f"{openapi.comment(field.full_name)} (one parameter per key)".lstrip()})
        elif nested is not None and nested.full_name not in protojson.SCALAR_WKT:
            if depth < 2 and not field.is_repeated:
                params.extend(_query_params(spec, nested, skip, name + ".", depth + 1))
        else:
            param: dict[str, Any] = {"name": name, "in": "query", "required": not prefix and openapi.required(field),
                                     "schema": spec.field_schema(field)}
            if field.is_repeated:
                param.update(style="form", explode=True)
            param["description"] = openapi.field_doc(field, param)
            params.append(param)
    return params
