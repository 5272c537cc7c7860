"""Days named by an RFC 5545 recurrence rule, optionally shifted by whole days: the calendar forms
of a maintenance window (and of a freeze) beside the 5-field cron start.

The rule is read and expanded by python-dateutil's :mod:`dateutil.rrule`, never by a parser of
our own; patchctl only checks that the rule names *days* (the time of day is the window's
``start: "22:00"``, so every DST rule of :mod:`patchctl.rules.maintenance` applies unchanged)::

    rrule: "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2"    # the second Tuesday of every month
    rrule: "FREQ=MONTHLY;BYDAY=2SA"              # the second Saturday
    after: patch-tuesday                         # a named rule (see ANCHORS) ...
    offset_days: 3                               # ... shifted by 3 days (negative: before)

An offset moves each day of the rule by whole calendar days, across month and year ends: Patch
Tuesday + 6 in a month whose second Tuesday is the 14th is the 20th; + 20 is in the next month.
``dtstart`` (a date, default 2000-01-01) is where the rule's count of intervals begins
(``FREQ=WEEKLY;INTERVAL=2`` needs it to say which weeks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from dateutil.rrule import rrule, rrulestr

# Named rules an ``after:`` may give. Patch Tuesday: the second Tuesday of every month.
ANCHORS = {"patch-tuesday": "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2"}
DEFAULT_DTSTART = date(2000, 1, 1)
MAX_OFFSET_DAYS = 366
_DAY_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_TIME_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND")


def check_rule(text: str) -> str:
    """The rule's text, normalised (no ``RRULE:`` prefix, upper case); ValueError says what is
    wrong (dateutil's own message for a rule it cannot read)."""
    raw = str(text).strip()
    if raw.upper().startswith("RRULE:"):
        raw = raw[6:]
    raw = raw.upper()
    if not raw:
        raise ValueError("empty rule")
    parts = {}
    for part in raw.split(";"):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"cannot read {part!r} (NAME=VALUE parts separated by ';')")
        parts[key.strip()] = value.strip()
    freq = parts.get("FREQ")
    if freq not in _DAY_FREQS:
        raise ValueError(f"FREQ must be one of {', '.join(_DAY_FREQS)} (the time of day is start:), got {freq!r}")
    for name in _TIME_PARTS:
        if name in parts:
            raise ValueError(f"{name} is not allowed: the time of day is the window's start:")
    if "DTSTART" in parts:
        raise ValueError("give the first day as dtstart:, not inside the rule")
    try:
        rrulestr(raw, dtstart=datetime.combine(DEFAULT_DTSTART, time()))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    return raw


@dataclass(frozen=True)
class Recurrence:
    """Days: those of an RFC 5545 rule, each moved by ``offset_days``."""

    rule: str  # as check_rule returns it
    offset_days: int = 0
    dtstart: date = DEFAULT_DTSTART
    after: str | None = None  # the anchor's name when the rule came from ``after:``
    _rrule: rrule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parsed = rrulestr(self.rule, dtstart=datetime.combine(self.dtstart, time()), cache=True)
        assert isinstance(parsed, rrule)
        object.__setattr__(self, "_rrule", parsed)

    def days_between(self, first: date, last: date) -> list[date]:
        """The days ``first <= day <= last`` (in order) that the rule, shifted, names."""
        shift = timedelta(days=self.offset_days)
        begin = datetime.combine(first - shift, time())
        end = datetime.combine(last - shift, time())
        return [d.date() + shift for d in self._rrule.between(begin, end, inc=True)]

    def describe(self) -> str:
        """``patch-tuesday + 3 days``, ``FREQ=MONTHLY;BYDAY=2SA``, ``... - 1 day``."""
        base = self.after or self.rule
        if not self.offset_days:
            return base
        n = abs(self.offset_days)
        return f"{base} {'+' if self.offset_days > 0 else '-'} {n} day{'s' if n != 1 else ''}"


def recurrence(rule: str | None, after: str | None, offset_days: int = 0, dtstart: date | None = None) -> Recurrence:
    """A :class:`Recurrence` from a window's ``rrule:`` or ``after:`` (exactly one of them);
    ValueError names what is wrong."""
    if (rule is None) == (after is None):
        raise ValueError("give either rrule: or after:")
    if after is not None:
        if after not in ANCHORS:
            raise ValueError(f"unknown day {after!r} (known: {', '.join(ANCHORS)})")
        text = ANCHORS[after]
    else:
        assert rule is not None
        text = check_rule(rule)
    if not -MAX_OFFSET_DAYS <= offset_days <= MAX_OFFSET_DAYS:
        raise ValueError(f"offset_days must be between -{MAX_OFFSET_DAYS} and {MAX_OFFSET_DAYS}, got {offset_days}")
    rec = Recurrence(text, offset_days, dtstart or DEFAULT_DTSTART, after)
    probe = (dtstart or DEFAULT_DTSTART) + timedelta(days=offset_days)
    if not rec.days_between(probe, probe + timedelta(days=366 * 28 + 7)):
        raise ValueError(f"{rec.describe()!r} names no day within 28 years of its first day")
    return rec


def parse_time_of_day(value: object) -> tuple[int, int]:
    """``"22:00"`` -> (22, 0); ValueError otherwise. (YAML 1.1 reads an unquoted 22:00 as the
    sexagesimal integer 1320: that is taken as minutes after midnight.)"""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1440:
        return divmod(value, 60)
    text = str(value).strip()
    hh, sep, mm = text.partition(":")
    if sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and 0 <= int(hh) <= 23 and 0 <= int(mm) <= 59:
        return int(hh), int(mm)
    raise ValueError(f'must be a time of day like "22:00", got {value!r}')
