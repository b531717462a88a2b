import pytest
from google.api import http_pb2

from gateway.native.httprule import _binding, bindings, parse_template
from gateway.native.routes import SERVICES
from metering.v1 import records_pb2


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("/v1/events", "/v1/events", {}),
    ("/v1/events/{event_id}", "/v1/events/abc", {"event_id": "abc"}),
    ("/v1/events/{event.event_id}", "/v1/events/abc", {"event.event_id": "abc"}),
    ("/v1/events:batchRecord", "/v1/events:batchRecord", {}),
    ("/v1/events/{event_id}:void", "/v1/events/abc:void", {"event_id": "abc"}),
    ("/v1/{name=projects/*/events/*}", "/v1/projects/p/events/e", {"name": "projects/p/events/e"}),
    ("/v1/files/{path=**}", "/v1/files/a/b/c", {"path": "a/b/c"}),
    ("/v1/*/x", "/v1/anything/x", {}),
])
def test_templates_match(template, path, expected):
    assert parse_template(template).match(path) == expected


@pytest.mark.parametrize(("template", "path"), [
    ("/v1/events", "/v1/events/abc"),
    ("/v1/events:batchRecord", "/v1/events"),
    ("/v1/events/{event_id}:void", "/v1/events/abc"),
    ("/v1/events/{event_id}:void", "/v1/events/abc:revoke"),
    ("/v1/events/{event_id}", "/v1/events/a/b"),
    ("/v1/{name=projects/*}", "/v1/projects/p/q"),
])
def test_templates_do_not_match(template, path):
    assert parse_template(template).match(path) is None


@pytest.mark.parametrize("template", ["v1/x", "/v1/{1bad}", "/v1/{open", "/v1//x", "/v1/a*b"])
def test_bad_templates_are_refused(template):
    with pytest.raises(ValueError):
        parse_template(template)


def test_openapi_path_keeps_variables_and_verb():
    assert parse_template("/v1/{name=projects/*}:get").openapi_path == "/v1/{name}:get"


def test_bindings_come_from_the_descriptors():
    found = {(b.http_method, b.template.source): b for b in bindings(SERVICES)}
    void = found["POST", "/v1/events/{event_id}:void"]
    assert void.rpc_path == "/metering.v1.RecordService/VoidEvent"
    assert void.body == "*"
    assert found["PATCH", "/v1/events/{event.event_id}"].body == "event"
    assert found["POST", "/v1/events"].input_type.DESCRIPTOR.name == "RecordEventRequest"
    assert not any("StreamEvents" in b.rpc_path for b in found.values())  # streaming: no REST route


def test_additional_bindings_and_custom_verbs():
    rule = http_pb2.HttpRule(get="/v1/events/{event_id}")
    rule.additional_bindings.add(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/v1/e/{event_id}"))
    service = records_pb2.DESCRIPTOR.services_by_name["RecordService"]
    method = service.methods_by_name["GetEvent"]
    extra = _binding(service, method, rule.additional_bindings[0], 1)
    assert (extra.http_method, extra.operation_id) == ("HEAD", "RecordService_GetEvent2")


def test_a_variable_naming_no_field_is_refused():
    service = records_pb2.DESCRIPTOR.services_by_name["RecordService"]
    with pytest.raises(ValueError, match="no field 'nope'"):
        _binding(service, service.methods_by_name["GetEvent"], http_pb2.HttpRule(get="/v1/{nope}"), 0)
