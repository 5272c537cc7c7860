"""Time spans as the policy file writes them (a window's duration and min_left)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from patchctl.rules.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [(90, 90), ("90", 90), ("90m", 90), ("4h", 240), ("1h30m", 90), ("2d", 2880), ("1d2h3m", 1563), ("45min", 45)],
)
def test_durations(raw: object, minutes: int) -> None:
    assert parse_duration(raw) == timedelta(minutes=minutes)


@pytest.mark.parametrize("raw", ["", "4x", "h", "1.5h", True, "m30"])
def test_bad_durations(raw: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(raw)


def test_format_duration() -> None:
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(hours=4)) == "4h"
    assert format_duration(timedelta(days=2, hours=3)) == "2d3h"
    assert format_duration(timedelta(seconds=59)) == "0m"
    assert format_duration(timedelta(seconds=-5)) == "0m"


@pytest.mark.parametrize("value", [-1_439_999_998_561, 10**13, "999999999999d"])
def test_a_span_too_large_for_a_timedelta_is_a_value_error(value: object) -> None:
    """Found by the hostile-input corpus: ``duration: -1439999998561`` raised OverflowError out of
    timedelta, a traceback instead of the policy error. Seen failing with the OverflowError branch
    of ``parse_duration`` removed."""
    with pytest.raises(ValueError, match="out of range"):
        parse_duration(value)
