"""Opaque page tokens: a few named fields as base64url (unpadded) of compact JSON, bound to
the request that returned them.

A list call that pages returns a token naming where the next page starts, and accepts it
back only with the request it belongs to: the token carries `request_digest` of what decides
the pages (the range, the filters, the caller's organization and read scope, ...) under "f",
and a token made for another request is refused. Tokens are not secret and not signed: a
caller may forge one, so every field is checked as it is read, and the server's own scoping
decides what a page may hold whatever a token says.

    token = encode({"t": ts.isoformat(), "i": str(event_id)}, digest)
    fields = decode(token, digest)     # PageTokenError: malformed, or another request's
    ts, event_id = fields.instant("t"), fields.uuid("i")

Decoding accepts the base64url alphabet with or without "=" padding (a client may pad), at
most MAX_LENGTH characters, and nothing else. str(PageTokenError) is its reason for the client: the server answers
`InvalidArgument("page_token", reason)`, a dialect its own error for its cursor parameter.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Mapping

MALFORMED = "malformed page token"
OTHER_REQUEST = "does not match this request"
MAX_LENGTH = 2048  # characters; the tokens made here are a few hundred at most
_BINDING = "f"  # the field holding the request digest
_ALPHABET = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class PageTokenError(ValueError):
    """A token this codec did not make, or made for another request; str() is the reason."""


def request_digest(*parts: object) -> str:
    """Names a request by the JSON values that decide its pages (lists, strings, numbers, None)."""
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:16]


def encode(fields: Mapping[str, str | int], request: str | None = None) -> str:
    """`fields` as a token, bound to `request` (a request_digest) unless None."""
    if _BINDING in fields:
        raise ValueError(f"{_BINDING!r} is the binding of a page token, not a field")
    data = dict(fields) if request is None else {**fields, _BINDING: request}
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, request: str | None = None) -> Fields:
    """The fields of `token`, which must be bound to `request` (a request_digest) unless None."""
    if len(token) > MAX_LENGTH or not _ALPHABET.fullmatch(token):
        raise PageTokenError(MALFORMED)
    unpadded = token.rstrip("=")
    try:
        data = json.loads(base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # bad length, not UTF-8, not JSON, nested too deep
        raise PageTokenError(MALFORMED) from None
    if not isinstance(data, dict):
        raise PageTokenError(MALFORMED)
    if request is not None and data.get(_BINDING) != request:
        raise PageTokenError(OTHER_REQUEST if isinstance(data.get(_BINDING), str) else MALFORMED)
    return Fields(data)


class Fields:
    """A decoded token's fields, each checked as it is read (PageTokenError: malformed)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, object]) -> None:
        self._data = data

    def text(self, name: str) -> str:
        """A non-empty string."""
        value = self._data.get(name)
        if not isinstance(value, str) or not value:
            raise PageTokenError(MALFORMED)
        return value

    def integer(self, name: str) -> int:
        value = self._data.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise PageTokenError(MALFORMED)
        return value

    def instant(self, name: str) -> dt.datetime:
        """An ISO 8601 time with its UTC offset (as datetime.isoformat() wrote it)."""
        try:
            value = dt.datetime.fromisoformat(self.text(name))
        except ValueError:
            raise PageTokenError(MALFORMED) from None
        if value.tzinfo is None:
            raise PageTokenError(MALFORMED)
        return value

    def uuid(self, name: str) -> uuid.UUID:
        try:
            return uuid.UUID(self.text(name))
        except ValueError:
            raise PageTokenError(MALFORMED) from None
