"""Assertions shared by the worker tests: every rollup row equals the raw events
it covers, and the helpers to make events and read an organization's numbers."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Sequence

from google.protobuf import timestamp_pb2

from metering.v1 import event_pb2, query_pb2
from server.core.events import COUNTER_FIELDS

GRAINS = {
    "rollups_15m": dt.timedelta(minutes=15), "rollups_1h": dt.timedelta(hours=1), "rollups_1d": dt.timedelta(days=1),
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Sums of money that never round (the default context keeps 28 digits; a cost has up to 38).
EXACT_SUMS = decimal.Context(prec=1000, traps=[decimal.Inexact, decimal.Overflow])
_METRICS = (
    "events", "unpriced_events", *COUNTER_FIELDS, "counters", "input_cost", "output_cost", "cost", "last_event_at",
)


def stamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def usage(i: int, at: dt.datetime, **fields: object) -> event_pb2.UsageEvent:
    """A varied event: model, labels, an extra counter and a cost depend on i."""
    e = event_pb2.UsageEvent(
        request_id=f"e-{i}-{at.timestamp()}", kind=("completions", "embeddings", "rerank")[i % 3],
        model=f"m{i % 4}", user_id=f"u{i % 3}", timestamp=stamp(at), input_tokens=i * 7 + 1, output_tokens=i % 11,
        counters={"inference": i}, labels={"rule_type": "ab"[i % 2]},
    )
    if i % 5:
        e.input_cost = f"0.{i:06d}"
        e.output_cost = "0.000001"
    for name, value in fields.items():
        setattr(e, name, value)
    return e


async def org_number(db, organization_id: str) -> int:
    return await db.fetchval("select org_id from organizations where id = $1", organization_id)


async def dirty_count(db, org: int) -> int:
    return await db.fetchval("select count(*) from dirty_windows where org_id = $1", org)


def _floor(ts: dt.datetime, step: dt.timedelta) -> dt.datetime:
    return ts - (ts - _EPOCH) % step


def stored_counters(row) -> dict[str, int]:
    """The exact counter sums of a rollup or cube row: its bigint columns, or, for a row whose
    sums do not all fit a bigint, its `wide` array (migrations/0010_exact_sums.sql)."""
    if row["wide"] is None:
        assert all(row[name] is not None for name in COUNTER_FIELDS)
        return {name: row[name] for name in COUNTER_FIELDS}
    assert all(row[name] is None for name in COUNTER_FIELDS), "a wide row keeps no bigint counters"
    wide = [int(v) for v in row["wide"]]
    assert max(wide) > 2**63 - 1, "a row is wide only when a sum needs it"
    return dict(zip(COUNTER_FIELDS, wide, strict=True))


def stored_sql(alias: str, name: str) -> str:
    """SQL for a counter of rollup or cube rows aliased `alias`, exactly (numeric)."""
    return f"coalesce({alias}.{name}::numeric, {alias}.wide[{COUNTER_FIELDS.index(name) + 1}])"


async def assert_rollups_exact(db, org: int) -> int:
    """Every rollup table equals the organization's active raw events summed per
    (window, series), computed here in Python. Returns the number of events."""
    rows = await db.fetch(
        f"select ts, series_id, counters, unpriced, input_cost, output_cost, cost, {', '.join(COUNTER_FIELDS)} "
        "from events where org_id = $1 and active", org,
    )
    for table, step in GRAINS.items():
        expected: dict[tuple[dt.datetime, int], dict] = {}
        for r in rows:
            m = expected.setdefault((_floor(r["ts"], step), r["series_id"]), {
                "events": 0, "unpriced_events": 0, **dict.fromkeys(COUNTER_FIELDS, 0), "counters": None,
                "input_cost": decimal.Decimal(0), "output_cost": decimal.Decimal(0), "cost": decimal.Decimal(0),
                "last_event_at": r["ts"],
            })
            m["events"] += 1
            m["unpriced_events"] += r["unpriced"]
            for name in COUNTER_FIELDS:
                m[name] += r[name]
            for name, value in json.loads(r["counters"] or "{}").items():
                m["counters"] = m["counters"] or {}
                m["counters"][name] = m["counters"].get(name, 0) + value
            for name in ("input_cost", "output_cost", "cost"):
                m[name] = EXACT_SUMS.add(m[name], r[name] or 0)
            m["last_event_at"] = max(m["last_event_at"], r["ts"])
        got = {}
        for r in await db.fetch(f"select * from {table} where org_id = $1", org):
            got[(r["window_start"], r["series_id"])] = {
                **{name: r[name] for name in _METRICS if name not in (*COUNTER_FIELDS, "counters")},
                **stored_counters(r),
                "counters": None}
        counters_table = table.replace("rollups_", "rollup_counters_")
        for r in await db.fetch(f"select * from {counters_table} where org_id = $1", org):
            m = got[(r["window_start"], r["series_id"])]  # never a counter without its sums row
            m["counters"] = {**(m["counters"] or {}), r["name"]: r["value"]}
        assert got == expected, f"{table} / {counters_table} differ from the raw events"
    return len(rows)


def totals(buckets: Sequence[query_pb2.UsageBucket]) -> list[tuple]:
    """A comparable digest of query buckets."""
    return [
        (b.start_time.ToSeconds(), sorted(
            (tuple(sorted(g.key.items())), g.metrics.SerializeToString(deterministic=True)) for g in b.groups
        ))
        for b in buckets
    ]
