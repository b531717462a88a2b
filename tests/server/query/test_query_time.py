"""Local-calendar buckets as UTC instants (server/query/buckets.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.core.errors import InvalidArgument
from server.query.buckets import bucket_edges, parse_width, parse_zone

UTC = dt.UTC
H = dt.timedelta(hours=1)


def lengths(zone: str, start: dt.datetime, end: dt.datetime, width: str, limit: int = 1000) -> list[dt.timedelta]:
    edges = bucket_edges(start, end, width, zoneinfo.ZoneInfo(zone), limit)
    return [b - a for a, b in itertools.pairwise(edges)]


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=zoneinfo.ZoneInfo(zone), fold=fold).astimezone(UTC)


def test_days_across_dst_are_23_or_25_hours():
    ny = "America/New_York"
    assert lengths(ny, local(ny, 2024, 3, 9), local(ny, 2024, 3, 12), "1d") == [24 * H, 23 * H, 24 * H]
    assert lengths(ny, local(ny, 2024, 11, 2), local(ny, 2024, 11, 5), "1d") == [24 * H, 25 * H, 24 * H]


def test_lord_howe_moves_half_an_hour():
    lh = "Australia/Lord_Howe"
    assert lengths(lh, local(lh, 2024, 4, 6), local(lh, 2024, 4, 9), "1d") == [24 * H, 24.5 * H, 24 * H]
    assert lengths(lh, local(lh, 2024, 10, 5), local(lh, 2024, 10, 8), "1d") == [24 * H, 23.5 * H, 24 * H]
    # Fall back 02:00 -> 01:30: local hour 1 lasts 90 minutes; spring 02:00 -> 02:30: hour 2 lasts 30.
    assert lengths(lh, local(lh, 2024, 4, 7), local(lh, 2024, 4, 7, 4), "1h") == [H, 1.5 * H, H, H]
    assert lengths(lh, local(lh, 2024, 10, 6), local(lh, 2024, 10, 6, 4), "1h") == [H, H, 0.5 * H, H]


def test_a_repeated_hour_is_two_buckets():
    ny = "America/New_York"
    edges = bucket_edges(local(ny, 2024, 11, 3), local(ny, 2024, 11, 3, 3), "1h", zoneinfo.ZoneInfo(ny), 100)
    assert edges == [local(ny, 2024, 11, 3), local(ny, 2024, 11, 3, 1), local(ny, 2024, 11, 3, 1, fold=1),
                     local(ny, 2024, 11, 3, 2), local(ny, 2024, 11, 3, 3)]


def test_offsets_off_the_hour():
    for zone, hour, minute in (("Asia/Kathmandu", 18, 15), ("Asia/Kolkata", 18, 30)):
        edges = bucket_edges(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 3, tzinfo=UTC), "1d",
                             zoneinfo.ZoneInfo(zone), 10)
        assert edges[1:3] == [dt.datetime(2024, 1, 1, hour, minute, tzinfo=UTC),
                              dt.datetime(2024, 1, 2, hour, minute, tzinfo=UTC)]


def test_a_skipped_midnight_starts_the_day_at_the_jump():
    havana = zoneinfo.ZoneInfo("America/Havana")  # 2024-03-10 00:00 -> 01:00
    edges = bucket_edges(dt.datetime(2024, 3, 9, 12, tzinfo=UTC), dt.datetime(2024, 3, 11, 12, tzinfo=UTC), "1d",
                         havana, 10)
    assert [e.astimezone(havana).isoformat() for e in edges[1:3]] == [
        "2024-03-10T01:00:00-04:00", "2024-03-11T00:00:00-04:00",
    ]


def test_months_and_all_and_clipping():
    kathmandu = zoneinfo.ZoneInfo("Asia/Kathmandu")
    start, end = dt.datetime(2024, 1, 15, tzinfo=UTC), dt.datetime(2024, 4, 2, tzinfo=UTC)
    edges = bucket_edges(start, end, "month", kathmandu, 100)
    assert edges[0] == start and edges[-1] == end
    assert [e.astimezone(kathmandu).strftime("%m-%d %H:%M") for e in edges[1:-1]] == [
        "02-01 00:00", "03-01 00:00", "04-01 00:00"]
    assert bucket_edges(start, end, "all", kathmandu, 1) == [start, end]


def test_limit_returns_where_the_next_page_starts():
    ny = zoneinfo.ZoneInfo("America/New_York")
    start = local("America/New_York", 2024, 11, 3, 1, 58)  # first pass through 01:58
    edges = bucket_edges(start, start + 4 * H, "1m", ny, 3)
    assert [e - start for e in edges] == [dt.timedelta(minutes=m) for m in (0, 1, 2, 3)]
    # The minutes after 01:59 EDT are 01:00 EST...: no minute is skipped or doubled.
    more = bucket_edges(edges[-1], start + 4 * H, "1m", ny, 2)
    assert more == [edges[-1], edges[-1] + dt.timedelta(minutes=1), edges[-1] + dt.timedelta(minutes=2)]


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(["America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "Europe/London", "UTC"]),
    width=st.sampled_from(["1m", "1h", "1d", "month"]),
    start=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2026, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)),
    span=st.integers(1, 3 * 86400),
    limit=st.integers(1, 50),
)
def test_pages_concatenate_to_the_whole(zone, width, start, span, limit):
    """Paging with any limit yields the same strictly increasing edges as one call."""
    tz = zoneinfo.ZoneInfo(zone)
    end = start + dt.timedelta(seconds=span)
    whole = bucket_edges(start, end, width, tz, 10**6)
    paged, at = [start], start
    while at < end:
        page = bucket_edges(at, end, width, tz, limit)
        assert len(page) <= limit + 1
        paged.extend(page[1:])
        at = page[-1]
    assert paged == whole
    assert all(a < b for a, b in itertools.pairwise(whole))


def test_invalid_zone_and_width():
    with pytest.raises(InvalidArgument, match="time_zone"):
        parse_zone("Nowhere/Land")
    with pytest.raises(InvalidArgument, match="width"):
        parse_width("1w")
    assert parse_width("") == "1d" and str(parse_zone("")) == "UTC"
