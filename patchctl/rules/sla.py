"""Patch SLAs: days-to-patch per classification, severity or urgency, measured on the exposure
clock, and the time to patch over a period. Pure: the report flow gathers the inputs.

The policy's ``sla:`` section::

    sla:
      critical: 7        # a key is a classification, a severity or a Debian urgency
      emergency: 3
      security: 14
      default: 30        # any update no other key names (without it: not tracked)
      at_risk_days: 3    # an update within this many days of its breach is at risk (default 3)

An update's SLA is the smallest of the values its classification, severity and urgency name
(else ``default``). A host missing it is ``breached`` once the SLA's days have passed since its
exposure began (``v_host_exposure``: surviving supersedes; else since it was first found
missing), ``at_risk`` within ``at_risk_days`` of that, else ``within``. The time to patch of an
installed update is from the host first missing it to the scan that found it installed
(``v_time_to_patch``); the report gives per class the count, the mean and the 90th percentile
over the period (``--since``).

The breach history (:func:`breach_history`) replays the stored spans of each host and update
(missing from since when the host was exposed until the scan that found it installed or gone,
else still open) at each past scan time: the items missing then whose SLA had passed by then.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from patchctl.rules.clock import iso_utc

DEFAULT_AT_RISK_DAYS = 3.0
DEFAULT_KEY = "default"
AT_RISK_KEY = "at_risk_days"
BREACHED = "breached"
AT_RISK = "at_risk"
WITHIN = "within"


@dataclass(frozen=True)
class Sla:
    days: Mapping[str, float]  # classification | severity | urgency | "default" -> days
    at_risk_days: float = DEFAULT_AT_RISK_DAYS

    def days_for(self, classification: str, severity: str | None, urgency: str | None) -> float | None:
        """The SLA of an update (the smallest its words name, else the default); None: untracked."""
        named = [self.days[k.lower()] for k in (classification, severity, urgency) if k and k.lower() in self.days]
        if named:
            return min(named)
        return self.days.get(DEFAULT_KEY)

    def as_dict(self) -> dict[str, Any]:
        return {"days": dict(self.days), "at_risk_days": self.at_risk_days}


@dataclass(frozen=True)
class OpenItem:
    """An update missing on a host now, and since when the host is exposed."""

    host: str
    uid: str
    classification: str
    severity: str | None
    urgency: str | None
    since: datetime


@dataclass(frozen=True)
class Patched:
    """An update found installed on a host, after it was missing there."""

    host: str
    uid: str
    classification: str
    missing_since: datetime
    installed_at: datetime


@dataclass(frozen=True)
class Span:
    """An update missing on a host from ``since`` until ``until`` (the scan that found it
    installed or gone; None: missing now)."""

    host: str
    uid: str
    classification: str
    severity: str | None
    urgency: str | None
    since: datetime
    until: datetime | None


@dataclass(frozen=True)
class BreachPoint:
    """The breached items at one past scan time, and on how many hosts."""

    run_id: int
    at: datetime
    breached: int
    hosts: int

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "at": iso_utc(self.at), "breached": self.breached, "hosts": self.hosts}


@dataclass(frozen=True)
class Tracked:
    item: OpenItem
    sla_days: float
    due: datetime
    state: str  # breached | at_risk | within

    def as_dict(self) -> dict[str, Any]:
        i = self.item
        return {
            "host": i.host,
            "uid": i.uid,
            "classification": i.classification,
            "severity": i.severity,
            "urgency": i.urgency,
            "sla_days": self.sla_days,
            "since": iso_utc(i.since),
            "due": iso_utc(self.due),
            "state": self.state,
        }


@dataclass(frozen=True)
class TimeToPatch:
    classification: str
    count: int
    mean_days: float
    p90_days: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "classification": self.classification,
            "count": self.count,
            "mean_days": self.mean_days,
            "p90_days": self.p90_days,
        }


@dataclass(frozen=True)
class SlaReport:
    sla: Sla
    since: datetime | None
    tracked: tuple[Tracked, ...]
    time_to_patch: tuple[TimeToPatch, ...]
    hosts: tuple[str, ...] = field(default_factory=tuple)
    history: tuple[BreachPoint, ...] = field(default_factory=tuple)

    def count(self, state: str, host: str | None = None) -> int:
        return sum(1 for t in self.tracked if t.state == state and (host is None or t.item.host == host))

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.sla.as_dict(),
            "since": iso_utc(self.since),
            "fleet": {
                "tracked": len(self.tracked),
                "at_risk": self.count(AT_RISK),
                "breached": self.count(BREACHED),
            },
            "hosts": [
                {
                    "host": h,
                    "tracked": sum(1 for t in self.tracked if t.item.host == h),
                    "at_risk": self.count(AT_RISK, h),
                    "breached": self.count(BREACHED, h),
                }
                for h in self.hosts
            ],
            "items": [t.as_dict() for t in self.tracked if t.state != WITHIN],
            "time_to_patch": [p.as_dict() for p in self.time_to_patch],
            "breach_history": [b.as_dict() for b in self.history],
        }


def p90(values: Sequence[float]) -> float:
    """The 90th percentile (inclusive method: within the values seen)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def evaluate_sla(
    sla: Sla,
    open_items: Iterable[OpenItem],
    patched: Iterable[Patched],
    now: datetime,
    since: datetime | None = None,
) -> SlaReport:
    """Each open item's SLA state at ``now``; the time to patch per class of the updates
    installed at or after ``since`` (every one when None)."""
    tracked = []
    for item in open_items:
        days = sla.days_for(item.classification, item.severity, item.urgency)
        if days is None:
            continue
        due = item.since + timedelta(days=days)
        if now >= due:
            state = BREACHED
        elif now >= due - timedelta(days=sla.at_risk_days):
            state = AT_RISK
        else:
            state = WITHIN
        tracked.append(Tracked(item, days, due, state))
    tracked.sort(key=lambda t: (t.due, t.item.host, t.item.uid))
    by_class: dict[str, list[float]] = {}
    for p in patched:
        if since is not None and p.installed_at < since:
            continue
        days = max(0.0, (p.installed_at - p.missing_since).total_seconds() / 86400)
        by_class.setdefault(p.classification, []).append(days)
    ttp = tuple(
        TimeToPatch(c, len(v), round(statistics.fmean(v), 2), round(p90(sorted(v)), 2))
        for c, v in sorted(by_class.items())
    )
    hosts = tuple(sorted({t.item.host for t in tracked}))
    return SlaReport(sla, since, tuple(tracked), ttp, hosts)


def breach_history(sla: Sla, spans: Iterable[Span], times: Iterable[tuple[int, datetime]]) -> tuple[BreachPoint, ...]:
    """At each past scan time (run id, time): how many items were missing then (``until`` after
    it or None) with their SLA passed by then (so begun before it), and on how many hosts."""
    due = []
    for s in spans:
        days = sla.days_for(s.classification, s.severity, s.urgency)
        if days is not None:
            due.append((s, s.since + timedelta(days=days)))
    out = []
    for run_id, at in times:
        hit = [s for s, d in due if d <= at and (s.until is None or at < s.until)]
        out.append(BreachPoint(run_id, at, len(hit), len({s.host for s in hit})))
    return tuple(out)
