import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.http.errors import HTTP_STATUS, GatewayError, invalid_argument, renderer_of, renders_errors
from gateway.http.openapi import Doc, documented

# grpc-gateway's runtime.HTTPStatusFromCode, by code number.
GRPC_GATEWAY = {0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 16: 401, 8: 429,
                9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500}


def test_every_code_maps_as_grpc_gateway_does():
    assert {code.value[0]: status for code, status in HTTP_STATUS.items()} == GRPC_GATEWAY
    assert set(HTTP_STATUS) == set(grpc.StatusCode)


def test_error_status_follows_the_code():
    assert GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down").http_status == 429
    assert GatewayError(grpc.StatusCode.CANCELLED, "gone").http_status == 499


def test_routing_errors_keep_their_http_status():
    err = GatewayError.from_http(405, "Method Not Allowed", {"Allow": "GET"})
    assert (err.http_status, err.code, err.headers) == (405, grpc.StatusCode.UNIMPLEMENTED, {"Allow": "GET"})
    assert GatewayError.from_http(413, "Content Too Large").code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_invalid_argument_names_the_field():
    err = invalid_argument("page_size", "not a number")
    assert err.http_status == 400
    assert [v.field for v in err.field_violations()] == ["page_size"]
    assert err.details_json() == [{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "field_violations": [{"field": "page_size", "description": "not a number", "reason": "INVALID_VALUE"}],
    }]


def test_unknown_detail_types_are_passed_through():
    unknown = any_pb2.Any(type_url="type.googleapis.com/acme.Nope", value=b"\x01")
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="R"))
    details = GatewayError(grpc.StatusCode.INTERNAL, "x", [unknown, info]).details_json()
    assert details[0] == {"@type": "type.googleapis.com/acme.Nope", "value": "01"}
    assert details[1]["reason"] == "R"


def _request(query: bytes = b"") -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query, "headers": []})


async def test_renders_errors_turns_gateway_errors_into_the_dialects_shape():
    def render(err: GatewayError) -> Response:
        return PlainTextResponse(f"{err.code.name}: {err.message}", status_code=err.http_status)

    @renders_errors(render)
    async def endpoint(request: Request) -> Response:
        """What it does."""
        failure = request.query_params.get("fail")
        if failure == "gateway":
            raise invalid_argument("page_size", "not a number")
        if failure == "bug":
            raise RuntimeError("a bug")  # not the dialect's to render: the app's 500 handler's
        return PlainTextResponse("fine")

    assert (endpoint.__name__, endpoint.__doc__) == ("endpoint", "What it does.")
    assert renderer_of(endpoint) is render and renderer_of(render) is None
    assert (await endpoint(_request())).body == b"fine"
    failed = await endpoint(_request(b"fail=gateway"))
    assert (failed.status_code, failed.body) == (400, b"INVALID_ARGUMENT: page_size: not a number")
    with pytest.raises(RuntimeError):
        await endpoint(_request(b"fail=bug"))


def test_renders_errors_keeps_the_openapi_doc():
    doc = Doc("documented")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("")

    wrapped = renders_errors(lambda err: PlainTextResponse(""))(documented(doc)(endpoint))
    assert getattr(wrapped, "openapi_doc", None) is doc
