"""Seed 003's vocabulary <-> the service's: its usage models (pydantic v2, with the seed's exact
field names and types), log_request fields in, server replies out.

Everything here is a pure conversion; the numbers always come from the server
(QueryService.GetClientUsage, QueryService.QueryUsage, RecordService.GetEvent). Money is a float in
the models because the seed says so; the server keeps and sums it as exact decimals, and
get_usage_stats() also gives the exact total (total_cost_decimal).

Unpriced usage (no cost given and no price in the book) is never costed at 0 silently: a cost is the
sum of what is priced, and every report says what is not: `unpriced_requests` in get_usage_stats()
(totals, per model, per client) and in ClientUsageData and its ModelUsage (from a second query,
unpriced_request), `unpriced` on RequestSummary and RequestDetails. Fields the seed does
not name come after its own, with defaults, so seed-style code reads the models unchanged.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from typing import Any, List, Optional  # noqa: UP035 - the seed's spelling

from google.protobuf import timestamp_pb2
from pydantic import BaseModel, ConfigDict

from metering.v1 import event_pb2, query_pb2

KIND = "completions"
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # the server's earliest event time
FUTURE_SLACK = dt.timedelta(days=1)                # ... and how far ahead an event may be
RECENT_REQUESTS = 10
STATS_GROUP_BY = ("client_id", "model", "provider", "status")
_SUMS = decimal.Context(prec=80)  # sums of 38-digit amounts, never rounded
# Status words a seed-style caller may use, mapped to the service's two outcomes.
STATUS_SYNONYMS = {
    "success": "success", "succeeded": "success", "successful": "success", "ok": "success", "completed": "success",
    "error": "error", "failed": "error", "failure": "error", "fail": "error", "errored": "error",
}


class _Model(BaseModel):
    model_config = ConfigDict(protected_namespaces=())  # fields named model_name, model_provider


class ModelUsage(_Model):
    """Usage statistics for a specific model."""

    model_name: str
    model_provider: str
    total_input_tokens: int
    total_output_tokens: int
    total_cost: float
    last_used: dt.datetime
    unpriced_requests: int = 0  # without a cost or a price: not in total_cost


class RequestSummary(_Model):
    """Summary of a request."""

    request_id: str
    timestamp: dt.datetime
    model_name: str
    model_provider: str
    input_tokens: int
    output_tokens: int
    total_cost: float
    status: str
    error_message: Optional[str] = None  # noqa: UP045
    unpriced: bool = False  # no cost given and no price found: total_cost 0.0 is not a price


class ClientUsageData(_Model):
    """Detailed usage data for a client."""

    client_id: str
    total_requests: int
    successful_requests: int
    failed_requests: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: float
    models_used: List[ModelUsage]  # noqa: UP006
    recent_requests: List[RequestSummary]  # noqa: UP006
    unpriced_requests: int = 0  # without a cost or a price: not in total_cost


class RequestDetails(_Model):
    """Detailed information about a specific request."""

    request_id: str
    timestamp: dt.datetime
    model_name: str
    model_provider: str
    client_id: str
    user_id: str
    config_json: str
    request_raw: str
    request_json: str
    response_json: str
    response_raw: str
    input_tokens: int
    output_tokens: int
    input_cost: float
    output_cost: float
    total_cost: float
    status: str
    error_message: Optional[str] = None  # noqa: UP045
    unpriced: bool = False  # no cost given and no price found: the costs 0.0 are not a price


def status(value: str | None) -> str | None:
    """The seed's free-form status as the service's "success"/"error" (others are sent as given,
    and the server rejects them naming the field)."""
    if value is None:
        return None
    return STATUS_SYNONYMS.get(value.strip().lower(), value)


def request_fields(
    *, request_id: str | None, model_name: str | None, model_provider: str | None, client_id: str | None,
    user_id: str | None, input_tokens: int | None, output_tokens: int | None, input_cost: Any,
    output_cost: Any, status_: str | None, error_message: str | None, config_json: str | None = None,
    request_raw: str | None = None, request_json: str | None = None, response_json: str | None = None,
    response_raw: str | None = None, reservation_id: str | None = None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """log_request's parameters as event fields (kind "completions" unless `extra` says otherwise);
    `reservation_id` is the reservation (MeteringClient.reserve / check(reserve=True)) the request settles."""
    fields: dict[str, Any] = {
        "kind": KIND, "request_id": request_id or None, "model": model_name, "provider": model_provider,
        "client_id": client_id or None, "user_id": user_id or None,
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "input_cost": input_cost, "output_cost": output_cost,
        "status": status(status_), "error_message": error_message or None,
        "config_json": config_json or None, "request_raw": request_raw or None, "request_json": request_json or None,
        "response_json": response_json or None, "response_raw": response_raw or None,
        "reservation_id": reservation_id or None,
    }
    fields.update(extra or {})
    return fields


def _time(stamp: timestamp_pb2.Timestamp) -> dt.datetime:
    when: dt.datetime = stamp.ToDatetime(tzinfo=dt.UTC)
    return when


def money(text: str) -> decimal.Decimal:
    return decimal.Decimal(text) if text else decimal.Decimal(0)


def _float(text: str) -> float:
    return float(money(text))


def request_summary(event: event_pb2.UsageEvent) -> RequestSummary:
    return RequestSummary(
        request_id=event.request_id, timestamp=_time(event.timestamp), model_name=event.model,
        model_provider=event.provider, input_tokens=event.input_tokens, output_tokens=event.output_tokens,
        total_cost=_float(event.cost), status=event.status, error_message=event.error_message or None,
        unpriced=event.unpriced,
    )


def request_details(event: event_pb2.UsageEvent) -> RequestDetails:
    return RequestDetails(
        request_id=event.request_id, timestamp=_time(event.timestamp), model_name=event.model,
        model_provider=event.provider, client_id=event.client_id, user_id=event.user_id,
        config_json=event.config_json, request_raw=event.request_raw, request_json=event.request_json,
        response_json=event.response_json, response_raw=event.response_raw,
        input_tokens=event.input_tokens, output_tokens=event.output_tokens,
        input_cost=_float(event.input_cost), output_cost=_float(event.output_cost), total_cost=_float(event.cost),
        status=event.status, error_message=event.error_message or None, unpriced=event.unpriced,
    )


def unpriced_request(client_id: str, now: dt.datetime | None = None) -> query_pb2.QueryUsageRequest:
    """The unpriced requests of one client, ever, per model and provider (ClientUsageData's counts)."""
    request = stats_request(now)
    del request.group_by[:]
    request.group_by.extend(("model", "provider"))
    request.metrics.append("unpriced_events")
    request.filters.add(field="client_id", values=[client_id])
    return request


def client_usage_data(reply: query_pb2.ClientUsage, unpriced: query_pb2.QueryUsageResponse) -> ClientUsageData:
    """GetClientUsage's reply, with the unpriced counts of `unpriced` (the reply to unpriced_request)."""
    by_model = {(g.key.get("model", ""), g.key.get("provider", "")): g.metrics.unpriced_events
                for b in unpriced.buckets for g in b.groups}
    return ClientUsageData(
        client_id=reply.client_id, total_requests=reply.total_requests,
        successful_requests=reply.successful_requests, failed_requests=reply.failed_requests,
        total_input_tokens=reply.total_input_tokens, total_output_tokens=reply.total_output_tokens,
        total_cost=_float(reply.total_cost), unpriced_requests=sum(by_model.values()),
        models_used=[
            ModelUsage(
                model_name=m.model_name, model_provider=m.model_provider, total_input_tokens=m.total_input_tokens,
                total_output_tokens=m.total_output_tokens, total_cost=_float(m.total_cost),
                last_used=_time(m.last_used), unpriced_requests=by_model.get((m.model_name, m.model_provider), 0),
            )
            for m in reply.models_used
        ],
        recent_requests=[request_summary(e) for e in reply.recent_requests],
    )


def stats_request(now: dt.datetime | None = None) -> query_pb2.QueryUsageRequest:
    """All usage visible to the caller, ever: one bucket grouped by client, model, provider, status."""
    request = query_pb2.QueryUsageRequest(width="all", group_by=STATS_GROUP_BY)
    request.start_time.FromDatetime(EARLIEST)
    request.end_time.FromDatetime((now or dt.datetime.now(dt.UTC)) + FUTURE_SLACK)
    return request


class _Totals:
    def __init__(self) -> None:
        self.requests = self.successful = self.failed = self.input_tokens = self.output_tokens = self.unpriced = 0
        self.cost = decimal.Decimal(0)
        self.last_used: dt.datetime | None = None

    def add(self, state: str | None, metrics: query_pb2.UsageMetrics) -> None:
        self.requests += metrics.events
        if state == "success":
            self.successful += metrics.events
        elif state == "error":
            self.failed += metrics.events
        self.input_tokens += metrics.input_tokens
        self.output_tokens += metrics.output_tokens
        self.cost = _SUMS.add(self.cost, money(metrics.cost))
        self.unpriced += metrics.unpriced_events
        if metrics.HasField("last_event_time"):
            last = _time(metrics.last_event_time)
            self.last_used = last if self.last_used is None else max(self.last_used, last)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_requests": self.requests, "successful_requests": self.successful,
            "failed_requests": self.failed, "total_input_tokens": self.input_tokens,
            "total_output_tokens": self.output_tokens, "total_cost": float(self.cost),
            "total_cost_decimal": format(self.cost, "f"), "unpriced_requests": self.unpriced,
            "last_used": self.last_used,
        }


def usage_stats(buckets: Iterable[query_pb2.UsageBucket]) -> dict[str, Any]:
    """get_usage_stats()'s dict: totals, then per model and per client (most recently used first)."""
    total = _Totals()
    models: dict[tuple[str, str], _Totals] = {}
    clients: dict[str, _Totals] = {}
    for bucket in buckets:
        for group in bucket.groups:
            key = group.key
            state = key.get("status")
            total.add(state, group.metrics)
            models.setdefault((key.get("model", ""), key.get("provider", "")), _Totals()).add(state, group.metrics)
            clients.setdefault(key.get("client_id", ""), _Totals()).add(state, group.metrics)

    def recent_first(item: tuple[Any, _Totals]) -> dt.datetime:
        return item[1].last_used or EARLIEST

    stats = total.as_dict()
    stats["models"] = [
        {"model_name": model, "model_provider": provider, **t.as_dict()}
        for (model, provider), t in sorted(models.items(), key=recent_first, reverse=True)
    ]
    stats["clients"] = [
        {"client_id": client, **t.as_dict()} for client, t in sorted(clients.items(), key=recent_first, reverse=True)
    ]
    return stats
