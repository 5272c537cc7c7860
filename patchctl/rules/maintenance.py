"""Maintenance windows and the reboot policy, as pure rules: no I/O, no click, no store.

A **window** is a name, a recurring start (a 5-field cron expression read in the window's time
zone), a duration and an IANA time zone. It is written in the policy file's ``windows:`` list::

    windows:
      - name: lab-nightly
        start: "0 1 * * *"        # minute hour day-of-month month day-of-week, local time
        duration: 4h              # 90m, 4h, 1h30m, 2d, or a number of minutes
        timezone: Europe/Berlin   # IANA name; default UTC
        min_left: 30m             # a reboot starts only with this much of the window left

The cron dialect is the classic one (Vixie cron / POSIX): ``*``, lists ``1,15``, ranges
``1-5``, steps ``*/15`` and ``10-50/20``, month and weekday names (``jan``, ``mon``), weekday
``0`` or ``7`` for Sunday, and ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``,
``@yearly``. When both day-of-month and day-of-week are restricted a day matches if *either*
matches (as in cron).

Daylight-saving time (tested on the Europe/Berlin switch days):

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

The **reboot policy** (:func:`reboot_mode`, :func:`reboot_decision`): by ``patch_role`` a
``server`` reboots ``if_required`` and a ``client`` ``never``; the host variable
``patch_reboot`` (``always``, ``if_required``, ``never``) overrides it. *When* is always the
window's business: a host reboots automatically only while its window is open with at least
``min_left`` of it remaining; a host without a window is never rebooted automatically.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from patchctl.rules.yamldoc import YamlDoc

# --- cron -------------------------------------------------------------------------------------

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


# --- durations --------------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?:in)?)?$")


def parse_duration(value: Any) -> timedelta:
    """``90`` (minutes), ``"90m"``, ``"4h"``, ``"1h30m"``, ``"2d"``; ValueError otherwise."""
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
    cron: Cron
    duration: timedelta
    timezone: str = "UTC"
    min_left: timedelta = DEFAULT_MIN_LEFT

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
        while day <= last:
            if self.cron.matches_day(day):
                for hour, minute in self.cron.times():
                    instant, _ = local_start(day, hour, minute, tz)
                    if begin <= instant < end:
                        out.add(instant)
            day += timedelta(days=1)
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
        return {
            "name": self.name,
            "start": self.cron.text,
            "duration": format_duration(self.duration),
            "timezone": self.timezone,
            "min_left": format_duration(self.min_left),
        }


# --- parsing the policy file's windows: section -------------------------------------------------

_WINDOW_KEYS = ("name", "start", "duration", "timezone", "min_left")
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
    start = doc.value(fields["start"])
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
    return Window(name=name, cron=cron, duration=duration, timezone=tzname, min_left=min_left)


# --- the reboot policy --------------------------------------------------------------------------

REBOOT_ALWAYS = "always"
REBOOT_IF_REQUIRED = "if_required"
REBOOT_NEVER = "never"
REBOOT_MODES = (REBOOT_ALWAYS, REBOOT_IF_REQUIRED, REBOOT_NEVER)
ROLE_MODES = {"server": REBOOT_IF_REQUIRED, "client": REBOOT_NEVER}

# What to do about a host's reboot now.
ACTION_REBOOT = "reboot"
ACTION_PENDING = "pending"  # wanted, but not now (window closed, not enough left, or never automatic)
ACTION_NONE = "none"  # nothing to do


def reboot_mode(patch_role: str | None, override: str | None = None) -> str:
    """``always`` / ``if_required`` / ``never``: the host variable ``patch_reboot`` if set, else by
    role (server: ``if_required``, client and unknown roles: ``never``). ValueError on a bad value."""
    if override is not None and str(override).strip():
        mode = str(override).strip().lower()
        if mode not in REBOOT_MODES:
            raise ValueError(f"patch_reboot must be one of {', '.join(REBOOT_MODES)}, got {override!r}")
        return mode
    return ROLE_MODES.get(str(patch_role or "").lower(), REBOOT_NEVER)


@dataclass(frozen=True)
class RebootDecision:
    action: str  # ACTION_REBOOT | ACTION_PENDING | ACTION_NONE
    reason: str


def reboot_decision(
    mode: str,
    reboot_required: bool,
    window: Window | None,
    now: datetime,
    *,
    changed: bool = False,
    window_name: str | None = None,
) -> RebootDecision:
    """Reboot ``now``, leave ``reboot pending``, or nothing. ``changed``: a deploy just installed
    something (``always`` then wants a reboot even when the host does not say it needs one)."""
    wanted = reboot_required or (mode == REBOOT_ALWAYS and changed)
    if not wanted:
        return RebootDecision(ACTION_NONE, "no reboot required")
    if mode == REBOOT_NEVER:
        return RebootDecision(ACTION_PENDING, "reboot policy 'never': waits for its user or an operator")
    if window is None:
        if window_name:
            return RebootDecision(ACTION_PENDING, f"maintenance window {window_name!r} is not defined in the policy")
        return RebootDecision(ACTION_PENDING, "no maintenance window (patch_window) for this host")
    span = window.current(now)
    if span is None:
        nxt = window.next_starts(now, 1)
        when = f": next opens {nxt[0].isoformat(timespec='minutes')}" if nxt else ""
        return RebootDecision(ACTION_PENDING, f"window {window.name} is closed{when}")
    left = span.end - _utc(now)
    if left < window.min_left:
        return RebootDecision(
            ACTION_PENDING,
            f"window {window.name} has {format_duration(left)} left, less than min_left "
            f"{format_duration(window.min_left)}",
        )
    return RebootDecision(ACTION_REBOOT, f"window {window.name} is open ({format_duration(left)} left)")


def hosts_by_window(patch_windows: Mapping[str, str | None]) -> dict[str, list[str]]:
    """Window name -> the hosts that use it (hosts without a window are left out)."""
    out: dict[str, list[str]] = {}
    for host, name in sorted(patch_windows.items()):
        if name:
            out.setdefault(str(name), []).append(host)
    return out


def undefined_windows(windows: Mapping[str, Window], used: Sequence[str]) -> list[str]:
    return sorted({u for u in used if u and u not in windows})
