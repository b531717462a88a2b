import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2

from gateway.http.errors import HTTP_STATUS, GatewayError, invalid_argument

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
