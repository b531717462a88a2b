"""Pricing: which counters each usage type prices, and a version's prices
compiled into the function that prices one event (DESIGN §6, README "Prices
and costs"; the in-memory price book is server/pricing/pricer.py).

Quantities. Counters follow OpenAI's semantics: input_tokens is the whole
prompt, so it *includes* input_cached_tokens, input_cache_write_tokens and the
audio and image input tokens; output_tokens includes the audio and image output
tokens. The prompt is cut into disjoint parts, and each part is billed at the
first usage type of its chain that the version prices:

    cached audio  (input_cached_audio_tokens)           cached_audio_input > audio_input > cached_input > input
    cached image  (input_cached_image_tokens)           cached_image_input > image_input > cached_input > input
    fresh audio   (input_audio_tokens - cached audio)   audio_input > input
    fresh image   (input_image_tokens - cached image)   image_input > input
    cached text   (input_cached_tokens - cached audio - cached image)   cached_input > input
    cache writes  (input_cache_write_tokens)            cache_write > input
    the rest of input_tokens                            input
    audio output  (output_audio_tokens)                 audio_output > output
    image output  (output_image_tokens)                 image_output > output
    the rest of output_tokens                           output

so "input" bills input_tokens minus whatever a more specific type bills, and
the input-side quantities always add up to input_tokens. The other types bill
one counter each: image (images; per variant "<size>" or "<size> <quality>"
from the labels size and quality, else the variant ""), character
(characters), second (seconds), gb_day (usage_bytes, one day of storage per
event, priced per 10^9 bytes), session (num_sessions), call (num_requests: tool
and API calls), unit (units_used), request (num_model_requests; only when
priced: it is 1 on every event by default).

Every quantity is a fixed linear combination of counters, so the cost of a
group of events is exactly sum(quantity) x unit price per version: cost queries
compute line items from the rollups' sums (server/costs/report.py) and agree to the
last digit with the per-event costs stamped here. An event is *unpriced* when no
version is in force for its (provider, model, currency) at its time, when one of
its quantities is negative (inconsistent counters, e.g. more cached than input
tokens) or when a nonzero quantity has no price in that version: it is flagged,
never costed at 0.

Tiers. A token price may have long-context tiers: the price variant ">N" of a
token usage type is its unit price for events whose input_tokens exceed N (the
whole event, as providers bill it: crossing the threshold reprices every token,
not only those above it). An event is priced with the plan of its tier, the
highest threshold its input_tokens exceed, and stamped "pv_12>200000" instead of
"pv_12", so rollups keep the tiers of a version apart and cost queries stay
exact sums of quantity x unit price (server/pricing/pricer.py Version.tier_for).
"""

from __future__ import annotations

import dataclasses
import decimal
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from server.core.events import COUNTER_FIELDS
from server.core.money import EXACT, ZERO

UNPRICED = "unpriced"  # series.price_version of usage without a cost and without a price
TIER_MARK = ">"  # a tier's price variant ">N"; a tier's stamp "pv_12>N"
# Exact arithmetic: a result that would need rounding raises decimal.Inexact instead.


@dataclasses.dataclass(frozen=True)
class UsageType:
    name: str
    label: str  # line item: "<model>, <label>"
    unit: str  # what the quantity counts
    side: str  # which cost column it adds to: "input", "output" or "other" (cost only)
    scale: int = 1  # counter units per priced unit (gb_day: bytes per GB)


USAGE_TYPES: dict[str, UsageType] = {t.name: t for t in (
    UsageType("input", "input", "tokens", "input"),
    UsageType("cached_input", "cached input", "tokens", "input"),
    UsageType("cache_write", "cache write", "tokens", "input"),
    UsageType("audio_input", "audio input", "tokens", "input"),
    UsageType("cached_audio_input", "cached audio input", "tokens", "input"),
    UsageType("image_input", "image input", "tokens", "input"),
    UsageType("cached_image_input", "cached image input", "tokens", "input"),
    UsageType("output", "output", "tokens", "output"),
    UsageType("audio_output", "audio output", "tokens", "output"),
    UsageType("image_output", "image output", "tokens", "output"),
    UsageType("image", "images", "images", "other"),
    UsageType("character", "characters", "characters", "other"),
    UsageType("second", "seconds", "seconds", "other"),
    UsageType("gb_day", "storage", "gb_days", "other", 10**9),
    UsageType("session", "sessions", "sessions", "other"),
    UsageType("call", "calls", "calls", "other"),
    UsageType("unit", "units", "units", "other"),
    UsageType("request", "requests", "requests", "other"),
)}
VARIANT_TYPES = frozenset({"image"})

_I = {name: i for i, name in enumerate(COUNTER_FIELDS)}
INPUT_TOKENS = _I["input_tokens"]  # what selects a tier
Combo = tuple[tuple[int, int], ...]  # (counter index, coefficient) pairs


def _combo(*terms: tuple[str, int]) -> Combo:
    return tuple((_I[name], sign) for name, sign in terms)


# (part, its counters, the usage types that may bill it, most specific first).
_PARTS: tuple[tuple[str, Combo, tuple[str, ...]], ...] = (
    ("cached audio input tokens", _combo(("input_cached_audio_tokens", 1)),
     ("cached_audio_input", "audio_input", "cached_input", "input")),
    ("cached image input tokens", _combo(("input_cached_image_tokens", 1)),
     ("cached_image_input", "image_input", "cached_input", "input")),
    ("audio input tokens", _combo(("input_audio_tokens", 1), ("input_cached_audio_tokens", -1)),
     ("audio_input", "input")),
    ("image input tokens", _combo(("input_image_tokens", 1), ("input_cached_image_tokens", -1)),
     ("image_input", "input")),
    ("cached input tokens", _combo(("input_cached_tokens", 1), ("input_cached_audio_tokens", -1),
                                   ("input_cached_image_tokens", -1)), ("cached_input", "input")),
    ("cache write tokens", _combo(("input_cache_write_tokens", 1)), ("cache_write", "input")),
    ("input tokens", _combo(("input_tokens", 1), ("input_cached_tokens", -1), ("input_cache_write_tokens", -1),
                            ("input_audio_tokens", -1), ("input_cached_audio_tokens", 1),
                            ("input_image_tokens", -1), ("input_cached_image_tokens", 1)), ("input",)),
    ("audio output tokens", _combo(("output_audio_tokens", 1)), ("audio_output", "output")),
    ("image output tokens", _combo(("output_image_tokens", 1)), ("image_output", "output")),
    ("output tokens", _combo(("output_tokens", 1), ("output_audio_tokens", -1), ("output_image_tokens", -1)),
     ("output",)),
    ("images", _combo(("images", 1)), ("image",)),
    ("characters", _combo(("characters", 1)), ("character",)),
    ("seconds", _combo(("seconds", 1)), ("second",)),
    ("usage_bytes", _combo(("usage_bytes", 1)), ("gb_day",)),
    ("sessions", _combo(("num_sessions", 1)), ("session",)),
    ("num_requests", _combo(("num_requests", 1)), ("call",)),
    ("units_used", _combo(("units_used", 1)), ("unit",)),
)
_OPTIONAL = (_combo(("num_model_requests", 1)), "request")  # billed only when priced


def _merge(combos: Iterable[Combo]) -> Combo:
    total: dict[int, int] = {}
    for combo in combos:
        for index, sign in combo:
            total[index] = total.get(index, 0) + sign
    return tuple(sorted((i, s) for i, s in total.items() if s))


def _value(combo: Combo, counters: Sequence[int]) -> int:
    if len(combo) == 1 and combo[0][1] == 1:
        return counters[combo[0][0]]
    return sum(counters[i] * s for i, s in combo)


@dataclasses.dataclass(frozen=True)
class Term:
    usage_type: UsageType
    variant: str
    combo: Combo
    unit_price: decimal.Decimal  # per priced unit
    base_price: decimal.Decimal  # per counter unit: unit_price / scale


@dataclasses.dataclass(frozen=True)
class LineItem:
    usage_type: str
    variant: str
    label: str  # "input", "images 1024x1024 hd", ...
    quantity: decimal.Decimal  # in the type's unit (gb_days: usage_bytes / 10^9)
    unit: str
    amount: decimal.Decimal
    side: str


class Priced(NamedTuple):
    input_cost: decimal.Decimal
    output_cost: decimal.Decimal
    cost: decimal.Decimal


def _expression(combo: Combo) -> str:
    """Python source of a combination of counters `c`: "c[0] - c[2]"."""
    out = ""
    for index, sign in combo:
        term = f"c[{index}]" if abs(sign) == 1 else f"{abs(sign)} * c[{index}]"
        out += (" - " if sign < 0 else " + ") + term if out else ("-" if sign < 0 else "") + term
    return out or "0"


def _compile(terms: Sequence[Term], zero: Sequence[Combo]) -> Callable[[Sequence[int]], Priced | None]:
    """A function pricing one event's counters, generated for one plan: the ingest
    path calls it for every event, so it is straight-line code (a few integer
    operations and one exact multiplication per priced type)."""
    names: dict[str, Any] = {"mul": EXACT.multiply, "add": EXACT.add, "Priced": Priced, "ZERO": ZERO}
    lines = ["def price(c):"]
    if zero:
        lines.append(f"    if {' or '.join(f'({_expression(z)})' for z in zero)}: return None")
    sides: dict[str, list[str]] = {"input": [], "output": [], "other": []}
    for i, term in enumerate(terms):
        lines.append(f"    q{i} = {_expression(term.combo)}")
        if any(sign < 0 for _, sign in term.combo):
            lines.append(f"    if q{i} < 0: return None")
        names[f"b{i}"] = term.base_price
        sides[term.usage_type.side].append(f"mul(b{i}, q{i})")

    def total(parts: list[str]) -> str:
        if not parts:
            return "ZERO"
        out = parts[0]
        for part in parts[1:]:
            out = f"add({out}, {part})"
        return out

    for side, parts in sides.items():
        lines.append(f"    {side} = {total(parts)}")
    lines.append(f"    return Priced(input, output, {total([p for p in ('input', 'output', 'other') if sides[p]])})")
    exec("\n".join(lines), names)  # noqa: S102 - source built above from integers only
    return names["price"]  # type: ignore[no-any-return]


class Plan:
    """One version's prices compiled for one image variant: the terms to bill
    and the parts no price covers (which must be zero)."""

    def __init__(self, prices: dict[tuple[str, str], decimal.Decimal], variant: str) -> None:
        priced = {t for t, v in prices if t not in VARIANT_TYPES or v == variant}
        routed: dict[str, list[Combo]] = {}
        unpriced: list[tuple[str, Combo]] = []
        for part, combo, chain in _PARTS:
            target = next((t for t in chain if t in priced), None)
            if target is None:
                unpriced.append((part, combo))
            else:
                routed.setdefault(target, []).append(combo)
        if _OPTIONAL[1] in priced:
            routed.setdefault(_OPTIONAL[1], []).append(_OPTIONAL[0])
        terms = []
        for name in USAGE_TYPES:  # a fixed order: line items come out alike everywhere
            if name in routed:
                utype = USAGE_TYPES[name]
                key_variant = variant if name in VARIANT_TYPES else ""
                price = prices[(name, key_variant)]
                terms.append(Term(utype, key_variant, _merge(routed[name]), price, EXACT.divide(price, utype.scale)))
        self.terms = tuple(terms)
        self.unpriced = tuple(unpriced)
        # The costs of one event's counters, or None when it cannot be priced (the hot path).
        self.price = _compile(self.terms, [combo for _, combo in unpriced])

    def why_not(self, counters: Sequence[int]) -> str | None:
        """Why price() gives None for these counters (None: it does not)."""
        for part, combo in self.unpriced:
            if _value(combo, counters):
                return f"no price for its {part}"
        for term in self.terms:
            if _value(term.combo, counters) < 0:
                return f"negative {term.usage_type.label} quantity: its counters are inconsistent " \
                       "(input_tokens must include cached, cache write, audio and image input tokens)"
        return None

    def line_items(self, counters: Sequence[int]) -> list[LineItem]:
        """Quantity and amount per usage type of (summed) counters; nonzero quantities only."""
        items = []
        for term in self.terms:
            quantity = _value(term.combo, counters)
            if quantity:
                utype = term.usage_type
                label = f"{utype.label} {term.variant}" if term.variant else utype.label
                items.append(LineItem(
                    utype.name, term.variant, label, EXACT.divide(decimal.Decimal(quantity), utype.scale),
                    utype.unit, EXACT.multiply(term.base_price, quantity), utype.side,
                ))
        return items
