"""The two write paths of EventWriter (server/ingest/writer.py) store exactly the same rows:
one statement for small batches, COPY (with only the used counter columns) for
large ones. Same events, two organizations, compare every column but the ids."""

from __future__ import annotations

import datetime as dt
import decimal

import asyncpg

from metering.v1 import admin_pb2, event_pb2
from server.core.events import NewEvent
from server.core.principal import Principal
from server.ingest.validation import Validator
from server.ingest.writer import SMALL_BATCH, _claim_order
from server.runtime.app import MeteringServer
from tests.conftest import MASTER

T0 = dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC)


def events(n: int) -> list[event_pb2.UsageEvent]:
    """Every kind of field: counters (some unused), extra counters, costs given,
    costs left to pricing, payloads, labels, several windows, a repeated request_id."""
    out = []
    for i in range(n):
        e = event_pb2.UsageEvent(
            request_id=f"r{i % (n - 3)}",  # the last 3 repeat earlier ids
            kind="completions" if i % 3 else "images",
            model=f"m{i % 4}", user_id=f"u{i % 5}", project_id="p1",
            input_tokens=i * 10, output_tokens=i, images=i % 2,
            timestamp={"seconds": int((T0 + dt.timedelta(minutes=7 * i)).timestamp()), "nanos": 123_456_000},
            labels={"team": f"t{i % 2}"} if i % 4 == 0 else {},
        )
        if i % 2:
            e.cost = str(decimal.Decimal(i) / 1000)
        if i % 5 == 0:
            e.counters["tool_calls"] = i
        if i % 6 == 0:
            e.error_message = f"boom {i}"
            e.request_json = '{"a": 1}'
        if i % 7 == 0:
            e.num_model_requests = 0
        out.append(e)
    return out


async def stored(db: asyncpg.Pool, org_id: int) -> list[tuple]:
    rows = await db.fetch(
        """select e.*, s.kind, s.model, s.user_id, s.labels, p.error_message, p.request_json
           from events e join series s using (org_id, series_id)
           left join event_payloads p using (org_id, ts, event_id)
           where e.org_id = $1 order by e.request_id""", org_id)
    skip = {"event_id", "series_id", "org_id", "received_at", "updated_at", "mark_id"}
    return [tuple((k, v) for k, v in r.items() if k not in skip) for r in rows]


async def test_small_and_copy_paths_store_the_same_rows(server: MeteringServer, stubs, db):
    assert server.ingest is not None
    writer = server.ingest.writer
    now = dt.datetime.now(dt.UTC)
    orgs = []
    for _ in range(2):
        org = await stubs.admin.CreateOrganization(
            admin_pb2.CreateOrganizationRequest(name=f"paths-{now.timestamp()}-{_}"), metadata=MASTER)
        orgs.append(await db.fetchval("select org_id from organizations where id = $1", org.organization_id))
    n = SMALL_BATCH * 3
    batch = events(n)

    def validated(org_id: int) -> list:
        check = Validator(Principal(org_id=org_id, organization_id="x", role="admin"), now)
        return [(org_id, check(e)) for e in batch]

    small, large = validated(orgs[0]), validated(orgs[1])
    results_small = []
    for i in range(0, n, SMALL_BATCH // 2):  # well under the threshold: the one-statement path
        results_small += await writer.write(small[i : i + SMALL_BATCH // 2])
    results_large = await writer.write(large)  # over it: COPY

    assert [r.recorded for r in results_small] == [r.recorded for r in results_large]
    assert sum(r.recorded for r in results_large) == n - 3
    rows_small, rows_large = await stored(db, orgs[0]), await stored(db, orgs[1])
    assert len(rows_small) == n - 3
    assert rows_small == rows_large
    # Every stored event's window is marked dirty on both paths (the one-statement
    # path may also mark a duplicate's window: a harmless extra recompute).
    unmarked = """select count(*) from events e where e.org_id = $1 and not exists (
        select 1 from dirty_windows d where d.org_id = e.org_id and d.window_start <= e.ts
        and e.ts < d.window_start + interval '15 minutes')"""
    for org_id in orgs:
        assert await db.fetchval(unmarked, org_id) == 0
    # ... and carries the id of its own window's append mark (rollup + tail, migrations/0005_tails.sql)
    mismatched = """select count(*) from events e left join dirty_windows d on d.id = e.mark_id
        where e.org_id = $1 and (d.id is null or not d.appends or d.org_id <> e.org_id
                                 or not (d.window_start <= e.ts and e.ts < d.window_start + interval '15 minutes'))"""
    for org_id in orgs:
        assert await db.fetchval(mismatched, org_id) == 0


def test_claim_order_is_the_sorted_keys_with_first_indexes():
    """Both ways of _claim_order (one organization: request ids alone; several:
    (org, request_id) pairs) give each distinct key's first index, sorted by key."""
    def item(org: int, rid: str) -> tuple[int, NewEvent]:
        return org, NewEvent(rid, T0, None, None, (), None, None, None, None, None)  # type: ignore[arg-type]

    def expected(items: list) -> list[int]:
        first: dict = {}
        for i, (org, e) in enumerate(items):
            first.setdefault((org, e.request_id), i)
        return [i for _, i in sorted(first.items())]

    one = [item(7, rid) for rid in ("b", "a", "c", "a", "b", "é", "A", "")]
    several = [item(org, rid) for org, rid in ((2, "b"), (1, "z"), (2, "a"), (1, "b"), (2, "b"), (1, "a"))]
    for items in (one, several):
        assert _claim_order(items) == expected(items)
