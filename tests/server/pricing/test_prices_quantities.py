"""Which counters each usage type prices (server/pricing/rules.py), without a database."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from server.core.events import COUNTER_FIELDS
from server.pricing.pricer import Book, Version
from server.pricing.rules import Plan

D = decimal.Decimal
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def counters(**values: int) -> list[int]:
    return [values.get(name, 1 if name == "num_model_requests" else 0) for name in COUNTER_FIELDS]


def plan(**prices: str) -> Plan:
    return Plan({(k.split(":")[0], k.split(":")[1] if ":" in k else ""): D(v) for k, v in prices.items()}, "")


def quantities(p: Plan, **values: int) -> dict[str, D]:
    return {item.usage_type: item.quantity for item in p.line_items(counters(**values))}


def test_input_includes_cached_tokens():
    p = plan(input="0.000002", cached_input="0.000001", output="0.000008")
    assert quantities(p, input_tokens=1000, input_cached_tokens=300, output_tokens=50) == {
        "input": 700, "cached_input": 300, "output": 50}
    priced = p.price(counters(input_tokens=1000, input_cached_tokens=300, output_tokens=50))
    assert priced is not None
    assert (priced.input_cost, priced.output_cost, priced.cost) == (D("0.001700"), D("0.000400"), D("0.002100"))


def test_without_a_cached_price_cached_tokens_are_input():
    p = plan(input="0.000002", output="0.000008")
    assert quantities(p, input_tokens=1000, input_cached_tokens=300) == {"input": 1000}


def test_audio_and_image_tokens_carve_out_of_input_and_output_only_when_priced():
    values = dict(input_tokens=1000, input_cached_tokens=400, input_audio_tokens=300, input_cached_audio_tokens=100,
                  input_image_tokens=200, input_cached_image_tokens=50, input_cache_write_tokens=70,
                  output_tokens=500, output_audio_tokens=120, output_image_tokens=30)
    everything = plan(input="1", cached_input="1", cache_write="1", audio_input="1", cached_audio_input="1",
                      image_input="1", cached_image_input="1", output="1", audio_output="1", image_output="1")
    got = quantities(everything, **values)
    assert got == {
        "input": 1000 - 400 - 70 - (300 - 100) - (200 - 50), "cached_input": 400 - 100 - 50, "cache_write": 70,
        "audio_input": 200, "cached_audio_input": 100, "image_input": 150, "cached_image_input": 50,
        "output": 500 - 120 - 30, "audio_output": 120, "image_output": 30,
    }
    assert sum(v for k, v in got.items() if "output" not in k) == 1000  # the input side adds up to input_tokens
    # Audio priced, cached audio not: cached audio tokens are billed as audio input; cache writes
    # and image tokens without prices of their own stay input, cached image tokens cached input.
    got = quantities(plan(input="1", cached_input="1", audio_input="1", output="1"), **values)
    assert got == {"input": 1000 - 300 - 300, "cached_input": 400 - 100, "audio_input": 300, "output": 500}
    # Nothing special priced: all of input_tokens is input, all of output_tokens output.
    assert quantities(plan(input="1", output="1"), **values) == {"input": 1000, "output": 500}


def test_inconsistent_counters_are_unpriced_not_negative():
    p = plan(input="1", cached_input="1", output="1")
    assert p.price(counters(input_tokens=10, input_cached_tokens=20)) is None
    assert "inconsistent" in (p.why_not(counters(input_tokens=10, input_cached_tokens=20)) or "")
    # ... but only when the split matters: without a cached price there is nothing to subtract.
    assert plan(input="1", output="1").price(counters(input_tokens=10, input_cached_tokens=20)) is not None


def test_usage_without_a_price_is_unpriced():
    embeddings = plan(input="0.00000002")
    assert embeddings.price(counters(input_tokens=100)) is not None
    assert embeddings.price(counters(input_tokens=100, output_tokens=1)) is None
    assert embeddings.why_not(counters(output_tokens=1)) == "no price for its output tokens"
    assert embeddings.price(counters(input_tokens=1, seconds=3)) is None


def test_other_usage_types():
    p = plan(character="0.000015", second="0.0001", gb_day="0.10", session="0.03", call="0.0025", unit="0.5",
             request="0.01")
    values = dict(characters=1000, seconds=60, usage_bytes=2_500_000_000, num_sessions=2, num_requests=4,
                  units_used=3, num_model_requests=5)
    assert quantities(p, **values) == {"character": 1000, "second": 60, "gb_day": D("2.5"), "session": 2,
                                       "call": 4, "unit": 3, "request": 5}
    priced = p.price(counters(**values))
    assert priced is not None and priced.cost == D("0.015") + D("0.006") + D("0.25") + D("0.06") + D("0.01") + D(
        "1.5") + D("0.05")
    assert priced.input_cost == priced.output_cost == 0
    # Requests are billed only when priced (num_model_requests is 1 on every event by default).
    assert plan(character="1").price(counters(characters=1, num_model_requests=7)) is not None


def test_image_variants_by_size_and_quality():
    v = Version("pv_1", 1, "openai", "dall-e-3", "usd", T0, {
        ("image", "1024x1024"): D("0.04"), ("image", "1024x1024 hd"): D("0.08"), ("image", "1792x1024"): D("0.08"),
    })
    assert v.variant_for({"size": "1024x1024", "quality": "hd"}) == "1024x1024 hd"
    assert v.variant_for((("quality", "standard"), ("size", "1024x1024"))) == "1024x1024"
    assert v.variant_for({"size": "512x512"}) == ""
    priced = v.plan("1024x1024 hd").price(counters(images=2))
    assert priced is not None and priced.cost == D("0.16")
    items = v.plan("1024x1024 hd").line_items(counters(images=2))
    assert [(i.label, i.quantity, i.unit) for i in items] == [("images 1024x1024 hd", D(2), "images")]
    assert v.plan("").price(counters(images=1)) is None  # no price for an unknown size
    assert v.plan("").price(counters()) is not None


def test_book_lookup_by_time_provider_and_snapshot():
    def ver(vid: int, provider: str, model: str, start: dt.datetime) -> Version:
        return Version(f"pv_{vid}", vid, provider, model, "usd", start, {("input", ""): D(vid)})

    day = dt.timedelta(days=1)
    book = Book(1, [
        ver(1, "", "m", T0), ver(2, "", "m", T0 + 10 * day), ver(3, "", "m", T0 + 10 * day),  # 3 corrects 2
        ver(4, "acme", "m", T0 + 5 * day), ver(5, "", "m-2024-01-01", T0), ver(6, "", "m", T0 + 20 * day),
        ver(7, "acme", "solo", T0), ver(8, "acme", "duo", T0), ver(9, "other", "duo", T0),
    ])

    def name_in_force(provider: str | None, model: str | None, currency: str, at: dt.datetime) -> str | None:
        version = book.in_force(provider, model, currency, at)
        return None if version is None else version.name

    assert book.in_force(None, "m", "usd", T0 - day) is None
    assert name_in_force(None, "m", "usd", T0) == "pv_1"
    assert name_in_force(None, "m", "usd", T0 + 10 * day) == "pv_3"
    assert name_in_force("acme", "m", "usd", T0 + 4 * day) == "pv_1"
    assert name_in_force("acme", "m", "usd", T0 + 30 * day) == "pv_4"
    assert name_in_force("other", "m", "usd", T0 + 30 * day) == "pv_6"
    assert book.in_force(None, "m", "eur", T0) is None
    assert name_in_force(None, "m-2024-01-01", "usd", T0 + 30 * day) == "pv_5"
    assert name_in_force(None, "m-2025-02-02", "usd", T0 + 30 * day) == "pv_6"
    assert book.in_force(None, None, "usd", T0) is None
    # Usage without a provider: the any-provider line, else the only provider pricing the model.
    assert name_in_force(None, "solo", "usd", T0) == "pv_7"
    assert name_in_force(None, "solo-20250101", "usd", T0) == "pv_7"
    assert book.in_force("other", "solo", "usd", T0) is None
    assert book.in_force(None, "duo", "usd", T0) is None  # ambiguous
    assert name_in_force("other", "duo", "usd", T0) == "pv_9"


@pytest.mark.parametrize("price", ["0.0000025", "0.000000000000000000000001", "12345678901234567890.123456"])
def test_costs_are_exact(price):
    p = plan(input=price)
    big = 2**62
    priced = p.price(counters(input_tokens=big))
    exact = D(f"{int(D(price).scaleb(24)) * big}E-24")  # integer arithmetic; D(str) is exact
    assert priced is not None and priced.cost == exact  # Python's default context would round to 28 digits
