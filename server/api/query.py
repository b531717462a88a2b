"""QueryService: usage queries and the reports built on them.

The engine's sums are exact Python ints of any size (server/query/sql.py); the reply's
counters are int64. A sum above int64 (9,223,373 events at the per-event maximum in one
bucket and group, docs/queries.md "Exact sums") is answered OUT_OF_RANGE naming the metric,
where it is and its exact value: never a wrong number. protobuf refuses such a value with a
ValueError, so the check costs nothing until it happens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from google.protobuf import timestamp_pb2

from metering.v1 import query_pb2, query_pb2_grpc
from server.api import wire
from server.api.bucket_cache import bucket_cache, usage_reply
from server.api.context import Context, Core, caller
from server.core import convert
from server.core.errors import OutOfRange
from server.core.events import COUNTER_FIELDS
from server.query.engine import Bucket, Freshness, Group, QueryEngine, page_token
from server.query.reports import client_usage, tallies, token_usage
from server.query.rows import GroupRow
from server.query.spec import make_spec
from server.records.store import Records


def _time(stamp: timestamp_pb2.Timestamp, present: bool) -> dt.datetime | None:
    return stamp.ToDatetime(dt.UTC) if present else None


def metrics_pb(row: GroupRow) -> query_pb2.UsageMetrics:
    """A group's aggregate (server/query/rows.py) as UsageMetrics. Built in one constructor
    call, zero counters left out (proto3 omits them on the wire anyway): a grouped month
    builds ~10,000 of these per reply."""
    money = convert.money
    input_cost, output_cost, cost, last = row.input_cost, row.output_cost, row.cost, row.last_event_at
    return query_pb2.UsageMetrics(  # a None cost was not asked for (QueryUsageRequest.metrics): left unset
        events=row.events, unpriced_events=row.unpriced_events, counters=row.extra or None,
        input_cost=money(input_cost) if input_cost is not None else None,
        output_cost=money(output_cost) if output_cost is not None else None,
        cost=money(cost) if cost is not None else None,
        last_event_time=None if last is None else convert.timestamp(last),
        **{name: value for name, value in zip(COUNTER_FIELDS, row.counters, strict=True) if value},
    )


INT64_MAX = 2**63 - 1


def _too_large(where: str, named: Iterable[tuple[str, int]]) -> OutOfRange | None:
    """OUT_OF_RANGE for the first value above int64 among `named` (metric, sum); None: none is."""
    for name, value in named:
        if value > INT64_MAX:
            return OutOfRange(f"{name}: {where} sums to {value}, more than the reply's int64 holds ({INT64_MAX}); "
                              "ask for narrower buckets or filter", field=name)
    return None


def _first(found: Iterable[OutOfRange | None]) -> OutOfRange | None:
    return next((e for e in found if e is not None), None)


def _group_too_large(b: Bucket, group_by: Sequence[str]) -> OutOfRange | None:
    for g in b.groups:
        row = g.row
        key = ", ".join(f"{f}={v}" for f, v in zip(group_by, g.key, strict=True) if v is not None)
        where = f"the bucket starting {b.start.isoformat()}" + (f" (group {key})" if key else "")
        found = _too_large(where, [("events", row.events), ("unpriced_events", row.unpriced_events),
                                   *zip(COUNTER_FIELDS, row.counters, strict=True),
                                   *((f"counters.{name}", v) for name, v in (row.extra or {}).items())])
        if found is not None:
            return found
    return None


_GROUPS = wire.tag(query_pb2.UsageBucket, "groups")
_METRICS = wire.tag(query_pb2.UsageGroup, "metrics")


def encode_bucket(b: Bucket, group_by: Sequence[str], keys: dict[tuple[str | None, ...], bytes]) -> bytes:
    """A UsageBucket's encoding, its groups put together by hand (server/api/wire.py): each
    group's key map is encoded once per call (`keys`: the same models and projects recur
    in every bucket) and no UsageGroup message is made. For a grouped month this took
    encoding from ~75 to ~55 ms; tests/server/api/test_bucket_cache.py checks it parses as the
    message built field by field."""
    def key_of(g: Group) -> bytes:
        key = keys.get(g.key)
        if key is None:
            key = keys[g.key] = query_pb2.UsageGroup(
                key={f: v for f, v in zip(group_by, g.key, strict=True) if v is not None}).SerializeToString()
        return key

    head = query_pb2.UsageBucket(start_time=convert.timestamp(b.start), end_time=convert.timestamp(b.end),
                                 etag=b.etag, not_modified=b.not_modified).SerializeToString()
    try:
        groups = [key_of(g) + wire.delimited(_METRICS, metrics_pb(g.row).SerializeToString()) for g in b.groups]
    except ValueError:  # protobuf refused a sum above int64: say which
        too_large = _group_too_large(b, group_by)
        if too_large is None:
            raise
        raise too_large from None
    return head + wire.repeated(_GROUPS, groups)


def freshness_pb(f: Freshness | None) -> query_pb2.Freshness | None:
    if f is None:
        return None
    return query_pb2.Freshness(
        snapshot_time=convert.timestamp(f.snapshot_time), settled_before=convert.timestamp(f.settled_before),
        raw_windows=f.raw_windows,
    )


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, core: Core, engine: QueryEngine, records: Records) -> None:
        self.core = core
        self.engine = engine
        self.records = records
        self.buckets = bucket_cache()

    async def QueryUsage(self, request: query_pb2.QueryUsageRequest, context: Context) -> bytes:
        """Sent encoded (server/api/bucket_cache.py): settled buckets are encoded once, then kept."""
        return usage_reply(*await self.usage_page(request, context))

    async def usage_page(
        self, request: query_pb2.QueryUsageRequest, context: Context
    ) -> tuple[list[bytes], query_pb2.QueryUsageResponse]:
        """A QueryUsage page: its encoded buckets, and its other fields (also ExportService's chunks)."""
        principal = await caller(self.core, context)
        spec = make_spec(
            _time(request.start_time, request.HasField("start_time")),
            _time(request.end_time, request.HasField("end_time")),
            width=request.width, time_zone=request.time_zone, group_by=list(request.group_by),
            filters=[(f.field, list(f.values)) for f in request.filters], metrics=list(request.metrics),
        )
        result = await self.engine.page(principal, spec, request.page_size, request.page_token, request.if_none_match,
                                        request.known_etags, kept=self.buckets.get)
        encoded = []
        keys: dict[tuple[str | None, ...], bytes] = {}
        for b in result.buckets:
            if b.kept is not None:
                encoded.append(b.kept)
                continue
            bucket = encode_bucket(b, spec.group_by, keys)
            if b.etag and not b.not_modified:  # settled: kept by its etag
                self.buckets.put(b.etag, bucket)
            encoded.append(bucket)
        return encoded, query_pb2.QueryUsageResponse(
            next_page_token=page_token(result, spec, principal), freshness=freshness_pb(result.freshness),
            etag=result.etag, not_modified=result.not_modified,
        )

    async def GetUsageTallies(
        self, request: query_pb2.GetUsageTalliesRequest, context: Context
    ) -> query_pb2.GetUsageTalliesResponse:
        principal = await caller(self.core, context)
        found, token, freshness = await tallies(
            self.engine, principal, request.window,
            _time(request.start_time, request.HasField("start_time")),
            _time(request.end_time, request.HasField("end_time")), request.page_size, request.page_token,
        )
        too_large = _first(
            _too_large(f"the {t.window} tally starting {t.start.isoformat()} ({category}, model {model or '(none)'})",
                       counts.items())
            for t in found for category, models in t.value.items() for model, counts in models.items())
        if too_large is not None:
            raise too_large
        return query_pb2.GetUsageTalliesResponse(
            tallies=[
                query_pb2.UsageTally(
                    id=t.id, window=t.window, start_time=convert.timestamp(t.start), end_time=convert.timestamp(t.end),
                    api_key_id=t.api_key_id or "", user_id=t.user_id or "", organization_id=principal.organization_id,
                    value={
                        category: query_pb2.TallyCategory(
                            models={model: query_pb2.TallyCounts(counts=counts) for model, counts in models.items()}
                        )
                        for category, models in t.value.items()
                    },
                )
                for t in found
            ],
            next_page_token=token,
            freshness=freshness_pb(freshness),
        )

    async def GetTokenUsage(
        self, request: query_pb2.GetTokenUsageRequest, context: Context
    ) -> query_pb2.GetTokenUsageResponse:
        principal = await caller(self.core, context)
        rows, freshness = await token_usage(
            self.engine, principal, _time(request.start_time, request.HasField("start_time")),
            _time(request.end_time, request.HasField("end_time")), list(request.group_by),
        )
        too_large = _first(_too_large(f"the token usage of rule_type {r.rule_type}, task {r.task_id}",
                                      ((f"count.{name}", v) for name, v in r.count.items())) for r in rows)
        if too_large is not None:
            raise too_large
        return query_pb2.GetTokenUsageResponse(
            usage=[query_pb2.TokenUsage(rule_type=r.rule_type, task_id=r.task_id, count=r.count) for r in rows],
            freshness=freshness_pb(freshness),
        )

    async def GetClientUsage(
        self, request: query_pb2.GetClientUsageRequest, context: Context
    ) -> query_pb2.ClientUsage:
        principal = await caller(self.core, context)
        report = await client_usage(self.engine, self.records, principal, request.client_id, request.recent_limit)
        too_large = _first(_too_large(f"the usage of client {report.client_id}{where}", [
            ("total_requests", m.events), ("total_input_tokens", m.counters["input_tokens"]),
            ("total_output_tokens", m.counters["output_tokens"])])
            for where, m in [("", report.totals), *((f", model {r.model}", r.metrics) for r in report.models)])
        if too_large is not None:
            raise too_large
        models = []
        for row in report.models:
            msg = query_pb2.ModelUsage(
                model_name=row.model or "", model_provider=row.provider or "", total_requests=row.metrics.events,
                total_input_tokens=row.metrics.counters["input_tokens"],
                total_output_tokens=row.metrics.counters["output_tokens"], total_cost=convert.money(row.metrics.cost),
            )
            if row.metrics.last_event_at is not None:
                msg.last_used.CopyFrom(convert.timestamp(row.metrics.last_event_at))
            models.append(msg)
        return query_pb2.ClientUsage(
            client_id=report.client_id, total_requests=report.totals.events, successful_requests=report.successful,
            failed_requests=report.failed, total_input_tokens=report.totals.counters["input_tokens"],
            total_output_tokens=report.totals.counters["output_tokens"], total_cost=convert.money(report.totals.cost),
            models_used=models, recent_requests=report.recent, freshness=freshness_pb(report.freshness),
        )
