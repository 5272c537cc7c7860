"""Cron expressions, as maintenance windows write their start: parsing and matching days.

The dialect is the classic one (Vixie cron / POSIX): ``*``, lists ``1,15``, ranges ``1-5``,
steps ``*/15`` and ``10-50/20``, month and weekday names (``jan``, ``mon``), weekday ``0`` or
``7`` for Sunday, and ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``. When both
day-of-month and day-of-week are restricted a day matches if *either* matches (as in cron).

A :class:`Cron` knows which days match and at which (hour, minute) of such a day it fires; which
instant that wall-clock time names in a time zone is the window's business
(:func:`patchctl.rules.maintenance.local_start`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# (field name, lowest, highest, names for lowest..)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_ATOM = re.compile(r"^(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression (sets of allowed values per field)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def times(self) -> Iterator[tuple[int, int]]:
        """(hour, minute) of every start in a matching day, in order."""
        for h in self.hours:
            for m in self.minutes:
                yield h, m


def _value(token: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if token.isdigit():
        number = int(token)
    elif token in names:
        number = names.index(token) + low
    else:
        raise ValueError(f"{name}: {token!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
    if not low <= number <= high:
        raise ValueError(f"{name}: {number} is out of range {low}-{high}")
    return number


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> tuple[set[int], bool]:
    """The values a field allows and whether it is restricted (not a bare ``*``)."""
    out: set[int] = set()
    for part in text.split(","):
        m = _ATOM.match(part)
        if m is None:
            raise ValueError(f"{name}: cannot read {part!r}")
        step = int(m["step"]) if m["step"] is not None else 1
        if step < 1:
            raise ValueError(f"{name}: step must be at least 1 in {part!r}")
        rng = m["range"]
        if rng == "*":
            first, last = low, high
        elif "-" in rng:
            a, b = rng.split("-", 1)
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise ValueError(f"{name}: range {part!r} runs backwards")
        else:
            first = _value(rng, name, low, high, names)
            last = high if m["step"] is not None else first
        out.update(range(first, last + 1, step))
    return out, text != "*"


def parse_cron(text: str) -> Cron:
    """Parse a 5-field cron expression (or an ``@daily``-style macro); ValueError says what is wrong."""
    raw = " ".join(str(text).split()).lower()
    expanded = _MACROS.get(raw, raw)
    if expanded.startswith("@"):
        raise ValueError(f"unknown macro {raw!r} (known: {', '.join(_MACROS)})")
    parts = expanded.split(" ")
    if len(parts) != 5:
        raise ValueError(f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}")
    values: list[set[int]] = []
    restricted: list[bool] = []
    for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        allowed, restr = _field(part, name, low, high, names)
        values.append(allowed)
        restricted.append(restr)
    weekdays = {d % 7 for d in values[4]}
    cron = Cron(
        text=raw,
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=frozenset(values[2]),
        months=frozenset(values[3]),
        weekdays=frozenset(weekdays),
        days_restricted=restricted[2],
        weekdays_restricted=restricted[4],
    )
    if not _ever_matches(cron):
        raise ValueError(f"{raw!r} never matches a real date")
    return cron


def _ever_matches(cron: Cron) -> bool:
    # Within 28 years every (month, day, weekday) combination comes round, 29 February included.
    day = date(2000, 1, 1)
    for _ in range(366 * 28 + 7):
        if cron.matches_day(day):
            return True
        day += timedelta(days=1)
    return False
