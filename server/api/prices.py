"""PriceService (price book, repricing, unpriced events) and CostService."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from metering.v1 import prices_pb2, prices_pb2_grpc
from server.api.context import Context, Core, caller, in_organization
from server.api.query import freshness_pb
from server.core import convert
from server.core.errors import InvalidArgument, PermissionDenied, refuse_nul
from server.core.principal import Principal
from server.costs.report import CostQuery
from server.costs.reprice import Report, Repricer, make_spec
from server.costs.unpriced import list_unpriced
from server.pricing.pricer import Pricer, Version
from server.pricing.rules import USAGE_TYPES
from server.pricing.versions import Listed, PriceVersions, check_new_version

_ORDER = {name: i for i, name in enumerate(USAGE_TYPES)}


def _time(stamp: timestamp_pb2.Timestamp, present: bool) -> dt.datetime | None:
    return stamp.ToDatetime(dt.UTC) if present else None


def actor(principal: Principal) -> str:
    return principal.api_key_id or principal.user_id or ("master" if principal.master else "")


def version_pb(v: Version, organization_id: str, listed: Listed | None = None) -> prices_pb2.PriceVersion:
    msg = prices_pb2.PriceVersion(
        version=v.name, organization_id=organization_id, provider=v.provider, model=v.model, currency=v.currency,
        effective_from=convert.timestamp(v.effective_from), note=v.note, created_by=v.created_by,
        prices=[
            prices_pb2.Price(usage_type=t, variant=variant, unit_price=convert.money(p), unit=USAGE_TYPES[t].unit)
            for (t, variant), p in sorted(v.prices.items(), key=lambda kv: (_ORDER[kv[0][0]], kv[0][1]))
        ],
    )
    if v.create_time is not None:
        msg.create_time.CopyFrom(convert.timestamp(v.create_time))
    if listed is not None:
        if listed.effective_until is not None:
            msg.effective_until.CopyFrom(convert.timestamp(listed.effective_until))
        msg.superseded_by = listed.superseded_by or ""
    return msg


def report_pb(r: Report) -> prices_pb2.RepricingReport:
    return prices_pb2.RepricingReport(
        deltas=[
            prices_pb2.RepricingDelta(
                day=convert.timestamp(d.day), project_id=d.project_id, line_item=d.line_item, currency=d.currency,
                before=convert.money(d.before), after=convert.money(d.after), delta=convert.money(d.delta),
                events=d.events,
            )
            for d in r.deltas
        ],
        totals=[
            prices_pb2.RepricingTotal(currency=c, before=convert.money(b), after=convert.money(a),
                                      delta=convert.money(a - b))
            for c, (b, a) in sorted(r.totals.items())
        ],
        events=r.events, skipped=r.skipped, preview_token=r.token, applied=r.applied,
    )


class PriceServicer(prices_pb2_grpc.PriceServiceServicer):
    def __init__(self, core: Core, book: PriceVersions, repricer: Repricer, pricer: Pricer) -> None:
        self.core = core
        self.book = book
        self.repricer = repricer
        self.pricer = pricer

    async def _admin(self, context: Context, organization: str = "") -> Principal:
        principal = await caller(self.core, context)
        if not principal.is_admin or principal.project_id is not None:
            raise PermissionDenied("managing prices needs an organization admin's credentials")
        return await in_organization(self.core, principal, organization)

    async def _reader(self, context: Context, organization: str = "") -> Principal:
        return await in_organization(self.core, await caller(self.core, context), organization)

    async def CreatePriceVersions(
        self, request: prices_pb2.CreatePriceVersionsRequest, context: Context
    ) -> prices_pb2.CreatePriceVersionsResponse:
        p = await self._admin(context, request.organization)
        if not request.versions:
            raise InvalidArgument("versions", "give at least one version", reason="REQUIRED")
        now = dt.datetime.now(dt.UTC)
        versions = [
            check_new_version(
                f"versions[{i}].", v.provider, v.model, v.currency,
                _time(v.effective_from, v.HasField("effective_from")),
                [(x.usage_type, x.variant, x.unit_price) for x in v.prices], v.note, v.replace, now,
            )
            for i, v in enumerate(request.versions)
        ]
        results = await self.book.create(p.org_id, versions, actor(p))
        return prices_pb2.CreatePriceVersionsResponse(results=[
            prices_pb2.PriceVersionResult(version=version_pb(v, p.organization_id), created=created)
            for v, created in results
        ])

    async def ListPriceVersions(
        self, request: prices_pb2.ListPriceVersionsRequest, context: Context
    ) -> prices_pb2.ListPriceVersionsResponse:
        p = await self._reader(context, request.organization)
        for name in ("provider", "model", "currency"):
            refuse_nul(name, getattr(request, name))
        found = await self.book.list(
            p.org_id, provider=request.provider or None, model=request.model or None,
            currency=request.currency.lower() or None, at=_time(request.at, request.HasField("at")),
        )
        return prices_pb2.ListPriceVersionsResponse(
            versions=[version_pb(x.version, p.organization_id, x) for x in found])

    async def GetPriceVersion(
        self, request: prices_pb2.GetPriceVersionRequest, context: Context
    ) -> prices_pb2.PriceVersion:
        p = await self._reader(context, request.organization)
        version = await self.book.get(p.org_id, request.version)
        listed = next((x for x in await self.book.list(p.org_id, provider=version.provider, model=version.model,
                                                       currency=version.currency) if x.version is version), None)
        return version_pb(version, p.organization_id, listed)

    async def PreviewRepricing(
        self, request: prices_pb2.PreviewRepricingRequest, context: Context
    ) -> prices_pb2.RepricingReport:
        p = await self._admin(context, request.organization)
        _refuse_nul_lists(request, "models", "providers", "versions")
        spec = make_spec(_time(request.start_time, request.HasField("start_time")),
                         _time(request.end_time, request.HasField("end_time")),
                         request.models, request.providers, request.versions)
        return report_pb(await self.repricer.preview(p.org_id, spec))

    async def ApplyRepricing(
        self, request: prices_pb2.ApplyRepricingRequest, context: Context
    ) -> prices_pb2.RepricingReport:
        p = await self._admin(context, request.organization)
        _refuse_nul_lists(request, "models", "providers", "versions")
        spec = make_spec(_time(request.start_time, request.HasField("start_time")),
                         _time(request.end_time, request.HasField("end_time")),
                         request.models, request.providers, request.versions)
        report = await self.repricer.apply(p.org_id, spec, actor(p), request.reason, request.preview_token)
        return report_pb(report)

    async def ListUnpricedEvents(
        self, request: prices_pb2.ListUnpricedEventsRequest, context: Context
    ) -> prices_pb2.ListUnpricedEventsResponse:
        p = await caller(self.core, context)
        _refuse_nul_lists(request, "models")
        found = await list_unpriced(
            self.book.pool, self.pricer, p, _time(request.start_time, request.HasField("start_time")),
            _time(request.end_time, request.HasField("end_time")), request.models, request.page_size,
            request.page_token,
        )
        return prices_pb2.ListUnpricedEventsResponse(
            events=[prices_pb2.UnpricedEvent(event=e, reason=reason) for e, reason in found.events],
            next_page_token=found.next_page_token,
        )


class CostServicer(prices_pb2_grpc.CostServiceServicer):
    def __init__(self, core: Core, query: CostQuery) -> None:
        self.core = core
        self.query = query

    async def GetCosts(
        self, request: prices_pb2.GetCostsRequest, context: Context
    ) -> prices_pb2.GetCostsResponse:
        p = await caller(self.core, context)
        _refuse_nul_lists(request, "project_ids", "api_key_ids", "user_ids", "models")
        found = await self.query.costs(
            p, _time(request.start_time, request.HasField("start_time")),
            _time(request.end_time, request.HasField("end_time")), width=request.bucket_width,
            time_zone=request.time_zone, group_by=list(request.group_by),
            filters=[("project_id", list(request.project_ids)), ("api_key_id", list(request.api_key_ids)),
                     ("user_id", list(request.user_ids)), ("model", list(request.models))],
            page_size=request.page_size, page_token_in=request.page_token,
        )
        buckets = []
        for b in found.buckets:
            results = []
            for r in b.results:
                msg = prices_pb2.CostResult(
                    amount=prices_pb2.CostAmount(value=convert.money(r.amount), currency=r.currency),
                    quantity_unit=r.unit, **{k: v for k, v in r.key.items() if v is not None},
                )
                if r.quantity is not None:
                    msg.quantity = convert.money(r.quantity)
                results.append(msg)
            buckets.append(prices_pb2.CostBucket(
                start_time=convert.timestamp(b.start), end_time=convert.timestamp(b.end), results=results,
                unpriced_events=b.unpriced_events,
            ))
        return prices_pb2.GetCostsResponse(
            buckets=buckets, next_page_token=found.next_page_token, freshness=freshness_pb(found.freshness),
        )


def _refuse_nul_lists(request: Message, *names: str) -> None:
    """The repeated text filters of `request`, refused with a NUL (server/core/errors.py)."""
    for name in names:
        refuse_nul(name, *getattr(request, name))
