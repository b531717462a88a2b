"""server/core/convert.py: a stored event row as the UsageEvent the API answers, field by field."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

from metering.v1 import event_pb2
from server.core import convert
from server.core.events import COUNTER_FIELDS, TEXT_DIMENSIONS

EVENT_ID = uuid.UUID("018e1f2a-3b4c-7d5e-8f60-718293a4b5c6")


def stored(**changes: Any) -> dict[str, Any]:
    """A row as list_events reads it: no payload columns unless given."""
    ts = dt.datetime(2024, 3, 8, 21, 0, 0, 932_796, tzinfo=dt.UTC)
    row: dict[str, Any] = {
        "event_id": EVENT_ID, "request_id": "r-1", "ts": ts, "received_at": ts, "updated_at": ts,
        "kind": "completions", "batch": False, "status": "success", "currency": "usd", "price_version": None,
        "unpriced": False, "active": True, "labels": {}, "counters": None,
        "input_cost": None, "output_cost": None, "cost": decimal.Decimal("0.00244498000000000000"),
        **{name: None for name in TEXT_DIMENSIONS}, **{name: 0 for name in COUNTER_FIELDS},
    }
    return {**row, **changes}


def test_a_plain_row_sets_what_it_holds_and_nothing_else() -> None:
    event = convert.event(stored(model="gpt-4o", project_id="p", input_tokens=12, num_model_requests=1), "org")
    assert event.event_id == str(EVENT_ID) and event.organization_id == "org" and event.model == "gpt-4o"
    assert event.timestamp.ToJsonString() == "2024-03-08T21:00:00.932796Z" == event.updated_at.ToJsonString()
    assert event.cost == "0.00244498" and not event.HasField("input_cost") and not event.HasField("output_cost")
    assert event.input_tokens == 12 and event.num_model_requests == 1 and event.active and not event.unpriced
    assert dict(event.labels) == {} and dict(event.counters) == {} and event.price_version == ""


def test_optional_counters_maps_money_and_payload() -> None:
    event = convert.event(stored(num_model_requests=0, labels={"team": "search"}, counters={"tool_calls": 3},
                                 input_cost=decimal.Decimal("0E-20"), output_cost=decimal.Decimal("1.50"),
                                 cost=decimal.Decimal("1.5"), client_id="", price_version="v7", unpriced=True,
                                 error_message="boom", request_raw=""), "org")
    assert event.HasField("num_model_requests") and event.num_model_requests == 0  # set, though zero
    assert dict(event.labels) == {"team": "search"} and dict(event.counters) == {"tool_calls": 3}
    assert (event.input_cost, event.output_cost, event.cost) == ("0", "1.5", "1.5")
    assert event.price_version == "v7" and event.unpriced and event.error_message == "boom"


def test_times_at_and_before_the_epoch_are_set() -> None:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    event = convert.event(stored(ts=epoch, received_at=dt.datetime(1969, 12, 31, 23, 59, 59, 999_999),
                                 updated_at=dt.datetime(1, 1, 1, tzinfo=dt.UTC)), "org")
    assert event.HasField("timestamp") and (event.timestamp.seconds, event.timestamp.nanos) == (0, 0)
    assert (event.received_at.seconds, event.received_at.nanos) == (-1, 999_999_000)  # naive: UTC
    assert event.updated_at.ToJsonString() == "0001-01-01T00:00:00Z"
    assert convert.timestamp(epoch) == event.timestamp and convert.timestamp(epoch).ListFields() == []


def test_the_event_is_what_setting_each_field_gives() -> None:
    row = stored(model="m", labels={"b": "2", "a": "1"}, input_tokens=5, num_model_requests=2)
    expected = event_pb2.UsageEvent(event_id=str(EVENT_ID), request_id="r-1", organization_id="org",
                                    kind="completions", status="success", currency="usd", active=True, model="m",
                                    input_tokens=5, num_model_requests=2, cost="0.00244498",
                                    labels={"a": "1", "b": "2"})
    for name in ("timestamp", "received_at", "updated_at"):
        getattr(expected, name).CopyFrom(convert.timestamp(row["ts"]))
    assert convert.event(row, "org").SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True)
