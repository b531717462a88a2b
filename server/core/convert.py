"""Database rows to wire messages."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any, TypeAlias

import asyncpg
from google.protobuf import timestamp_pb2

from metering.v1 import admin_pb2, event_pb2
from server.core.events import COUNTER_FIELDS, PAYLOAD_FIELDS, TEXT_DIMENSIONS

# A stored row: an asyncpg record, or any mapping of column names (tests, repricing).
Row: TypeAlias = "Mapping[str, Any] | asyncpg.Record"

ROLE_TO_PROTO = {"admin": admin_pb2.ROLE_ADMIN, "member": admin_pb2.ROLE_MEMBER}
ROLE_FROM_PROTO = {admin_pb2.ROLE_UNSPECIFIED: "", admin_pb2.ROLE_ADMIN: "admin", admin_pb2.ROLE_MEMBER: "member"}


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """A datetime (naive: UTC) as a Timestamp, by arithmetic: Timestamp.FromDatetime is pure
    Python and was a sixth of a grouped month's cost (timedelta keeps microseconds >= 0,
    also before 1970)."""
    return timestamp_pb2.Timestamp(**_stamp(value))


def _stamp(value: dt.datetime) -> dict[str, int]:
    """A Timestamp's fields, as a message's constructor takes them for a Timestamp field: in
    event() no Timestamp is made and then copied into the message (~1.5 µs a time less)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - _EPOCH
    return {"seconds": delta.days * 86400 + delta.seconds, "nanos": delta.microseconds * 1000}


def money(value: decimal.Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def event(row: Row, organization_id: str) -> event_pb2.UsageEvent:
    """An event row as its message, made by one constructor call from its fields; the times as
    _stamp fields, the maps only when not empty (assigning an empty dict cost ~2.5 µs a map).
    ~20% less CPU than setting field after field on a made message; the message is the same."""
    fields: dict[str, Any] = {
        "event_id": str(row["event_id"]),
        "request_id": row["request_id"],
        "timestamp": _stamp(row["ts"]),
        "received_at": _stamp(row["received_at"]),
        "updated_at": _stamp(row["updated_at"]),
        "organization_id": organization_id,
        "kind": row["kind"],
        "batch": row["batch"],
        "status": row["status"],
        "currency": row["currency"],
        "price_version": row["price_version"] or "",
        "unpriced": row["unpriced"],
        "active": row["active"],
    }
    for name in COUNTER_FIELDS:
        fields[name] = row[name]
    for name in TEXT_DIMENSIONS:
        if row[name] is not None:
            fields[name] = row[name]
    for name in ("input_cost", "output_cost", "cost"):
        if row[name] is not None:
            fields[name] = money(row[name])
    for name in PAYLOAD_FIELDS:
        if name in row and row[name] is not None:
            fields[name] = row[name]
    if row["labels"]:
        fields["labels"] = row["labels"]
    if row["counters"]:
        fields["counters"] = row["counters"]
    return event_pb2.UsageEvent(**fields)


def organization(row: Row) -> admin_pb2.Organization:
    return admin_pb2.Organization(
        organization_id=row["id"], name=row["name"], create_time=timestamp(row["create_time"]),
    )


def project(row: Row, organization_id: str) -> admin_pb2.Project:
    return admin_pb2.Project(
        organization_id=organization_id, project_id=row["project_id"], name=row["name"],
        create_time=timestamp(row["create_time"]),
    )


def user(row: Row, organization_id: str) -> admin_pb2.User:
    return admin_pb2.User(
        organization_id=organization_id, user_id=row["user_id"], username=row["username"],
        role=ROLE_TO_PROTO[row["role"]], create_time=timestamp(row["create_time"]),
    )


def api_key(row: Row, organization_id: str) -> admin_pb2.ApiKey:
    msg = admin_pb2.ApiKey(
        api_key_id=row["api_key_id"], organization_id=organization_id, project_id=row["project_id"] or "",
        user_id=row["user_id"] or "", role=ROLE_TO_PROTO[row["role"]], name=row["name"], prefix=row["prefix"],
        create_time=timestamp(row["create_time"]), revoked=row["revoke_time"] is not None,
    )
    if row["revoke_time"] is not None:
        msg.revoke_time.CopyFrom(timestamp(row["revoke_time"]))
    return msg
