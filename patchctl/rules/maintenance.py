"""Maintenance windows, as pure rules: no I/O, no click, no store.

A **window** is a name, a recurring start (a 5-field cron expression read in the window's time
zone), a duration and an IANA time zone. It is written in the policy file's ``windows:`` list::

    windows:
      - name: lab-nightly
        start: "0 1 * * *"        # minute hour day-of-month month day-of-week, local time
        duration: 4h              # 90m, 4h, 1h30m, 2d, or a number of minutes
        timezone: Europe/Berlin   # IANA name; default UTC
        min_left: 30m             # a reboot starts only with this much of the window left

Or, for calendars a cron expression cannot write ("the second Tuesday": cron matches day-of-month
*or* day-of-week), the days of an RFC 5545 recurrence, or of a named day shifted by whole days,
at one wall-clock time (:mod:`patchctl.rules.recurrence`, expanded by python-dateutil)::

      - name: second-tuesday
        rrule: "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2"
        start: "22:00"            # the time of day; DST as below
        duration: 4h
        timezone: America/New_York
      - name: patch-tuesday-plus-3
        after: patch-tuesday      # the second Tuesday of the month ...
        offset_days: 3            # ... + 3 days (across month and year ends; negative: before)
        start: "22:00"
        duration: 6h

The start is read by :mod:`patchctl.rules.cron` (the classic Vixie cron / POSIX dialect), the
durations by :mod:`patchctl.rules.durations`, the file with its line numbers by
:mod:`patchctl.rules.yamldoc`.

Daylight-saving time (tested on the Europe/Berlin and America/New_York switch days, for the cron
and the recurrence forms alike: both name a local day and a wall-clock time, and
:func:`local_start` alone turns that into an instant):

- The start is a *wall-clock* time in the window's zone, so a ``0 1 * * *`` window starts at
  01:00 local time in winter and in summer.
- A start that does not exist on the spring-forward day (02:30 on the last Sunday of March in
  Berlin) is moved forward by the gap: the window starts at 03:30 CEST (the instant that
  "02:30 in winter time" names, PEP 495 ``fold=0``). The window is not skipped.
- A start that occurs twice on the fall-back day (02:30 on the last Sunday of October) starts
  the window once, at the first occurrence (02:30 CEST, ``fold=0``).
- The duration is elapsed time: a 4-hour window lasts 4 hours also on switch days; on the
  wall clock it then ends an hour later (spring) or earlier (fall) than usual.

Windows may span midnight (``start: "0 22 * * *"``, ``duration: 6h``) or last several days (up
to 7). Occurrences that overlap (an hourly start with a 2-hour duration) form one open span.

Whether a host reboots, and whether its window lets it now, is the reboot policy
(:mod:`patchctl.rules.reboot_policy`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from patchctl.rules.cron import Cron, parse_cron
from patchctl.rules.durations import format_duration, parse_duration
from patchctl.rules.recurrence import DEFAULT_DTSTART, Recurrence, parse_time_of_day, recurrence
from patchctl.rules.yamldoc import YamlDoc

# --- windows ----------------------------------------------------------------------------------

MAX_DURATION = timedelta(days=7)
DEFAULT_MIN_LEFT = timedelta(minutes=30)


@dataclass(frozen=True)
class Occurrence:
    """One span during which a window is open: ``start <= t < end`` (aware UTC datetimes)."""

    start: datetime
    end: datetime

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("a naive datetime: give maintenance rules aware times")
    return t.astimezone(UTC)


def local_start(day: date, hour: int, minute: int, tz: ZoneInfo) -> tuple[datetime, str]:
    """The instant (UTC) a wall-clock start on ``day`` names in ``tz``, and what DST did to it:
    ``""`` (nothing), ``"shifted"`` (the time does not exist: moved forward by the gap) or
    ``"ambiguous"`` (the time occurs twice: the first one is taken)."""
    wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)  # fold=0
    instant = wall.astimezone(UTC)
    back = instant.astimezone(tz)
    if (back.hour, back.minute, back.date()) != (hour, minute, day):
        return instant, "shifted"
    if wall.replace(fold=1).utcoffset() != wall.utcoffset():
        return instant, "ambiguous"
    return instant, ""


@dataclass(frozen=True)
class Window:
    """A named maintenance window. Every time given to or returned by it is an aware datetime."""

    name: str
    cron: Cron | None  # a cron start, or
    duration: timedelta
    timezone: str = "UTC"
    min_left: timedelta = DEFAULT_MIN_LEFT
    # ... the days of a recurrence (rrule: or after:, with offset_days) at one time of day
    recurrence: Recurrence | None = None
    at: tuple[int, int] = (0, 0)

    def days_and_times(self, first: date, last: date) -> Iterator[tuple[date, int, int]]:
        """(local day, hour, minute) of every start on the days ``first..last``, in order."""
        if self.recurrence is not None:
            for day in self.recurrence.days_between(first, last):
                yield day, self.at[0], self.at[1]
            return
        assert self.cron is not None
        day = first
        while day <= last:
            if self.cron.matches_day(day):
                for hour, minute in self.cron.times():
                    yield day, hour, minute
            day += timedelta(days=1)

    @property
    def schedule(self) -> str:
        """The start as written: the cron expression, or ``patch-tuesday + 3 days at 22:00``."""
        if self.recurrence is not None:
            return f"{self.recurrence.describe()} at {self.at[0]:02d}:{self.at[1]:02d}"
        assert self.cron is not None
        return self.cron.text

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def starts_between(self, begin: datetime, end: datetime) -> list[datetime]:
        """Every start (UTC) with ``begin <= start < end``, in order, each instant once."""
        begin, end = _utc(begin), _utc(end)
        tz = self.tz
        # Local dates whose starts can land in [begin, end): zone offsets stay within a day.
        day = begin.astimezone(tz).date() - timedelta(days=1)
        last = end.astimezone(tz).date() + timedelta(days=1)
        out: set[datetime] = set()
        for local_day, hour, minute in self.days_and_times(day, last):
            instant, _ = local_start(local_day, hour, minute, tz)
            if begin <= instant < end:
                out.add(instant)
        return sorted(out)

    def occurrences_between(self, begin: datetime, end: datetime) -> list[Occurrence]:
        return [Occurrence(s, s + self.duration) for s in self.starts_between(begin, end)]

    def next_starts(self, after: datetime, count: int = 3) -> list[datetime]:
        """The next ``count`` starts strictly after ``after`` (searching up to 28 years ahead)."""
        after = _utc(after)
        out: list[datetime] = []
        begin = after + timedelta(microseconds=1)
        horizon = after + timedelta(days=366 * 28 + 7)
        step = timedelta(days=31)
        while len(out) < count and begin < horizon:
            chunk_end = min(begin + step, horizon)
            out.extend(self.starts_between(begin, chunk_end))
            begin = chunk_end
        return out[:count]

    def current(self, t: datetime) -> Occurrence | None:
        """The open span containing ``t`` (overlapping occurrences merged), or None when closed."""
        t = _utc(t)
        spans = [o for o in self.occurrences_between(t - self.duration, t + timedelta(microseconds=1)) if o.contains(t)]
        if not spans:
            return None
        start = min(o.start for o in spans)
        end = max(o.end for o in spans)
        # Occurrences that start before this span ends extend it (a chain of overlapping ones).
        for _ in range(16):  # bounded: a window that never closes still answers
            later = [s for s in self.starts_between(t, end) if s + self.duration > end]
            if not later:
                break
            end = max(s + self.duration for s in later)
        return Occurrence(start, end)

    def is_open_at(self, t: datetime) -> bool:
        return self.current(t) is not None

    def remaining(self, t: datetime) -> timedelta:
        """How long the window stays open after ``t`` (zero when it is closed)."""
        span = self.current(t)
        return span.end - _utc(t) if span is not None else timedelta(0)

    def allows_reboot(self, t: datetime) -> bool:
        """Open at ``t`` with at least ``min_left`` remaining."""
        span = self.current(t)
        return span is not None and span.end - _utc(t) >= self.min_left

    def next_reboot_start(self, t: datetime) -> datetime | None:
        """The first moment at or after ``t`` at which :meth:`allows_reboot` holds."""
        if self.allows_reboot(t):
            return _utc(t)
        nxt = self.next_starts(t, 1)
        return nxt[0] if nxt else None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.recurrence is not None:
            rec = self.recurrence
            out["start"] = f"{self.at[0]:02d}:{self.at[1]:02d}"
            out["after" if rec.after else "rrule"] = rec.after or rec.rule
            out["offset_days"] = rec.offset_days
            if rec.dtstart != DEFAULT_DTSTART:
                out["dtstart"] = rec.dtstart.isoformat()
        else:
            assert self.cron is not None
            out["start"] = self.cron.text
        out.update(
            {
                "duration": format_duration(self.duration),
                "timezone": self.timezone,
                "min_left": format_duration(self.min_left),
                "schedule": self.schedule,
            }
        )
        return out


# --- parsing the policy file's windows: section -------------------------------------------------

_WINDOW_KEYS = ("name", "start", "duration", "timezone", "min_left", "rrule", "after", "offset_days", "dtstart")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_windows(data: Any, source_file: str) -> dict[str, Window]:
    """The policy file's ``windows:`` value, validated: a list of windows, by name.

    ``data`` is either the YAML node of that value (as the policy loader composes it: errors
    then name the line) or the already-loaded Python list (errors name the file and field).
    ConfigError names ``source_file``, the line and the field, e.g.
    ``policy file p.yml, line 4: windows[0] (nightly).timezone: unknown time zone 'Europe/Berln'``.
    """
    return _windows(YamlDoc("", source_file), data)


def load_windows(text: str, source_file: str) -> dict[str, Window]:
    """The ``windows:`` of a policy file's text (none when the file has no such key)."""
    doc = YamlDoc(text, source_file)
    root = doc.root()
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise doc.error(root, "(top level)", "must be a mapping")
    for key, value in root.value:
        if doc.value(key) == "windows":
            return _windows(doc, value)
    return {}


def _windows(doc: YamlDoc, data: Any) -> dict[str, Window]:
    entries = doc.items(data)
    if entries is None:
        raise doc.error(data, "windows", "must be a list of windows (name, start, duration, timezone)")
    out: dict[str, Window] = {}
    for i, entry in enumerate(entries):
        path = f"windows[{i}]"
        found = doc.mapping(entry, path, _WINDOW_KEYS, "a mapping (name, start, duration, timezone)")
        fields = {key: value for key, (_key_node, value) in found.items()}
        if "name" not in fields:
            raise doc.error(entry, f"{path}.name", "missing")
        name = doc.value(fields["name"])
        if not isinstance(name, str) or not _NAME.match(name):
            raise doc.error(
                fields["name"], f"{path}.name", f"must be a name of letters, digits, '.', '_' or '-', got {name!r}"
            )
        if name in out:
            raise doc.error(fields["name"], f"{path}.name", f"window {name!r} is defined twice")
        path = f"{path} ({name})"
        for required in ("start", "duration"):
            if required not in fields:
                raise doc.error(entry, f"{path}.{required}", "missing")
        window = _window(doc, name, fields, path)
        out[name] = window
    return out


def _window(doc: YamlDoc, name: str, fields: dict[str, Any], path: str) -> Window:
    cron: Cron | None = None
    rec: Recurrence | None = None
    time_of_day = (0, 0)
    start = doc.value(fields["start"])
    if "rrule" in fields or "after" in fields:
        rec = parse_recurrence(doc, fields, path)
        try:
            time_of_day = parse_time_of_day(start)
        except ValueError as exc:
            raise doc.error(fields["start"], f"{path}.start", str(exc)) from None
    else:
        for key in ("offset_days", "dtstart"):
            if key in fields:
                raise doc.error(fields[key], f"{path}.{key}", "only with rrule: or after: (a cron start has no days)")
        if not isinstance(start, str):
            raise doc.error(fields["start"], f"{path}.start", f"must be a cron expression in quotes, got {start!r}")
        try:
            cron = parse_cron(start)
        except ValueError as exc:
            raise doc.error(fields["start"], f"{path}.start", f"invalid cron expression {start!r}: {exc}") from None
    durations: dict[str, timedelta] = {}
    for key, default in (("duration", None), ("min_left", DEFAULT_MIN_LEFT)):
        if key not in fields:
            assert default is not None
            durations[key] = default
            continue
        raw = doc.value(fields[key])
        try:
            durations[key] = parse_duration(raw)
        except ValueError as exc:
            raise doc.error(fields[key], f"{path}.{key}", str(exc)) from None
    duration, min_left = durations["duration"], durations["min_left"]
    if not timedelta(minutes=1) <= duration <= MAX_DURATION:
        raise doc.error(
            fields["duration"], f"{path}.duration", f"must be between 1m and 7d, got {format_duration(duration)}"
        )
    if min_left > duration:
        at = "min_left" if "min_left" in fields else "duration"
        by_default = "" if "min_left" in fields else " (the default)"
        raise doc.error(
            fields[at],
            f"{path}.{at}",
            f"min_left {format_duration(min_left)}{by_default} is longer than the window "
            f"({format_duration(duration)}): no reboot could ever start",
        )
    tzname = "UTC"
    if "timezone" in fields:
        raw_tz = doc.value(fields["timezone"])
        if not isinstance(raw_tz, str) or not raw_tz.strip():
            raise doc.error(fields["timezone"], f"{path}.timezone", f"must be an IANA time zone name, got {raw_tz!r}")
        tzname = raw_tz.strip()
        try:
            ZoneInfo(tzname)
        except (ZoneInfoNotFoundError, ValueError):
            raise doc.error(
                fields["timezone"],
                f"{path}.timezone",
                f"unknown time zone {tzname!r} (an IANA name like Europe/Berlin)",
            ) from None
    return Window(
        name=name, cron=cron, duration=duration, timezone=tzname, min_left=min_left, recurrence=rec, at=time_of_day
    )


def parse_recurrence(doc: YamlDoc, fields: dict[str, Any], path: str) -> Recurrence:
    """The ``rrule:`` or ``after:`` of a window or freeze with its ``offset_days`` and ``dtstart``;
    errors name the field."""
    if "rrule" in fields and "after" in fields:
        raise doc.error(fields["after"], f"{path}.after", "give either rrule: or after:, not both")
    offset = doc.int_value(fields["offset_days"], f"{path}.offset_days", -366, 366) if "offset_days" in fields else 0
    first: date | None = None
    if "dtstart" in fields:
        raw = doc.value(fields["dtstart"])
        try:
            first = raw if isinstance(raw, date) and not isinstance(raw, datetime) else date.fromisoformat(str(raw))
        except ValueError:
            raise doc.error(
                fields["dtstart"], f"{path}.dtstart", f"must be a date like 2026-01-05, got {raw!r}"
            ) from None
    key = "rrule" if "rrule" in fields else "after"
    raw_rule = doc.value(fields[key])
    if not isinstance(raw_rule, str):
        raise doc.error(fields[key], f"{path}.{key}", f"must be a string, got {raw_rule!r}")
    try:
        if key == "rrule":
            return recurrence(raw_rule, None, offset, first)
        return recurrence(None, raw_rule.strip(), offset, first)
    except ValueError as exc:
        what = f"invalid recurrence {raw_rule!r}: {exc}" if key == "rrule" else str(exc)
        raise doc.error(fields[key], f"{path}.{key}", what) from None


def hosts_by_window(patch_windows: Mapping[str, str | None]) -> dict[str, list[str]]:
    """Window name -> the hosts that use it (hosts without a window are left out)."""
    out: dict[str, list[str]] = {}
    for host, name in sorted(patch_windows.items()):
        if name:
            out.setdefault(str(name), []).append(host)
    return out


def undefined_windows(windows: Mapping[str, Window], used: Sequence[str]) -> list[str]:
    return sorted({u for u in used if u and u not in windows})
