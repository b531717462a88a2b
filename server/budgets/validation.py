"""Wire budgets and checks into validated values, or say which field is wrong.

Errors are InvalidArgument naming the request field ("budget.limit", "estimated_cost"),
raised before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
from collections.abc import Sequence

from metering.v1 import budgets_pb2, query_pb2
from server.budgets.budget import Budget, Scope
from server.budgets.periods import PERIODS
from server.core.errors import InvalidArgument
from server.core.events import COUNTER_FIELDS
from server.ingest.validation import MAX_ID_LENGTH, MAX_MONEY_DIGITS
from server.query.buckets import parse_zone
from server.query.spec import MAX_FILTER_VALUES, check_field

PERIOD_FROM_PROTO = {
    budgets_pb2.BUDGET_PERIOD_UNSPECIFIED: "month", budgets_pb2.BUDGET_PERIOD_DAY: "day",
    budgets_pb2.BUDGET_PERIOD_WEEK: "week", budgets_pb2.BUDGET_PERIOD_MONTH: "month",
    budgets_pb2.BUDGET_PERIOD_QUARTER: "quarter", budgets_pb2.BUDGET_PERIOD_YEAR: "year",
    budgets_pb2.BUDGET_PERIOD_TOTAL: "total", budgets_pb2.BUDGET_PERIOD_ROLLING: "rolling",
}
MODE_FROM_PROTO = {budgets_pb2.BUDGET_MODE_UNSPECIFIED: "alert", budgets_pb2.BUDGET_MODE_ALERT: "alert",
                   budgets_pb2.BUDGET_MODE_ENFORCE: "enforce"}
UNPRICED_FROM_PROTO = {budgets_pb2.UNPRICED_POLICY_UNSPECIFIED: "allow", budgets_pb2.UNPRICED_POLICY_ALLOW: "allow",
                       budgets_pb2.UNPRICED_POLICY_DENY: "deny"}
UNAVAILABLE_FROM_PROTO = {
    budgets_pb2.UNAVAILABLE_POLICY_UNSPECIFIED: "fail_open", budgets_pb2.UNAVAILABLE_POLICY_FAIL_OPEN: "fail_open",
    budgets_pb2.UNAVAILABLE_POLICY_FAIL_CLOSED: "fail_closed",
}
assert set(PERIOD_FROM_PROTO.values()) == set(PERIODS)

# Budget fields a caller writes (update_mask paths); the others are output only.
WRITABLE = ("name", "scope", "metric", "currency", "limit", "period", "time_zone", "week_start", "rolling_window",
            "mode", "thresholds", "on_unpriced", "on_unavailable")
MAX_SCOPE_FILTERS = 32
MAX_THRESHOLDS = 20
MAX_NAME = 256
MIN_ROLLING = dt.timedelta(minutes=1)
MAX_ROLLING = dt.timedelta(days=366)
DEFAULT_TTL = dt.timedelta(minutes=10)
MAX_TTL = dt.timedelta(hours=24)
_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")  # extra counter and label names, as ingest takes them
_CURRENCY = re.compile(r"^[a-z]{3}$")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_FRACTION_DIGITS = 18


def exact_decimal(field: str, text: str, *, positive: bool = False) -> decimal.Decimal:
    """A plain decimal >= 0 (> 0 with positive) of at most 38 digits, 18 after the point."""
    text = text.strip()
    if not text:
        raise InvalidArgument(field, "required", reason="REQUIRED")
    if len(text) > MAX_MONEY_DIGITS + 2 or not _DECIMAL.match(text):
        raise InvalidArgument(field, f"must be a plain decimal number >= 0 such as 12.50, got {text[:48]!r}")
    value = decimal.Decimal(text)
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if -exponent > _FRACTION_DIGITS or len(digits) > MAX_MONEY_DIGITS:
        raise InvalidArgument(field, f"at most {MAX_MONEY_DIGITS} digits, {_FRACTION_DIGITS} after the point")
    if positive and not value:
        raise InvalidArgument(field, "must be > 0")
    return value


def _text(field: str, value: str, limit: int = MAX_ID_LENGTH) -> str:
    if len(value) > limit:
        raise InvalidArgument(field, f"longer than {limit} characters")
    if "\x00" in value:
        raise InvalidArgument(field, "contains a NUL character")
    return value


def _scope(field: str, filters: Sequence[query_pb2.Filter]) -> Scope:
    """Filters as the query engine takes them: known fields, each once, 1..1000 values."""
    if len(filters) > MAX_SCOPE_FILTERS:
        raise InvalidArgument(field, f"at most {MAX_SCOPE_FILTERS} filters")
    merged: dict[str, tuple[str, ...]] = {}
    for f in filters:
        name, values = f.field, list(f.values)
        check_field(name, f"{field}.field")
        if name in merged:
            raise InvalidArgument(f"{field}.field", f"{name} is filtered twice; list all its values in one filter")
        if not values or len(values) > MAX_FILTER_VALUES:
            raise InvalidArgument(f"{field}.values", f"{name}: between 1 and {MAX_FILTER_VALUES} values")
        for value in values:
            _text(f"{field}.values", value, 1024)
        if name == "batch" and not set(values) <= {"true", "false"}:
            raise InvalidArgument(f"{field}.values", 'batch: "true" or "false"')
        merged[name] = tuple(sorted(set(values)))
    return tuple(sorted(merged.items()))


def _metric(field: str, value: str) -> str:
    metric = value.strip() or "cost"
    if metric == "cost" or metric in COUNTER_FIELDS:
        return metric
    name = metric.removeprefix("counters.")
    if metric.startswith("counters.") and _NAME.match(name) and name not in COUNTER_FIELDS:
        return metric
    raise InvalidArgument(field, f"unknown metric {metric[:80]!r}; use cost, a counter such as input_tokens, "
                                 "or counters.<name>")


def _rolling(field: str, msg: budgets_pb2.Budget, period: str) -> dt.timedelta | None:
    given = msg.HasField("rolling_window")
    if period != "rolling":
        if given:
            raise InvalidArgument(field, "only a ROLLING budget has a rolling window")
        return None
    if not given:
        raise InvalidArgument(field, "required for a ROLLING budget", reason="REQUIRED")
    window = msg.rolling_window.ToTimedelta()
    if not MIN_ROLLING <= window <= MAX_ROLLING:
        raise InvalidArgument(field, "between 1 minute and 366 days")
    return window


def budget_from_proto(msg: budgets_pb2.Budget, field: str = "budget", default_zone: str = "UTC") -> Budget:
    """A budget to store, checked field by field in proto order; without a time_zone, in
    default_zone (the organization's)."""
    name = _text(f"{field}.name", msg.name.strip(), MAX_NAME)
    scope = _scope(f"{field}.scope", msg.scope)
    metric = _metric(f"{field}.metric", msg.metric)
    currency = msg.currency.strip().lower()
    if metric == "cost":
        currency = currency or "usd"
        if not _CURRENCY.match(currency):
            raise InvalidArgument(f"{field}.currency", "must be a three-letter ISO 4217 code")
        if any(name == "currency" for name, _ in scope):
            raise InvalidArgument(f"{field}.scope", "a cost budget counts its own currency; do not filter on it")
    elif currency:
        raise InvalidArgument(f"{field}.currency", "only a cost budget has a currency")
    limit = exact_decimal(f"{field}.limit", msg.limit)
    period = PERIOD_FROM_PROTO.get(msg.period)
    if period is None:
        raise InvalidArgument(f"{field}.period", "unknown period")
    try:
        zone = parse_zone(msg.time_zone.strip() or default_zone)
    except InvalidArgument as err:
        raise InvalidArgument(f"{field}.time_zone", err.description) from None
    week_start = msg.week_start or 1
    if not 1 <= week_start <= 7:
        raise InvalidArgument(f"{field}.week_start", "an ISO weekday: 1 (Monday) .. 7 (Sunday)")
    window = _rolling(f"{field}.rolling_window", msg, period)
    mode = MODE_FROM_PROTO.get(msg.mode)
    if mode is None:
        raise InvalidArgument(f"{field}.mode", "unknown mode")
    if len(msg.thresholds) > MAX_THRESHOLDS:
        raise InvalidArgument(f"{field}.thresholds", f"at most {MAX_THRESHOLDS}")
    thresholds = sorted({exact_decimal(f"{field}.thresholds", t, positive=True) for t in msg.thresholds})
    on_unpriced = UNPRICED_FROM_PROTO.get(msg.on_unpriced)
    if on_unpriced is None:
        raise InvalidArgument(f"{field}.on_unpriced", "unknown policy")
    on_unavailable = UNAVAILABLE_FROM_PROTO.get(msg.on_unavailable)
    if on_unavailable is None:
        raise InvalidArgument(f"{field}.on_unavailable", "unknown policy")
    return Budget(name, scope, metric, currency, limit, period, str(zone.key), week_start, window, mode,
                  tuple(thresholds), on_unpriced, on_unavailable)


def merge(current: budgets_pb2.Budget, patch: budgets_pb2.Budget, mask: Sequence[str]) -> budgets_pb2.Budget:
    """The budget an update asks for: `current` with the masked fields taken from `patch`
    (every writable field when the mask is empty)."""
    paths = list(mask) or list(WRITABLE)
    for path in paths:
        if path not in WRITABLE:
            raise InvalidArgument("update_mask", f"{path[:64]!r} is not a writable budget field; use any of "
                                                 f"{', '.join(WRITABLE)}")
    merged = budgets_pb2.Budget()
    merged.CopyFrom(current)
    for path in paths:
        merged.ClearField(path)
        if path in ("scope", "thresholds"):
            getattr(merged, path).extend(getattr(patch, path))
        elif path == "rolling_window":
            if patch.HasField(path):
                merged.rolling_window.CopyFrom(patch.rolling_window)
        else:
            setattr(merged, path, getattr(patch, path))
    return merged


def ttl(request: budgets_pb2.CheckRequest) -> dt.timedelta:
    if not request.HasField("reservation_ttl"):
        return DEFAULT_TTL
    value = request.reservation_ttl.ToTimedelta()
    if not dt.timedelta(seconds=1) <= value <= MAX_TTL:
        raise InvalidArgument("reservation_ttl", "between 1 second and 24 hours")
    return value


@dataclasses.dataclass(frozen=True)
class Estimate:
    cost: decimal.Decimal  # in the check's currency
    counters: dict[str, int]  # metric name ("input_tokens", "counters.<name>") -> count

    def of(self, budget: Budget) -> decimal.Decimal:
        """The estimate in the budget's metric (0 when none was given)."""
        if budget.is_cost:
            return self.cost
        return decimal.Decimal(self.counters.get(budget.metric, 0))


def estimate(request: budgets_pb2.CheckRequest) -> Estimate:
    cost = exact_decimal("estimated_cost", request.estimated_cost) if request.estimated_cost else decimal.Decimal(0)
    counters: dict[str, int] = {}
    for name, value in request.estimated_counters.items():
        field = f"estimated_counters.{name[:64]}"
        if _metric(field, name) == "cost":
            raise InvalidArgument(field, "the cost estimate goes in estimated_cost")
        if value < 0:
            raise InvalidArgument(field, "must be >= 0")
        counters[name] = value
    return Estimate(cost, counters)
