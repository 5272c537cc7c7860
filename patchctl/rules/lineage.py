"""A rollout's approved versions as floors of their package lineages, for the Linux sources.

A rollout approves, per update, a version of a lineage (source + package name). On a host the
update *applies* when the host's scans ever listed that lineage. :func:`host_plan` decides what
a deploy sends the apply module for one host, from its last scan:

* the approved version is missing on the host: install it;
* the approved version is no longer offered and the host is below it (the scan lists a newer
  version of the lineage missing, the installed version older than the approved one): the
  baseline's ``successors`` setting decides (:mod:`patchctl.rules.policy`): ``install`` installs
  the newest offered non-major successor when the baseline approves its classification, else
  the update is *blocked* with a reason;
* otherwise: only *check* it: the module reads the installed version after the run.

:func:`below_floor` then judges the module's answer, the versions dpkg or rpm report after the
run: an update whose package is below its floor is not installed, whatever an earlier scan said.
Versions are ordered by :mod:`patchctl.rules.versions`; sources without an ordering (Windows,
Chocolatey) are not planned here, but a Windows update of the rollout that Windows Update no
longer offers a host and that the host's install history does not hold (its ``host_updates``
row is ``gone``: superseded or hidden) blocks the host (:func:`windows_unoffered`).

With ``successors: repilot`` a blocked update's successor goes through a follow-up rollout of its
own (:func:`follow_up_successors`, :func:`follow_up_waves`: the policy's waves, the first one
baking ``successor_bake_days``), created by ``patchctl rollout promote``. A lineage whose
successors come faster than the pilot's bake never gets beyond it: :func:`starved_lineages`.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from patchctl.rules.policy import (
    FAMILY_OF_SOURCE,
    STATE_APPROVED,
    SUCCESSORS_BLOCK,
    SUCCESSORS_INSTALL,
    SUCCESSORS_REPILOT,
    Policy,
    UpdateFacts,
    Wave,
    evaluate,
)
from patchctl.rules.versions import DEBIAN_SOURCES, RPM_SOURCES, compare_debian, compare_rpm, older

ORDERED_SOURCES = DEBIAN_SOURCES | RPM_SOURCES


@dataclass(frozen=True)
class Approved:
    """One update of a rollout: the floor of its lineage."""

    uid: str
    source: str
    name: str
    version: str


@dataclass(frozen=True)
class Offered:
    """One update of a lineage that the host's last scan lists missing."""

    uid: str
    source: str
    name: str
    version: str
    installed_version: str | None
    classification: str
    severity: str | None
    major: bool


@dataclass(frozen=True)
class Entry:
    """What the apply module gets for one approved update: the uid and version it installs (or,
    with ``install`` False, only checks) and the floor its package must reach."""

    approved: Approved
    uid: str
    version: str
    install: bool
    note: str | None = None  # "installed 1.2-1 (successor of approved 1.1-1)"


@dataclass
class HostPlan:
    entries: list[Entry] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)  # approved uid -> reason


def _newest(offers: Iterable[Offered]) -> Offered | None:
    def cmp(a: Offered, b: Offered) -> int:
        return compare_debian(a.version, b.version) if a.source in DEBIAN_SOURCES else compare_rpm(a.version, b.version)

    ordered = sorted(offers, key=functools.cmp_to_key(cmp))
    return ordered[-1] if ordered else None


def _approves_at_once(policy: Policy, offer: Offered, now: datetime) -> bool:
    """Whether the baseline approves the successor's classification, without the age wait."""
    baseline = policy.baseline_for(offer.source)
    if baseline is None:
        return False
    facts = UpdateFacts(
        uid=offer.uid,
        source=offer.source,
        name=offer.name,
        classification=offer.classification,
        severity=offer.severity,
        major=offer.major,
        first_seen_at=now - timedelta(days=baseline.approve_after_days),
    )
    return evaluate(policy, facts, now).state == STATE_APPROVED


def host_plan(
    approved: Iterable[Approved],
    missing_uids: Collection[str],
    offered: Iterable[Offered],
    lineages: Collection[tuple[str, str]],
    policy: Policy,
    now: datetime,
) -> HostPlan:
    """The plan of one host (see the module docstring): ``missing_uids`` and ``offered`` are its
    last scan's missing updates, ``lineages`` the (source, name) its scans ever listed."""
    by_lineage: dict[tuple[str, str], list[Offered]] = {}
    for o in offered:
        by_lineage.setdefault((o.source, o.name), []).append(o)
    plan = HostPlan()
    for a in approved:
        if a.source not in ORDERED_SOURCES or (a.source, a.name) not in lineages:
            continue
        if a.uid in missing_uids:
            plan.entries.append(Entry(a, a.uid, a.version, install=True))
            continue
        offers = by_lineage.get((a.source, a.name), [])
        installed = next((o.installed_version for o in offers if o.installed_version), None)
        if not offers or installed is None or not older(a.source, installed, a.version):
            plan.entries.append(Entry(a, a.uid, a.version, install=False))
            continue
        newest = _newest(offers)
        assert newest is not None
        why = f"approved {a.version} is no longer offered; the repositories offer {newest.version}"
        successor = _newest(o for o in offers if not o.major and not older(a.source, o.version, a.version))
        baseline = policy.baseline_for(a.source)
        setting = baseline.successors if baseline is not None else SUCCESSORS_BLOCK
        if successor is None:
            plan.blocked[a.uid] = f"{why} (a major successor is never taken: approve it with --major)"
        elif setting == SUCCESSORS_INSTALL and _approves_at_once(policy, successor, now):
            note = f"installed {successor.version} (successor of approved {a.version})"
            plan.entries.append(Entry(a, successor.uid, successor.version, install=True, note=note))
        elif setting == SUCCESSORS_INSTALL:
            plan.blocked[a.uid] = f"{why} (successors: install, but the baseline does not approve {successor.uid})"
        elif setting == SUCCESSORS_REPILOT:
            plan.blocked[a.uid] = (
                f"{why} (successors: repilot: {successor.version} goes through the pilot of a follow-up "
                "rollout first, created by 'patchctl rollout promote')"
            )
        else:
            plan.blocked[a.uid] = f"{why} (successors: block: approve the successor to install it)"
    return plan


def below_floor(entries: Iterable[Entry], versions: Mapping[str, str]) -> dict[str, str]:
    """approved uid -> reason, for each planned update whose package the package manager shows
    below what the entry asked for after the run. A checked package that is not installed any
    more no longer applies to the host."""
    out: dict[str, str] = {}
    for e in entries:
        have = versions.get(e.approved.name)
        if have is None:
            if e.install:
                out[e.uid] = f"not installed after the run (wanted {e.version})"
            continue
        if older(e.approved.source, have, e.version) is not False:
            out[e.uid] = f"{have} installed after the run, below the approved {e.version}"
    return out


def windows_unoffered(approved: Iterable[tuple[str, str]], gone: Collection[str]) -> dict[str, str]:
    """approved uid -> reason, for each ``(uid, title)`` of the rollout's Windows updates that
    was missing on the host once and now is neither offered nor in its install history
    (``gone``): the host lacks it and no deploy can install it, so it is blocked, never ok."""
    return {
        uid: (
            f"approved {title} is no longer offered by Windows Update and is not in the host's install "
            "history (superseded or hidden): approve its successor"
        )
        for uid, title in approved
        if uid in gone
    }


# --- successors: repilot: the follow-up rollout -----------------------------------------------


def follow_up_successors(
    blocked: Iterable[Approved], candidates: Iterable[Offered], policy: Policy
) -> dict[str, Offered]:
    """approved uid -> the successor a follow-up rollout holds for it: for each blocked update
    whose baseline says ``successors: repilot``, the newest non-major version of its lineage
    newer than the approved one among ``candidates`` (the catalog's updates missing on some
    host). A major successor is never taken; an update without a successor gets none."""
    pool = list(candidates)
    out: dict[str, Offered] = {}
    for a in blocked:
        baseline = policy.baseline_for(a.source)
        if baseline is None or baseline.successors != SUCCESSORS_REPILOT or a.source not in ORDERED_SOURCES:
            continue
        newer = (
            o
            for o in pool
            if (o.source, o.name) == (a.source, a.name) and not o.major and older(a.source, a.version, o.version)
        )
        successor = _newest(newer)
        if successor is not None:
            out[a.uid] = successor
    return out


def follow_up_waves(policy: Policy, sources: Iterable[str]) -> tuple[Wave, ...]:
    """The waves of a follow-up rollout: the policy's, the first one baking the longest
    ``successor_bake_days`` of the baselines of ``sources`` (unset: the first wave's own bake)."""
    waves = tuple(policy.waves)
    if not waves:
        return waves
    bakes = [
        b.successor_bake_days
        for b in (policy.baseline_for(src) for src in set(sources))
        if b is not None and b.successor_bake_days is not None
    ]
    if not bakes:
        return waves
    return (replace(waves[0], bake_days=max(bakes)), *waves[1:])


# --- starved lineages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageRollout:
    """One rollout holding a version of a lineage: when its first wave started (None: not yet)
    and whether a later wave of it delivered the version to a host."""

    rollout_id: int
    source: str
    name: str
    version: str
    first_wave_started_at: datetime | None
    delivered_beyond_first: bool


@dataclass(frozen=True)
class Starved:
    """A lineage not delivered beyond the first wave since ``since`` (its rollouts ``rollouts``)."""

    source: str
    name: str
    since: datetime
    days: float
    rollouts: tuple[int, ...]
    versions: tuple[str, ...]

    @property
    def reason(self) -> str:
        return (
            f"{self.source}:{self.name}: not delivered beyond the pilot for {self.days:.0f} days "
            f"(rollouts {', '.join(map(str, self.rollouts))}: {', '.join(self.versions)}); its versions come "
            "faster than the pilot bakes: consider 'successors: install' for it"
        )


def starved_lineages(rows: Iterable[LineageRollout], after_days: Mapping[str, float], now: datetime) -> list[Starved]:
    """The lineages whose rollouts since the last one that delivered beyond its first wave have
    not done so either, the first of them started more than ``after_days[source]`` days ago
    (default 30): each new version restarted the pilot and none reached the fleet."""
    by_lineage: dict[tuple[str, str], list[LineageRollout]] = {}
    for r in rows:
        by_lineage.setdefault((r.source, r.name), []).append(r)
    out: list[Starved] = []
    for (source, name), rollouts in sorted(by_lineage.items()):
        rollouts.sort(key=lambda r: r.rollout_id)
        trailing: list[LineageRollout] = []
        for r in rollouts:
            trailing = [] if r.delivered_beyond_first else [*trailing, r]
        started = [r.first_wave_started_at for r in trailing if r.first_wave_started_at is not None]
        if not started:
            continue
        since = min(started)
        days = (now - since).total_seconds() / 86400
        if days > after_days.get(source, 30):
            out.append(
                Starved(
                    source,
                    name,
                    since,
                    round(days, 1),
                    tuple(r.rollout_id for r in trailing),
                    tuple(r.version for r in trailing),
                )
            )
    return out


def starved_after(policy: Policy | None) -> dict[str, float]:
    """Source -> its baseline's ``starved_after_days`` (sources without a baseline: the default)."""
    if policy is None:
        return {}
    out: dict[str, float] = {}
    for source in FAMILY_OF_SOURCE:
        baseline = policy.baseline_for(source)
        if baseline is not None:
            out[source] = baseline.starved_after_days
    return out
