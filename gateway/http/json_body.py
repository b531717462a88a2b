"""Reading JSON from a request (a body, a `?parameters=` value): JSON as RFC 8259 has it, so
`NaN` and `Infinity` are refused, and anything that is not JSON, nesting too deep for the
parser included, is a ValueError."""

from __future__ import annotations

import decimal
import json
from typing import Any


def loads(raw: str | bytes, *, exact: bool = False) -> Any:
    """The decoded JSON; with `exact`, numbers with a fraction are exact Decimals. Raises ValueError
    (json.JSONDecodeError, with `msg` and `pos`, where the text is malformed)."""
    try:
        return json.loads(raw, parse_float=decimal.Decimal if exact else None, parse_constant=_reject_constant)
    except RecursionError as err:  # deeper than the decoder can go: malformed for us too
        raise ValueError(str(err)) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
