"""Budget periods: calendar units of an IANA zone, DST-correct; total; rolling."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from server.budgets.periods import current_period

UTC = dt.UTC
H = dt.timedelta(hours=1)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(("now", "start", "end", "hours"), [
    # spring forward (2024-03-10 02:00 EST -> 03:00 EDT): a 23-hour day
    (at(2024, 3, 10, 12), at(2024, 3, 10, 5), at(2024, 3, 11, 4), 23),
    # fall back (2024-11-03 02:00 EDT -> 01:00 EST): a 25-hour day
    (at(2024, 11, 3, 12), at(2024, 11, 3, 4), at(2024, 11, 4, 5), 25),
    # the instants either side of a local midnight
    (at(2024, 3, 10, 4, 59, 59), at(2024, 3, 9, 5), at(2024, 3, 10, 5), 24),
    (at(2024, 3, 10, 5), at(2024, 3, 10, 5), at(2024, 3, 11, 4), 23),
])
def test_new_york_days_follow_dst(now, start, end, hours):
    period = current_period("day", now, "America/New_York")
    assert (period.start, period.end, period.resets_at) == (start, end, end)
    assert period.end - period.start == hours * H


def test_kathmandu_days_start_at_18_15_utc():
    period = current_period("day", at(2024, 5, 1, 18, 14), "Asia/Kathmandu")
    assert (period.start, period.end) == (at(2024, 4, 30, 18, 15), at(2024, 5, 1, 18, 15))
    assert current_period("day", at(2024, 5, 1, 18, 15), "Asia/Kathmandu").start == at(2024, 5, 1, 18, 15)
    month = current_period("month", at(2024, 5, 31, 18, 14), "Asia/Kathmandu")
    assert (month.start, month.end) == (at(2024, 4, 30, 18, 15), at(2024, 5, 31, 18, 15))


def test_lord_howe_moves_its_clock_by_half_an_hour():
    # DST ends 2024-04-07 02:00 (+11 -> +10:30): a 24.5-hour day; starts 2024-10-06 02:00: 23.5 hours
    longer = current_period("day", at(2024, 4, 7, 0), "Australia/Lord_Howe")
    assert (longer.start, longer.end) == (at(2024, 4, 6, 13), at(2024, 4, 7, 13, 30))
    shorter = current_period("day", at(2024, 10, 6, 1), "Australia/Lord_Howe")
    assert (shorter.start, shorter.end) == (at(2024, 10, 5, 13, 30), at(2024, 10, 6, 13))
    assert shorter.end - shorter.start == 23.5 * H


def test_a_skipped_midnight_starts_the_day_at_the_jump():
    # Santiago 2024-09-08: 00:00 -04 jumps to 01:00 -03; the day starts at the jump
    period = current_period("day", at(2024, 9, 8, 12), "America/Santiago")
    assert period.start == at(2024, 9, 8, 4) and period.end == at(2024, 9, 9, 3)


@pytest.mark.parametrize(("week_start", "start"), [(1, at(2024, 3, 4, 5)), (7, at(2024, 3, 10, 5)),
                                                   (3, at(2024, 3, 6, 5))])
def test_weeks_start_on_the_chosen_day(week_start, start):
    # Sunday 2024-03-10 12:00 UTC in New York; a week holding the spring-forward is 167 hours
    period = current_period("week", at(2024, 3, 10, 12), "America/New_York", week_start)
    assert period.start == start
    local = period.start.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    assert (local.isoweekday(), local.hour, local.minute) == (week_start, 0, 0)
    assert period.end - period.start == 167 * H  # each of these weeks holds the spring-forward


def test_months_quarters_and_years_in_utc():
    now = at(2024, 8, 15, 10)
    assert (current_period("month", now).start, current_period("month", now).end) == (at(2024, 8, 1), at(2024, 9, 1))
    assert (current_period("quarter", now).start, current_period("quarter", now).end) == (
        at(2024, 7, 1), at(2024, 10, 1))
    assert (current_period("year", now).start, current_period("year", now).end) == (at(2024, 1, 1), at(2025, 1, 1))
    december = current_period("quarter", at(2024, 12, 31, 23, 59))
    assert (december.start, december.end) == (at(2024, 10, 1), at(2025, 1, 1))


def test_total_and_rolling():
    now = at(2024, 8, 15, 10)
    total = current_period("total", now)
    assert total.start <= at(2000, 1, 1) and total.end > now + dt.timedelta(days=2) and total.resets_at is None
    rolling = current_period("rolling", now, window=dt.timedelta(hours=3))
    assert (rolling.start, rolling.end, rolling.resets_at) == (now - 3 * H, now, None)
    oldest = current_period("rolling", now, window=dt.timedelta(hours=3), oldest=now - 2 * H)
    assert oldest.resets_at == now + H
