"""Time spans as the policy file writes them: ``90`` (minutes), ``90m``, ``4h``, ``1h30m``, ``2d``.

:func:`parse_duration` reads one (a window's ``duration`` and ``min_left``), :func:`format_duration`
writes one back (in ``patchctl windows`` and in the reasons of reboot decisions).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?:in)?)?$")


def parse_duration(value: Any) -> timedelta:
    """``90`` (minutes), ``"90m"``, ``"4h"``, ``"1h30m"``, ``"2d"``; ValueError otherwise (also for
    a span too large for a timedelta, which raises OverflowError)."""
    try:
        return _parse_duration(value)
    except OverflowError:
        raise ValueError(f"not a duration: {value!r} (out of range)") from None


def _parse_duration(value: Any) -> timedelta:
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int):
        return timedelta(minutes=value)
    text = str(value).strip().lower().replace(" ", "")
    if text.isdigit():
        return timedelta(minutes=int(text))
    m = _DURATION.match(text)
    if not text or m is None or not any(m.groupdict().values()):
        raise ValueError(f"not a duration: {value!r} (e.g. 90m, 4h, 1h30m, 2d)")
    return timedelta(days=int(m["d"] or 0), hours=int(m["h"] or 0), minutes=int(m["m"] or 0))


def format_duration(delta: timedelta) -> str:
    """``4h``, ``1h30m``, ``45m``, ``2d3h`` (whole minutes, rounded down)."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    out = (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{mins}m" if mins else "")
    return out or "0m"
