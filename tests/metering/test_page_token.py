"""The one page-token codec (metering/page_token.py): what it makes it reads back, and it
refuses every token it did not make for the request at hand."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest

from metering import page_token
from metering.page_token import MALFORMED, OTHER_REQUEST, PageTokenError

DIGEST = page_token.request_digest("2024-05-06T00:00:00+00:00", None, ["m-a"], 7, [None, None, None])
WHEN = dt.datetime(2024, 5, 6, 12, 30, 1, 250, tzinfo=dt.UTC)
EVENT = uuid.UUID("0190a5b2-0000-7000-8000-000000000001")


def raw(data: object) -> str:
    """Any JSON as a token's text, unpadded as the codec writes it."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def refused(token: str, request: str | None = DIGEST) -> str:
    with pytest.raises(PageTokenError) as caught:
        page_token.decode(token, request)
    return str(caught.value)


def test_round_trip() -> None:
    token = page_token.encode({"t": WHEN.isoformat(), "i": str(EVENT), "n": 42}, DIGEST)
    assert "=" not in token and set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    fields = page_token.decode(token, DIGEST)
    assert (fields.instant("t"), fields.uuid("i"), fields.integer("n"), fields.text("i")) == (
        WHEN, EVENT, 42, str(EVENT))
    # A client that pads the token is understood too.
    padded = token + "=" * (-len(token) % 4)
    assert padded != token and page_token.decode(padded, DIGEST).instant("t") == WHEN


def test_an_unbound_token_round_trips_without_a_request() -> None:
    token = page_token.encode({"e": 1715000000, "t": "inner"})
    fields = page_token.decode(token)
    assert (fields.integer("e"), fields.text("t")) == (1715000000, "inner")


def test_tokens_of_the_copies_it_replaced_still_read() -> None:
    """Tokens made before the one codec (json.dumps with spaces) decode the same."""
    old = base64.urlsafe_b64encode(json.dumps(
        {"t": WHEN.isoformat(), "i": str(EVENT), "f": DIGEST}).encode()).decode().rstrip("=")
    fields = page_token.decode(old, DIGEST)
    assert (fields.instant("t"), fields.uuid("i")) == (WHEN, EVENT)


def test_a_token_bound_to_another_request_is_refused() -> None:
    token = page_token.encode({"s": WHEN.isoformat()}, DIGEST)
    other = page_token.request_digest("2024-05-06T00:00:00+00:00", None, ["m-b"], 7, [None, None, None])
    assert other != DIGEST and refused(token, other) == OTHER_REQUEST
    assert refused(page_token.encode({"s": WHEN.isoformat()}), DIGEST) == MALFORMED  # bound to nothing


def test_the_digest_names_the_request_by_its_values() -> None:
    assert page_token.request_digest([1, None], "a") == page_token.request_digest([1, None], "a")
    assert len({page_token.request_digest(*p) for p in ([1], [[1]], ["1"], [1, None], [None, 1])}) == 5


def test_tampered_tokens_are_refused() -> None:
    good = {"t": WHEN.isoformat(), "i": str(EVENT), "f": DIGEST}
    for data in (
        {**good, "i": 5},                           # an event id that is no string (was a 500 in records)
        {**good, "i": "not-a-uuid"},
        {**good, "t": "2024-05-06T12:30:01"},       # a time without its offset
        {**good, "t": 1715000000},
        {**good, "t": ""},
        [good],                                     # JSON, but not an object
        "text",
        None,
    ):
        token = raw(data)
        with pytest.raises(PageTokenError) as caught:
            fields = page_token.decode(token, DIGEST)
            fields.instant("t"), fields.uuid("i")
        assert str(caught.value) == MALFORMED, data
    fields = page_token.decode(raw({"e": True, "t": "x", "f": DIGEST}), DIGEST)
    with pytest.raises(PageTokenError):
        fields.integer("e")  # a JSON true is no integer
    with pytest.raises(PageTokenError):
        fields.text("missing")
    # The binding changed, or dropped: another request's token, or none of the codec's.
    assert refused(raw({**good, "f": DIGEST[:-1] + ("0" if DIGEST[-1] != "0" else "1")})) == OTHER_REQUEST
    assert refused(raw({"t": WHEN.isoformat(), "i": str(EVENT)})) == MALFORMED
    assert refused(raw({**good, "f": 7})) == MALFORMED


def test_truncated_tokens_are_refused() -> None:
    token = page_token.encode({"t": WHEN.isoformat(), "i": str(EVENT)}, DIGEST)
    for cut in range(len(token)):
        assert refused(token[:cut]) in (MALFORMED, OTHER_REQUEST)
    assert refused("") == MALFORMED


def test_text_that_is_not_base64url_is_refused() -> None:
    token = page_token.encode({"t": WHEN.isoformat(), "i": str(EVENT)}, DIGEST)
    for bad in ("garbage!", token[:10] + "!" + token[10:], token[:10] + " " + token[10:], token + "\n",
                token.replace("-", "+").replace("_", "/") if set("-_") & set(token) else token + "+",
                token + "===", "=" + token, "a", "ab=c", "é" * 8):
        assert refused(bad) == MALFORMED, bad
    assert refused("[" * 3000) == MALFORMED  # too long
    assert refused(raw(json.loads("[" * 700 + "]" * 700))) == MALFORMED  # deep, but short: JSON, no object


def test_a_field_named_like_the_binding_is_refused() -> None:
    with pytest.raises(ValueError):
        page_token.encode({"f": "x"}, DIGEST)
