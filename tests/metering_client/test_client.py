"""MeteringClient: every event field by name, per-item results, failures surfaced, back-pressure."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
from typing import Any

import pytest

from metering.v1 import event_pb2
from metering_client import (
    DeliveryError,
    Failure,
    MeteringClient,
    Outcome,
    RejectedEventsError,
)
from metering_client.events import INPUT_FIELDS
from tests.metering_client.conftest import event_counts

ALL_FIELDS: dict[str, Any] = {  # record()'s keyword arguments
    "request_id": "all-fields", "timestamp": dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=dt.UTC),
    "project_id": "p1", "user_id": "u1", "api_key_id": "k1", "client_id": "c1", "kind": "audio_speeches",
    "model": "tts-1", "provider": "openai", "endpoint": "/v1/audio/speech", "api_name": "speech",
    "service_tier": "default", "batch": True, "status": "error", "error_message": "partial",
    **{name: n for n, name in enumerate((
        "input_tokens", "output_tokens", "input_cached_tokens", "input_cache_write_tokens", "input_text_tokens",
        "output_text_tokens", "input_cached_text_tokens", "input_audio_tokens", "input_cached_audio_tokens",
        "output_audio_tokens", "input_image_tokens", "input_cached_image_tokens", "output_image_tokens",
        "num_model_requests", "num_requests", "images", "characters", "seconds", "usage_bytes", "num_sessions",
        "units_used"), start=1)},
    "counters": {"inference": 3, "eval_prompt": 4}, "labels": {"task_id": "t9", "size": "1024x1024"},
    "input_cost": decimal.Decimal("0.000000000000000001"), "output_cost": "12345678901234567890.5", "cost": None,
    "currency": "eur", "config_json": "{}", "request_raw": "a", "request_json": "{}", "response_json": "{}",
    "response_raw": "b",
}


# Input fields the stored event does not give back, so the round trip below cannot cover them:
# reservation_id settles its reservation when the event is written, and the server keeps the settling
# event on the reservation (budget_reservations.event_id), not the reservation on the event; its
# round trip is test_budgets.py's (the reservation settled by exactly that event).
NOT_STORED_ON_THE_EVENT = frozenset({"reservation_id"})


def test_all_fields_are_covered():
    assert set(ALL_FIELDS) == INPUT_FIELDS - NOT_STORED_ON_THE_EVENT
    assert NOT_STORED_ON_THE_EVENT <= INPUT_FIELDS


async def test_record_every_field_round_trips(target, new_org):
    org = await new_org()

    def run() -> event_pb2.UsageEvent:
        with MeteringClient(target, org.admin_key) as client:
            result = client.record(**ALL_FIELDS).result(timeout=10)
            assert result.outcome is Outcome.RECORDED and result.event_id
            return client.get_event(request_id="all-fields")

    stored = await asyncio.to_thread(run)
    for name, value in ALL_FIELDS.items():
        got = getattr(stored, name)
        if name == "timestamp":
            assert got.ToDatetime(dt.UTC) == value
        elif name in ("input_cost", "output_cost"):
            assert decimal.Decimal(got) == decimal.Decimal(value)
        elif name in ("counters", "labels"):
            assert dict(got) == value
        elif value is not None:
            assert got == value, name
    assert decimal.Decimal(stored.cost) == decimal.Decimal("12345678901234567890.500000000000000001")


async def test_per_item_results_and_failures(target, new_org, db):
    org = await new_org()

    def run() -> None:
        client = MeteringClient(target, org.admin_key)
        receipts = client.record_many([
            {"request_id": "ok-1", "kind": "completions", "input_tokens": 1},
            {"request_id": "ok-1", "kind": "completions", "input_tokens": 1},           # same key: duplicate
            {"request_id": "bad-1", "kind": "completions", "input_tokens": -1},         # rejected
            event_pb2.UsageEvent(request_id="bad-2", kind="teleport"),                 # rejected
            {"kind": "embeddings", "input_tokens": 5, "timestamp": 1_700_000_000.25},  # generated request_id
        ])
        results = [r.result(timeout=10) for r in receipts]
        assert [r.outcome for r in results] == [
            Outcome.RECORDED, Outcome.DUPLICATE, Outcome.REJECTED, Outcome.REJECTED, Outcome.RECORDED,
        ]
        assert results[1].event_id == results[0].event_id
        assert (results[2].field, results[2].reason) == ("input_tokens", "INVALID_VALUE")
        assert results[3].field == "kind"
        assert receipts[4].request_id and results[4].request_id == receipts[4].request_id

        with pytest.raises(RejectedEventsError) as raised:
            client.flush()
        assert sorted(f.request_id for f in raised.value.failures) == ["bad-1", "bad-2"]
        assert raised.value.failures[0].event.kind  # the event itself, to fix and resend
        client.flush()  # reported once

        client.record(request_id="bad-3", kind="completions", cost="NaN").result(timeout=10)
        assert [f.result.field for f in client.failures()] == ["cost"]
        client.close()  # failures() took it: nothing left to raise
        status = client.delivery_status()
        assert (status.recorded, status.duplicates, status.rejected, status.journaled) == (2, 1, 3, 0)

    await asyncio.to_thread(run)
    assert await event_counts(db, org.organization_id) == (2, 2)


async def test_on_failure_callback_takes_rejections(target, new_org):
    org = await new_org()
    seen: list[Failure] = []

    def run() -> None:
        with MeteringClient(target, org.admin_key, on_failure=seen.append) as client:
            client.record(kind="completions", input_tokens=-5)
            client.flush()  # does not raise: the callback had them
            assert client.failures() == []

    await asyncio.to_thread(run)
    assert [(f.result.outcome, f.result.field) for f in seen] == [(Outcome.REJECTED, "input_tokens")]


async def test_programming_errors_raise_at_once(target, new_org):
    org = await new_org()
    with MeteringClient(target, org.admin_key) as client:
        with pytest.raises(TypeError, match="not an event field"):
            client.record(kind="completions", tokens=3)
        with pytest.raises(TypeError, match="set by the server"):
            client.record(kind="completions", event_id="x")
        with pytest.raises(TypeError, match="input_tokens: expected int"):
            client.record(kind="completions", input_tokens="3")
        with pytest.raises(TypeError):
            client.record_many([{"kind": "completions"}, {"kind": "completions", "batch": "yes"}])
        assert client.delivery_status().buffered == 0  # record_many checks all before queueing any


async def test_refused_credentials_are_journaled_and_raised(target, tmp_path):
    journal = tmp_path / "refused.jsonl"

    def run() -> None:
        client = MeteringClient(target, "mk_wrong_key", journal_path=journal)
        receipt = client.record(kind="completions", input_tokens=1)
        assert receipt.result(timeout=10).outcome is Outcome.JOURNALED
        with pytest.raises(DeliveryError, match="UNAUTHENTICATED"):
            client.flush()
        with pytest.raises(DeliveryError, match="UNAUTHENTICATED"):  # close() tried the journal again
            client.close()

    await asyncio.to_thread(run)
    assert len(journal.read_text().splitlines()) == 1  # kept for a later run with the right key


async def test_spill_overflow_loses_nothing(target, new_org, db, tmp_path):
    org = await new_org()
    n = 3000

    def run() -> None:
        client = MeteringClient(target, org.admin_key, max_buffer=50, batch_size=50, overflow="spill",
                                journal_path=tmp_path / "spill.jsonl")
        receipts = [client.record(kind="completions", input_tokens=1) for _ in range(n)]
        client.flush()
        outcomes = [r.result().outcome for r in receipts]
        assert outcomes.count(Outcome.JOURNALED) > 0  # the buffer did overflow
        client.flush()  # replays the spilled events
        client.close()
        status = client.delivery_status()
        assert status.journal_bytes == 0
        assert status.recorded + status.replayed == n

    await asyncio.to_thread(run)
    assert await event_counts(db, org.organization_id) == (n, n)


async def test_block_overflow_applies_back_pressure(target, new_org, db):
    org = await new_org()

    def run() -> None:
        with MeteringClient(target, org.admin_key, max_buffer=10, batch_size=10) as client:
            receipts = [client.record(kind="completions", output_tokens=2) for _ in range(500)]
            client.flush()
            assert {r.result().outcome for r in receipts} == {Outcome.RECORDED}

    await asyncio.to_thread(run)
    assert await event_counts(db, org.organization_id) == (500, 500)


async def test_query_usage_revalidates_an_answer_by_its_etag(target, new_org, db):
    """A polling caller sends the etag of its last answer back: unchanged answers cost no buckets."""
    from google.protobuf import timestamp_pb2

    from metering.v1 import query_pb2
    from server.rollups.recompute import recompute_day

    org = await new_org()
    day = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
    start = timestamp_pb2.Timestamp(seconds=int(day.timestamp()))
    end = timestamp_pb2.Timestamp(seconds=int(day.timestamp()) + 86400)

    def ask(client: MeteringClient, etag: str = "") -> query_pb2.QueryUsageResponse:
        return client.query_usage(query_pb2.QueryUsageRequest(start_time=start, end_time=end, if_none_match=etag))

    def record_and_ask() -> query_pb2.QueryUsageResponse:
        with MeteringClient(target, org.admin_key) as client:
            client.record(request_id="etag-1", kind="completions", timestamp=day, input_tokens=5).result(timeout=10)
            return ask(client)

    dirty = await asyncio.to_thread(record_and_ask)
    assert dirty.etag == "" and dirty.buckets[0].groups[0].metrics.input_tokens == 5
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    await recompute_day(db, number, day)

    def poll() -> tuple[query_pb2.QueryUsageResponse, query_pb2.QueryUsageResponse]:
        with MeteringClient(target, org.admin_key) as client:
            first = ask(client)
            return first, ask(client, first.etag)

    first, second = await asyncio.to_thread(poll)
    assert first.etag and first.buckets[0].groups[0].metrics.input_tokens == 5
    assert second.not_modified and not second.buckets and second.etag == first.etag
