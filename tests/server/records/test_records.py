"""Stored records: AIP-158 pages, filters, adjustments with an audit trail, voids, and the
dirty windows every write marks."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, records_pb2
from server.tenants.credentials import random_text

MODELS = ("m-a", "m-b", "m-c")
USERS = ("u1", "u2")
PROJECTS = ("p1", "p2", "p3", "p4", "p5")


def at(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


async def expect_invalid(awaitable, field: str | None = None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    if field is not None:
        assert (caught.value.details() or "").startswith(field + ":"), caught.value.details()
    return caught.value


async def org_number(db, org) -> int:
    return await db.fetchval("select org_id from organizations where id = $1", org.organization_id)


async def seed(stubs, org, n: int = 250) -> tuple[list[tuple[dt.datetime, uuid.UUID, int]], dt.datetime]:
    """n events, five per timestamp (so the id breaks ties); returns (ts, id, i) newest first, and the base time."""
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    events = [
        event_pb2.UsageEvent(
            request_id=f"r-{i}", kind="completions" if i % 7 else "embeddings", model=MODELS[i % 3],
            user_id=USERS[i % 2], project_id=PROJECTS[i % 5], client_id=f"c{i % 4}",
            timestamp=at(base - dt.timedelta(seconds=i // 5)), input_tokens=i,
        )
        for i in range(n)
    ]
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(events=events), metadata=org.auth)
    assert resp.recorded == n
    rows = [(base - dt.timedelta(seconds=i // 5), uuid.UUID(r.event_id), i) for i, r in enumerate(resp.results)]
    rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
    return rows, base


async def pages(stubs, org, page_size: int, **filters) -> list[list[str]]:
    out, token = [], ""
    while True:
        resp = await stubs.records.ListEvents(
            records_pb2.ListEventsRequest(page_size=page_size, page_token=token, **filters), metadata=org.auth
        )
        out.append([e.event_id for e in resp.events])
        token = resp.next_page_token
        if not token:
            return out
        assert len(out) < 1000, "pagination does not end"


async def test_pagination_has_no_gaps_or_repeats(stubs, new_org, db):
    org = await new_org()
    rows, _ = await seed(stubs, org)
    expected = [str(eid) for _, eid, _ in rows]
    in_db = [
        str(r["event_id"]) for r in await db.fetch(
            "select event_id from events where org_id = $1 order by ts desc, event_id desc", await org_number(db, org))
    ]
    assert in_db == expected

    for size in (7, 50, 1000):
        got = await pages(stubs, org, size)
        assert len(got) == -(-250 // size)
        assert all(len(p) == size for p in got[:-1]) and 0 < len(got[-1]) <= size
        flat = [eid for page in got for eid in page]
        assert len(flat) == len(set(flat)) == 250
        assert flat == expected, size

    # The page size may change from one page to the next.
    first = await stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=7), metadata=org.auth)
    second = await stubs.records.ListEvents(
        records_pb2.ListEventsRequest(page_size=50, page_token=first.next_page_token), metadata=org.auth)
    assert [e.event_id for e in (*first.events, *second.events)] == expected[:57]

    # Defaults and bounds.
    default = await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=org.auth)
    assert [e.event_id for e in default.events] == expected[:50] and default.next_page_token
    await expect_invalid(stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=1001), metadata=org.auth),
                         "page_size")
    await expect_invalid(stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=-1), metadata=org.auth),
                         "page_size")


def retoken(token: str, **fields: object) -> str:
    """`token` with some of its fields changed (its binding kept): what a client may forge."""
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return base64.urlsafe_b64encode(json.dumps({**data, **fields}).encode()).decode().rstrip("=")


async def test_page_token_is_bound_to_its_filters(stubs, new_org):
    org = await new_org()
    await seed(stubs, org, 30)
    first = await stubs.records.ListEvents(
        records_pb2.ListEventsRequest(page_size=5, models=["m-a"]), metadata=org.auth)
    assert first.next_page_token
    token = first.next_page_token
    changes: list[dict[str, Any]] = [
        {"models": ["m-b"]}, {"models": []}, {"models": ["m-a"], "include_voided": True},
        {"models": ["m-a"], "user_ids": ["u1"]},
        {"models": ["m-a"], "start_time": at(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))},
    ]
    for changed in changes:
        err = await expect_invalid(stubs.records.ListEvents(
            records_pb2.ListEventsRequest(page_size=5, page_token=token, **changed), metadata=org.auth), "page_token")
        assert err.details() == "page_token: does not match this request"
    issued = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    naive = dt.datetime.fromisoformat(issued["t"]).replace(tzinfo=None).isoformat()
    # Forged with the right binding: an event id that is no string was a 500 (uuid.UUID(5) raised
    # AttributeError); a time without its offset was read as UTC. Both are malformed now.
    for garbage in ("not-a-token", token[:-3], "eyJ0IjogMX0", "not a token!", retoken(token, i=5),
                    retoken(token, i="x"), retoken(token, t=naive)):
        err = await expect_invalid(stubs.records.ListEvents(
            records_pb2.ListEventsRequest(page_size=5, page_token=garbage, models=["m-a"]), metadata=org.auth),
            "page_token")
        assert err.details() == "page_token: malformed page token", garbage
    # Another organization's token, same filters: another request (its scope was bound, its
    # organization was not).
    other = await new_org()
    await seed(stubs, other, 10)
    await expect_invalid(stubs.records.ListEvents(
        records_pb2.ListEventsRequest(page_size=5, page_token=token, models=["m-a"]), metadata=other.auth),
        "page_token")
    # Same filters (page size aside): fine, padded or not.
    ok = await stubs.records.ListEvents(
        records_pb2.ListEventsRequest(page_size=3, page_token=token, models=["m-a"]), metadata=org.auth)
    assert len(ok.events) == 3
    padded = await stubs.records.ListEvents(records_pb2.ListEventsRequest(
        page_size=3, page_token=token + "=" * (-len(token) % 4), models=["m-a"]), metadata=org.auth)
    assert padded.events == ok.events


async def test_filters(stubs, new_org):
    org = await new_org()
    rows, base = await seed(stubs, org, 120)
    by_id = {str(eid): (ts, i) for ts, eid, i in rows}
    ordered = [str(eid) for _, eid, _ in rows]

    async def listed(**filters) -> list[str]:
        return [eid for page in await pages(stubs, org, 1000, **filters) for eid in page]

    def where(pred) -> list[str]:
        return [eid for eid in ordered if pred(*by_id[eid])]

    assert await listed(models=["m-b"]) == where(lambda ts, i: MODELS[i % 3] == "m-b")
    assert await listed(models=["m-a", "m-c"]) == where(lambda ts, i: MODELS[i % 3] in ("m-a", "m-c"))
    assert await listed(user_ids=["u2"]) == where(lambda ts, i: i % 2 == 1)
    assert await listed(project_ids=["p2", "p5"]) == where(lambda ts, i: PROJECTS[i % 5] in ("p2", "p5"))
    assert await listed(client_ids=["c3"]) == where(lambda ts, i: i % 4 == 3)
    assert await listed(kinds=["embeddings"]) == where(lambda ts, i: i % 7 == 0)
    assert await listed(models=["m-a"], user_ids=["u1"], project_ids=["p1"]) == where(
        lambda ts, i: i % 3 == 0 and i % 2 == 0 and i % 5 == 0)
    assert await listed(models=["nope"]) == []

    # [start, end): the events exactly at start are in, those exactly at end are out.
    start, end = base - dt.timedelta(seconds=15), base - dt.timedelta(seconds=4)
    window = await listed(start_time=at(start), end_time=at(end))
    assert window == where(lambda ts, i: start <= ts < end)
    assert len(window) == 11 * 5
    assert await listed(start_time=at(base)) == where(lambda ts, i: ts >= base)
    assert len(await listed(start_time=at(base))) == 5
    assert await listed(end_time=at(base - dt.timedelta(seconds=20))) == where(
        lambda ts, i: ts < base - dt.timedelta(seconds=20))
    assert await listed(start_time=at(base), end_time=at(base)) == []

    # Pages over a filtered set.
    got = await pages(stubs, org, 7, models=["m-b"], user_ids=["u1"])
    assert [eid for page in got for eid in page] == where(lambda ts, i: i % 3 == 1 and i % 2 == 0)


async def test_skip(stubs, new_org):
    org = await new_org()
    rows, _ = await seed(stubs, org, 40)
    expected = [str(eid) for _, eid, _ in rows]
    page = await stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=5, skip=3), metadata=org.auth)
    assert [e.event_id for e in page.events] == expected[3:8]
    # skip counts after the page token.
    nxt = await stubs.records.ListEvents(
        records_pb2.ListEventsRequest(page_size=5, page_token=page.next_page_token, skip=2), metadata=org.auth)
    assert [e.event_id for e in nxt.events] == expected[10:15]
    nxt0 = await stubs.records.ListEvents(
        records_pb2.ListEventsRequest(page_size=5, page_token=page.next_page_token), metadata=org.auth)
    assert [e.event_id for e in nxt0.events] == expected[8:13]
    tail = await stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=10, skip=35), metadata=org.auth)
    assert [e.event_id for e in tail.events] == expected[35:] and not tail.next_page_token
    past = await stubs.records.ListEvents(records_pb2.ListEventsRequest(skip=100), metadata=org.auth)
    assert list(past.events) == [] and not past.next_page_token
    await expect_invalid(stubs.records.ListEvents(records_pb2.ListEventsRequest(skip=-1), metadata=org.auth), "skip")


async def test_list_payload_only_when_asked(stubs, new_org):
    org = await new_org()
    await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="pl", kind="completions", status="error", error_message="boom", request_json='{"q": 1}',
        response_raw="raw")), metadata=org.auth)
    lean = (await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=org.auth)).events[0]
    assert (lean.request_json, lean.response_raw, lean.error_message) == ("", "", "boom")
    full = (await stubs.records.ListEvents(records_pb2.ListEventsRequest(include_payload=True),
                                           metadata=org.auth)).events[0]
    assert (full.request_json, full.response_raw, full.error_message) == ('{"q": 1}', "raw", "boom")


# A well-formed id whose time prefix is past the year 9999 (as ~10% of random UUIDs are).
PAST_9999 = "ffffffff-ffff-7fff-bfff-ffffffffffff"
EVENT_TIME = dt.datetime(2024, 3, 10, 10, 37, 12, 345000, tzinfo=dt.UTC)
WINDOW = dt.datetime(2024, 3, 10, 10, 30, tzinfo=dt.UTC)


async def dirty(db, oid: int) -> list[dt.datetime]:
    return [r["window_start"] for r in await db.fetch(
        "select window_start from dirty_windows where org_id = $1 order by id", oid)]


async def adjustments(db, oid: int) -> list[dict]:
    return [dict(r) for r in await db.fetch(
        "select event_id, ts, actor, action, reason, before::text as before, after::text as after "
        "from event_adjustments where org_id = $1 order by adjustment_id", oid)]


async def test_update_event(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="u-1", kind="completions", model="m-a", timestamp=at(EVENT_TIME), input_tokens=10,
        units_used=5, cost="1.5", labels={"task_id": "t1"}, counters={"inference": 4})), metadata=org.auth)
    assert await dirty(db, oid) == [WINDOW]

    updated = await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
        event=event_pb2.UsageEvent(event_id=rec.event_id, units_used=0, cost="0", input_tokens=999),
        update_mask=mask("units_used", "cost"), reason="refund"), metadata=org.auth)
    assert (updated.units_used, updated.cost) == (0, "0")
    assert updated.input_tokens == 10  # not in the mask: unchanged
    assert dict(updated.labels) == {"task_id": "t1"} and dict(updated.counters) == {"inference": 4}
    assert updated.timestamp.ToDatetime(dt.UTC) == EVENT_TIME
    assert updated.event_id == rec.event_id and updated.request_id == "u-1"

    row = await db.fetchrow("select * from events where org_id = $1", oid)
    assert (row["units_used"], row["cost"], row["input_tokens"]) == (0, decimal.Decimal(0), 10)
    assert row["updated_at"] > row["received_at"] and row["ts"] == EVENT_TIME
    assert await db.fetchval("select count(*) from events where org_id = $1", oid) == 1
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=rec.event_id), metadata=org.auth)
    assert (got.units_used, got.cost, got.input_tokens) == (0, "0", 10)

    (adj,) = await adjustments(db, oid)
    me = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=org.auth)
    assert (str(adj["event_id"]), adj["ts"], adj["action"], adj["reason"], adj["actor"]) == (
        rec.event_id, EVENT_TIME, "update", "refund", me.api_key_id)
    before, after = json.loads(adj["before"]), json.loads(adj["after"])
    assert (before["units_used"], before["cost"], before["input_tokens"]) == ("5", "1.5", "10")
    assert (after.get("units_used", "0"), after["cost"], after["input_tokens"]) == ("0", "0", "10")
    assert await dirty(db, oid) == [WINDOW, WINDOW]

    # Changing a part of the cost recomputes the total; changing a dimension moves the event's series.
    rec2 = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="u-2", kind="completions", model="m-a", timestamp=at(EVENT_TIME), input_cost="1",
        output_cost="2")), metadata=org.auth)
    changed = await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
        event=event_pb2.UsageEvent(event_id=rec2.event_id, input_cost="5", model="m-z"),
        update_mask=mask("input_cost", "model")), metadata=org.auth)
    assert (changed.input_cost, changed.output_cost, changed.cost, changed.model) == ("5", "2", "7", "m-z")
    assert await db.fetchval("select cost from events where org_id = $1 and event_id = $2", oid,
                             uuid.UUID(rec2.event_id)) == decimal.Decimal(7)
    found = await stubs.records.ListEvents(records_pb2.ListEventsRequest(models=["m-z"]), metadata=org.auth)
    assert [e.event_id for e in found.events] == [rec2.event_id]
    assert len(await adjustments(db, oid)) == 2
    assert await dirty(db, oid) == [WINDOW] * 4


async def test_update_mask_can_name_one_map_entry(stubs, new_org, db):
    org = await new_org()
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="map-1", kind="completions", labels={"a": "1", "size": "S"},
        counters={"inference": 1, "eval_prompt": 2})), metadata=org.auth)

    async def update(paths, **patch):
        return await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
            event=event_pb2.UsageEvent(event_id=rec.event_id, **patch), update_mask=mask(*paths)), metadata=org.auth)

    one = await update(["labels.size", "counters.eval_prompt"], labels={"size": "L", "b": "ignored"},
                       counters={"eval_prompt": 5})
    assert dict(one.labels) == {"a": "1", "size": "L"}
    assert dict(one.counters) == {"inference": 1, "eval_prompt": 5}
    gone = await update(["labels.a", "counters.new_one"], counters={"new_one": 9})  # absent from the patch: removed
    assert dict(gone.labels) == {"size": "L"}
    assert dict(gone.counters) == {"inference": 1, "eval_prompt": 5, "new_one": 9}
    whole = await update(["labels"], labels={"only": "this"})  # the whole map is replaced
    assert dict(whole.labels) == {"only": "this"}
    stored = await db.fetchrow(
        "select s.labels::text as labels, e.counters::text as counters from events e "
        "join series s using (org_id, series_id) where e.event_id = $1", uuid.UUID(rec.event_id))
    assert json.loads(stored["labels"]) == {"only": "this"}
    assert json.loads(stored["counters"]) == {"inference": 1, "eval_prompt": 5, "new_one": 9}
    for bad in (["input_tokens.x"], ["labels."], ["timestamp.seconds"]):
        await expect_invalid(update(bad), "update_mask")


@pytest.mark.parametrize(
    ("paths", "patch"),
    [
        (["timestamp"], {"timestamp": at(EVENT_TIME + dt.timedelta(hours=1))}),
        (["units_used", "timestamp"], {"timestamp": at(EVENT_TIME), "units_used": 1}),
        (["event_id"], {}),
        (["request_id"], {"request_id": "other"}),
        (["organization_id"], {"organization_id": "org_x"}),
        (["active"], {"active": True}),
        (["received_at"], {}),
        (["no_such_field"], {}),
        ([], {"units_used": 1}),
    ],
    ids=["timestamp", "timestamp-with-other", "event_id", "request_id", "organization_id", "active", "received_at",
         "unknown", "empty-mask"],
)
async def test_update_refuses_frozen_or_unknown_fields(stubs, new_org, db, paths, patch):
    org = await new_org()
    oid = await org_number(db, org)
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="f-1", kind="completions", timestamp=at(EVENT_TIME), units_used=5)), metadata=org.auth)
    before = dict(await db.fetchrow("select * from events where org_id = $1", oid))
    await expect_invalid(stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
        event=event_pb2.UsageEvent(event_id=rec.event_id, **patch), update_mask=mask(*paths)), metadata=org.auth),
        "update_mask")
    assert dict(await db.fetchrow("select * from events where org_id = $1", oid)) == before
    assert await adjustments(db, oid) == []
    assert await dirty(db, oid) == [WINDOW]


async def test_update_validates_new_values(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="val-1", kind="completions", units_used=5)), metadata=org.auth)
    for patch, path in (({"units_used": -1}, "units_used"), ({"cost": "NaN"}, "cost"), ({"kind": "chat"}, "kind"),
                        ({"labels": {"size": "x" * 2000}}, "labels")):
        err = await expect_invalid(stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
            event=event_pb2.UsageEvent(event_id=rec.event_id, **patch), update_mask=mask(path)), metadata=org.auth))
        assert (err.details() or "").startswith(path), err.details()
    assert await db.fetchval("select units_used from events where org_id = $1", oid) == 5
    assert await adjustments(db, oid) == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.records.UpdateEvent(records_pb2.UpdateEventRequest(
            event=event_pb2.UsageEvent(event_id=PAST_9999, units_used=1), update_mask=mask("units_used")),
            metadata=org.auth)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_void_event(stubs, new_org, db):
    org = await new_org()
    oid = await org_number(db, org)
    keep = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="keep", kind="completions", timestamp=at(EVENT_TIME))), metadata=org.auth)
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="gone", kind="completions", timestamp=at(EVENT_TIME + dt.timedelta(minutes=30)),
        input_tokens=7)), metadata=org.auth)
    later_window = WINDOW + dt.timedelta(minutes=30)
    assert sorted(await dirty(db, oid)) == [WINDOW, later_window]

    voided = await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=rec.event_id, reason="test call"),
                                           metadata=org.auth)
    assert not voided.active and voided.input_tokens == 7
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=rec.event_id), metadata=org.auth)
    assert not got.active
    assert await db.fetchval("select active from events where org_id = $1 and request_id = 'gone'", oid) is False

    listed = await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=org.auth)
    assert [e.event_id for e in listed.events] == [keep.event_id]
    everything = await stubs.records.ListEvents(records_pb2.ListEventsRequest(include_voided=True), metadata=org.auth)
    assert [(e.event_id, e.active) for e in everything.events] == [(rec.event_id, False), (keep.event_id, True)]

    (adj,) = await adjustments(db, oid)
    assert (adj["action"], adj["reason"], str(adj["event_id"])) == ("void", "test call", rec.event_id)
    assert json.loads(adj["before"])["active"] is True and "active" not in json.loads(adj["after"])
    assert sorted(await dirty(db, oid)) == [WINDOW, later_window, later_window]

    # Voiding again changes nothing; the request_id stays taken.
    again = await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=rec.event_id), metadata=org.auth)
    assert not again.active
    assert len(await adjustments(db, oid)) == 1
    dup = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id="gone", kind="completions")), metadata=org.auth)
    assert (dup.outcome, dup.event_id) == (ingest_pb2.OUTCOME_DUPLICATE, rec.event_id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=str(uuid.uuid4())), metadata=org.auth)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for missing in (PAST_9999, "nope"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=missing), metadata=org.auth)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_get_event_by_either_id(stubs, new_org):
    org = await new_org()
    rid = "g-" + random_text(8)
    rec = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        request_id=rid, kind="rerank", model="rr", units_used=3)), metadata=org.auth)
    by_id = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=rec.event_id), metadata=org.auth)
    by_rid = await stubs.records.GetEvent(records_pb2.GetEventRequest(request_id=rid), metadata=org.auth)
    assert by_id == by_rid
    assert (by_id.kind, by_id.model, by_id.units_used, by_id.request_id) == ("rerank", "rr", 3, rid)
    for req in (records_pb2.GetEventRequest(event_id="not-a-uuid"),
                records_pb2.GetEventRequest(event_id=str(uuid.UUID(int=uuid.UUID(rec.event_id).int ^ 1))),
                records_pb2.GetEventRequest(event_id=PAST_9999),
                records_pb2.GetEventRequest(event_id="00000000-0000-0000-0000-000000000000"),
                records_pb2.GetEventRequest(request_id="nope")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.records.GetEvent(req, metadata=org.auth)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    await expect_invalid(stubs.records.GetEvent(records_pb2.GetEventRequest(), metadata=org.auth), "event_id")
