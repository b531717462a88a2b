"""The catalog read from genai-prices (server/pricing/catalog.py) prices usage exactly as
genai-prices itself does, to the last digit, without a database: our Book of its
versions against ModelInfo.calc_price (and genai_prices.calc_price) for the same usage."""

from __future__ import annotations

import datetime as dt
import decimal
import random

import genai_prices
import pytest
from genai_prices import Usage
from genai_prices.data import providers
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    PriceCalculation,
    Provider,
    TieredPrices,
    TimeOfDateConstraint,
)

from server.core.events import COUNTER_FIELDS
from server.pricing import catalog
from server.pricing.pricer import Book, Version
from server.pricing.rules import Priced

D = decimal.Decimal
# Noon UTC: no off-peak (time-of-day) price of the catalog is in force.
TIMES = [dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC), dt.datetime(2025, 9, 1, 12, tzinfo=dt.UTC),
         dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)]
# Our counters -> genai-prices' usage keys (both count the whole prompt in input_tokens).
USAGE_KEYS = {
    "input_tokens": "input_tokens", "input_cached_tokens": "cache_read_tokens",
    "input_cache_write_tokens": "cache_write_tokens", "input_audio_tokens": "input_audio_tokens",
    "input_cached_audio_tokens": "cache_audio_read_tokens", "input_image_tokens": "input_image_tokens",
    "input_cached_image_tokens": "cache_image_read_tokens", "output_tokens": "output_tokens",
    "output_audio_tokens": "output_audio_tokens", "output_image_tokens": "output_image_tokens",
}


@pytest.fixture(scope="module")
def book() -> Book:
    return Book(1, [Version(f"pv_{i}", i, e.provider, e.model, catalog.CURRENCY, e.effective_from, e.prices)
                    for i, e in enumerate(catalog.entries(), 1)])


def _priced_keys(model: ModelInfo, at: dt.datetime) -> dict[str, object]:
    return {k: v for k, v in model.get_prices(at).__dict__.items() if v is not None}


def _usage(model: ModelInfo, at: dt.datetime, rng: random.Random, long_context: bool) -> dict[str, int]:
    """Counters a model of the catalog can price: the parts it has prices for, cached and
    cache-write tokens included; above its first long-context tier when asked."""
    keys = _priced_keys(model, at)
    prompt = rng.randint(1, 90_000)
    tiers = [t.start for v in keys.values() if isinstance(v, TieredPrices) for t in v.tiers]
    if long_context and tiers:
        prompt = min(tiers) + rng.randint(1, 50_000)
    # (usage a version has no price for is unpriced here, where genai-prices counts it as free)
    c = {"input_tokens": prompt if "input_mtok" in keys else 0,
         "output_tokens": rng.randint(0, 20_000) if "output_mtok" in keys else 0}
    budget = c["input_tokens"]
    for counter, key in (("input_cached_tokens", "cache_read_mtok"), ("input_cache_write_tokens", "cache_write_mtok"),
                         ("input_audio_tokens", "input_audio_mtok"), ("input_image_tokens", "input_image_mtok")):
        if key in keys and budget > 1:
            c[counter] = rng.randint(1, budget // 3)
            budget -= c[counter]
    for cached, whole, key in (("input_cached_audio_tokens", "input_audio_tokens", "cache_audio_read_mtok"),
                               ("input_cached_image_tokens", "input_image_tokens", "cache_image_read_mtok")):
        if key in keys and c.get(whole, 0) > 1 and c.get("input_cached_tokens", 0) > 1:
            c[cached] = rng.randint(1, min(c[whole], c["input_cached_tokens"]) // 2)
    for counter, key in (("output_audio_tokens", "output_audio_mtok"), ("output_image_tokens", "output_image_mtok")):
        if key in keys and c["output_tokens"] > 1:
            c[counter] = rng.randint(1, c["output_tokens"] // 3)
    return c


def _ours(book: Book, provider: str | None, model: str, at: dt.datetime, values: dict[str, int]) -> Priced | None:
    counters = [values.get(name, 1 if name == "num_model_requests" else 0) for name in COUNTER_FIELDS]
    version = book.in_force(provider, model, catalog.CURRENCY, at)
    assert version is not None, (provider, model, at)
    return version.plan("", version.tier_for(counters)).price(counters)


def _theirs(model: ModelInfo, provider: Provider, at: dt.datetime, values: dict[str, int]) -> PriceCalculation:
    return model.calc_price(Usage(**{USAGE_KEYS[k]: v for k, v in values.items()}), provider,
                            genai_request_timestamp=at)


def _comparable(model: ModelInfo, at: dt.datetime) -> bool:
    """Models whose prices at `at` are all of kinds our events carry (token prices, a
    request price), and without off-peak prices."""
    if not isinstance(model.prices, ModelPrice) and any(
            isinstance(c.constraint, TimeOfDateConstraint) for c in model.prices):
        return False
    kinds = set(_priced_keys(model, at))
    return bool(kinds) and kinds <= {"input_mtok", "cache_read_mtok", "cache_write_mtok", "input_audio_mtok",
                                     "cache_audio_read_mtok", "input_image_mtok", "cache_image_read_mtok",
                                     "output_mtok", "output_audio_mtok", "output_image_mtok", "requests_kcount",
                                     "cache_write_1h_mtok", "web_searches_kcount", "storage_searches_kcount"}


def test_a_sample_across_providers_costs_what_genai_prices_computes_to_the_last_digit(book: Book):
    rng = random.Random(19)
    compared: set[tuple[str, str]] = set()
    kinds: set[str] = set()
    for provider in providers:
        models = [m for m in provider.models if any(_comparable(m, at) for at in TIMES)]
        multimodal = [m for m in models if any("audio" in k or "image" in k for at in TIMES
                                               for k in _priced_keys(m, at))]
        for model in [*rng.sample(models, min(len(models), 12)), *multimodal]:
            for at in TIMES:
                if not _comparable(model, at):
                    continue
                for long_context in (False, True):
                    values = _usage(model, at, rng, long_context)
                    ours = _ours(book, provider.id, model.id, at, values)
                    theirs = _theirs(model, provider, at, values)
                    assert ours is not None, (provider.id, model.id, at, values)
                    where = (provider.id, model.id, at, values)
                    assert (ours.input_cost, ours.output_cost, ours.cost) == (
                        theirs.input_price, theirs.output_price, theirs.total_price), where
                    compared.add((provider.id, model.id))
                    kinds |= {k for k in values if values[k]}
    assert len({p for p, _ in compared}) >= 40 and len(compared) >= 300
    assert {"input_cached_tokens", "input_cache_write_tokens", "input_audio_tokens", "input_cached_audio_tokens",
            "output_audio_tokens", "input_image_tokens"} <= kinds


@pytest.mark.parametrize(("provider", "model", "threshold"), [
    ("anthropic", "claude-sonnet-4-5", 200_000), ("google", "gemini-2.5-pro", 200_000),
])
def test_long_context_tiers_price_the_whole_event_at_the_tier_above_the_threshold(book: Book, provider, model,
                                                                                   threshold):
    info = next(m for p in providers if p.id == provider for m in p.models if m.id == model)
    owner = next(p for p in providers if p.id == provider)
    at = TIMES[-1]
    for prompt in (threshold - 1, threshold, threshold + 1, threshold + 150_000):
        values = {"input_tokens": prompt, "input_cached_tokens": 40_000, "output_tokens": 3_000}
        if provider == "anthropic":
            values["input_cache_write_tokens"] = 10_000
        ours = _ours(book, provider, model, at, values)
        theirs = _theirs(info, owner, at, values)
        assert ours is not None and ours.cost == theirs.total_price and ours.input_cost == theirs.input_price
        version = book.in_force(provider, model, "usd", at)
        assert version is not None
        tier = version.tier_for([values.get(n, 0) for n in COUNTER_FIELDS])
        assert tier == (threshold if prompt > threshold else 0)
        assert version.stamp(tier) == (f"{version.name}>{threshold}" if tier else version.name)


def test_dated_changes_become_versions_in_force_from_their_date(book: Book):
    info = next(m for p in providers if p.id == "anthropic" for m in p.models if m.id == "claude-sonnet-4-6")
    owner = next(p for p in providers if p.id == "anthropic")
    values = {"input_tokens": 250_000, "output_tokens": 1_000}
    before, after = dt.datetime(2026, 3, 12, 23, tzinfo=dt.UTC), dt.datetime(2026, 3, 13, 1, tzinfo=dt.UTC)
    for at in (before, after):
        ours = _ours(book, "anthropic", "claude-sonnet-4-6", at, values)
        assert ours is not None and ours.cost == _theirs(info, owner, at, values).total_price
    assert _ours(book, "anthropic", "claude-sonnet-4-6", before, values) != _ours(
        book, "anthropic", "claude-sonnet-4-6", after, values)  # the tier went away on 2026-03-13


@pytest.mark.parametrize(("provider", "model", "expected"), [
    ("openai", "gpt-4o-2024-08-06", ("openai", "gpt-4o")),  # a dated snapshot
    (None, "claude-sonnet-4-20250514", ("anthropic", "claude-sonnet-4-0")),  # starts_with, provider from the model
    ("gcp.gemini", "gemini-2.5-pro", ("google", "gemini-2.5-pro")),  # OpenTelemetry's provider names
    ("x_ai", "grok-3", ("x-ai", "grok-3")),
    ("azure", "gpt-4o", ("openai", "gpt-4o")),  # a provider reselling another's models
    ("OpenAI", "GPT-4o-mini", ("openai", "gpt-4o-mini")),  # case-insensitive
])
def test_model_names_match_by_the_catalogs_rules(book: Book, provider, model, expected):
    assert catalog.match(provider, model) == expected
    values = {"input_tokens": 12_345, "output_tokens": 678}
    at = TIMES[-1]
    ours = _ours(book, provider, model, at, values)
    theirs = genai_prices.calc_price(Usage(input_tokens=12_345, output_tokens=678), model, provider_id=expected[0],
                                     genai_request_timestamp=at)
    assert ours is not None and ours.cost == theirs.total_price
    assert catalog.match("openai", "no-such-model") is None


def test_every_price_kind_maps_exactly_or_is_left_unpriced():
    for entry in catalog.entries():
        for (usage_type, variant), price in entry.prices.items():
            assert price >= 0 and (variant == "" or variant.startswith(">"))
            assert usage_type in {t for t, _ in catalog.PRICE_KEYS.values()}
    whisper = next(e for e in catalog.entries() if (e.provider, e.model) == ("openai", "whisper-1"))
    assert whisper.prices == {("second", ""): D("0.0001")}  # $0.36 an hour, exactly per second
