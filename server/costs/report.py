"""Costs by time bucket, project, line item and API key (DESIGN §6), computed
from the one query engine (server/query/engine.py): rollups for settled windows, raw
events for dirty ones, one snapshot. Nothing here reads events itself.

The engine groups usage by what decides its price as well as by what the caller
asked for: model, currency, price version and the image variant labels. A group
priced by version V has exact counter sums, and each of its line items is
quantity x unit price of V (server/pricing/rules.py), which equals the sum of the
per-event costs stamped at ingest. Caller-given costs become "<model>, input"
and "<model>, output" from input_cost and output_cost, the rest of cost
"<model>, other". Usage without cost or price is counted as unpriced_events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Sequence

from server.core.errors import InvalidArgument
from server.core.events import COUNTER_FIELDS
from server.core.money import EXACT, ZERO
from server.core.principal import Principal
from server.pricing.pricer import Pricer
from server.pricing.rules import UNPRICED
from server.query.engine import Freshness, Metrics, QueryEngine, page_token
from server.query.spec import make_spec

GROUPS = ("project_id", "line_item", "api_key_id", "user_id", "model", "price_version", "api_source")
# api_source (OpenAI's): "agents_api" for usage labelled api_source=agents_api, "unlabeled" for the rest.
API_SOURCE_LABEL = "labels.api_source"
AGENTS_API = "agents_api"
_PRICING_KEYS = ("model", "currency", "price_version", "labels.size", "labels.quality")
DEFAULT_PAGE_SIZE = 7
NO_MODEL = "(no model)"


@dataclasses.dataclass
class CostResult:
    key: dict[str, str | None]  # the requested group_by fields
    currency: str
    amount: decimal.Decimal
    quantity: decimal.Decimal | None  # with line_item grouping
    unit: str


@dataclasses.dataclass
class CostBucket:
    start: dt.datetime
    end: dt.datetime
    results: list[CostResult]
    unpriced_events: int


@dataclasses.dataclass
class Costs:
    buckets: list[CostBucket]
    next_page_token: str
    freshness: Freshness


@dataclasses.dataclass(frozen=True)
class _Item:
    name: str
    quantity: decimal.Decimal | None
    unit: str
    amount: decimal.Decimal


def _given(model: str, m: Metrics) -> list[_Item]:
    """Line items of caller-given costs."""
    other = EXACT.subtract(EXACT.subtract(m.cost, m.input_cost), m.output_cost)
    items = []
    if m.input_cost:
        items.append(_Item(f"{model}, input", decimal.Decimal(m.counters["input_tokens"]), "tokens", m.input_cost))
    if m.output_cost:
        items.append(_Item(f"{model}, output", decimal.Decimal(m.counters["output_tokens"]), "tokens", m.output_cost))
    if other:
        items.append(_Item(f"{model}, other", None, "", other))
    return items


def _value(group: str, key: dict[str, str | None], line_item: str) -> str | None:
    if group == "line_item":
        return line_item
    if group == "api_source":
        return AGENTS_API if key[API_SOURCE_LABEL] == AGENTS_API else "unlabeled"
    return key[group]


def _sort_key(values: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((v is not None, v or "") for v in values)  # unset first


class CostQuery:
    def __init__(self, engine: QueryEngine, pricer: Pricer) -> None:
        self.engine = engine
        self.pricer = pricer

    async def costs(
        self, principal: Principal, start: dt.datetime | None, end: dt.datetime | None, *, width: str = "",
        time_zone: str = "", group_by: Sequence[str] = (), filters: Sequence[tuple[str, Sequence[str]]] = (),
        page_size: int = 0, page_token_in: str = "",
    ) -> Costs:
        for name in group_by:
            if name not in GROUPS:
                raise InvalidArgument("group_by", f"unknown field {name[:64]!r}; one of {', '.join(GROUPS)}")
        requested = tuple(dict.fromkeys(group_by))
        engine_groups = [API_SOURCE_LABEL if g == "api_source" else g for g in requested if g != "line_item"]
        engine_groups += [k for k in _PRICING_KEYS if k not in engine_groups]
        spec = make_spec(start, end, width=width or "1d", time_zone=time_zone, group_by=engine_groups,
                         filters=[(f, list(v)) for f, v in filters if v])
        result = await self.engine.page(principal, spec, page_size or DEFAULT_PAGE_SIZE, page_token_in)
        await self.pricer.refresh(self.engine.pool, [principal.org_id])
        book = self.pricer.book(principal.org_id)
        by_line = "line_item" in requested
        buckets = []
        for bucket in result.buckets:
            unpriced = 0
            found: dict[tuple[tuple[str | None, ...], str], CostResult] = {}
            for group in bucket.groups:
                key = dict(zip(engine_groups, group.key, strict=True))
                m = group.metrics
                version_name = key["price_version"]
                model = key["model"] or NO_MODEL
                if version_name == UNPRICED:
                    unpriced += m.events
                    continue
                if version_name is None:  # caller-given costs (or written before the price book existed)
                    unpriced += m.unpriced_events
                    items = _given(model, m)
                else:
                    found_version = book.priced_as(version_name)
                    if found_version is None:
                        raise RuntimeError(f"price version {version_name} of stored usage is not in the price book")
                    version, tier = found_version  # usage above a long-context tier: that tier's prices
                    labels = {n: v for n in ("size", "quality") if (v := key[f"labels.{n}"]) is not None}
                    counters = [m.counters[name] for name in COUNTER_FIELDS]
                    items = [
                        _Item(f"{model}, {li.label}", li.quantity, li.unit, li.amount)
                        for li in version.plan(version.variant_for(labels), tier).line_items(counters)
                    ]
                currency = key["currency"] or "usd"
                for item in items:
                    values = tuple(_value(g, key, item.name) for g in requested)
                    out = found.get((values, currency))
                    if out is None:
                        out = found[(values, currency)] = CostResult(
                            dict(zip(requested, values, strict=True)), currency, ZERO,
                            ZERO if by_line else None, item.unit if by_line else "",
                        )
                    out.amount = EXACT.add(out.amount, item.amount)
                    if out.quantity is not None:
                        out.quantity = None if item.quantity is None else EXACT.add(out.quantity, item.quantity)
            ordered = sorted(found.items(), key=lambda kv: (_sort_key(kv[0][0]), kv[0][1]))
            buckets.append(CostBucket(bucket.start, bucket.end, [r for _, r in ordered], unpriced))
        return Costs(buckets, page_token(result, spec, principal), result.freshness)
