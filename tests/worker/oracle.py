"""A brute-force model of what the query engine must answer: the events as the
service stores them (first request_id wins, defaults, updates, voids), bucketed
by a minute-by-minute scan of the zone's wall clock and summed in Python.
Written independently of server/query*.py on purpose."""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import decimal
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence

from metering.v1 import query_pb2
from server.core.events import COUNTER_FIELDS

MINUTE = dt.timedelta(minutes=1)
# Sums of money that never round (the default context keeps 28 digits; a cost has up to 38).
EXACT_SUMS = decimal.Context(prec=1000, traps=[decimal.Inexact, decimal.Overflow])
DIMENSIONS = (
    "kind", "project_id", "user_id", "api_key_id", "client_id", "model", "provider", "endpoint",
    "api_name", "service_tier", "batch", "status", "currency",
)


@dataclasses.dataclass
class Stored:
    ts: dt.datetime
    dims: dict[str, str | None]
    labels: dict[str, str]
    counters: dict[str, int]  # every fixed counter
    extra: dict[str, int] | None
    input_cost: decimal.Decimal | None
    output_cost: decimal.Decimal | None
    cost: decimal.Decimal | None
    active: bool = True

    def field(self, name: str) -> str | None:
        if name.startswith("labels."):
            return self.labels.get(name[len("labels."):])
        return self.dims[name]


def _unit_floor(wall: dt.datetime, width: str) -> dt.datetime:
    wall = wall.replace(second=0, microsecond=0)
    if width == "1m":
        return wall
    wall = wall.replace(minute=0)
    if width == "1h":
        return wall
    wall = wall.replace(hour=0)
    return wall if width == "1d" else wall.replace(day=1)


def boundaries(start: dt.datetime, end: dt.datetime, width: str, zone: str) -> list[dt.datetime]:
    """Bucket edges: a bucket starts at each UTC minute where the wall clock shows
    the start of a unit, or has jumped forward past one since the minute before."""
    if width == "all":
        return [start, end]
    tz = zoneinfo.ZoneInfo(zone)
    edges = [start]
    u = start.replace(second=0, microsecond=0) + MINUTE
    previous = u - MINUTE
    prev_wall = previous.astimezone(tz).replace(tzinfo=None)
    while u < end:
        wall = u.astimezone(tz).replace(tzinfo=None)
        unit = _unit_floor(wall, width)
        if wall == unit or unit > prev_wall:
            edges.append(u)
        prev_wall = wall
        u += MINUTE
    edges.append(end)
    return edges


Key = tuple[str | None, ...]


def empty_metrics() -> dict:
    return {"events": 0, "unpriced_events": 0, **dict.fromkeys(COUNTER_FIELDS, 0), "counters": {},
            "input_cost": decimal.Decimal(0), "output_cost": decimal.Decimal(0), "cost": decimal.Decimal(0),
            "last_event_time": None}


def aggregate(
    events: Iterable[Stored], start: dt.datetime, end: dt.datetime, width: str, zone: str,
    group_by: Sequence[str], filters: Mapping[str, Sequence[str]],
) -> list[tuple[dt.datetime, dt.datetime, dict[Key, dict]]]:
    edges = boundaries(start, end, width, zone)
    buckets: list[dict[Key, dict]] = [{} for _ in edges[:-1]]
    for e in events:
        if not e.active or not start <= e.ts < end:
            continue
        if any((e.field(f) or "") not in values for f, values in filters.items()):
            continue
        index = bisect.bisect_right(edges, e.ts) - 1
        key = tuple(e.field(f) for f in group_by)
        m = buckets[index].setdefault(key, empty_metrics())
        m["events"] += 1
        m["unpriced_events"] += e.cost is None
        for name in COUNTER_FIELDS:
            m[name] += e.counters[name]
        for name, value in (e.extra or {}).items():
            m["counters"][name] = m["counters"].get(name, 0) + value
        m["input_cost"] = EXACT_SUMS.add(m["input_cost"], e.input_cost or 0)
        m["output_cost"] = EXACT_SUMS.add(m["output_cost"], e.output_cost or 0)
        m["cost"] = EXACT_SUMS.add(m["cost"], e.cost or 0)
        if m["last_event_time"] is None or e.ts > m["last_event_time"]:
            m["last_event_time"] = e.ts
    return [(lo, hi, b) for lo, hi, b in zip(edges[:-1], edges[1:], buckets, strict=True)]


def from_response(
    buckets: Iterable[query_pb2.UsageBucket], group_by: Sequence[str]
) -> list[tuple[dt.datetime, dt.datetime, dict[Key, dict]]]:
    out = []
    for b in buckets:
        groups: dict[Key, dict] = {}
        for g in b.groups:
            key = tuple(g.key[f] if f in g.key else None for f in group_by)
            assert key not in groups, f"group {key} twice in one bucket"
            m = g.metrics
            groups[key] = {
                "events": m.events, "unpriced_events": m.unpriced_events,
                **{name: getattr(m, name) for name in COUNTER_FIELDS}, "counters": dict(m.counters),
                "input_cost": decimal.Decimal(m.input_cost), "output_cost": decimal.Decimal(m.output_cost),
                "cost": decimal.Decimal(m.cost),
                "last_event_time": m.last_event_time.ToDatetime(dt.UTC) if m.HasField("last_event_time") else None,
            }
        out.append((b.start_time.ToDatetime(dt.UTC), b.end_time.ToDatetime(dt.UTC), groups))
    return out
