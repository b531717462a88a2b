"""Ingest (DESIGN §4): exactly once per (organization, request_id), per-item results,
acknowledgements only after commit, defaults, payloads kept apart, exact money."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import random
import uuid

import grpc
import pytest

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, ingest_pb2_grpc, records_pb2
from tests.conftest import bearer

RECORDED = ingest_pb2.OUTCOME_RECORDED
DUPLICATE = ingest_pb2.OUTCOME_DUPLICATE
REJECTED = ingest_pb2.OUTCOME_REJECTED


def ev(request_id: str = "", **fields) -> event_pb2.UsageEvent:
    fields.setdefault("kind", "completions")
    fields.setdefault("model", "gpt-4o")
    return event_pb2.UsageEvent(request_id=request_id, **fields)


def stamp(value: dt.datetime):
    from google.protobuf import timestamp_pb2

    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


async def org_number(db, org) -> int:
    return await db.fetchval("select org_id from organizations where id = $1", org.organization_id)


async def counts(db, org_id: int) -> tuple[int, int]:
    events = await db.fetchval("select count(*) from events where org_id = $1", org_id)
    keys = await db.fetchval("select count(*) from request_keys where org_id = $1", org_id)
    return events, keys


async def test_unary_record_then_duplicate(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    first = await stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=ev("req-1", input_tokens=3)), metadata=org.auth
    )
    assert first.outcome == RECORDED
    assert first.request_id == "req-1"
    uuid.UUID(first.event_id)
    assert await counts(db, oid) == (1, 1)
    stored = await db.fetchrow("select event_id, input_tokens from events where org_id = $1", oid)
    assert str(stored["event_id"]) == first.event_id and stored["input_tokens"] == 3

    # A retry (even with other content and another event time) is a duplicate of the original.
    later = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    again = await stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=ev("req-1", input_tokens=99, timestamp=stamp(later))), metadata=org.auth
    )
    assert again.outcome == DUPLICATE
    assert again.event_id == first.event_id
    assert again.request_id == "req-1"
    assert await counts(db, oid) == (1, 1)
    assert await db.fetchval("select input_tokens from events where org_id = $1", oid) == 3


async def test_unary_without_request_id_gets_one(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    a = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev()), metadata=org.auth)
    b = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev()), metadata=org.auth)
    assert a.outcome == b.outcome == RECORDED
    assert a.request_id and b.request_id and a.request_id != b.request_id
    assert a.event_id != b.event_id
    assert await counts(db, oid) == (2, 2)


async def test_batch_of_1000_with_repeats_then_replayed(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    ids = [f"b-{i}" for i in range(990)] + [f"b-{i * 97}" for i in range(10)]  # 10 repeats of earlier ids
    random.Random(7).shuffle(ids)
    batch = ingest_pb2.RecordEventsRequest(events=[ev(rid, input_tokens=i + 1) for i, rid in enumerate(ids)])

    resp = await stubs.ingest.RecordEvents(batch, metadata=org.auth)
    assert (resp.recorded, resp.duplicates, resp.rejected) == (990, 10, 0)
    assert len(resp.results) == 1000
    assert [r.index for r in resp.results] == list(range(1000))
    assert [r.request_id for r in resp.results] == ids
    first_id: dict[str, str] = {}
    for r in resp.results:
        if r.request_id not in first_id:
            assert r.outcome == RECORDED, r
            first_id[r.request_id] = r.event_id
        else:  # a repeat within the batch names the event its first occurrence created
            assert r.outcome == DUPLICATE, r
            assert r.event_id == first_id[r.request_id]
    assert len(set(first_id.values())) == 990
    assert await counts(db, oid) == (990, 990)
    stored = {
        r["request_id"]: str(r["event_id"])
        for r in await db.fetch("select request_id, event_id from events where org_id = $1", oid)
    }
    assert stored == first_id
    keys = {
        r["request_id"]: str(r["event_id"])
        for r in await db.fetch("select request_id, event_id from request_keys where org_id = $1", oid)
    }
    assert keys == first_id

    again = await stubs.ingest.RecordEvents(batch, metadata=org.auth)
    assert (again.recorded, again.duplicates, again.rejected) == (0, 1000, 0)
    assert all(r.outcome == DUPLICATE for r in again.results)
    assert [r.event_id for r in again.results] == [first_id[rid] for rid in ids]
    assert await counts(db, oid) == (990, 990)


async def test_batch_mixes_valid_and_rejected_items(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    events = [
        ev("ok-0", input_tokens=1),
        ev("bad-tokens", input_tokens=-1),
        ev("ok-1", output_tokens=2),
        ev("bad-kind", kind="chat"),
        ev("bad-label", labels={"size": "x" * 5000}),
        ev("bad-cost", cost="NaN"),
        ev("ok-2", cost="0.5"),
        ev("bad-missing-kind", kind=""),
    ]
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert (resp.recorded, resp.duplicates, resp.rejected) == (3, 0, 5)
    by_rid = {r.request_id: r for r in resp.results}
    assert [r.index for r in resp.results] == list(range(len(events)))
    expected = {
        "bad-tokens": ("input_tokens", "INVALID_VALUE"),
        "bad-kind": ("kind", "INVALID_VALUE"),
        "bad-label": ("labels.size", "INVALID_VALUE"),
        "bad-cost": ("cost", "INVALID_VALUE"),
        "bad-missing-kind": ("kind", "REQUIRED"),
    }
    for rid, (field, reason) in expected.items():
        r = by_rid[rid]
        assert r.outcome == REJECTED
        assert (r.field, r.reason) == (field, reason)
        assert r.message and not r.event_id
    for rid in ("ok-0", "ok-1", "ok-2"):
        assert by_rid[rid].outcome == RECORDED and by_rid[rid].event_id

    rows = await db.fetch("select request_id, event_id from events where org_id = $1", oid)
    assert {r["request_id"]: str(r["event_id"]) for r in rows} == {
        rid: by_rid[rid].event_id for rid in ("ok-0", "ok-1", "ok-2")
    }
    keys = {r["request_id"] for r in await db.fetch("select request_id from request_keys where org_id = $1", oid)}
    assert keys == {"ok-0", "ok-1", "ok-2"}  # a rejected item burns no key

    # The rejected request_id can be recorded once fixed.
    fixed = await stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=ev("bad-tokens", input_tokens=1)), metadata=org.auth
    )
    assert fixed.outcome == RECORDED


async def test_stream_acks_each_item_after_commit(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    call = stubs.ingest.StreamEvents(metadata=org.auth)

    # One at a time: each ack arrives with its sequence, and the event is already committed.
    for seq in (1000, 1001, 1002):
        await call.write(ingest_pb2.StreamEventsRequest(event=ev(f"s-{seq}", input_tokens=seq), sequence=seq))
        ack = await call.read()
        assert ack.sequence == seq
        assert ack.result.outcome == RECORDED
        stored = await db.fetchval(
            "select input_tokens from events where org_id = $1 and event_id = $2", oid, uuid.UUID(ack.result.event_id)
        )
        assert stored == seq

    # A burst with an invalid item and a duplicate in the middle.
    burst = {}
    for i in range(50):
        seq = 2000 + i
        if i == 20:
            burst[seq] = ev(f"s-{seq}", output_tokens=-5)
        elif i == 30:
            burst[seq] = ev("s-1001")  # acknowledged earlier on this stream
        elif i == 40:
            burst[seq] = ev("s-2010")  # earlier in this burst, perhaps in the same transaction
        else:
            burst[seq] = ev(f"s-{seq}")
        await call.write(ingest_pb2.StreamEventsRequest(event=burst[seq], sequence=seq))
    await call.done_writing()
    acks = []
    while (ack := await call.read()) is not grpc.aio.EOF:
        acks.append(ack)
    assert await call.code() == grpc.StatusCode.OK
    assert sorted(a.sequence for a in acks) == sorted(burst)
    by_seq = {a.sequence: a.result for a in acks}
    assert by_seq[2020].outcome == REJECTED
    assert (by_seq[2020].field, by_seq[2020].reason) == ("output_tokens", "INVALID_VALUE")
    assert by_seq[2030].outcome == DUPLICATE
    assert (by_seq[2010].outcome, by_seq[2040].outcome) == (RECORDED, DUPLICATE)
    assert by_seq[2040].event_id == by_seq[2010].event_id
    recorded = {seq: r for seq, r in by_seq.items() if r.outcome == RECORDED}
    assert len(recorded) == 47
    assert all(r.request_id == f"s-{seq}" for seq, r in recorded.items())

    rows = await db.fetch("select request_id, event_id from events where org_id = $1", oid)
    stored = {r["request_id"]: str(r["event_id"]) for r in rows}
    assert len(stored) == 3 + 47
    assert "s-2020" not in stored
    assert stored["s-1001"] == by_seq[2030].event_id
    for r in recorded.values():
        assert stored[r.request_id] == r.event_id


async def test_concurrent_clients_race_on_the_same_request_ids(server, new_org, db):
    """32 clients on their own channels send the same 200 request_ids (batches in
    different orders, and unary calls), each with its own event time: exactly one
    event per request_id, and everyone is told its id."""
    org = await new_org()
    oid = await org_number(db, org)
    rids = [f"race-{i}" for i in range(200)]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = asyncio.Event()
    reports: list[tuple[int, str, int, str]] = []  # (client, request_id, outcome, event_id)

    def event_for(client: int, rid: str) -> event_pb2.UsageEvent:
        # Clients disagree on the event time (up to ~2 years apart: other partitions).
        return ev(rid, input_tokens=client, timestamp=stamp(now - dt.timedelta(days=23 * client, seconds=client)))

    async def client(k: int) -> None:
        rng = random.Random(k)
        order = rids[:]
        rng.shuffle(order)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = ingest_pb2_grpc.IngestServiceStub(ch)
            await start.wait()
            if k % 4 == 3:  # unary calls, many in flight
                sem = asyncio.Semaphore(25)

                async def one(rid: str) -> None:
                    async with sem:
                        r = await stub.RecordEvent(
                            ingest_pb2.RecordEventRequest(event=event_for(k, rid)), metadata=org.auth
                        )
                    reports.append((k, rid, r.outcome, r.event_id))

                await asyncio.gather(*(one(rid) for rid in order))
                return
            chunks, i = [], 0
            while i < len(order):
                size = rng.randint(1, 80)
                chunks.append(order[i : i + size])
                i += size

            async def send(chunk: list[str]) -> None:
                resp = await stub.RecordEvents(
                    ingest_pb2.RecordEventsRequest(events=[event_for(k, rid) for rid in chunk]), metadata=org.auth
                )
                assert resp.rejected == 0
                for r in resp.results:
                    reports.append((k, r.request_id, r.outcome, r.event_id))

            if k % 2:
                await asyncio.gather(*(send(c) for c in chunks))
            else:
                for c in chunks:
                    await send(c)

    tasks = [asyncio.create_task(client(k)) for k in range(32)]
    await asyncio.sleep(0.05)
    start.set()
    await asyncio.gather(*tasks)

    assert len(reports) == 32 * 200
    assert await counts(db, oid) == (200, 200)
    rows = await db.fetch("select request_id, event_id, input_tokens from events where org_id = $1", oid)
    stored = {r["request_id"]: (str(r["event_id"]), r["input_tokens"]) for r in rows}
    assert set(stored) == set(rids)
    winners: dict[str, list[int]] = {rid: [] for rid in rids}
    for k, rid, outcome, event_id in reports:
        assert outcome in (RECORDED, DUPLICATE)
        assert event_id == stored[rid][0], (k, rid)
        if outcome == RECORDED:
            winners[rid].append(k)
    for rid, ks in winners.items():
        assert len(ks) == 1, (rid, ks)  # exactly one client was told "recorded"
        assert stored[rid][1] == ks[0]  # and it is that client's event that was kept
    keys = await db.fetch("select request_id, event_id from request_keys where org_id = $1", oid)
    assert {r["request_id"]: str(r["event_id"]) for r in keys} == {rid: v[0] for rid, v in stored.items()}


async def test_defaults(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    me = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=org.auth)
    assert me.api_key_id

    r = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev("d-1")), metadata=org.auth)
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=r.event_id), metadata=org.auth)
    assert got.num_model_requests == 1
    assert got.api_key_id == me.api_key_id
    assert got.user_id == ""  # an admin key bound to no user
    assert got.status == "success"
    assert got.currency == "usd"
    assert got.active
    assert got.organization_id == org.organization_id
    assert not got.HasField("cost") and got.unpriced
    received = got.received_at.ToDatetime(dt.UTC)
    assert abs(got.timestamp.ToDatetime(dt.UTC) - received) < dt.timedelta(seconds=5)
    row = await db.fetchrow(
        "select e.num_model_requests, s.status, s.currency, s.api_key_id, s.user_id from events e "
        "join series s using (org_id, series_id) where e.org_id = $1 and e.request_id = 'd-1'",
        oid,
    )
    assert dict(row) == {
        "num_model_requests": 1, "status": "success", "currency": "usd", "api_key_id": me.api_key_id, "user_id": None,
    }

    # An explicit 0 is kept (num_model_requests has presence); explicit values win over defaults.
    r0 = await stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(
            event=ev("d-2", num_model_requests=0, status="error", currency="EUR", api_key_id="other-key", user_id="u9")
        ),
        metadata=org.auth,
    )
    got0 = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=r0.event_id), metadata=org.auth)
    assert (got0.num_model_requests, got0.status, got0.currency, got0.api_key_id, got0.user_id) == (
        0, "error", "eur", "other-key", "u9",
    )

    # A key bound to a user: user_id and api_key_id default to that user and key.
    await stubs.admin.CreateUser(
        admin_pb2.CreateUserRequest(username=f"alice-{oid}", password="correct horse", user_id="alice"),
        metadata=org.auth,
    )
    created = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(user_id="alice"), metadata=org.auth)
    r2 = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev("d-3")), metadata=bearer(created.key))
    got2 = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=r2.event_id), metadata=org.auth)
    assert got2.user_id == "alice"
    assert got2.api_key_id == created.api_key.api_key_id


async def test_payload_is_stored_apart(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    plain = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev("p-0")), metadata=org.auth)
    payload = {
        "config_json": '{"temperature": 0.2}',
        "request_raw": "raw request \u00e9\u6f22",
        "request_json": '{"messages": []}',
        "response_json": '{"choices": []}',
        "response_raw": "r" * 100_000,
    }
    full = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev("p-1", **payload)), metadata=org.auth)
    err = await stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=ev("p-2", status="error", error_message="rate limited")),
        metadata=org.auth,
    )

    rows = {
        str(r["event_id"]): r
        for r in await db.fetch("select * from event_payloads where org_id = $1", oid)
    }
    assert set(rows) == {full.event_id, err.event_id}  # no payload row for the event without one
    for name, value in payload.items():
        assert rows[full.event_id][name] == value
    assert rows[err.event_id]["error_message"] == "rate limited"
    flags = {
        str(r["event_id"]): r["has_payload"]
        for r in await db.fetch("select event_id, has_payload from events where org_id = $1", oid)
    }
    assert flags == {plain.event_id: False, full.event_id: True, err.event_id: True}
    hot_columns = {
        r["column_name"]
        for r in await db.fetch("select column_name from information_schema.columns where table_name = 'events'")
    }
    assert not hot_columns & set(payload)

    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=full.event_id), metadata=org.auth)
    for name, value in payload.items():
        assert getattr(got, name) == value
    got_err = await stubs.records.GetEvent(records_pb2.GetEventRequest(request_id="p-2"), metadata=org.auth)
    assert got_err.error_message == "rate limited" and got_err.status == "error"
    got_plain = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=plain.event_id), metadata=org.auth)
    assert all(getattr(got_plain, name) == "" for name in payload)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ({"cost": "0.000001"}, {"cost": "0.000001", "input_cost": None, "output_cost": None}),
        ({"input_cost": "0.1", "output_cost": "0.2"}, {"cost": "0.3", "input_cost": "0.1", "output_cost": "0.2"}),
        ({"input_cost": "0.000000000000000001"}, {"cost": "0.000000000000000001", "input_cost": "0.000000000000000001",
                                                  "output_cost": None}),
        ({"cost": "12345678901234567890.123456789012345678"},
         {"cost": "12345678901234567890.123456789012345678", "input_cost": None, "output_cost": None}),
        ({"input_cost": "12345678901234567890.123456789012345678", "output_cost": "1"},
         {"cost": "12345678901234567891.123456789012345678", "input_cost": "12345678901234567890.123456789012345678",
          "output_cost": "1"}),
        ({"input_cost": "1", "output_cost": "2", "cost": "2.5"},
         {"cost": "2.5", "input_cost": "1", "output_cost": "2"}),
        ({"cost": "0"}, {"cost": "0", "input_cost": None, "output_cost": None}),
    ],
    ids=["micro", "sum-of-parts", "18-places", "38-digits", "38-digit-sum", "explicit-total", "zero"],
)
async def test_money_is_exact(stubs, new_org, db, given, stored):
    org = await new_org()
    oid = await org_number(db, org)
    r = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev("m", **given)), metadata=org.auth)
    row = await db.fetchrow(
        "select input_cost, output_cost, cost, cost::text as cost_text, unpriced from events where org_id = $1", oid
    )
    for name, value in stored.items():
        if value is None:
            assert row[name] is None, name
        else:
            assert isinstance(row[name], decimal.Decimal)
            assert row[name] == decimal.Decimal(value), name
    assert decimal.Decimal(row["cost_text"]) == decimal.Decimal(stored["cost"])
    assert row["unpriced"] is False
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=r.event_id), metadata=org.auth)
    for name, value in stored.items():
        if value is None:
            assert not got.HasField(name)
        else:
            assert decimal.Decimal(getattr(got, name)) == decimal.Decimal(value), name
    assert got.cost == stored["cost"]
    assert not got.unpriced
