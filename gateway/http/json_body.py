"""Reading JSON from a request (a body, a `?parameters=` value): JSON as RFC 8259 has it, so
`NaN` and `Infinity` are refused, and anything that is not JSON, nesting too deep for the
parser included, is a ValueError.

Exact numbers are bounded: a literal longer than MAX_NUMBER_CHARS or beyond 1e±MAX_EXPONENT holds
no value any field takes, and writing it out in full (1e999999999 has a billion digits) would cost
the gateway far more than the request is worth. Such a literal reads as Decimal NaN, which every
field refuses as not finite, naming itself (as 1e400 without `exact` reads as float infinity)."""

from __future__ import annotations

import decimal
import json
from typing import Any

MAX_NUMBER_CHARS = 100
MAX_EXPONENT = 1000
_NAN = decimal.Decimal("NaN")


def loads(raw: str | bytes, *, exact: bool = False) -> Any:
    """The decoded JSON; with `exact`, numbers with a fraction or an exponent are exact Decimals. Raises
    ValueError (json.JSONDecodeError, with `msg` and `pos`, where the text is malformed)."""
    try:
        return json.loads(raw, parse_float=_exact_number if exact else None, parse_constant=_reject_constant)
    except RecursionError as err:  # deeper than the decoder can go: malformed for us too
        raise ValueError(str(err)) from None


def _exact_number(text: str) -> decimal.Decimal:
    value = decimal.Decimal(text)
    if len(text) > MAX_NUMBER_CHARS or not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        return _NAN
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
