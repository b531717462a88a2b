"""Keyword fields to wire events: exact money, explicit time, early errors."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from metering_client.events import build_event, decimal_text, to_timestamp


@pytest.mark.parametrize(("value", "text"), [
    (0.0001, "0.0001"), (0.1 + 0.2, "0.30000000000000004"), (1e-7, "0.0000001"), (3, "3"),
    (2.5e20, "250000000000000000000"),
    (decimal.Decimal("1.10"), "1.10"), (decimal.Decimal("1E-18"), "0.000000000000000001"), (" 0.5 ", "0.5"),
    ("12345678901234567890.123456789012345678", "12345678901234567890.123456789012345678"),
])
def test_money_is_an_exact_decimal_string(value, text):
    assert decimal_text(value) == text


def test_bad_money_is_left_for_the_server_to_name():
    assert decimal_text(float("nan")) == "nan"
    assert decimal_text("abc") == "abc"
    with pytest.raises(TypeError):
        decimal_text(True)


def test_timestamps():
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    for value in (when, when.replace(tzinfo=None), when.astimezone(dt.timezone(dt.timedelta(hours=-5))),
                  when.timestamp(), "2024-01-02T03:04:05.678901Z"):
        assert to_timestamp(value).ToDatetime(dt.UTC) == when
    assert to_timestamp(1_700_000_000).seconds == 1_700_000_000
    with pytest.raises(TypeError):
        to_timestamp(True)
    with pytest.raises(ValueError):
        to_timestamp("yesterday")


def test_build_event_fixes_key_and_time_at_record_time():
    event = build_event({"kind": "completions", "model": None, "labels": {"task": "t"}, "counters": {"inference": 4},
                         "num_model_requests": 0})
    assert len(event.request_id) == 32 and event.HasField("timestamp")
    assert abs(event.timestamp.ToDatetime(dt.UTC) - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert not event.model and event.HasField("num_model_requests") and event.num_model_requests == 0
    assert not event.HasField("cost")
    assert dict(event.labels) == {"task": "t"} and dict(event.counters) == {"inference": 4}


@pytest.mark.parametrize(("fields", "message"), [
    ({"tokens": 1}, "not an event field"),
    ({"unpriced": True}, "set by the server"),
    ({"input_tokens": 1.5}, "input_tokens: expected int"),
    ({"input_tokens": 2**63}, "int64"),
    ({"batch": 1}, "batch: expected bool"),
    ({"model": 4}, "model: expected str"),
    ({"labels": {"a": 1}}, "labels.a: expected str"),
    ({"counters": ["x"]}, "counters: expected a mapping"),
])
def test_programming_errors(fields, message):
    with pytest.raises((TypeError, ValueError), match=message):
        build_event({"kind": "completions", **fields})
