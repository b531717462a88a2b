"""The events' payloads, as delivered (Standard Webhooks' `{"type", "timestamp", "data"}`),
documented in docs/alerts.md."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from server.alerts.rules import UNPRICED, Transition, amount
from server.budgets.usage import Reading
from server.core.convert import money


def _time(at: dt.datetime | None) -> str | None:
    return None if at is None else at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def budget_data(organization_id: str, reading: Reading) -> dict[str, Any]:
    b, period = reading.budget, reading.period
    return {
        "organization_id": organization_id,
        "budget_id": b.budget_id,
        "budget_name": b.name,
        "scope": [{"field": field, "values": list(values)} for field, values in b.scope],
        "metric": b.metric,
        "currency": b.currency,
        "limit": money(b.limit),
        "used": money(reading.usage),
        "unpriced_events": reading.unpriced,
        "period": b.period,
        "time_zone": b.time_zone,
        "period_start": _time(period.start),
        "period_end": _time(period.end),
        "resets_at": _time(period.resets_at),
    }


def payload(organization_id: str, reading: Reading, transition: Transition, now: dt.datetime) -> dict[str, Any]:
    assert transition.event_type is not None
    data = budget_data(organization_id, reading)
    if transition.threshold != UNPRICED:
        percentage = decimal.Decimal(transition.threshold)
        data["threshold"] = transition.threshold
        data["threshold_amount"] = money(amount(reading.budget, percentage))
    return {"type": transition.event_type, "timestamp": _time(now), "data": data}
