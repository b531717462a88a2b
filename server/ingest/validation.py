"""Turn a wire UsageEvent into a validated NewEvent, or say which field is wrong."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import operator
import os
import random
import re

from metering.v1 import event_pb2
from server.core.errors import InvalidArgument, PermissionDenied
from server.core.events import (
    COUNTER_FIELDS,
    EPOCH,
    KINDS,
    MONEY_FIELDS,
    PAYLOAD_FIELDS,
    STATUSES,
    TEXT_DIMENSIONS,
    NewEvent,
    SeriesKey,
    event_uuid_from_millis,
)
from server.core.principal import Principal
from server.storage.horizons import OUTSIDE_RETENTION, Horizon

# Limits (docs/guarantees.md, "Limits").
MAX_ID_LENGTH = 256
MAX_LABELS = 64
MAX_NAME = 64  # of a label or an extra counter
MAX_LABEL_VALUE = 1024
MAX_EXTRA_COUNTERS = 64
MAX_PAYLOAD_FIELD = 1 << 20  # 1 MiB per payload field
MAX_MONEY_DIGITS = 38
# The largest value of any counter of one event, fixed or extra (docs/api.md, "Event
# validation"). Large enough for any real call: 10^5 times a 10M-token batch, 31,700 years
# of audio seconds, a terabyte of bytes or characters (more is reported as several events).
# Small enough that sums stay exact and readable: one value is below 2^53, so it survives
# any JSON reader (JavaScript's numbers included); an int64 reply field holds the sum of
# 9,223,372 maximal events, and a day of the 10M-token batches at the measured ingest rate
# (48,400 events/s, docs/performance.md) 1/220 of it. Stored sums never overflow: one that
# does not fit a bigint is kept numeric, and a year of maximal events at 10^6 events/s sums to
# 3.2 * 10^25 (server/storage/migrations/0010_exact_sums.sql, docs/queries.md "Exact sums").
MAX_COUNTER = 10**12
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FUTURE_SLACK = dt.timedelta(days=1)
_EARLIEST_SECONDS = int(EARLIEST.timestamp())
_FUTURE_SLACK_SECONDS = int(FUTURE_SLACK.total_seconds())
_get_counters = operator.attrgetter(*COUNTER_FIELDS)
_get_dims = operator.attrgetter(*TEXT_DIMENSIONS)
_get_payload = operator.attrgetter(*PAYLOAD_FIELDS)
_get_money = operator.attrgetter(*MONEY_FIELDS)
# HasField called unbound: event.HasField first looks "HasField" up among the
# message's fields, then as a method; this is ~2x cheaper (90 against 170 ns).
_has_field = event_pb2.UsageEvent.HasField
_repeat = itertools.repeat
# The raw wire values a series is made of (labels aside): the memo key of Validator.
_get_series_raw = operator.attrgetter("kind", "status", "currency", "batch", *TEXT_DIMENSIONS)
RawSeries = tuple[object, ...]  # those values, paired with the sorted labels when there are any
_MEMO_LIMIT = 50_000  # series per caller
_MILLISECOND = dt.timedelta(milliseconds=1)
_SECONDS: dict[int, dt.datetime] = {}  # Unix seconds -> datetime, see _timestamp
# Event ids need uniqueness, not secrecy: a fast generator seeded from the OS,
# reseeded in every forked child so server processes never share a sequence.
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
_NUM_MODEL_REQUESTS = COUNTER_FIELDS.index("num_model_requests")
_TOO_LARGE = f"must be <= {MAX_COUNTER}, the most one event may count (report more as several events)"
_NAME = re.compile(rf"^[A-Za-z0-9_.:/-]{{1,{MAX_NAME}}}$")
_CURRENCY = re.compile(r"^[a-z]{3}$")
# Plain non-negative decimals of at most 20 + 18 digits: finite, >= 0, exponent >= -18, <= 38
# digits, no sign (so no -0): what _money checks, decided by the text alone.
_PLAIN_MONEY = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,18})?")
# The most one event may cost (each of its money fields): below 10^20 with 18 decimals.
_MAX_COST = decimal.Decimal(10) ** (MAX_MONEY_DIGITS - 18)
_COST_DIGITS = "38 digits, 18 after the point"
# Money arithmetic must never round: the default context keeps only 28 significant digits.
_MONEY = decimal.Context(prec=2 * MAX_MONEY_DIGITS, traps=[decimal.Inexact, decimal.InvalidOperation])


def _text(field: str, value: str, limit: int) -> str | None:
    if not value:
        return None
    if len(value) > limit:
        raise InvalidArgument(field, f"longer than {limit} characters")
    if "\x00" in value:
        raise InvalidArgument(field, "contains a NUL character")
    return value


def _money(field: str, value: str) -> decimal.Decimal:
    if _PLAIN_MONEY.fullmatch(value):  # the usual "0.0043": within every limit below by construction
        return decimal.Decimal(value)
    if len(value) > MAX_MONEY_DIGITS + 2:
        raise InvalidArgument(field, "too many digits")
    try:
        amount = decimal.Decimal(value.strip())
    except decimal.InvalidOperation:
        raise InvalidArgument(field, f"not a decimal number: {value!r}") from None
    if not amount.is_finite():
        raise InvalidArgument(field, "must be a finite decimal")
    if amount < 0:
        raise InvalidArgument(field, "must be >= 0")
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    if exponent < -18 or len(digits) > MAX_MONEY_DIGITS or amount.adjusted() >= MAX_MONEY_DIGITS - 18:
        raise InvalidArgument(field, f"at most {_COST_DIGITS}")
    return abs(amount) if not amount else amount  # normalise -0, keeping the exponent


def _timestamp(event: event_pb2.UsageEvent, now: dt.datetime, now_seconds: int) -> tuple[dt.datetime, int]:
    """The event time and its Unix milliseconds (the event id's prefix)."""
    stamp = event.timestamp
    seconds, nanos = stamp.seconds, stamp.nanos
    if not seconds and not nanos and not _has_field(event, "timestamp"):  # HasField only when it may be unset
        return now, (now - EPOCH) // _MILLISECOND
    if not 0 <= nanos < 1_000_000_000:
        raise InvalidArgument("timestamp", "nanos out of range")
    if not _EARLIEST_SECONDS <= seconds <= now_seconds + _FUTURE_SLACK_SECONDS:
        raise InvalidArgument("timestamp", "must be between 2000-01-01 and one day from now")
    # The datetime of each whole second is kept (_SECONDS): events of a batch share
    # their seconds, and a lookup is cheaper than building the datetime (with
    # HasField skipped for a set time, _timestamp went from 1.75 to 0.55 µs an event).
    ts = _SECONDS.get(seconds)
    if ts is None:
        if len(_SECONDS) >= 100_000:
            _SECONDS.clear()
        ts = _SECONDS[seconds] = EARLIEST + dt.timedelta(seconds=seconds - _EARLIEST_SECONDS)
    if nanos >= 1000:
        ts = ts.replace(microsecond=nanos // 1000)
    return ts, seconds * 1000 + nanos // 1_000_000


def _strings(names: tuple[str, ...], values: tuple[str, ...], limit: int) -> tuple[str | None, ...]:
    """Empty strings become None; over-long values and NUL characters name their field."""
    if "\x00" in "".join(values) or max(map(len, values)) > limit:
        for name, value in zip(names, values, strict=True):
            _text(name, value, limit)
    return tuple(v or None for v in values)


def _scoped(field: str, given: str | None, own: str | None, forced: str | None) -> str | None:
    """Default a dimension to the caller's own, and keep a scoped caller inside its scope."""
    if forced is not None and given is not None and given != forced:
        raise PermissionDenied(f"{field}: this key may only record usage for {forced!r}", field=field)
    if forced is not None:
        return forced
    return given if given is not None else own


def _series(event: event_pb2.UsageEvent, principal: Principal) -> SeriesKey:
    """Everything the event is grouped by, checked and scoped to the caller."""
    kind = event.kind.strip()
    if not kind:
        raise InvalidArgument("kind", f"required; one of {', '.join(sorted(KINDS))}", reason="REQUIRED")
    if kind not in KINDS:
        raise InvalidArgument("kind", f"unknown kind {kind[:64]!r}; one of {', '.join(sorted(KINDS))}")
    status = event.status or "success"
    if status not in STATUSES:
        raise InvalidArgument("status", "must be 'success' or 'error'")
    currency = (event.currency or "usd").lower()
    if not _CURRENCY.match(currency):
        raise InvalidArgument("currency", "must be a three-letter ISO 4217 code")

    dims = dict(zip(TEXT_DIMENSIONS, _strings(TEXT_DIMENSIONS, _get_dims(event), MAX_ID_LENGTH), strict=True))
    member_user = None if principal.is_admin else principal.user_id
    dims["project_id"] = _scoped("project_id", dims["project_id"], None, principal.project_id)
    dims["user_id"] = _scoped("user_id", dims["user_id"], principal.user_id, member_user)
    key_bound = None if principal.is_admin or principal.user_id is not None else principal.api_key_id
    dims["api_key_id"] = _scoped("api_key_id", dims["api_key_id"], principal.api_key_id, key_bound)

    if len(event.labels) > MAX_LABELS:
        raise InvalidArgument("labels", f"at most {MAX_LABELS} entries")
    for key, value in event.labels.items():
        if not _NAME.match(key):
            raise InvalidArgument(f"labels.{key[:MAX_NAME]}", f"name must be 1-{MAX_NAME} of [A-Za-z0-9_.:/-]")
        if len(value) > MAX_LABEL_VALUE:
            raise InvalidArgument(f"labels.{key}", f"longer than {MAX_LABEL_VALUE} characters")
        if "\x00" in value:
            raise InvalidArgument(f"labels.{key}", "contains a NUL character")
    return SeriesKey(
        kind=kind,
        dims=tuple(dims[name] for name in TEXT_DIMENSIONS),
        batch=event.batch,
        status=status,
        currency=currency,
        labels=tuple(sorted(event.labels.items())),
    )


def _extra_counters(event: event_pb2.UsageEvent) -> dict[str, int]:
    if len(event.counters) > MAX_EXTRA_COUNTERS:
        raise InvalidArgument("counters", f"at most {MAX_EXTRA_COUNTERS} entries")
    for key, value in event.counters.items():
        if not _NAME.match(key):
            raise InvalidArgument(f"counters.{key[:MAX_NAME]}", f"name must be 1-{MAX_NAME} of [A-Za-z0-9_.:/-]")
        if key in COUNTER_FIELDS:
            raise InvalidArgument(f"counters.{key}", "is a fixed counter; use the field instead")
        if value < 0:
            raise InvalidArgument(f"counters.{key}", "must be >= 0")
        if value > MAX_COUNTER:
            raise InvalidArgument(f"counters.{key}", _TOO_LARGE)
    return dict(sorted(event.counters.items()))


def _optional_money(field: str, value: str, event: event_pb2.UsageEvent) -> decimal.Decimal | None:
    """A money field's amount, None when unset. The common plain amount needs no
    HasField (2-3x an attribute read): a field with text is set."""
    if value and _PLAIN_MONEY.fullmatch(value):
        return decimal.Decimal(value)
    return _money(field, value) if _has_field(event, field) else None


class SeriesMemo:
    """Validated series by caller and raw wire values, kept across batches (a
    series' validity depends on nothing else): a caller's events mostly repeat
    a bounded set of (project, user, model, ...) combinations."""

    def __init__(self, max_callers: int = 1024) -> None:
        self._by_caller: dict[Principal, dict[RawSeries, SeriesKey]] = {}
        self._max_callers = max_callers

    def for_caller(self, principal: Principal) -> dict[RawSeries, SeriesKey]:
        memo = self._by_caller.get(principal)
        if memo is None:
            if len(self._by_caller) >= self._max_callers:
                self._by_caller.clear()
            memo = self._by_caller[principal] = {}
        return memo


class Validator:
    """Validates the events one caller sends at one moment (a batch, or one event).

    Errors are checked in this order and the first one is reported: the series
    (kind, status, currency, dimensions and the caller's scope, labels), then
    timestamp, request_id, counters, costs, payload. The events of a batch mostly
    share their series, so the series part is checked once per distinct raw
    value and memoized; only the per-event fields are checked for every event.
    """

    def __init__(self, principal: Principal, now: dt.datetime, memo: SeriesMemo | None = None,
                 horizon: Horizon | None = None) -> None:
        """horizon: the organization's retention (server/storage/horizons.py); None: keeps all."""
        self.principal = principal
        self.now = now
        self._events_before = horizon.events if horizon is not None else None
        self._payloads_before = horizon.payloads if horizon is not None else None
        self._now_seconds = int(now.timestamp())
        self._series = memo.for_caller(principal) if memo is not None else {}

    def __call__(self, event: event_pb2.UsageEvent) -> NewEvent:
        """Raises InvalidArgument (or PermissionDenied) naming the field."""
        raw: RawSeries = _get_series_raw(event)
        if event.labels:
            raw = (raw, tuple(sorted(event.labels.items())))
        series = self._series.get(raw)
        if series is None:
            series = _series(event, self.principal)
            if len(self._series) >= _MEMO_LIMIT:
                self._series.clear()
            self._series[raw] = series

        ts, millis = _timestamp(event, self.now, self._now_seconds)
        if self._events_before is not None and ts < self._events_before:
            raise InvalidArgument("timestamp", f"before {self._events_before:%Y-%m-%dT%H:%M:%SZ}, the start of the "
                                  "organization's retention", reason=OUTSIDE_RETENTION)
        request_id = event.request_id
        if len(request_id) > MAX_ID_LENGTH or "\x00" in request_id:
            _text("request_id", request_id, MAX_ID_LENGTH)

        counters = _get_counters(event)
        if not _has_field(event, "num_model_requests"):
            counters = counters[:_NUM_MODEL_REQUESTS] + (1,) + counters[_NUM_MODEL_REQUESTS + 1 :]
        if min(counters) < 0:
            raise InvalidArgument(COUNTER_FIELDS[next(i for i, v in enumerate(counters) if v < 0)], "must be >= 0")
        if max(counters) > MAX_COUNTER:
            raise InvalidArgument(COUNTER_FIELDS[next(i for i, v in enumerate(counters) if v > MAX_COUNTER)],
                                  _TOO_LARGE)
        extra = _extra_counters(event) if event.counters else None

        input_cost, output_cost, cost = map(_optional_money, MONEY_FIELDS, _get_money(event), _repeat(event))
        if cost is None and (input_cost is not None or output_cost is not None):
            cost = _MONEY.add(input_cost or 0, output_cost or 0)
            if cost >= _MAX_COST:  # within the limit of a given cost, so an adjustment can send it back
                raise InvalidArgument("cost", f"input_cost + output_cost is {cost}: at most {_COST_DIGITS}")

        raw_payload = _get_payload(event)
        payload = _strings(PAYLOAD_FIELDS, raw_payload, MAX_PAYLOAD_FIELD) if any(raw_payload) else None
        if payload is not None and self._payloads_before is not None and ts < self._payloads_before:
            payload = None  # past the payload retention: the usage is kept, the payload never stored

        event_id = event_uuid_from_millis(millis, _random.getrandbits(74))
        new = NewEvent(
            request_id or str(event_id), ts, event_id, series, counters, extra, input_cost, output_cost, cost, payload,
        )
        if event.reservation_id:
            new.reservation_id = _text("reservation_id", event.reservation_id, MAX_ID_LENGTH)
        return new


def validate(event: event_pb2.UsageEvent, principal: Principal, now: dt.datetime) -> NewEvent:
    """One event (see Validator); raises InvalidArgument (or PermissionDenied) naming the field."""
    return Validator(principal, now)(event)
