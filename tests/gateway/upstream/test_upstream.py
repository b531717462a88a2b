import grpc
import pytest
from starlette.requests import HTTPConnection

from gateway.http.errors import GatewayError
from gateway.http.request_id import SCOPE_KEY
from gateway.upstream.client import deadline, metadata


def conn(*headers, request_id="rid-1"):
    return HTTPConnection({
        "type": "http", "client": ("10.0.0.7", 5000), SCOPE_KEY: request_id,
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers],
    })


def test_metadata_carries_credentials_request_id_and_grpc_metadata_headers():
    found = dict(metadata(conn(
        ("Authorization", "Bearer mk_123"), ("X-Metering-Organization", "org_1"), ("Grpc-Metadata-Tenant", "t"),
        ("Grpc-Metadata-Grpc-Timeout", "1S"), ("Cookie", "secret"), ("Grpc-Metadata-Authorization", "Bearer other"),
    )))
    assert found == {"x-request-id": "rid-1", "authorization": "Bearer mk_123", "x-metering-organization": "org_1",
                     "tenant": "t", "x-forwarded-for": "10.0.0.7"}


def test_unprintable_values_are_dropped():
    assert "authorization" not in dict(metadata(conn(("Authorization", "Bearer \x7fé"))))


@pytest.mark.parametrize(("header", "expected"), [
    (None, 30.0), ("5S", 5.0), ("100m", 0.1), ("2M", 30.0), ("1H", 30.0), ("2500u", 0.0025),
])
def test_deadline_never_exceeds_the_gateway_limit(header, expected):
    headers = [("Grpc-Timeout", header)] if header else []
    assert deadline(conn(*headers), 30.0) == pytest.approx(expected)


@pytest.mark.parametrize("header", ["1n", "250u", "999999n", "0m"])
def test_sub_millisecond_deadline_has_expired(header):
    """gRPC deadlines have millisecond resolution: a shorter one is answered 504 at once, always."""
    with pytest.raises(GatewayError) as err:
        deadline(conn(("Grpc-Timeout", header)), 30.0)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and err.value.http_status == 504


@pytest.mark.parametrize("header", ["5", "5s", "-1S", "1.5S", "123456789S"])
def test_malformed_grpc_timeout_is_invalid_argument(header):
    with pytest.raises(GatewayError) as err:
        deadline(conn(("Grpc-Timeout", header)), 30.0)
    assert err.value.http_status == 400
