"""Reports built on the one query engine (server/query/engine.py): QueryLake tallies,
token usage by rule type and task, and an SDK client's usage. Each is a spec
for QueryEngine.aggregate plus reshaping; nothing here sums events itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from metering.v1 import event_pb2, records_pb2
from server.core.errors import InvalidArgument
from server.core.principal import Principal
from server.ingest.validation import EARLIEST, FUTURE_SLACK
from server.query.buckets import floor_wall, step_wall
from server.query.engine import Freshness, Metrics, QueryEngine, page_token
from server.query.spec import make_spec
from server.records.store import Records

TALLY_WINDOWS = {"hour": "1h", "day": "1d", "month": "month"}
# Kind -> QueryLake category; categories counting "tokens" (input + output).
TALLY_CATEGORY = {"completions": "llm", "embeddings": "embedding", "rerank": "rerank"}
TOKEN_CATEGORIES = frozenset({"embedding", "rerank"})

TOKEN_COUNTERS = ("inference", "eval_prompt", "eval_completion", "user_input", "prompt", "completion")
TOKEN_GROUPS = {"rule_type": "labels.rule_type", "task": "labels.task_id"}

MAX_RECENT = 1000
DEFAULT_RECENT = 10


@dataclasses.dataclass
class Tally:
    id: str
    window: str
    start: dt.datetime
    end: dt.datetime
    user_id: str | None
    api_key_id: str | None
    value: dict[str, dict[str, dict[str, int]]]  # category -> model -> counts


@dataclasses.dataclass
class TokenRow:
    rule_type: str | None
    task_id: str | None
    count: dict[str, int]


@dataclasses.dataclass
class ModelRow:
    model: str | None
    provider: str | None
    metrics: Metrics


@dataclasses.dataclass
class ClientReport:
    client_id: str
    totals: Metrics
    successful: int
    failed: int
    models: list[ModelRow]
    recent: list[event_pb2.UsageEvent]
    freshness: Freshness


def _utc_floor(ts: dt.datetime, width: str) -> dt.datetime:
    return floor_wall(ts.astimezone(dt.UTC).replace(tzinfo=None), width).replace(tzinfo=dt.UTC)


def _utc_step(ts: dt.datetime, width: str) -> dt.datetime:
    return step_wall(ts.replace(tzinfo=None), width).replace(tzinfo=dt.UTC)


def tally_id(org_id: int, window: str, start: dt.datetime, user: str | None, key: str | None) -> str:
    raw = f"{org_id}|{window}|{start.isoformat()}|{user or ''}|{key or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


async def tallies(
    engine: QueryEngine, principal: Principal, window: str, start: dt.datetime | None, end: dt.datetime | None,
    page_size: int = 0, token: str = "",
) -> tuple[list[Tally], str, Freshness | None]:
    """Tallies of whole UTC windows whose start lies in [start, end]; pages of
    `page_size` windows. Returns (tallies, next page token, freshness)."""
    window = window or "day"
    if window not in TALLY_WINDOWS:
        raise InvalidArgument("window", "one of hour, day, month")
    if start is None:
        raise InvalidArgument("start_time", "required", reason="REQUIRED")
    width = TALLY_WINDOWS[window]
    end = end or dt.datetime.now(dt.UTC)
    first = _utc_floor(start, width)
    if first < start:
        first = _utc_step(first, width)
    stop = _utc_step(_utc_floor(end, width), width)  # a window starting at `end` counts
    if first >= stop:
        return [], "", None
    spec = make_spec(first, stop, width=width, group_by=("user_id", "api_key_id", "kind", "model"))
    result = await engine.page(principal, spec, page_size, token)
    out: list[Tally] = []
    for bucket in result.buckets:
        per_owner: dict[tuple[str | None, str | None], Tally] = {}
        for group in bucket.groups:
            user, key, kind, model = group.key
            tally = per_owner.get((user, key))
            if tally is None:
                tally = per_owner[(user, key)] = Tally(
                    tally_id(principal.org_id, window, bucket.start, user, key), window, bucket.start, bucket.end,
                    user, key, {},
                )
            category = TALLY_CATEGORY.get(kind or "", kind or "")
            counts = tally.value.setdefault(category, {}).setdefault(model or "", {})
            m = group.metrics.counters
            if category in TOKEN_CATEGORIES:
                counts["tokens"] = counts.get("tokens", 0) + m["input_tokens"] + m["output_tokens"]
            else:
                counts["input_tokens"] = counts.get("input_tokens", 0) + m["input_tokens"]
                counts["output_tokens"] = counts.get("output_tokens", 0) + m["output_tokens"]
        out.extend(per_owner[k] for k in sorted(per_owner, key=lambda k: (k[0] or "", k[1] or "")))
    return out, page_token(result, spec, principal), result.freshness


async def token_usage(
    engine: QueryEngine, principal: Principal, start: dt.datetime | None, end: dt.datetime | None,
    group_by: list[str], now: dt.datetime | None = None,
) -> tuple[list[TokenRow], Freshness]:
    now = now or dt.datetime.now(dt.UTC)
    today = _utc_floor(now, "1d")
    start = start or today
    end = end or _utc_step(today, "1d")
    group_by = group_by or ["rule_type"]
    for name in group_by:
        if name not in TOKEN_GROUPS:
            raise InvalidArgument("group_by", f"unknown scope {name[:64]!r}; one of rule_type, task")
    names = list(dict.fromkeys(group_by))
    spec = make_spec(start, end, width="all", group_by=[TOKEN_GROUPS[n] for n in names])
    result = await engine.aggregate(principal, spec)
    rows = []
    for group in result.buckets[0].groups if result.buckets else []:
        key = dict(zip(names, group.key, strict=True))
        rows.append(TokenRow(
            rule_type=key.get("rule_type"), task_id=key.get("task"),
            count={name: group.metrics.extra.get(name, 0) for name in TOKEN_COUNTERS},
        ))
    return rows, result.freshness


async def client_usage(
    engine: QueryEngine, records: Records, principal: Principal, client_id: str, recent_limit: int = 0,
) -> ClientReport:
    if not client_id:
        raise InvalidArgument("client_id", "required", reason="REQUIRED")
    limit = recent_limit or DEFAULT_RECENT
    if not 0 < limit <= MAX_RECENT:
        raise InvalidArgument("recent_limit", f"between 1 and {MAX_RECENT}")
    now = dt.datetime.now(dt.UTC)
    spec = make_spec(EARLIEST, now + FUTURE_SLACK, width="all", group_by=("model", "provider", "status"),
                     filters=[("client_id", [client_id])])
    result = await engine.aggregate(principal, spec)
    totals, successful, failed = Metrics(), 0, 0
    models: dict[tuple[str | None, str | None], ModelRow] = {}
    for group in result.buckets[0].groups:
        model, provider, status = group.key
        totals.add(group.metrics)
        if status == "success":
            successful += group.metrics.events
        elif status == "error":
            failed += group.metrics.events
        row = models.get((model, provider))
        if row is None:
            row = models[(model, provider)] = ModelRow(model, provider, Metrics())
        row.metrics.add(group.metrics)
    recent = await records.list(principal, records_pb2.ListEventsRequest(client_ids=[client_id], page_size=limit))
    ordered = sorted(models.values(), key=lambda r: r.metrics.last_event_at or EARLIEST, reverse=True)
    return ClientReport(client_id, totals, successful, failed, ordered, list(recent.events), result.freshness)

