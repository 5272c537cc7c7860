"""Change freezes, as pure rules: spans in which nothing in their scope installs, reboots or is
promoted. Written in the policy file's ``freezes:`` list::

    freezes:
      - name: year-end
        from: 2026-12-19           # dates in the freeze's time zone: from its 00:00 ...
        to: 2027-01-04             # ... to the end of this day (inclusive)
        timezone: Europe/Berlin    # default UTC
        stops: [deploy, reboot, promote]   # the default: all three
      - name: black-friday
        rrule: "FREQ=YEARLY;BYMONTH=11;BYDAY=FR;BYMONTHDAY=23,24,25,26,27,28,29"
        start: "00:00"             # a recurrence (as a window's, or after: + offset_days) ...
        duration: 4d               # ... each occurrence lasting this long
        hosts: "shop*"             # scope: a host or group pattern (shell wildcards), and/or
        waves: [fleet]             # wave names; neither: every host

Inside a freeze: ``deploy`` installs nothing on a host in its scope (``stops: deploy``) and a
running deploy starts no new batch once it begins; ``reboot`` (and the reboots after a deploy)
leave the host ``reboot pending`` (``reboot``); ``rollout promote`` promotes no wave whose hosts
it covers and exits 3 saying which freeze until when (``promote``). The recurrence follows the
DST rules of the maintenance windows (:mod:`patchctl.rules.maintenance`): it *is* one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from patchctl.rules.durations import format_duration, parse_duration
from patchctl.rules.maintenance import Occurrence, Window, parse_recurrence
from patchctl.rules.recurrence import parse_time_of_day
from patchctl.rules.yamldoc import YamlDoc

STOP_DEPLOY = "deploy"
STOP_REBOOT = "reboot"
STOP_PROMOTE = "promote"
STOPS = (STOP_DEPLOY, STOP_REBOOT, STOP_PROMOTE)
MAX_FREEZE = timedelta(days=366)

_KEYS: tuple[str, ...] = ("name", "from", "to", "rrule", "after", "offset_days", "dtstart", "start", "duration")
_KEYS += ("timezone", "hosts", "waves", "stops")


@dataclass(frozen=True)
class Freeze:
    name: str
    timezone: str = "UTC"
    first: date | None = None  # a span of dates: from ``first`` 00:00 ...
    last: date | None = None  # ... to the end of ``last`` (local)
    recurring: Window | None = None  # or the occurrences of a recurrence, each ``duration`` long
    hosts: str | None = None
    waves: tuple[str, ...] = ()
    stops: tuple[str, ...] = STOPS

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def spans_between(self, begin: datetime, end: datetime) -> list[Occurrence]:
        """The spans that overlap ``[begin, end)``, in order."""
        if self.recurring is not None:
            w = self.recurring
            return [o for o in w.occurrences_between(begin - w.duration, end) if o.end > begin]
        assert self.first is not None and self.last is not None
        start = datetime.combine(self.first, time(), self.tz).astimezone(UTC)
        stop = datetime.combine(self.last + timedelta(days=1), time(), self.tz).astimezone(UTC)
        return [Occurrence(start, stop)] if start < end and stop > begin else []

    def active(self, t: datetime) -> Occurrence | None:
        spans = [o for o in self.spans_between(t, t + timedelta(microseconds=1)) if o.contains(t)]
        return spans[0] if spans else None

    def next_span(self, t: datetime) -> Occurrence | None:
        """The first span starting after ``t`` (within two years)."""
        later = [o for o in self.spans_between(t, t + timedelta(days=731)) if o.start > t]
        return later[0] if later else None

    def covers(self, host: str, groups: Iterable[str], wave: str | None) -> bool:
        """Whether ``host`` (in wave ``wave``) is in the freeze's scope."""
        if self.hosts is None and not self.waves:
            return True
        if self.hosts is not None and any(fnmatch.fnmatchcase(n, self.hosts) for n in (host, *groups)):
            return True
        return wave is not None and wave in self.waves

    def scope_text(self) -> str:
        parts = ([f"hosts {self.hosts}"] if self.hosts else []) + (
            [f"waves {', '.join(self.waves)}"] if self.waves else []
        )
        return " or ".join(parts) or "all hosts"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "timezone": self.timezone}
        if self.recurring is not None:
            out["schedule"] = self.recurring.schedule
            out["duration"] = format_duration(self.recurring.duration)
        else:
            assert self.first is not None and self.last is not None
            out["from"], out["to"] = self.first.isoformat(), self.last.isoformat()
        out.update({"scope": self.scope_text(), "stops": list(self.stops)})
        return out


@dataclass(frozen=True)
class FreezeHit:
    freeze: Freeze
    span: Occurrence

    @property
    def reason(self) -> str:
        local = self.span.end.astimezone(self.freeze.tz)
        return f"freeze {self.freeze.name} until {local.strftime('%Y-%m-%d %H:%M')} {self.freeze.timezone}"


def freeze_for(
    freezes: Sequence[Freeze], stop: str, t: datetime, host: str, groups: Iterable[str] = (), wave: str | None = None
) -> FreezeHit | None:
    """The first freeze active at ``t`` that stops ``stop`` for ``host``, or None."""
    names = tuple(groups)
    for f in freezes:
        if stop not in f.stops:
            continue
        span = f.active(t)
        if span is not None and f.covers(host, names, wave):
            return FreezeHit(f, span)
    return None


def freeze_for_wave(
    freezes: Sequence[Freeze], stop: str, t: datetime, wave: str, hosts: Sequence[str]
) -> FreezeHit | None:
    """The first freeze active at ``t`` stopping ``stop`` that covers the wave or any of its hosts."""
    for f in freezes:
        if stop not in f.stops:
            continue
        span = f.active(t)
        if span is None:
            continue
        if f.covers("", (), wave) or any(f.covers(h, (), None) for h in hosts):
            return FreezeHit(f, span)
    return None


# --- parsing the policy file's freezes: ------------------------------------------------------------


def parse_freezes(doc: YamlDoc, data: Any) -> tuple[Freeze, ...]:
    """The ``freezes:`` value (a YAML node of the policy file); ConfigError names file, line, field."""
    entries = doc.items(data)
    if entries is None:
        raise doc.error(data, "freezes", "must be a list of freezes (name, from/to or rrule/after with duration)")
    out: list[Freeze] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        path = f"freezes[{i}]"
        fields = {k: v for k, (_kn, v) in doc.mapping(entry, path, _KEYS).items()}
        if "name" not in fields:
            raise doc.error(entry, f"{path}.name", "missing")
        name = doc.string(fields["name"], f"{path}.name")
        if name in seen:
            raise doc.error(fields["name"], f"{path}.name", f"freeze {name!r} is defined twice")
        seen.add(name)
        out.append(_freeze(doc, entry, name, fields, f"{path} ({name})"))
    return tuple(out)


def _date(doc: YamlDoc, node: Any, fieldname: str) -> date:
    raw = doc.value(node)
    if isinstance(raw, datetime):
        raise doc.error(node, fieldname, f"must be a date like 2026-12-19 (no time), got {raw!r}")
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise doc.error(node, fieldname, f"must be a date like 2026-12-19, got {raw!r}") from None


def _freeze(doc: YamlDoc, entry: Any, name: str, fields: dict[str, Any], path: str) -> Freeze:
    kwargs: dict[str, Any] = {"name": name}
    tzname = "UTC"
    if "timezone" in fields:
        tzname = doc.string(fields["timezone"], f"{path}.timezone")
        try:
            ZoneInfo(tzname)
        except (ZoneInfoNotFoundError, ValueError):
            raise doc.error(fields["timezone"], f"{path}.timezone", f"unknown time zone {tzname!r}") from None
    kwargs["timezone"] = tzname
    dated = "from" in fields or "to" in fields
    recurring = "rrule" in fields or "after" in fields
    if dated == recurring:
        raise doc.error(entry, path, "give either from: and to: (dates) or rrule:/after: with start: and duration:")
    if dated:
        for key in ("from", "to"):
            if key not in fields:
                raise doc.error(entry, f"{path}.{key}", "missing")
        for key in ("start", "duration", "offset_days", "dtstart"):
            if key in fields:
                raise doc.error(fields[key], f"{path}.{key}", "only with rrule: or after:")
        first, last = _date(doc, fields["from"], f"{path}.from"), _date(doc, fields["to"], f"{path}.to")
        if last < first:
            raise doc.error(fields["to"], f"{path}.to", f"{last} is before from: {first}")
        if last - first >= MAX_FREEZE:
            raise doc.error(fields["to"], f"{path}.to", "a freeze lasts at most a year")
        kwargs.update(first=first, last=last)
    else:
        for key in ("start", "duration"):
            if key not in fields:
                raise doc.error(entry, f"{path}.{key}", "missing")
        rec = parse_recurrence(doc, fields, path)
        try:
            at = parse_time_of_day(doc.value(fields["start"]))
        except ValueError as exc:
            raise doc.error(fields["start"], f"{path}.start", str(exc)) from None
        try:
            duration = parse_duration(doc.value(fields["duration"]))
        except ValueError as exc:
            raise doc.error(fields["duration"], f"{path}.duration", str(exc)) from None
        if not timedelta(minutes=1) <= duration <= timedelta(days=31):
            raise doc.error(fields["duration"], f"{path}.duration", "must be between 1m and 31d")
        kwargs["recurring"] = Window(
            name=name, cron=None, duration=duration, timezone=tzname, min_left=timedelta(0), recurrence=rec, at=at
        )
    if "hosts" in fields:
        kwargs["hosts"] = doc.string(fields["hosts"], f"{path}.hosts")
    if "waves" in fields:
        kwargs["waves"] = doc.strings(fields["waves"], f"{path}.waves")
    if "stops" in fields:
        stops = doc.strings(fields["stops"], f"{path}.stops")
        bad = [s for s in stops if s not in STOPS]
        if bad or not stops:
            raise doc.error(
                fields["stops"], f"{path}.stops", f"must list some of {', '.join(STOPS)}, got {list(stops)}"
            )
        kwargs["stops"] = tuple(s for s in STOPS if s in stops)
    return Freeze(**kwargs)


def active_and_next(freezes: Sequence[Freeze], t: datetime) -> list[dict[str, Any]]:
    """Each freeze with its span now (if active) and its next one: ``windows`` and the report."""
    out = []
    for f in freezes:
        span = f.active(t)
        nxt = f.next_span(t)
        out.append(
            {
                **f.as_dict(),
                "active": span is not None,
                "active_until": None if span is None else span.end,
                "next_start": None if nxt is None else nxt.start,
                "next_end": None if nxt is None else nxt.end,
            }
        )
    return out
