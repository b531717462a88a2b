"""A usage query's request: its range, bucket width, zone, grouping, filters and metrics,
checked so that every error names the request field (the engine, server/query/engine.py,
reads what make_spec made)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence

from metering import page_token as tokens
from server.core.errors import InvalidArgument
from server.core.events import COUNTER_FIELDS
from server.core.principal import Principal
from server.query.buckets import parse_width, parse_zone

DIMENSIONS: tuple[str, ...] = (
    "kind", "project_id", "user_id", "api_key_id", "client_id", "model", "provider", "endpoint",
    "api_name", "service_tier", "batch", "status", "currency", "price_version",
)
_LABEL_FIELD = re.compile(r"^labels\.[A-Za-z0-9_.:/-]{1,64}$")
MAX_GROUP_BY = 16
MAX_FILTER_VALUES = 1000
# What a query may ask for (UsageMetrics fields; `events` always comes).
METRICS: tuple[str, ...] = (
    "unpriced_events", *COUNTER_FIELDS, "counters", "input_cost", "output_cost", "cost", "last_event_time",
)


@dataclasses.dataclass(frozen=True)
class UsageSpec:
    start: dt.datetime
    end: dt.datetime
    width: str = "1d"
    time_zone: str = "UTC"
    group_by: tuple[str, ...] = ()
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()  # sorted by field
    metrics: tuple[str, ...] = ()  # "events" and some of METRICS, sorted; (): all of them

    def digest(self, principal: Principal) -> str:
        """Names the request for its page tokens (metering/page_token.py)."""
        return tokens.request_digest(
            self.start.isoformat(), self.end.isoformat(), self.width, self.time_zone, self.group_by,
            self.filters, principal.org_id, principal.read_scope(), *([self.metrics] if self.metrics else []),
        )


def check_field(field: str, name: str) -> str:
    if field in DIMENSIONS or _LABEL_FIELD.match(field):
        return field
    raise InvalidArgument(name, f"unknown field {field[:80]!r}; use one of {', '.join(DIMENSIONS)} or labels.<name>")


QUERY_EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
QUERY_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


def make_spec(
    start: dt.datetime | None, end: dt.datetime | None, *, width: str = "", time_zone: str = "",
    group_by: Sequence[str] = (), filters: Sequence[tuple[str, Sequence[str]]] = (), now: dt.datetime | None = None,
    metrics: Sequence[str] = (),
) -> UsageSpec:
    """Validate a query; errors name the request field."""
    if start is None:
        raise InvalidArgument("start_time", "required", reason="REQUIRED")
    end = end or now or dt.datetime.now(dt.UTC)
    for name, value in (("start_time", start), ("end_time", end)):
        if not QUERY_EARLIEST <= value <= QUERY_LATEST:  # bucket arithmetic must stay inside datetime's range
            raise InvalidArgument(name, "must be between 1900-01-01 and 9000-01-01")
    if end <= start:
        raise InvalidArgument("end_time", "must be after start_time")
    width = parse_width(width)
    parse_zone(time_zone)
    if len(group_by) > MAX_GROUP_BY:
        raise InvalidArgument("group_by", f"at most {MAX_GROUP_BY} fields")
    grouped = tuple(check_field(f, "group_by") for f in group_by)
    if len(set(grouped)) != len(grouped):
        raise InvalidArgument("group_by", "a field is named twice")
    merged: dict[str, tuple[str, ...]] = {}
    for field, values in filters:
        check_field(field, "filters.field")
        if field in merged:
            raise InvalidArgument("filters", f"{field} is filtered twice; list all its values in one filter")
        if not values or len(values) > MAX_FILTER_VALUES:
            raise InvalidArgument("filters.values", f"{field}: between 1 and {MAX_FILTER_VALUES} values")
        if "\x00" in "".join(values):  # Postgres text cannot hold NUL, so no stored value has one
            raise InvalidArgument("filters.values", f"{field}: a value contains a NUL character")
        merged[field] = tuple(sorted(set(values)))
    unknown = sorted(set(metrics) - set(METRICS) - {"events"})
    if unknown:
        raise InvalidArgument("metrics", f"unknown metric {unknown[0][:80]!r}; use any of events, {', '.join(METRICS)}")
    asked = tuple(sorted({*metrics, "events"})) if metrics else ()
    return UsageSpec(start.astimezone(dt.UTC), end.astimezone(dt.UTC), width, time_zone or "UTC", grouped,
                     tuple(sorted(merged.items())), asked if len(asked) <= len(METRICS) else ())
