"""Cron expressions as maintenance windows write their start: fields, names, macros, errors."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from patchctl.rules.cron import parse_cron


def test_cron_fields_lists_ranges_steps_names() -> None:
    c = parse_cron("*/15 1-3,22 * jan-mar mon-fri")
    assert c.minutes == (0, 15, 30, 45)
    assert c.hours == (1, 2, 3, 22)
    assert c.months == frozenset({1, 2, 3})
    assert c.weekdays == frozenset({1, 2, 3, 4, 5})
    c = parse_cron("10-50/20 0 * * *")
    assert c.minutes == (10, 30, 50)
    c = parse_cron("5/20 0 * * *")  # a start with a step runs to the end of the field
    assert c.minutes == (5, 25, 45)


def test_cron_sunday_is_0_and_7() -> None:
    assert parse_cron("0 0 * * 7").weekdays == parse_cron("0 0 * * 0").weekdays == frozenset({0})
    sunday = date(2025, 3, 30)
    assert parse_cron("0 0 * * 7").matches_day(sunday)
    assert not parse_cron("0 0 * * 7").matches_day(sunday + timedelta(days=1))


def test_cron_day_of_month_or_day_of_week_when_both_restricted() -> None:
    c = parse_cron("0 0 13 * fri")  # the 13th OR any Friday, as in cron
    assert c.matches_day(date(2025, 1, 13))  # a Monday
    assert c.matches_day(date(2025, 1, 17))  # a Friday
    assert not c.matches_day(date(2025, 1, 14))
    c = parse_cron("0 0 13 * *")  # only the day of month restricted: AND with '*'
    assert not c.matches_day(date(2025, 1, 17))


def test_cron_macros() -> None:
    assert parse_cron("@daily").hours == (0,) and parse_cron("@daily").minutes == (0,)
    assert parse_cron("@weekly").weekdays == frozenset({0})
    assert parse_cron("@hourly").hours == tuple(range(24))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0 1 * *", "expected 5 fields"),
        ("0 1 * * * *", "expected 5 fields"),
        ("60 1 * * *", "minute: 60 is out of range 0-59"),
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 1 0 * *", "day of month: 0 is out of range 1-31"),
        ("0 1 * 13 *", "month: 13 is out of range 1-12"),
        ("0 1 * * 8", "day of week: 8 is out of range 0-7"),
        ("0 1 * * funday", "day of week: 'funday' is not a number"),
        ("5-1 1 * * *", "runs backwards"),
        ("*/0 1 * * *", "step must be at least 1"),
        ("0 1 31 2 *", "never matches a real date"),
        ("@sometimes", "unknown macro"),
        ("0 1 ** * *", "cannot read"),
    ],
)
def test_cron_errors(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_cron(text)
