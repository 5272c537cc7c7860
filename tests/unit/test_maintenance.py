"""Maintenance windows: time zones, midnight, DST switch days, the policy file's windows: section."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from patchctl.errors import ConfigError
from patchctl.rules.maintenance import (
    Occurrence,
    Window,
    hosts_by_window,
    load_windows,
    local_start,
    parse_windows,
    undefined_windows,
)

BERLIN = ZoneInfo("Europe/Berlin")


def window(start: str, duration: str, tz: str = "UTC", min_left: str = "30m", name: str = "w") -> Window:
    entry = {"name": name, "start": start, "duration": duration, "timezone": tz, "min_left": min_left}
    return parse_windows([entry], "test.yml")[name]


def berlin(y: int, mo: int, d: int, h: int, mi: int = 0, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN, fold=fold)


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --- a cron start on 29 February -----------------------------------------------------------------


def test_cron_29_february_is_valid_and_found() -> None:
    w = window("0 3 29 2 *", "1h")
    assert w.next_starts(utc(2025, 1, 1, 0), 2) == [utc(2028, 2, 29, 3), utc(2032, 2, 29, 3)]


# --- windows in UTC and other zones ----------------------------------------------------------------


def test_utc_window_open_closed_and_remaining() -> None:
    w = window("0 1 * * *", "4h")
    assert not w.is_open_at(utc(2025, 6, 1, 0, 59))
    assert w.is_open_at(utc(2025, 6, 1, 1, 0))  # the start is inside
    assert w.remaining(utc(2025, 6, 1, 1, 0)) == timedelta(hours=4)
    assert w.remaining(utc(2025, 6, 1, 4, 45)) == timedelta(minutes=15)
    assert not w.is_open_at(utc(2025, 6, 1, 5, 0))  # the end is outside
    assert w.remaining(utc(2025, 6, 1, 5, 0)) == timedelta(0)
    assert w.current(utc(2025, 6, 1, 2)) is not None


def test_window_in_a_zone_follows_local_time() -> None:
    w = window("0 1 * * *", "4h", "America/New_York")
    # 01:00 in New York is 05:00 UTC in summer (EDT, -4) and 06:00 UTC in winter (EST, -5)
    assert w.next_starts(utc(2025, 7, 1, 0), 1) == [utc(2025, 7, 1, 5)]
    assert w.next_starts(utc(2025, 12, 1, 0), 1) == [utc(2025, 12, 1, 6)]
    assert w.is_open_at(utc(2025, 7, 1, 8, 59))
    assert not w.is_open_at(utc(2025, 7, 1, 9, 0))
    assert w.is_open_at(utc(2025, 12, 1, 9, 59))


def test_next_starts_are_strictly_after_and_ordered() -> None:
    w = window("0 1,13 * * *", "1h")
    assert w.next_starts(utc(2025, 6, 1, 1, 0), 3) == [utc(2025, 6, 1, 13), utc(2025, 6, 2, 1), utc(2025, 6, 2, 13)]


def test_weekly_window_in_berlin() -> None:
    w = window("0 22 * * sat", "6h", "Europe/Berlin")  # Saturday 22:00 local, across midnight into Sunday
    assert w.next_starts(utc(2025, 6, 2, 0), 1) == [berlin(2025, 6, 7, 22).astimezone(UTC)]
    assert w.is_open_at(berlin(2025, 6, 8, 3, 59))
    assert not w.is_open_at(berlin(2025, 6, 8, 4, 0))
    assert not w.is_open_at(berlin(2025, 6, 9, 1, 0))  # Sunday night: no window


# --- spanning midnight -------------------------------------------------------------------------------


def test_window_spanning_midnight() -> None:
    w = window("0 22 * * *", "6h", "Europe/Berlin")
    assert w.is_open_at(berlin(2025, 6, 1, 23, 30))
    assert w.is_open_at(berlin(2025, 6, 2, 0, 0))
    assert w.is_open_at(berlin(2025, 6, 2, 3, 59))
    assert not w.is_open_at(berlin(2025, 6, 2, 4, 0))
    assert not w.is_open_at(berlin(2025, 6, 2, 21, 59))
    # after midnight the open span is the one that started yesterday evening
    span = w.current(berlin(2025, 6, 2, 1, 0))
    assert span is not None
    assert span.start == berlin(2025, 6, 1, 22).astimezone(UTC)
    assert span.end == berlin(2025, 6, 2, 4).astimezone(UTC)
    assert w.remaining(berlin(2025, 6, 2, 1, 0)) == timedelta(hours=3)


def test_midnight_window_only_on_some_days_is_open_the_next_morning() -> None:
    w = window("30 23 * * fri", "2h")  # Friday 23:30 UTC for two hours
    assert w.is_open_at(utc(2025, 6, 7, 1, 0))  # Saturday 01:00
    assert not w.is_open_at(utc(2025, 6, 8, 1, 0))  # Sunday 01:00


def test_multi_day_window() -> None:
    w = window("0 20 * * fri", "2d12h")
    assert w.is_open_at(utc(2025, 6, 8, 12))  # Sunday noon
    assert w.remaining(utc(2025, 6, 8, 12)) == timedelta(hours=20)
    assert not w.is_open_at(utc(2025, 6, 9, 8))


def test_overlapping_occurrences_form_one_span() -> None:
    w = window("0 * * * *", "2h")  # hourly, two hours each: never closes
    assert w.remaining(utc(2025, 6, 1, 10, 30)) > timedelta(hours=2)
    span = w.current(utc(2025, 6, 1, 10, 30))
    assert span is not None and span.start <= utc(2025, 6, 1, 9)


# --- daylight saving: the Europe/Berlin switch days (2025-03-30 and 2025-10-26) --------------------


def test_berlin_nonexistent_start_moves_forward_by_the_gap() -> None:
    # 02:30 does not exist on 30 March 2025 (clocks go 02:00 CET -> 03:00 CEST)
    instant, what = local_start(date(2025, 3, 30), 2, 30, BERLIN)
    assert what == "shifted"
    assert instant == utc(2025, 3, 30, 1, 30)  # = 03:30 CEST
    w = window("30 2 * * *", "1h", "Europe/Berlin")
    starts = w.next_starts(utc(2025, 3, 29, 0), 3)
    assert [s.astimezone(BERLIN).strftime("%d %H:%M %Z") for s in starts] == [
        "29 02:30 CET",
        "30 03:30 CEST",
        "31 02:30 CEST",
    ]
    assert w.is_open_at(berlin(2025, 3, 30, 4, 29))
    assert not w.is_open_at(berlin(2025, 3, 30, 4, 30))


def test_berlin_ambiguous_start_is_taken_once_at_the_first_occurrence() -> None:
    # 02:30 occurs twice on 26 October 2025 (clocks go 03:00 CEST -> 02:00 CET)
    instant, what = local_start(date(2025, 10, 26), 2, 30, BERLIN)
    assert what == "ambiguous"
    assert instant == utc(2025, 10, 26, 0, 30)  # 02:30 CEST, the first one
    w = window("30 2 * * *", "1h", "Europe/Berlin")
    starts = w.starts_between(utc(2025, 10, 25, 12), utc(2025, 10, 27, 0))
    assert starts == [utc(2025, 10, 26, 0, 30)]
    # open for one real hour: until 03:30 CEST = 02:30 CET (the second 02:30 on the wall clock)
    assert w.is_open_at(berlin(2025, 10, 26, 2, 45, fold=0))
    assert w.is_open_at(berlin(2025, 10, 26, 2, 29, fold=1))
    assert not w.is_open_at(berlin(2025, 10, 26, 2, 30, fold=1))


def test_berlin_duration_is_elapsed_time_across_the_switch() -> None:
    spring = window("0 1 * * *", "4h", "Europe/Berlin")
    # 01:00 CET + 4 h = 06:00 CEST on the wall clock (02:00-03:00 does not exist)
    span = spring.current(berlin(2025, 3, 30, 1, 30))
    assert span is not None
    assert span.end - span.start == timedelta(hours=4)
    assert span.end.astimezone(BERLIN).hour == 6
    assert spring.is_open_at(berlin(2025, 3, 30, 5, 59))
    assert not spring.is_open_at(berlin(2025, 3, 30, 6, 0))
    autumn = window("0 1 * * *", "4h", "Europe/Berlin")
    span = autumn.current(berlin(2025, 10, 26, 1, 30))
    assert span is not None
    assert span.end.astimezone(BERLIN).hour == 4  # 01:00 CEST + 4 h = 04:00 CET
    assert not autumn.is_open_at(berlin(2025, 10, 26, 4, 0))


def test_berlin_start_inside_the_gap_every_minute_each_instant_once() -> None:
    w = window("0,30 2 * * *", "15m", "Europe/Berlin", min_left="5m")
    starts = w.starts_between(utc(2025, 3, 30, 0), utc(2025, 3, 30, 3))
    assert [s.astimezone(BERLIN).strftime("%H:%M") for s in starts] == ["03:00", "03:30"]


def test_berlin_hourly_window_on_the_fall_back_day_has_one_02_00() -> None:
    w = window("0 * * * *", "10m", "Europe/Berlin", min_left="5m")
    starts = w.starts_between(berlin(2025, 10, 26, 0), berlin(2025, 10, 26, 5))
    # 00, 01, 02 (CEST; the second 02:00 CET is not another start), 03, 04
    assert len(starts) == 5
    assert starts[2] == utc(2025, 10, 26, 0)


def test_berlin_not_enough_left_on_the_switch_day() -> None:
    w = window("0 1 * * *", "2h", "Europe/Berlin", min_left="30m")
    # 01:00 CET + 2h = 04:00 CEST; at 03:40 CEST 20 minutes are left
    t = berlin(2025, 3, 30, 3, 40)
    assert w.is_open_at(t)
    assert w.remaining(t) == timedelta(minutes=20)
    assert not w.allows_reboot(t)
    assert w.allows_reboot(berlin(2025, 3, 30, 3, 30))


# --- not enough window left -------------------------------------------------------------------------


def test_min_left_boundary() -> None:
    w = window("0 1 * * *", "4h", min_left="30m")
    assert w.allows_reboot(utc(2025, 6, 1, 4, 30))  # exactly 30 minutes left
    assert not w.allows_reboot(utc(2025, 6, 1, 4, 31))
    assert w.is_open_at(utc(2025, 6, 1, 4, 31))
    assert w.next_reboot_start(utc(2025, 6, 1, 4, 31)) == utc(2025, 6, 2, 1)
    assert w.next_reboot_start(utc(2025, 6, 1, 2)) == utc(2025, 6, 1, 2)


def test_default_min_left_is_30_minutes() -> None:
    w = parse_windows([{"name": "n", "start": "0 1 * * *", "duration": "1h"}], "p.yml")["n"]
    assert w.min_left == timedelta(minutes=30)
    assert w.timezone == "UTC"


# --- the policy file's windows: section ---------------------------------------------------------------

POLICY = """\
baselines:
  debian: {classifications: [security]}
windows:
  - name: nightly
    start: "0 1 * * *"
    duration: 4h
    timezone: Europe/Berlin
  - name: weekend
    start: "0 22 * * sat"
    duration: 1d
"""


def test_load_windows_from_policy_text() -> None:
    windows = load_windows(POLICY, "policy.yml")
    assert list(windows) == ["nightly", "weekend"]
    assert windows["nightly"].as_dict() == {
        "name": "nightly",
        "start": "0 1 * * *",
        "duration": "4h",
        "timezone": "Europe/Berlin",
        "min_left": "30m",
        "schedule": "0 1 * * *",
    }
    assert load_windows("baselines: {}\n", "p.yml") == {}
    assert load_windows("", "p.yml") == {}


def test_parse_windows_from_a_yaml_node_names_the_line() -> None:
    root = yaml.compose(POLICY.replace("Europe/Berlin", "Europe/Berln"), Loader=yaml.SafeLoader)
    assert isinstance(root, yaml.MappingNode)
    node = next(v for k, v in root.value if k.value == "windows")
    with pytest.raises(ConfigError) as exc:
        parse_windows(node, "/etc/patchctl/policy.yml")
    assert exc.value.message == (
        "policy file /etc/patchctl/policy.yml, line 7: windows[0] (nightly).timezone: "
        "unknown time zone 'Europe/Berln' (an IANA name like Europe/Berlin)"
    )


@pytest.mark.parametrize(
    ("replace", "with_", "expected"),
    [
        ('"0 1 * * *"', '"0 25 * * *"', "line 5: windows[0] (nightly).start: invalid cron expression '0 25 * * *'"),
        ("duration: 4h", "duration: 4x", "line 6: windows[0] (nightly).duration: not a duration: '4x'"),
        ("duration: 4h", "duration: 8d", "line 6: windows[0] (nightly).duration: must be between 1m and 7d, got 8d"),
        ("    duration: 4h\n", "", "line 4: windows[0] (nightly).duration: missing"),
        ("name: weekend", "name: nightly", "line 8: windows[1].name: window 'nightly' is defined twice"),
        ("name: weekend", "name: 'a b'", "line 8: windows[1].name: must be a name of letters"),
        ("    timezone: Europe/Berlin", "    tz: Europe/Berlin", "line 7: windows[0].tz: unknown field (known: name,"),
        ("    timezone: Europe/Berlin", "    min_left: 5h", "line 7: windows[0] (nightly).min_left: min_left 5h is"),
        ('"0 1 * * *"', "[0, 1]", "line 5: windows[0] (nightly).start: must be a cron expression in quotes"),
    ],
)
def test_window_errors_name_file_line_and_field(replace: str, with_: str, expected: str) -> None:
    text = POLICY.replace(replace, with_, 1)
    assert text != POLICY
    with pytest.raises(ConfigError) as exc:
        load_windows(text, "p.yml")
    assert exc.value.message.startswith(f"policy file p.yml, {expected}"), exc.value.message


def test_default_min_left_longer_than_a_short_window_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"windows\[0\] \(n\).duration: min_left 30m \(the default\) is longer"):
        parse_windows([{"name": "n", "start": "0 1 * * *", "duration": "20m"}], "p.yml")


def test_windows_must_be_a_list_of_mappings() -> None:
    with pytest.raises(ConfigError, match=r"line 1: windows: must be a list"):
        load_windows("windows: {nightly: 1}\n", "p.yml")
    with pytest.raises(ConfigError, match=r"line 2: windows\[0\]: must be a mapping"):
        load_windows("windows:\n  - nightly\n", "p.yml")
    with pytest.raises(ConfigError, match=r"policy file p.yml: windows\[0\] \(n\).start: missing"):
        parse_windows([{"name": "n", "duration": "1h"}], "p.yml")


def test_hosts_by_window() -> None:
    used = hosts_by_window({"srv-02": "nightly", "srv-01": "nightly", "cli-01": None, "db": "weekly"})
    assert used == {"nightly": ["srv-01", "srv-02"], "weekly": ["db"]}
    assert undefined_windows({"nightly": window("0 1 * * *", "1h")}, list(used)) == ["weekly"]


def test_policy_file_carries_its_windows_and_their_errors() -> None:
    from patchctl.rules.policy import parse_policy

    policy = parse_policy(POLICY, "policy.yml")
    assert sorted(policy.windows) == ["nightly", "weekend"]
    assert policy.windows["nightly"].timezone == "Europe/Berlin"
    assert parse_policy("baselines: {debian: {}}\n", "p.yml").windows == {}
    with pytest.raises(ConfigError) as exc:
        parse_policy(POLICY.replace('"0 1 * * *"', '"0 1 * *"'), "/etc/patchctl/policy.yml")
    assert exc.value.message.startswith(
        "policy file /etc/patchctl/policy.yml, line 5: windows[0] (nightly).start: invalid cron expression"
    )


# --- answers whole (found by mutation testing: each case below was seen failing by its mutant) ----


@pytest.fixture
def machine_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set the process's own time zone (TZ) for one test, restored after."""

    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_times_are_utc_whatever_the_machine_zone(machine_zone: Callable[[str], None]) -> None:
    """Every instant is computed in the window's zone and returned in UTC, never in the machine's
    own zone. Seen failing with ``astimezone(None)`` for ``astimezone(UTC)`` in ``_utc`` and
    ``local_start``, and for ``astimezone(tz)`` in ``starts_between`` (the local dates searched
    taken in the machine's zone: a start 25 hours of offset away is then missed)."""
    machine_zone("Pacific/Kiritimati")  # UTC+14
    instant, how = local_start(date(2025, 6, 1), 1, 0, BERLIN)
    assert (instant, how) == (utc(2025, 5, 31, 23), "")
    assert instant.tzinfo is UTC
    reboot_at = window("0 1 * * *", "4h").next_reboot_start(berlin(2025, 6, 1, 4))
    assert reboot_at == utc(2025, 6, 1, 2)
    assert reboot_at is not None and reboot_at.tzinfo is UTC
    # 23:45 on 31 May in Pago Pago (UTC-11) is 10:45 UTC on 1 June, 00:45 on 2 June in Kiritimati
    pago = window("45 23 * * *", "1h", "Pacific/Pago_Pago")
    assert pago.starts_between(utc(2025, 6, 1, 10, 30), utc(2025, 6, 1, 11)) == [utc(2025, 6, 1, 10, 45)]
    machine_zone("Pacific/Pago_Pago")
    # 00:15 on 2 June in Kiritimati is 10:15 UTC on 1 June, 23:15 on 31 May in Pago Pago
    kiri = window("15 0 * * *", "1h", "Pacific/Kiritimati")
    assert kiri.starts_between(utc(2025, 6, 1, 10), utc(2025, 6, 1, 10, 30)) == [utc(2025, 6, 1, 10, 15)]


def test_naive_times_are_refused_with_their_reason() -> None:
    """Seen failing with the message dropped or changed."""
    with pytest.raises(ValueError) as exc:
        window("0 1 * * *", "4h").is_open_at(datetime(2025, 6, 1, 2))
    assert str(exc.value) == "a naive datetime: give maintenance rules aware times"


def test_next_starts_three_by_default_and_one_microsecond_after() -> None:
    """Seen failing with a default of 4 and with the search starting 2 microseconds after."""
    w = window("0 1 * * *", "1h")
    assert w.next_starts(utc(2025, 6, 1, 0)) == [utc(2025, 6, 1, 1), utc(2025, 6, 2, 1), utc(2025, 6, 3, 1)]
    assert w.next_starts(utc(2025, 6, 1, 1) - timedelta(microseconds=1), 1) == [utc(2025, 6, 1, 1)]


def test_a_window_that_never_closes_is_extended_16_times() -> None:
    """Every minute for 2 minutes never closes: the span found at 01:00 (from 00:59) is extended
    one start at a time, 16 times (01:02 to 01:18), and answers. Seen failing with 17."""
    w = window("* * * * *", "2m", min_left="1m")
    assert w.current(utc(2025, 6, 1, 1)) == Occurrence(utc(2025, 6, 1, 0, 59), utc(2025, 6, 1, 1, 18))


def test_duration_and_min_left_bounds_are_inclusive() -> None:
    """1 minute and 7 days are allowed durations, ``min_left`` equal to the duration is allowed,
    and a given ``min_left`` is kept. Seen failing with ``<`` for ``<=`` at either bound, with 2
    minutes for 1, with ``>=`` for ``>`` and with ``min_left`` dropped from the window."""
    assert window("0 1 * * *", "1m", min_left="1m").duration == timedelta(minutes=1)
    assert window("0 1 * * *", "7d").duration == timedelta(days=7)
    assert window("0 1 * * *", "4h", min_left="4h").min_left == timedelta(hours=4)
    assert window("0 1 * * *", "4h", min_left="1h").as_dict()["min_left"] == "1h"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n", "line 1: (top level): must be a mapping"),
        ("windows:\n  - nightly\n", "line 2: windows[0]: must be a mapping (name, start, duration, timezone)"),
        ('windows:\n  - start: "0 1 * * *"\n    duration: 1h\n', "line 2: windows[0].name: missing"),
        (
            'windows:\n  - name: n\n    start: "0 1 * * *"\n    duration: 1h\n    timezone: " "\n',
            "line 5: windows[0] (n).timezone: must be an IANA time zone name, got ' '",
        ),
        (
            'windows:\n  - name: n\n    start: "0 1 * * *"\n    duration: 1h\n    timezone: 5\n',
            "line 5: windows[0] (n).timezone: must be an IANA time zone name, got 5",
        ),
    ],
)
def test_window_errors_whole(text: str, expected: str) -> None:
    """The whole message, line and field included. Seen failing with the node, the field or the
    problem dropped or changed, the expected shape of an entry dropped, and ``and`` for ``or``
    in the time zone check (a blank name then reported as an unknown zone)."""
    with pytest.raises(ConfigError) as exc:
        load_windows(text, "p.yml")
    assert exc.value.message == f"policy file p.yml, {expected}"
