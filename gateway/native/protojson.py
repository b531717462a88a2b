"""Protobuf messages <-> the JSON of the native REST routes, grpc-gateway style.

Out: proto field names (UseProtoNames), every field present (EmitUnpopulated:
zero values, `[]`, `{}`, unset messages as `null`), int64 as JSON numbers.
In: a JSON body (proto or lowerCamel names, unknown fields rejected) and
query/path parameters addressed by dotted field paths, repeated fields as
repeated parameters, maps as `labels[key]=value`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any, TypeAlias

from google.protobuf import descriptor as pb_descriptor
from google.protobuf import duration_pb2, field_mask_pb2, json_format, timestamp_pb2, wrappers_pb2
from google.protobuf import message as pb_message

from gateway.http.errors import invalid_argument

FD: TypeAlias = pb_descriptor.FieldDescriptor
INT64_TYPES = frozenset({FD.CPPTYPE_INT64, FD.CPPTYPE_UINT64})
INT_RANGES = {
    FD.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FD.CPPTYPE_UINT32: (0, 2**32 - 1),
    FD.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FD.CPPTYPE_UINT64: (0, 2**64 - 1),
}
WRAPPER_TYPES = (wrappers_pb2.DoubleValue, wrappers_pb2.FloatValue, wrappers_pb2.Int64Value, wrappers_pb2.UInt64Value,
                 wrappers_pb2.Int32Value, wrappers_pb2.UInt32Value, wrappers_pb2.BoolValue, wrappers_pb2.StringValue,
                 wrappers_pb2.BytesValue)
WRAPPERS = frozenset(t.DESCRIPTOR.full_name for t in WRAPPER_TYPES)
INT64_WRAPPERS = frozenset({"google.protobuf.Int64Value", "google.protobuf.UInt64Value"})
# Well-known types written as one JSON value (a string, a number); they are leaves, not objects.
SCALAR_WKT = WRAPPERS | {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_MAP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(.*)\]$")


def descriptor_of(msg: pb_message.Message | type[pb_message.Message]) -> pb_descriptor.Descriptor:
    """A message's descriptor. The stubs type `DESCRIPTOR` as this or upb's own Descriptor class;
    at run time upb's are instances of descriptor.Descriptor too (its metaclass says so)."""
    desc = msg.DESCRIPTOR
    if not isinstance(desc, pb_descriptor.Descriptor):
        raise TypeError(f"{type(desc).__name__} is not a message descriptor")
    return desc


def map_value(field: FD) -> FD | None:
    """The value field of a map field's entries; None for a field that is not a map."""
    entry = field.message_type
    if entry is None or not entry.GetOptions().map_entry:
        return None
    return entry.fields_by_name["value"]


def to_json(msg: pb_message.Message) -> dict[str, Any]:
    data = json_format.MessageToDict(msg, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
    _fix_message(data, descriptor_of(msg))
    return dict(data)


def _fix_message(data: dict[str, Any], desc: pb_descriptor.Descriptor) -> None:
    """In place: int64 as numbers, unset messages as null, keys in field-number order (as protojson)."""
    if desc.full_name.startswith("google.protobuf."):
        return
    fixed: dict[str, Any] = {}
    for field in sorted(desc.fields, key=lambda f: f.number):
        if field.name not in data:
            if not field.is_repeated and field.message_type is not None and field.containing_oneof is None:
                fixed[field.name] = None  # EmitUnpopulated: an unset message is null
            continue
        value = data[field.name]
        inner = map_value(field)
        if inner is not None:
            fixed[field.name] = {k: _fix_value(v, inner) for k, v in value.items()}
        elif field.is_repeated:
            fixed[field.name] = [_fix_value(v, field) for v in value]
        else:
            fixed[field.name] = _fix_value(value, field)
    data.clear()
    data.update(fixed)


def _fix_value(value: Any, field: FD) -> Any:
    if field.cpp_type in INT64_TYPES and isinstance(value, str):
        return int(value)
    message_type = field.message_type
    if message_type is not None:
        if message_type.full_name in INT64_WRAPPERS and isinstance(value, str):
            return int(value)
        if isinstance(value, dict):
            _fix_message(value, message_type)
    return value


def parse_body(data: Any, msg: pb_message.Message, prefix: str = "") -> None:
    """Merges a decoded JSON body into `msg`; a bad body is INVALID_ARGUMENT."""
    desc = descriptor_of(msg)
    if desc.full_name not in SCALAR_WKT and not isinstance(data, dict):
        raise invalid_argument(prefix, f"expected a JSON object for {desc.name}")
    try:
        json_format.ParseDict(data, msg, ignore_unknown_fields=False)
    except json_format.ParseError as err:
        raise invalid_argument(prefix, str(err)) from None


def set_path(msg: pb_message.Message, key: str, values: list[str], *, ignore_unknown: bool) -> None:
    """Sets the field a query or path parameter names (`page_size`, `event.event_id`,
    `labels[size]`) from its string values."""
    parts = key.split(".")
    target = msg
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        map_key = None
        found = _MAP_KEY.match(part) if last else None
        if found is not None:
            part, map_key = found.group(1), found.group(2)
        field = _lookup(descriptor_of(target), part)
        if field is None:
            if ignore_unknown:
                return  # grpc-gateway ignores query parameters that name no field
            raise invalid_argument(key, "no such field")
        if not last:
            if field.message_type is None or field.is_repeated or field.message_type.full_name in SCALAR_WKT:
                raise invalid_argument(key, f"{field.name} is not a message field")
            target = getattr(target, field.name)
            continue
        inner = map_value(field)
        if map_key is not None:
            if inner is None:
                raise invalid_argument(key, f"{field.name} is not a map")
            getattr(target, field.name)[map_key] = _scalar(inner, _one(key, values), key)
        elif inner is not None:
            raise invalid_argument(key, f"set map entries as {field.name}[key]=value")
        elif field.is_repeated:
            if field.message_type is not None and field.message_type.full_name not in SCALAR_WKT:
                raise invalid_argument(key, "repeated messages cannot be query parameters")
            container = getattr(target, field.name)
            for value in values:
                if field.message_type is not None:
                    _set_wkt(container.add(), value, key)
                else:
                    container.append(_scalar(field, value, key))
        elif field.message_type is not None:
            if field.message_type.full_name not in SCALAR_WKT:
                raise invalid_argument(key, f"{field.name} is a message; set its fields as {field.name}.<field>")
            _set_wkt(getattr(target, field.name), _one(key, values), key)
        else:
            setattr(target, field.name, _scalar(field, _one(key, values), key))


def _one(key: str, values: list[str]) -> str:
    if len(values) != 1:
        raise invalid_argument(key, "too many values; the field is not repeated")
    return values[0]


def _lookup(desc: pb_descriptor.Descriptor, name: str) -> FD | None:
    field = desc.fields_by_name.get(name)
    if field is not None:
        return field
    return next((f for f in desc.fields if f.json_name == name), None)


def _set_wkt(target: pb_message.Message, value: str, key: str) -> None:
    desc = descriptor_of(target)
    try:
        if isinstance(target, WRAPPER_TYPES):
            target.value = _scalar(desc.fields_by_name["value"], value, key)
        elif isinstance(target, field_mask_pb2.FieldMask):
            target.paths.extend(p.strip() for p in value.split(",") if p.strip())
        elif isinstance(target, (timestamp_pb2.Timestamp, duration_pb2.Duration)):
            target.FromJsonString(value)
        else:
            raise TypeError(f"{desc.full_name} is not a well-known type written as one JSON value")
    except ValueError as err:
        raise invalid_argument(key, f"invalid {desc.name} {value[:64]!r}: {err}") from None


def _scalar(field: FD, value: str, key: str) -> Any:
    cpp = field.cpp_type
    try:
        if cpp in INT_RANGES:
            number = int(value)
            low, high = INT_RANGES[cpp]
            if not low <= number <= high:
                raise ValueError("out of range")
            return number
        if cpp in (FD.CPPTYPE_DOUBLE, FD.CPPTYPE_FLOAT):
            return float(value)
        if cpp == FD.CPPTYPE_BOOL:
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
            raise ValueError("expected true or false")
        enum = field.enum_type
        if enum is not None:  # cpp_type CPPTYPE_ENUM
            by_name = enum.values_by_name.get(value)
            if by_name is not None:
                return by_name.number
            number = int(value)
            if number not in enum.values_by_number:
                raise ValueError(f"one of {', '.join(enum.values_by_name)}")
            return number
        if field.type == FD.TYPE_BYTES:
            return _bytes(value)
        return value
    except ValueError as err:
        raise invalid_argument(key, f"invalid value {value[:64]!r}: {err}") from None


def _bytes(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        try:
            return base64.urlsafe_b64decode(padded)
        except binascii.Error:
            raise ValueError("not base64") from None


def field_mask_paths(body: Any, desc: pb_descriptor.Descriptor, prefix: str = "") -> list[str]:
    """grpc-gateway's FieldMaskFromRequestBody: the fields a PATCH body names; nested
    messages recurse, maps, repeated fields and well-known types are leaves."""
    paths: list[str] = []
    if not isinstance(body, dict):
        return paths
    for key, value in body.items():
        field = _lookup(desc, key)
        if field is None:
            continue
        path = prefix + field.name
        nested = field.message_type
        if (nested is not None and not field.is_repeated and nested.full_name not in SCALAR_WKT
                and not nested.full_name.startswith("google.protobuf.") and isinstance(value, dict) and value):
            paths.extend(field_mask_paths(value, nested, path + "."))
        else:
            paths.append(path)
    return paths


def group_params(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in items:
        grouped.setdefault(key, []).append(value)
    return grouped


__all__ = ["field_mask_paths", "group_params", "parse_body", "set_path", "to_json"]
