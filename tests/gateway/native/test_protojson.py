import datetime as dt

import pytest

from gateway.http.errors import GatewayError
from gateway.native.protojson import descriptor_of, field_mask_paths, parse_body, set_path, to_json
from metering.v1 import admin_pb2, event_pb2, records_pb2


def test_int64_are_json_numbers_even_beyond_2_53():
    big = 2**63 - 1
    data = to_json(event_pb2.UsageEvent(input_tokens=big, counters={"x": 2**60}, num_model_requests=3))
    assert data["input_tokens"] == big
    assert data["counters"] == {"x": 2**60}
    assert data["num_model_requests"] == 3
    assert data["output_tokens"] == 0  # unpopulated fields are present


def test_unset_messages_are_null_and_optional_scalars_absent():
    data = to_json(admin_pb2.ApiKey(api_key_id="k"))
    assert data["revoke_time"] is None
    assert "cost" not in to_json(event_pb2.UsageEvent())  # proto3 optional: omitted when unset


def test_keys_follow_field_numbers():
    data = to_json(event_pb2.UsageEvent(units_used=1, event_id="e"))
    assert list(data)[:3] == ["event_id", "request_id", "timestamp"]


def test_query_values_by_type():
    req = records_pb2.ListEventsRequest()
    set_path(req, "page_size", ["10"], ignore_unknown=True)
    set_path(req, "include_voided", ["true"], ignore_unknown=True)
    set_path(req, "kinds", ["completions", "embeddings"], ignore_unknown=True)
    set_path(req, "startTime", ["2025-07-04T12:00:00Z"], ignore_unknown=True)
    set_path(req, "nonsense", ["1"], ignore_unknown=True)
    assert req.page_size == 10 and req.include_voided
    assert list(req.kinds) == ["completions", "embeddings"]
    assert req.start_time.ToDatetime(dt.UTC) == dt.datetime(2025, 7, 4, 12, tzinfo=dt.UTC)


def test_nested_paths_maps_and_enums():
    req = records_pb2.UpdateEventRequest()
    set_path(req, "event.event_id", ["abc"], ignore_unknown=False)
    set_path(req, "event.labels[size]", ["1024x1024"], ignore_unknown=False)
    set_path(req, "update_mask", ["units_used,cost"], ignore_unknown=False)
    assert req.event.event_id == "abc" and dict(req.event.labels) == {"size": "1024x1024"}
    assert list(req.update_mask.paths) == ["units_used", "cost"]
    user = admin_pb2.CreateUserRequest()
    set_path(user, "role", ["ROLE_ADMIN"], ignore_unknown=False)
    assert user.role == admin_pb2.ROLE_ADMIN
    set_path(user, "role", ["2"], ignore_unknown=False)
    assert user.role == admin_pb2.ROLE_MEMBER


@pytest.mark.parametrize(("key", "values"), [
    ("page_size", ["ten"]),
    ("page_size", ["1", "2"]),
    ("page_size", [str(2**31)]),
    ("include_voided", ["maybe"]),
    ("start_time", ["yesterday"]),
])
def test_bad_query_values_name_the_field(key, values):
    with pytest.raises(GatewayError) as err:
        set_path(records_pb2.ListEventsRequest(), key, values, ignore_unknown=True)
    assert err.value.http_status == 400
    assert [v.field for v in err.value.field_violations()] == [key]


def test_bad_body_is_invalid_argument():
    with pytest.raises(GatewayError) as err:
        parse_body({"kind": "completions", "input_tokns": 1}, event_pb2.UsageEvent(), "event")
    assert "input_tokns" in err.value.message
    with pytest.raises(GatewayError):
        parse_body([1, 2], event_pb2.UsageEvent())


def test_field_mask_from_body():
    body = {"units_used": 0, "cost": "0", "labels": {"a": "b"}, "unknown": 1}
    assert field_mask_paths(body, descriptor_of(event_pb2.UsageEvent)) == ["units_used", "cost", "labels"]
