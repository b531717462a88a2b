"""The maintained price catalog: genai-prices (a package of LLM API prices with
their history, shipped as data in its wheel) read as price versions, and its
model-matching rules for usage whose model name has no versions of its own
(docs/prices.md "The catalog").

Each of its providers' models becomes one line of versions keyed (provider id,
model id, "usd"): a version at 2000-01-01 with the prices first in force, and one
at every dated change (a StartDateConstraint: midnight UTC of its date). Its price
kinds map onto our usage types as PRICE_KEYS says (per million tokens, per
thousand requests, per hour of audio become exact unit prices); a long-context
tier (TieredPrices: a higher price when the prompt exceeds N tokens) becomes the
tier variant ">N" of the token prices (server/pricing/rules.py "Tiers"). What our
events cannot carry is left out: off-peak hours (TimeOfDateConstraint), request
variants (batch, service tiers), and the kinds not in PRICE_KEYS (1-hour cache
writes, video, reasoning and citation tokens, web and file searches, pages,
messages, pixels).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import functools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import asyncpg

from server.core.money import EXACT
from server.storage.db import q

if TYPE_CHECKING:  # imported when first used: the package takes a quarter of a second to import
    from genai_prices.types import ModelInfo, ModelPrice, Provider

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
CURRENCY = "usd"
CREATED_BY = "catalog"
# genai-prices price key -> (our usage type, its units per price): input_mtok is
# dollars per 1M input tokens, a unit price of input_mtok / 10^6 per token.
PRICE_KEYS: dict[str, tuple[str, int]] = {
    "input_mtok": ("input", 10**6),
    "cache_read_mtok": ("cached_input", 10**6),
    "cache_write_mtok": ("cache_write", 10**6),
    "input_audio_mtok": ("audio_input", 10**6),
    "cache_audio_read_mtok": ("cached_audio_input", 10**6),
    "input_image_mtok": ("image_input", 10**6),
    "cache_image_read_mtok": ("cached_image_input", 10**6),
    "output_mtok": ("output", 10**6),
    "output_audio_mtok": ("audio_output", 10**6),
    "output_image_mtok": ("image_output", 10**6),
    "input_mchars": ("character", 10**6),
    "audio_hours": ("second", 3600),
    "input_audio_hours": ("second", 3600),  # when audio_hours is not priced
    "requests_kcount": ("request", 10**3),
}
DEFAULT_PRICES_ENV = "METERING_DEFAULT_PRICES"
DEFAULT_PRICES = ("catalog", "none")


def default_prices(env: dict[str, str] | None = None) -> bool:
    """Whether new organizations get the catalog ($METERING_DEFAULT_PRICES: catalog, the default, or none)."""
    value = ((os.environ if env is None else env).get(DEFAULT_PRICES_ENV) or "catalog").strip().lower()
    if value not in DEFAULT_PRICES:
        from server.core.config import ConfigError

        raise ConfigError(f"{DEFAULT_PRICES_ENV} must be catalog or none, got {value!r}")
    return value == "catalog"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One dated price version of the catalog."""

    provider: str
    model: str
    effective_from: dt.datetime
    prices: dict[tuple[str, str], decimal.Decimal]  # (usage type, variant) -> unit price
    note: str


def version() -> str:
    import genai_prices

    return str(genai_prices.__version__)


def _unit_prices(model_price: ModelPrice) -> dict[tuple[str, str], decimal.Decimal]:
    """A genai-prices ModelPrice as our unit prices; a tier becomes the variant ">N"."""
    from genai_prices.types import TieredPrices

    out: dict[tuple[str, str], decimal.Decimal] = {}
    for key, (usage_type, per) in PRICE_KEYS.items():
        value = getattr(model_price, key, None)
        if value is None or (usage_type, "") in out:
            continue
        found: dict[tuple[str, str], decimal.Decimal] = {}
        try:
            if isinstance(value, TieredPrices):
                found[(usage_type, "")] = EXACT.divide(value.base, per)
                for tier in value.tiers:
                    found[(usage_type, f">{tier.start}")] = EXACT.divide(tier.price, per)
            else:
                found[(usage_type, "")] = EXACT.divide(value, per)
        except decimal.Inexact:  # e.g. $0.111 per hour is no exact price per second: left unpriced
            continue
        out.update(found)
    return out


def _changes(model: ModelInfo) -> Iterator[tuple[dt.datetime, ModelPrice]]:
    """(effective_from, ModelPrice) at 2000-01-01 and at every dated change, as
    genai-prices resolves them (the last price whose constraint holds wins);
    time-of-day prices are skipped."""
    from genai_prices.types import ConditionalPrice, ModelPrice, StartDateConstraint, TimeOfDateConstraint

    prices = model.prices
    if isinstance(prices, ModelPrice):
        yield EARLIEST, prices
        return
    conditional: list[ConditionalPrice] = [c for c in prices if not isinstance(c.constraint, TimeOfDateConstraint)]
    if not conditional:
        return
    dates = sorted({c.constraint.start_date for c in conditional if isinstance(c.constraint, StartDateConstraint)})
    for day in [None, *dates]:
        chosen = conditional[0].prices
        for c in reversed(conditional):
            if c.constraint is None or (day is not None and c.constraint.start_date <= day):  # type: ignore[union-attr]
                chosen = c.prices
                break
        yield (EARLIEST if day is None else dt.datetime.combine(day, dt.time(), dt.UTC)), chosen


@functools.cache
def entries() -> tuple[Entry, ...]:
    """Every dated price version of the installed genai-prices, in a stable order."""
    from genai_prices.data import providers

    note = f"genai-prices {version()}"
    out: list[Entry] = []
    for provider in providers:
        for model in provider.models:
            previous: dict[tuple[str, str], decimal.Decimal] | None = None
            for start, model_price in _changes(model):
                prices = _unit_prices(model_price)
                if prices and prices != previous:
                    out.append(Entry(provider.id, model.id, max(start, EARLIEST), prices, note))
                previous = prices
    return tuple(out)


@functools.lru_cache(maxsize=65_536)
def match(provider: str | None, model: str) -> tuple[str, str] | None:
    """The catalog's (provider id, model id) for an event's provider and model by
    genai-prices' own rules: the provider by id or its provider_match rule (none
    given, or one it does not know: the first provider whose model_match rule takes
    the model), the model by its match rule (equals, starts_with, regex, ...;
    case-insensitive), also among the models the provider resells (azure: openai's).
    None: no match. Its lookup functions are called directly, not through its
    snapshot, whose caches would grow with every distinct name (ours is bounded)."""
    from genai_prices.data_snapshot import find_provider_by_id

    providers, owners = _catalog()
    model = model.lower()
    found = None
    if provider:
        # OpenTelemetry's names (x_ai, mistral_ai, ...) are the catalog's with "_" for "-"
        found = find_provider_by_id(providers, provider) or find_provider_by_id(providers, provider.replace("_", "-"))
    if found is None:
        found = next((p for p in providers if p.model_match is not None and p.model_match.is_match(model)), None)
    info = found.find_model(model, all_providers=providers) if found is not None else None
    if found is None or info is None:
        return None
    return owners.get(id(info), found.id), info.id


@functools.cache
def _catalog() -> tuple[list[Provider], dict[int, str]]:
    """genai-prices' providers (loaded once: about 0.3 s) and the provider owning each model."""
    from genai_prices.data import providers

    return providers, {id(model): provider.id for provider in providers for model in provider.models}


async def install(pool: asyncpg.Pool) -> bool:
    """Make the database's catalog (migration 0016) the installed package's: a new immutable
    set of versions when the current one was read from another genai-prices, which books
    created from then on use (books using an older set keep it; sets no book uses are
    dropped, except the one just replaced, which an organization being created at this
    moment may still take). Gives the default organization the catalog if its book was never
    touched. One transaction; concurrent starts wait for each other. True if a set was added."""
    wanted = version()
    _catalog()  # loaded now rather than by the first event of an unknown model name
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(q("catalog_claim"))
        state = await conn.fetchrow(q("catalog_state"))
        assert state is not None  # claimed above
        changed = state["version"] != wanted or state["catalog_id"] is None
        if changed:
            found = entries()
            ids = [r["version_id"] for r in await conn.fetch(q("next_price_version_ids"), len(found))]
            catalog_id = await conn.fetchval(q("catalog_new"), wanted)
            await conn.execute(
                q("catalog_insert"), catalog_id, ids, [e.provider for e in found], [e.model for e in found],
                [CURRENCY] * len(found), [e.effective_from for e in found], [e.note for e in found],
            )
            rows = [(i, t, v, p) for i, e in zip(ids, found, strict=True) for (t, v), p in sorted(e.prices.items())]
            await conn.execute(q("catalog_insert_prices"), *(list(column) for column in zip(*rows, strict=True)))
            await conn.execute(q("catalog_installed"), wanted, len(found), catalog_id)
            kept = {catalog_id, state["catalog_id"], *(r["catalog_id"] for r in await conn.fetch(q("catalog_in_use")))}
            await conn.execute(q("catalog_forget"), [k for k in kept if k is not None])
        default = await conn.fetchval(q("price_catalog_default"))
        if default is not None:
            await conn.execute(q("attach_price_catalog"), default)
    return bool(changed)
