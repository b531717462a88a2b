"""AIP-158 pages by (create_time, id) for the alerts' lists (endpoints, deliveries)."""

from __future__ import annotations

import datetime as dt

from metering import page_token
from server.core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def size(page_size: int) -> int:
    value = page_size or DEFAULT_PAGE_SIZE
    if not 0 < value <= MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"between 1 and {MAX_PAGE_SIZE}")
    return value


def after(token: str, binding: str) -> tuple[dt.datetime | None, str | None]:
    """Where the page starts: after this (create_time, id); (None, None): at the start."""
    if not token:
        return None, None
    try:
        fields = page_token.decode(token, binding)
        return fields.instant("t"), fields.text("i")
    except page_token.PageTokenError as err:
        raise InvalidArgument("page_token", str(err)) from None


def next_token(last: tuple[dt.datetime, str] | None, binding: str) -> str:
    """The next page's token ("" at the end): `last` is the page's last row when there are more."""
    if last is None:
        return ""
    return page_token.encode({"t": last[0].isoformat(), "i": last[1]}, binding)
