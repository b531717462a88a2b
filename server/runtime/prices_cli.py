"""The `metering prices` verbs: one PriceService / CostService call each.

    metering prices sync --org ORG                   (the catalog: every genai-prices model, dated)
    metering prices load --org ORG FILE ...
    metering prices set --org ORG --model M [--provider P] [--currency C] [--effective-from T]
                        [--note N] [--replace] TYPE[:VARIANT]=AMOUNT[/PER] ...
    metering prices list --org ORG [--model M] [--provider P] [--at T]
    metering prices reprice --org ORG --start T [--end T] [--model M] [--apply] [--reason R]
    metering prices unpriced --org ORG [--start T] [--end T] [--limit N]
    metering prices costs --org ORG --start T [--end T] [--group-by F ...]

Prices are written AMOUNT or AMOUNT/PER, PER one of 1K, 1M, 1B or a whole
number: "input=2.50/1M" is $2.50 per million input tokens, a unit price of
0.0000025; "input:>200000=6/1M" is the price above a long-context tier. Price
files use the same notation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import pathlib
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from metering.v1 import prices_pb2, prices_pb2_grpc
from server.core.config import ConfigError
from server.core.convert import money
from server.core.money import EXACT
from server.pricing import catalog
from server.pricing.rules import USAGE_TYPES

_PER = {"1K": 10**3, "1M": 10**6, "1B": 10**9}
_TOKEN_TYPES = frozenset(name for name, t in USAGE_TYPES.items() if t.unit == "tokens")
Auth = tuple[tuple[str, str], ...]
SYNC_CHUNK = 5_000  # versions per CreatePriceVersions call (at most 10,000)


def unit_price(text: str) -> str:
    """"2.50/1M" -> "0.0000025" (exact); "0.04" -> "0.04"."""
    amount, _, per = text.strip().partition("/")
    try:
        value = decimal.Decimal(amount.strip())
        divisor = _PER.get(per.strip().upper()) or int(per) if per else 1
    except (decimal.InvalidOperation, ValueError):
        raise ConfigError(f"not a price: {text!r} (AMOUNT or AMOUNT/PER, PER 1K, 1M, 1B or a number)") from None
    if divisor <= 0:
        raise ConfigError(f"not a price: {text!r}")
    return money(EXACT.divide(value, divisor))


def price_pb(spec: str, amount: str) -> prices_pb2.Price:
    """"image:1024x1024 hd", "0.08" -> Price."""
    usage_type, _, variant = spec.strip().partition(":")
    return prices_pb2.Price(usage_type=usage_type.strip(), variant=variant.strip(), unit_price=unit_price(amount))


def parse_time(text: str) -> timestamp_pb2.Timestamp:
    """ISO 8601 (a date alone is its UTC midnight; no zone: UTC)."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(dt.UTC))
    return stamp


def load_file(path: pathlib.Path) -> list[prices_pb2.NewPriceVersion]:
    """A price file: {"as_of", "source", "currency", "effective_from", "models": [{"provider",
    "model", "prices": {"TYPE[:VARIANT]": "AMOUNT[/PER]"}, optional "currency", "effective_from",
    "note"}]}. Each model's prices replace the version in force at effective_from."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read price file {path}: {exc}") from None
    note = f"{path.name}: {data.get('source', '')} (as of {data.get('as_of', '?')})"
    out = []
    for entry in data.get("models", []):
        version = prices_pb2.NewPriceVersion(
            provider=entry.get("provider", data.get("provider", "")), model=entry["model"],
            currency=entry.get("currency", data.get("currency", "usd")), note=entry.get("note", note),
            prices=[price_pb(k, v) for k, v in entry["prices"].items()], replace=True,
        )
        start = entry.get("effective_from", data.get("effective_from"))
        if start:
            version.effective_from.CopyFrom(parse_time(start))
        out.append(version)
    return out


def catalog_versions() -> list[prices_pb2.NewPriceVersion]:
    """The catalog's dated versions (server/pricing/catalog.py) as CreatePriceVersions inputs."""
    out = []
    for entry in catalog.entries():
        version = prices_pb2.NewPriceVersion(
            provider=entry.provider, model=entry.model, currency=catalog.CURRENCY, note=entry.note, replace=True,
            prices=[prices_pb2.Price(usage_type=t, variant=v, unit_price=money(p))
                    for (t, v), p in sorted(entry.prices.items())],
        )
        version.effective_from.FromDatetime(entry.effective_from)
        out.append(version)
    return out


async def sync(stub: prices_pb2_grpc.PriceServiceStub, auth: Auth, org: str) -> list[str]:
    """Import the catalog into an organization's book: a version per model and dated
    change, created only where the book does not have those prices in force at that
    date already (so a second run creates nothing, a newer catalog only what is new)."""
    versions = catalog_versions()
    created = 0
    lines = []
    for start in range(0, len(versions), SYNC_CHUNK):
        resp = await stub.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(
            organization=org, versions=versions[start:start + SYNC_CHUNK]), metadata=auth)
        created += sum(r.created for r in resp.results)
        lines += ["created  " + show_version(r.version) for r in resp.results if r.created]
    models = len({(v.provider, v.model) for v in versions})
    providers = len({v.provider for v in versions})
    return [*lines, f"genai-prices {catalog.version()}: {providers} providers, {models} models, {len(versions)} "
            f"dated versions; {created} created, {len(versions) - created} unchanged"]


def add_parser(verbs: Any, target_help: str) -> None:
    prices = verbs.add_parser("prices", help="the price book, repricing and costs").add_subparsers(
        dest="action", required=True)

    def common(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = prices.add_parser(name, help=help_text)
        p.add_argument("--org", required=True, help="organization id or name")
        p.add_argument("--target", help=target_help)
        return p

    common("sync", "import the price catalog (genai-prices): every provider and model, each dated change a version")
    p = common("load", "load price files")
    p.add_argument("files", nargs="+", type=pathlib.Path)
    p = common("set", "create a price version for one model")
    p.add_argument("--model", required=True)
    p.add_argument("--provider", default="", help="default: any provider")
    p.add_argument("--currency", default="usd")
    p.add_argument("--effective-from", help="ISO 8601 (default: now)")
    p.add_argument("--note", default="")
    p.add_argument("--replace", action="store_true", help="only these prices (default: others carry over)")
    p.add_argument("prices", nargs="*", metavar="TYPE[:VARIANT]=AMOUNT[/PER]",
                   help=f"e.g. input=2.50/1M; types: {', '.join(USAGE_TYPES)}")
    p = common("list", "list price versions")
    p.add_argument("--model", default="")
    p.add_argument("--provider", default="")
    p.add_argument("--at", help="only the versions in force at this time (ISO 8601; 'now')")
    p = common("reprice", "preview (or --apply) moving past events to the prices now in force")
    p.add_argument("--start", required=True)
    p.add_argument("--end", help="default: now")
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--version", action="append", default=[], help="only moves to this version")
    p.add_argument("--apply", action="store_true")
    p.add_argument("--reason", default="")
    p = common("unpriced", "list events without cost or price")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--limit", type=int, default=50)
    p = common("costs", "costs per day")
    p.add_argument("--start", required=True)
    p.add_argument("--end")
    p.add_argument("--group-by", action="append", default=[], help="project_id, line_item, api_key_id, ...")


def _show_price(p: prices_pb2.Price) -> str:
    name = f"{p.usage_type}:{p.variant}" if p.variant else p.usage_type
    if p.usage_type in _TOKEN_TYPES:
        return f"{name}={money(decimal.Decimal(p.unit_price) * 10**6)}/1M"
    return f"{name}={p.unit_price}"


def show_version(v: prices_pb2.PriceVersion) -> str:
    who = f"{v.provider}/{v.model}" if v.provider else v.model
    when = v.effective_from.ToDatetime(dt.UTC).isoformat()
    until = f" until {v.effective_until.ToDatetime(dt.UTC).isoformat()}" if v.HasField("effective_until") else ""
    superseded = f" (superseded by {v.superseded_by})" if v.superseded_by else ""
    return f"{v.version}\t{who}\t{v.currency}\tfrom {when}{until}{superseded}\t{' '.join(map(_show_price, v.prices))}"


def _report(r: prices_pb2.RepricingReport) -> list[str]:
    lines = [
        f"{d.day.ToDatetime(dt.UTC).date()}\t{d.project_id if d.HasField('project_id') else '-'}\t{d.line_item}"
        f"\t{d.currency}\t{d.before} -> {d.after}\t({d.delta}, {d.events} events)"
        for d in r.deltas
    ]
    lines += [f"total {t.currency}: {t.before} -> {t.after} (delta {t.delta})" for t in r.totals]
    lines.append(f"{'applied' if r.applied else 'would change'}: {r.events} events; skipped (unpriceable now): "
                 f"{r.skipped}; preview_token={r.preview_token}")
    return lines


async def call(channel: grpc.aio.Channel, auth: Auth, args: argparse.Namespace) -> list[str]:
    stub = prices_pb2_grpc.PriceServiceStub(channel)
    org = args.org
    if args.action == "sync":
        return await sync(stub, auth, org)
    if args.action == "load":
        versions = [v for path in args.files for v in load_file(path)]
        resp = await stub.CreatePriceVersions(
            prices_pb2.CreatePriceVersionsRequest(organization=org, versions=versions), metadata=auth)
        created = sum(r.created for r in resp.results)
        return [*(("created  " if r.created else "unchanged ") + show_version(r.version) for r in resp.results),
                f"{created} created, {len(resp.results) - created} unchanged"]
    if args.action == "set":
        prices = []
        for item in args.prices:
            spec, sep, amount = item.partition("=")
            if not sep:
                raise ConfigError(f"not TYPE[:VARIANT]=AMOUNT[/PER]: {item!r}")
            prices.append(price_pb(spec, amount))
        version = prices_pb2.NewPriceVersion(
            provider=args.provider, model=args.model, currency=args.currency, prices=prices, note=args.note,
            replace=args.replace,
        )
        if args.effective_from:
            version.effective_from.CopyFrom(parse_time(args.effective_from))
        resp = await stub.CreatePriceVersions(
            prices_pb2.CreatePriceVersionsRequest(organization=org, versions=[version]), metadata=auth)
        r = resp.results[0]
        return [("created  " if r.created else "unchanged ") + show_version(r.version)]
    if args.action == "list":
        req = prices_pb2.ListPriceVersionsRequest(organization=org, model=args.model, provider=args.provider)
        if args.at:
            req.at.CopyFrom(parse_time(dt.datetime.now(dt.UTC).isoformat() if args.at == "now" else args.at))
        resp = await stub.ListPriceVersions(req, metadata=auth)
        return [show_version(v) for v in resp.versions]
    if args.action == "reprice":
        start = parse_time(args.start)
        end = parse_time(args.end or dt.datetime.now(dt.UTC).isoformat())
        preview = await stub.PreviewRepricing(prices_pb2.PreviewRepricingRequest(
            organization=org, start_time=start, end_time=end, models=args.model, versions=args.version,
        ), metadata=auth)
        if not args.apply:
            return _report(preview)
        applied = await stub.ApplyRepricing(prices_pb2.ApplyRepricingRequest(
            organization=org, start_time=start, end_time=end, models=args.model, versions=args.version,
            preview_token=preview.preview_token, reason=args.reason,
        ), metadata=auth)
        return _report(applied)
    scoped = (*auth, ("x-metering-organization", org))
    if args.action == "unpriced":
        unpriced = prices_pb2.ListUnpricedEventsRequest(page_size=args.limit)
        if args.start:
            unpriced.start_time.CopyFrom(parse_time(args.start))
        if args.end:
            unpriced.end_time.CopyFrom(parse_time(args.end))
        resp = await stub.ListUnpricedEvents(unpriced, metadata=scoped)
        return [f"{e.event.timestamp.ToDatetime(dt.UTC).isoformat()}\t{e.event.event_id}\t{e.event.model or '-'}"
                f"\t{e.reason}" for e in resp.events]
    if args.action == "costs":
        cost_req = prices_pb2.GetCostsRequest(start_time=parse_time(args.start), group_by=args.group_by, page_size=1000)
        if args.end:
            cost_req.end_time.CopyFrom(parse_time(args.end))
        costs = await prices_pb2_grpc.CostServiceStub(channel).GetCosts(cost_req, metadata=scoped)
        lines = []
        for b in costs.buckets:
            day = b.start_time.ToDatetime(dt.UTC).date()
            for r in b.results:
                keys = " ".join(f"{f}={getattr(r, f)}" for f in ("project_id", "line_item", "api_key_id", "user_id",
                                                                "model", "price_version") if r.HasField(f))
                qty = f"\t{r.quantity} {r.quantity_unit}" if r.HasField("quantity") else ""
                lines.append(f"{day}\t{r.amount.value} {r.amount.currency}\t{keys}{qty}")
            if b.unpriced_events:
                lines.append(f"{day}\tunpriced events: {b.unpriced_events}")
        return lines
    raise ConfigError(f"unknown command prices {args.action}")
