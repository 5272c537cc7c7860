"""When an update reaches each wave, from the policy alone: its approval (``approve_after_days``,
or at once by the fast lane), each wave's hosts' maintenance windows (a wave whose hosts all have
a window starts when the first of them opens; a host without one, a client, installs at once),
and the bakes between waves (``bake_days``; a fast-lane update's first wave bakes
``fast_lane_bake_days``). Deploys are taken to be instant and every wave to succeed: this is the
earliest the policy allows, never a promise. Against the policy's SLA (rules/sla.py) counted
from the time the update's age counts from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from patchctl.rules.clock import iso_utc
from patchctl.rules.maintenance import Window
from patchctl.rules.policy import (
    FAST_LANE_PREFIX,
    STATE_APPROVED,
    STATE_WAITING,
    Policy,
    UpdateFacts,
    evaluate,
    fast_lane_waves,
)


@dataclass(frozen=True)
class WavePlan:
    name: str
    hosts: int
    starts_at: datetime  # the earliest the wave gets the update
    bake_days: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.name,
            "hosts": self.hosts,
            "starts_at": iso_utc(self.starts_at),
            "bake_days": self.bake_days,
        }


@dataclass(frozen=True)
class Plan:
    subject: str  # the update's uid, or "security updates"
    state: str
    reason: str
    counted_from: datetime
    approved_at: datetime | None  # None: no rule approves it
    waves: tuple[WavePlan, ...]
    sla_days: float | None
    plural: bool = False  # the subject is a class of updates

    @property
    def fleet_days(self) -> float | None:
        """Days from when its age counts to the start of the last wave."""
        if not self.waves:
            return None
        return round((self.waves[-1].starts_at - self.counted_from).total_seconds() / 86400, 1)

    @property
    def verdict(self) -> str:
        if self.approved_at is None:
            return f"{self.subject}: no rule approves it ({self.state}: {self.reason})"
        days = self.fleet_days
        text = f"{self.subject} {'reach' if self.plural else 'reaches'} the fleet in {days:g} days"
        if self.sla_days is None:
            return text + " (no SLA applies)"
        if days is not None and days > self.sla_days:
            return text + f": over the {self.sla_days:g}-day SLA"
        return text + f": within the {self.sla_days:g}-day SLA"

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "state": self.state,
            "reason": self.reason,
            "counted_from": iso_utc(self.counted_from),
            "approved_at": iso_utc(self.approved_at),
            "waves": [w.as_dict() for w in self.waves],
            "fleet_days": self.fleet_days,
            "sla_days": self.sla_days,
            "within_sla": None
            if self.sla_days is None or self.fleet_days is None
            else self.fleet_days <= self.sla_days,
            "verdict": self.verdict,
        }


def _first_opening(windows: Sequence[Window], after: datetime) -> datetime:
    """The earliest time at or after ``after`` that one of ``windows`` is open."""
    if any(w.is_open_at(after) for w in windows):
        return after
    starts = [s for w in windows for s in w.next_starts(after, 1)]
    return min(starts) if starts else after


def plan(
    policy: Policy,
    facts: UpdateFacts,
    now: datetime,
    wave_windows: Mapping[str, Sequence[str | None]],
    subject: str | None = None,
    plural: bool = False,
) -> Plan:
    """The earliest each wave gets the update ``facts``. ``wave_windows``: per wave name its hosts'
    maintenance window names (None: a host without one)."""
    ev = evaluate(policy, facts, now)
    approved_at: datetime | None = None
    if ev.state == STATE_APPROVED:
        approved_at = now
    elif ev.state == STATE_WAITING and ev.approve_at is not None:
        approved_at = max(now, ev.approve_at)
    fast = ev.reason.startswith(FAST_LANE_PREFIX)
    waves = fast_lane_waves(policy) if fast else policy.waves
    out: list[WavePlan] = []
    start = approved_at
    if start is not None:
        for wave in waves:
            names = list(wave_windows.get(wave.name, ()))
            known = [policy.windows[n] for n in names if n is not None and n in policy.windows]
            # a wave whose every host has a window waits for the first of them to open
            begins = _first_opening(known, start) if names and len(known) == len(names) else start
            out.append(WavePlan(wave.name, len(names), begins, wave.bake_days))
            start = begins + timedelta(days=wave.bake_days)
    sla = policy.sla.days_for(facts.classification, facts.severity, facts.urgency) if policy.sla else None
    return Plan(subject or facts.uid, ev.state, ev.reason, facts.counted_since, approved_at, tuple(out), sla, plural)
