"""JSON responses whose decimals stay exact: a `Decimal` is written as a JSON
number with every digit it has (`0.0043`, never `0.0043000000000000001`).

`JSONResponse` writes compact, ASCII-only JSON with the standard library. `fast_json` writes
the same values with orjson (UTF-8 as it is), for the replies where encoding costs most of the
request: the hot `POST /usage` and pages of ~10,000 results.
"""

from __future__ import annotations

import decimal
import json
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response

_string = json.encoder.encode_basestring_ascii


def dumps(value: Any) -> str:
    """Like json.dumps(..., separators=(",", ":")) plus exact Decimals."""
    if isinstance(value, decimal.Decimal):
        return decimal_number(value)
    if isinstance(value, dict):
        return "{" + ",".join(_key(k) + ":" + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, allow_nan=False)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        key = json.dumps(key)
    return str(_string(key))


def decimal_number(value: decimal.Decimal) -> str:
    """A finite Decimal as a JSON number literal; always with a fraction (`0.0`, `12.5`), as a float would print."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    text = format(value, "f")
    if "." not in text:
        text += ".0"
    return text


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def fast_json(content: Any) -> Response:
    """A 200 JSON reply encoded by orjson: Decimals exact as above, an orjson.Fragment as the JSON it holds."""
    return Response(orjson.dumps(content, default=_exact), media_type="application/json")


def _exact(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return orjson.Fragment(decimal_number(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
