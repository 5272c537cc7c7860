"""How every human-readable rendering (text tables and lines, the HTML report) writes a time, an
age and a state: one function each, so the terminal and the HTML page say them alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def short_time(value: datetime | None) -> str:
    """``2025-03-14 09:00 UTC`` (naive datetimes are taken as UTC); ``-`` for none."""
    if value is None:
        return "-"
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def age_text(age: timedelta | None) -> str:
    """``5 h`` below two days, else ``3.5 d``; ``-`` for none."""
    if age is None:
        return "-"
    hours = age.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} d"


def state_word(state: str) -> str:
    """A state name as words: ``reboot_pending`` -> ``reboot pending``."""
    return state.replace("_", " ")
