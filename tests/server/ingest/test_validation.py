"""Every rejection is INVALID_ARGUMENT naming the field, in the rich status (ErrorInfo and
BadRequest) and in the batch item result; nothing of a rejected event is written."""

from __future__ import annotations

import datetime as dt
import decimal

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from metering.v1 import event_pb2, ingest_pb2, records_pb2
from server.core.errors import InvalidArgument
from server.core.principal import Principal
from server.ingest.validation import MAX_COUNTER, Validator

REQUEST_ID = "v-1"


def ev(**fields) -> event_pb2.UsageEvent:
    fields.setdefault("kind", "completions")
    fields.setdefault("model", "gpt-4o")
    return event_pb2.UsageEvent(request_id=REQUEST_ID, **fields)


def at(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    status = rpc_status.from_call(err)
    if status is None:  # fall back to the raw trailer
        raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
        assert raw is not None, "no grpc-status-details-bin trailer"
        status = status_pb2.Status.FromString(raw)
    assert status.code == err.code().value[0]
    return status


def details(status: status_pb2.Status) -> tuple[list[error_details_pb2.ErrorInfo], list[error_details_pb2.BadRequest]]:
    infos, bad = [], []
    for any_ in status.details:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
            infos.append(info)
        elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            req = error_details_pb2.BadRequest()
            any_.Unpack(req)
            bad.append(req)
    return infos, bad


CASES = [
    # (id, event, field, reason)
    ("missing-kind", ev(kind=""), "kind", "REQUIRED"),
    ("blank-kind", ev(kind="   "), "kind", "REQUIRED"),
    ("unknown-kind", ev(kind="chat"), "kind", "INVALID_VALUE"),
    ("negative-counter", ev(input_tokens=-1), "input_tokens", "INVALID_VALUE"),
    ("negative-last-counter", ev(units_used=-7), "units_used", "INVALID_VALUE"),
    ("negative-num-model-requests", ev(num_model_requests=-1), "num_model_requests", "INVALID_VALUE"),
    ("counter-above-maximum", ev(input_tokens=MAX_COUNTER + 1), "input_tokens", "INVALID_VALUE"),
    ("last-counter-int64", ev(units_used=2**63 - 1), "units_used", "INVALID_VALUE"),
    ("num-model-requests-above-maximum", ev(num_model_requests=MAX_COUNTER + 1), "num_model_requests",
     "INVALID_VALUE"),
    ("extra-counter-above-maximum", ev(counters={"inference": 3, "eval_prompt": MAX_COUNTER + 1}),
     "counters.eval_prompt", "INVALID_VALUE"),
    ("negative-extra-counter", ev(counters={"inference": 3, "eval_prompt": -5}), "counters.eval_prompt",
     "INVALID_VALUE"),
    ("bad-extra-counter-name", ev(counters={"bad name": 1}), "counters.bad name", "INVALID_VALUE"),
    ("bad-status", ev(status="failed"), "status", "INVALID_VALUE"),
    ("nan-cost", ev(cost="NaN"), "cost", "INVALID_VALUE"),
    ("infinite-input-cost", ev(input_cost="Infinity"), "input_cost", "INVALID_VALUE"),
    ("negative-cost", ev(cost="-0.01"), "cost", "INVALID_VALUE"),
    ("negative-output-cost", ev(input_cost="1", output_cost="-1"), "output_cost", "INVALID_VALUE"),
    ("non-numeric-cost", ev(cost="1.2.3"), "cost", "INVALID_VALUE"),
    ("float-words-cost", ev(cost="ten"), "cost", "INVALID_VALUE"),
    ("too-precise-cost", ev(cost="0.0000000000000000001"), "cost", "INVALID_VALUE"),
    ("too-large-cost", ev(cost="123456789012345678901"), "cost", "INVALID_VALUE"),
    ("too-large-derived-cost", ev(input_cost="99999999999999999999.5", output_cost="0.5"), "cost", "INVALID_VALUE"),
    ("huge-exponent-cost", ev(cost="1e400"), "cost", "INVALID_VALUE"),
    ("before-2000", ev(timestamp=at(dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC))), "timestamp",
     "INVALID_VALUE"),
    ("epoch", ev(timestamp=timestamp_pb2.Timestamp(seconds=0)), "timestamp", "INVALID_VALUE"),
    ("far-future", None, "timestamp", "INVALID_VALUE"),  # built at call time: now + 2 days
    ("nul-in-model", ev(model="gpt\x00-4o"), "model", "INVALID_VALUE"),
    ("nul-in-request-id", event_pb2.UsageEvent(request_id="v-\x001", kind="completions"), "request_id",
     "INVALID_VALUE"),
    ("nul-in-label", ev(labels={"task_id": "a\x00b"}), "labels.task_id", "INVALID_VALUE"),
    ("nul-in-payload", ev(request_json='{"a": "\x00"}'), "request_json", "INVALID_VALUE"),
    ("too-many-labels", ev(labels={f"k{i}": "v" for i in range(65)}), "labels", "INVALID_VALUE"),
    ("oversize-label-value", ev(labels={"size": "x" * 1025}), "labels.size", "INVALID_VALUE"),
    ("bad-label-name", ev(labels={"no spaces": "v"}), "labels.no spaces", "INVALID_VALUE"),
    ("oversize-model", ev(model="m" * 257), "model", "INVALID_VALUE"),
    ("bad-currency-long", ev(currency="dollars"), "currency", "INVALID_VALUE"),
    ("bad-currency-digits", ev(currency="us1"), "currency", "INVALID_VALUE"),
]


@pytest.mark.parametrize(("event", "field", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_rejected_with_field(stubs, new_org, db, event, field, reason):
    if event is None:
        event = ev(timestamp=at(now() + dt.timedelta(days=2)))
    org = await new_org()

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event), metadata=org.auth)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = err.details()
    assert message is not None and field in message
    status = rich_status(err)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    infos, bad = details(status)
    assert len(infos) == 1
    assert infos[0].reason == reason
    assert infos[0].domain
    assert infos[0].metadata["field"] == field
    violations = [v for b in bad for v in b.field_violations]
    assert [v.field for v in violations] == [field]
    assert violations[0].description

    # The same event in a batch: rejected alone, with the same field and reason.
    good = ev(input_tokens=1)
    good.request_id = "v-good"
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=[event, good]), metadata=org.auth)
    assert [r.outcome for r in resp.results] == [ingest_pb2.OUTCOME_REJECTED, ingest_pb2.OUTCOME_RECORDED]
    assert (resp.results[0].field, resp.results[0].reason) == (field, reason)
    assert (resp.recorded, resp.rejected) == (1, 1)

    # Nothing of the rejected event was written, anywhere.
    oid = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    for table in ("events", "request_keys", "event_payloads"):
        rids = await db.fetch(
            f"select t.* from {table} t where t.org_id = $1", oid  # noqa: S608 - fixed table names
        )
        if table == "event_payloads":
            assert rids == []
        else:
            assert [r["request_id"] for r in rids] == ["v-good"], table
    assert await db.fetchval("select count(*) from series where org_id = $1", oid) == 1
    dirty = await db.fetchval("select count(*) from dirty_windows where org_id = $1", oid)
    assert dirty == 1  # only the good event's window


BOUNDARY_OK = [
    ("one-hour-ahead", lambda: ev(timestamp=at(now() + dt.timedelta(hours=23)))),
    ("year-2000", lambda: ev(timestamp=at(dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))),
    ("64-labels", lambda: ev(labels={f"k{i}": "v" for i in range(64)})),
    ("label-1024", lambda: ev(labels={"size": "x" * 1024})),
    ("zero-counters", lambda: ev(input_tokens=0, counters={"inference": 0})),
    ("max-counter", lambda: ev(input_tokens=MAX_COUNTER, units_used=MAX_COUNTER, counters={"x": MAX_COUNTER})),
    ("cost-18-places", lambda: ev(cost="0.000000000000000001")),
    ("upper-currency", lambda: ev(currency="EUR")),
    ("error-status", lambda: ev(status="error", error_message="boom")),
    ("every-kind", None),
]


@pytest.mark.parametrize("make", [c[1] for c in BOUNDARY_OK], ids=[c[0] for c in BOUNDARY_OK])
async def test_accepted_at_the_limits(stubs, new_org, db, make):
    """The limits are where they say: just inside them is accepted."""
    org = await new_org()
    if make is None:
        kinds = ["completions", "embeddings", "moderations", "images", "audio_speeches", "audio_transcriptions",
                 "vector_stores", "code_interpreter_sessions", "file_search_calls", "web_search_calls", "rerank",
                 "api_call"]
        events = [event_pb2.UsageEvent(request_id=f"k-{k}", kind=k) for k in kinds]
    else:
        events = [make()]
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert [(r.outcome, r.field) for r in resp.results] == [(ingest_pb2.OUTCOME_RECORDED, "")] * len(events)
    oid = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    assert await db.fetchval("select count(*) from events where org_id = $1", oid) == len(events)


async def test_updates_above_the_counter_maximum_are_rejected(stubs, new_org, db):
    """UpdateEvent validates the adjusted event as ingest does: a counter above MAX_COUNTER
    is INVALID_ARGUMENT naming it, and the event stays as it was."""
    org = await new_org()
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(input_tokens=7)), metadata=org.auth)
    oid = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    before = dict(await db.fetchrow("select * from events where org_id = $1", oid))
    for patch, path, field in (({"input_tokens": MAX_COUNTER + 1}, "input_tokens", "input_tokens"),
                               ({"seconds": 2**63 - 1}, "seconds", "seconds"),
                               ({"counters": {"inference": MAX_COUNTER + 1}}, "counters.inference",
                                "counters.inference")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
                event=event_pb2.UsageEvent(event_id=rec.event_id, **patch),
                update_mask=field_mask_pb2.FieldMask(paths=[path])), metadata=org.auth)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith(f"{field}: must be <= {MAX_COUNTER}")
    assert dict(await db.fetchrow("select * from events where org_id = $1", oid)) == before
    updated = await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
        event=event_pb2.UsageEvent(event_id=rec.event_id, input_tokens=MAX_COUNTER),
        update_mask=field_mask_pb2.FieldMask(paths=["input_tokens"])), metadata=org.auth)
    assert updated.input_tokens == MAX_COUNTER  # the maximum itself is allowed


async def test_batch_too_large_is_rejected_whole(stubs, new_org, db):
    org = await new_org()
    events = [ev() for _ in range(10_001)]
    for i, e in enumerate(events):
        e.request_id = f"big-{i}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, bad = details(rich_status(caught.value))
    assert [v.field for b in bad for v in b.field_violations] == ["events"]
    oid = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    assert await db.fetchval("select count(*) from request_keys where org_id = $1", oid) == 0


def test_event_times_and_money_fields_of_the_fast_paths():
    """Validator reuses the datetime of a whole second and reads money without
    HasField when it has text: sub-second times stay exact, an unset time is now,
    a set but empty amount is still rejected."""
    check = Validator(Principal(org_id=1, organization_id="x", role="admin"), now())
    base = dt.datetime(2026, 3, 5, 10, 0, 7, tzinfo=dt.UTC)
    seconds = int(base.timestamp())
    stamps = [check(ev(timestamp=timestamp_pb2.Timestamp(seconds=seconds, nanos=n))).ts
              for n in (0, 123_456_789, 999, 0, 1_000)]
    assert stamps == [base, base.replace(microsecond=123_456), base, base, base.replace(microsecond=1)]
    assert check(ev()).ts == check.now
    event = check(ev(input_cost="0.5", cost="2"))
    assert (event.input_cost, event.output_cost, event.cost) == (decimal.Decimal("0.5"), None, decimal.Decimal("2"))
    assert check(ev(output_cost="1.25")).cost == decimal.Decimal("1.25")
    for field in ("input_cost", "output_cost", "cost"):
        with pytest.raises(InvalidArgument) as caught:
            check(ev(**{field: ""}))
        assert caught.value.field == field
