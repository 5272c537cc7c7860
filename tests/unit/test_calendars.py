"""Calendar windows: RFC 5545 recurrences and Patch-Tuesday offsets beside the cron windows.

The rules are expanded by python-dateutil; these tests pin the days patchctl derives from them
(offsets across month and year ends, nth weekdays), the DST rules they share with cron windows
(Europe/Berlin and America/New_York switch days), and the errors naming file, line and field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from patchctl.errors import ConfigError
from patchctl.rules.maintenance import Window, load_windows, parse_windows
from patchctl.rules.recurrence import recurrence

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def cal(duration: str = "4h", tz: str = "UTC", start: str = "22:00", **rule: object) -> Window:
    entry = {"name": "w", "start": start, "duration": duration, "timezone": tz, **rule}
    return parse_windows([entry], "test.yml")["w"]


def local_days(w: Window, after: datetime, n: int) -> list[str]:
    return [s.astimezone(w.tz).strftime("%Y-%m-%d %H:%M %Z") for s in w.next_starts(after, n)]


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --- Patch Tuesday and its offsets ----------------------------------------------------------------


def test_patch_tuesday_is_the_second_tuesday_also_when_the_1st_is_a_wednesday() -> None:
    """October 2025, April 2026 and July 2026 begin on a Wednesday: their second Tuesday is the 14th,
    the latest one possible (a rule 'Tuesday in the second week' would give the 7th or 8th).
    Seen failing (with four other tests) with the anchor changed to BYSETPOS=1."""
    pt = recurrence(None, "patch-tuesday")
    days = pt.days_between(date(2025, 9, 1), date(2026, 7, 31))
    assert days[:3] == [date(2025, 9, 9), date(2025, 10, 14), date(2025, 11, 11)]
    assert date(2026, 4, 14) in days and date(2026, 7, 14) in days
    assert date(2026, 12, 8) in pt.days_between(date(2026, 12, 1), date(2026, 12, 31))  # the 1st a Tuesday
    assert all(d.isoweekday() == 2 and 8 <= d.day <= 14 for d in days)
    assert len(days) == 11


def test_patch_tuesday_plus_3_is_the_friday_after() -> None:
    w = cal(after="patch-tuesday", offset_days=3, tz="Europe/Berlin")
    assert local_days(w, utc(2026, 3, 1), 4) == [
        "2026-03-13 22:00 CET",
        "2026-04-17 22:00 CEST",
        "2026-05-15 22:00 CEST",
        "2026-06-12 22:00 CEST",
    ]
    assert w.schedule == "patch-tuesday + 3 days at 22:00"


def test_offsets_cross_month_and_year_ends() -> None:
    """Patch Tuesday 14 April 2026 + 20 is 4 May; 8 December 2026 + 24 is 1 January 2027; with -10
    Patch Tuesday 8 December falls in November. Seen failing with the rule expanded over the
    unshifted days (days_between's begin without the offset): 4 May was lost."""
    plus20 = recurrence(None, "patch-tuesday", 20)
    # (12 May 2026 + 20 is 1 June, 9 June + 20 is 29 June)
    assert plus20.days_between(date(2026, 4, 1), date(2026, 6, 30)) == [
        date(2026, 5, 4),
        date(2026, 6, 1),
        date(2026, 6, 29),
    ]
    plus24 = cal(after="patch-tuesday", offset_days=24, start="01:00")
    assert plus24.next_starts(utc(2026, 12, 20), 2) == [utc(2027, 1, 1, 1), utc(2027, 2, 5, 1)]
    minus10 = recurrence(None, "patch-tuesday", -10)
    # (10 November 2026 - 10 is 31 October; 12 January 2027 - 10 is 2 January)
    assert minus10.days_between(date(2026, 10, 15), date(2027, 1, 15)) == [
        date(2026, 10, 31),
        date(2026, 11, 28),
        date(2027, 1, 2),
    ]
    # a window starting on the last day of a year runs on into the next one
    w = cal(after="patch-tuesday", offset_days=23, start="22:00", duration="6h")  # 8 Dec 2026 + 23 = 31 Dec
    assert w.next_starts(utc(2026, 12, 4), 1) == [utc(2026, 12, 31, 22)]  # (10 November + 23: 3 December)
    assert w.is_open_at(utc(2027, 1, 1, 3, 59)) and not w.is_open_at(utc(2027, 1, 1, 4))


def test_the_offset_is_found_also_when_the_search_starts_after_the_anchor_day() -> None:
    """The window of Patch Tuesday + 6 (Monday 20 April 2026) is found from 15 April, after that
    month's Patch Tuesday. Seen failing with days_between's begin unshifted (no start found)."""
    w = cal(after="patch-tuesday", offset_days=6, start="02:00", duration="2h")
    assert w.next_starts(utc(2026, 4, 15), 1) == [utc(2026, 4, 20, 2)]
    assert w.is_open_at(utc(2026, 4, 20, 3)) and not w.is_open_at(utc(2026, 4, 14, 3))


# --- nth weekdays ----------------------------------------------------------------------------------


def test_nth_weekday_rules() -> None:
    second_saturday = cal(rrule="FREQ=MONTHLY;BYDAY=2SA", start="06:00")
    assert [s.date() for s in second_saturday.next_starts(utc(2026, 1, 1), 3)] == [
        date(2026, 1, 10),
        date(2026, 2, 14),
        date(2026, 3, 14),
    ]
    last_friday = cal(rrule="RRULE:FREQ=MONTHLY;BYDAY=-1FR", start="20:00")
    assert [s.date() for s in last_friday.next_starts(utc(2026, 1, 1), 3)] == [
        date(2026, 1, 30),
        date(2026, 2, 27),
        date(2026, 3, 27),
    ]
    fortnightly = cal(rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=SU", start="03:00", dtstart="2026-01-04")
    assert [s.date() for s in fortnightly.next_starts(utc(2026, 1, 5), 2)] == [date(2026, 1, 18), date(2026, 2, 1)]
    assert fortnightly.as_dict()["dtstart"] == "2026-01-04"


def test_cron_cannot_say_second_tuesday_but_the_rule_can() -> None:
    """Cron ORs day-of-month and day-of-week: '0 22 8-14 * tue' also fires on every Tuesday and on
    every 8th-14th. The rrule window fires once a month."""
    cron = parse_windows([{"name": "c", "start": "0 22 8-14 * tue", "duration": "1h"}], "p.yml")["c"]
    rule = cal(rrule="FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2", duration="1h")
    month = (utc(2026, 5, 1), utc(2026, 6, 1))
    assert len(cron.starts_between(*month)) > 7
    assert rule.starts_between(*month) == [utc(2026, 5, 12, 22)]


# --- DST: the same rules as cron windows -----------------------------------------------------------


def test_berlin_spring_forward_start_moves_forward_by_the_gap() -> None:
    """The last Sunday of March 2026 (the 29th), 02:30 does not exist: 03:30 CEST, as for cron.
    Seen failing with local_start's wall time made fold=1 (01:30 CEST), as the next two."""
    w = cal(rrule="FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", start="02:30", duration="1h", tz="Europe/Berlin")
    assert local_days(w, utc(2026, 1, 1), 2) == ["2026-03-29 03:30 CEST", "2027-03-28 03:30 CEST"]
    assert w.is_open_at(datetime(2026, 3, 29, 4, 29, tzinfo=BERLIN))
    assert not w.is_open_at(datetime(2026, 3, 29, 4, 30, tzinfo=BERLIN))


def test_berlin_fall_back_start_is_taken_once_at_the_first_occurrence() -> None:
    w = cal(rrule="FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", start="02:30", duration="1h", tz="Europe/Berlin")
    starts = w.starts_between(utc(2026, 10, 24), utc(2026, 10, 27))
    assert starts == [utc(2026, 10, 25, 0, 30)]  # 02:30 CEST, not also 02:30 CET
    span = w.current(starts[0])
    assert span is not None and span.end - span.start == timedelta(hours=1)


def test_new_york_switch_days_for_an_offset_window() -> None:
    """Patch Tuesday 10 March 2026 - 2 is Sunday 8 March, the US spring-forward day: 02:30 EST does
    not exist and the window starts at 03:30 EDT. Patch Tuesday 10 November 2026 - 9 is Sunday
    1 November, fall-back: 01:30 occurs twice and the first (EDT) is taken.
    Seen failing with local_start's wall time made fold=1: 01:30 EST and the second 01:30."""
    spring = cal(after="patch-tuesday", offset_days=-2, start="02:30", duration="2h", tz="America/New_York")
    (start,) = spring.starts_between(utc(2026, 3, 7), utc(2026, 3, 9))
    assert start.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:30 EDT"
    assert start == utc(2026, 3, 8, 7, 30)
    autumn = cal(after="patch-tuesday", offset_days=-9, start="01:30", duration="1h", tz="America/New_York")
    (start,) = autumn.starts_between(utc(2026, 10, 31), utc(2026, 11, 2))
    assert start == utc(2026, 11, 1, 5, 30)  # 01:30 EDT (UTC-4)
    assert autumn.remaining(start) == timedelta(hours=1)


# --- the policy file ---------------------------------------------------------------------------------

POLICY = """\
baselines:
  debian: {classifications: [security]}
windows:
  - name: pt3
    after: patch-tuesday
    offset_days: 3
    start: "22:00"
    duration: 6h
    timezone: Europe/Berlin
"""


def test_load_a_calendar_window() -> None:
    (w,) = load_windows(POLICY, "p.yml").values()
    assert w.as_dict() == {
        "name": "pt3",
        "start": "22:00",
        "after": "patch-tuesday",
        "offset_days": 3,
        "duration": "6h",
        "timezone": "Europe/Berlin",
        "min_left": "30m",
        "schedule": "patch-tuesday + 3 days at 22:00",
    }
    # YAML 1.1 reads an unquoted 22:00 as 1320 (sexagesimal): the same time of day
    assert load_windows(POLICY.replace('"22:00"', "22:00"), "p.yml")["pt3"].at == (22, 0)


@pytest.mark.parametrize(
    ("replace", "with_", "expected"),
    [
        ("after: patch-tuesday", "after: patch-wednesday", "line 5: windows[0] (pt3).after: unknown day 'patch-"),
        ("offset_days: 3", "offset_days: 400", "line 6: windows[0] (pt3).offset_days: must be an integer between"),
        ("offset_days: 3", "offset_days: x", "line 6: windows[0] (pt3).offset_days: must be an integer"),
        ('"22:00"', '"25:00"', "line 7: windows[0] (pt3).start: must be a time of day like \"22:00\", got '25:00'"),
        ('"22:00"', '"0 22 * * *"', "line 7: windows[0] (pt3).start: must be a time of day"),
        ("after: patch-tuesday", 'rrule: "FREQ=HOURLY"', "line 5: windows[0] (pt3).rrule: invalid recurrence"),
        ("after: patch-tuesday", 'rrule: "FREQ=MONTHLY;BYDAY=XX"', "line 5: windows[0] (pt3).rrule: invalid"),
        (
            "after: patch-tuesday",
            'rrule: "FREQ=DAILY;BYHOUR=3"',
            "line 5: windows[0] (pt3).rrule: invalid recurrence 'FREQ=DAILY;BYHOUR=3': BYHOUR is not allowed",
        ),
        (
            "after: patch-tuesday",
            'rrule: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"',
            "line 5: windows[0] (pt3).rrule: invalid recurrence 'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30': "
            "'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30 + 3 days' names no day within 28 years",
        ),
        (
            "    after: patch-tuesday\n",
            "    after: patch-tuesday\n    rrule: FREQ=DAILY\n",
            "line 5: windows[0] (pt3).after: give either rrule: or after:, not both",
        ),
        (
            "    after: patch-tuesday\n",
            "    dtstart: next-monday\n    after: patch-tuesday\n",
            "line 5: windows[0] (pt3).dtstart: must be a date",
        ),
        (
            "    after: patch-tuesday\n",
            "",
            "line 5: windows[0] (pt3).offset_days: only with rrule: or after:",
        ),
    ],
)
def test_calendar_errors_name_file_line_and_field(replace: str, with_: str, expected: str) -> None:
    """Each refused with one line naming the file, the line and the field (a ConfigError: exit 2)."""
    text = POLICY.replace(replace, with_, 1)
    assert text != POLICY
    with pytest.raises(ConfigError) as exc:
        load_windows(text, "p.yml")
    assert exc.value.message.startswith(f"policy file p.yml, {expected}"), exc.value.message
