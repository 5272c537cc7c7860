"""The compliance report, built from store rows: pure rules, no SQL, no click, no output.

The rows come from :meth:`patchctl.store.Store.host_compliance` (``v_host_compliance``); this
module declares their type (:class:`HostComplianceRow`, the one declaration of the row) and the store builds it.

:func:`build_report` gives the :class:`Report`: one :class:`HostReport` per host and what
``patchctl report`` shows around them: compliance states by state, role and wave, the most
widespread missing updates, pending reboots with their age, failures with their reason and the
history of compliance over past scan runs. The store aggregates what is large (the most
widespread missing updates, the history) and fills the input rows (:class:`TopMissing`,
:class:`HistoryPoint`, :class:`WaveRow`, :class:`DeployFailure`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from patchctl.rules.compliance import (
    COMPLIANT,
    FAILED,
    MISSING,
    NEVER_SCANNED,
    REACHABILITY,
    REBOOT_PENDING,
    STATES,
    UNREACHABLE,
    ComplianceFacts,
    compliance_state,
)
from patchctl.rules.exceptions import UpdateException, state_label
from patchctl.rules.holds import HostHolds
from patchctl.rules.lineage import Starved
from patchctl.rules.model import CLASSIFICATIONS, HOST_BLOCKED, HOST_FAILED, HOST_UNREACHABLE
from patchctl.rules.sla import SlaReport


@dataclass(frozen=True)
class HostComplianceRow:
    """One host's compliance row (a row of ``v_host_compliance``), as the store reads it: the one
    declaration of the row, built by :mod:`patchctl.store.queries` and :mod:`patchctl.store.fastread`."""

    host: str
    os: str
    os_family: str | None
    pkg_mgr: str | None
    patch_role: str | None
    patch_window: str | None
    last_scan_at: datetime | None
    last_ok_scan_at: datetime | None
    reachability: str  # ok | failed | unreachable | never_scanned
    last_error: str | None
    missing_total: int
    missing_by_class: dict[str, int]  # every classification of model.CLASSIFICATIONS
    missing_major: int
    reboot_required: bool
    reboot_required_since: datetime | None


@dataclass(frozen=True)
class MissingCounts:
    """Missing updates: the total, one count per classification, and how many are major."""

    total: int
    by_class: Mapping[str, int]  # every classification of model.CLASSIFICATIONS, in order
    major: int

    @property
    def security(self) -> int:
        return self.by_class.get("security", 0)

    @property
    def critical(self) -> int:
        return self.by_class.get("critical", 0)

    @property
    def others(self) -> int:
        """Missing updates that are neither security nor critical."""
        return self.total - self.security - self.critical


@dataclass(frozen=True)
class HostReport:
    """One host in the report."""

    name: str
    os: str  # distribution and version, "" when never learned
    pkg_mgr: str | None
    patch_role: str | None
    last_scan_at: datetime | None
    reachability: str  # one of REACHABILITY: the status of the last scan
    error: str | None
    missing: MissingCounts
    reboot_pending: bool

    @property
    def scanned(self) -> bool:
        return self.reachability != NEVER_SCANNED


@dataclass(frozen=True)
class ReportTotals:
    """Figures over the whole fleet of the report."""

    hosts: int
    by_reachability: Mapping[str, int]  # every value of REACHABILITY, in order
    hosts_with_missing: int
    missing: MissingCounts  # summed over hosts (an update missing on 3 hosts counts 3)
    reboot_pending: int


def _counts(by_class: Mapping[str, int], total: int, major: int) -> MissingCounts:
    ordered = {c: int(by_class.get(c, 0)) for c in CLASSIFICATIONS}
    # Classifications unknown to this version of patchctl count as "other".
    extra = sum(int(n) for c, n in by_class.items() if c not in ordered)
    ordered["other"] += extra
    return MissingCounts(total=int(total), by_class=ordered, major=int(major))


def host_report(row: HostComplianceRow) -> HostReport:
    reach = row.reachability if row.reachability in REACHABILITY else HOST_FAILED
    if row.last_scan_at is None:
        reach = NEVER_SCANNED
    return HostReport(
        name=row.host,
        os=row.os,
        pkg_mgr=row.pkg_mgr,
        patch_role=row.patch_role,
        last_scan_at=row.last_scan_at,
        reachability=reach,
        error=row.last_error if reach in (HOST_FAILED, HOST_UNREACHABLE) else None,
        missing=_counts(row.missing_by_class, row.missing_total, row.missing_major),
        reboot_pending=bool(row.reboot_required),
    )


def _hosts_and_totals(rows: Iterable[HostComplianceRow]) -> tuple[tuple[HostReport, ...], ReportTotals]:
    """One :class:`HostReport` per row, sorted by name, and the totals over them."""
    hosts = tuple(sorted((host_report(r) for r in rows), key=lambda h: h.name))
    by_reach = dict.fromkeys(REACHABILITY, 0)
    by_class = dict.fromkeys(CLASSIFICATIONS, 0)
    total = major = with_missing = reboots = 0
    for h in hosts:
        by_reach[h.reachability] += 1
        for c, n in h.missing.by_class.items():
            by_class[c] += n
        total += h.missing.total
        major += h.missing.major
        with_missing += 1 if h.missing.total else 0
        reboots += 1 if h.reboot_pending else 0
    totals = ReportTotals(
        hosts=len(hosts),
        by_reachability=by_reach,
        hosts_with_missing=with_missing,
        missing=MissingCounts(total=total, by_class=by_class, major=major),
        reboot_pending=reboots,
    )
    return hosts, totals


# --- the full report: compliance states, sections, history ------------------------------------

# What a point of the history counts (a scan run knows nothing of stale or never scanned hosts).
HISTORY_STATES = (COMPLIANT, MISSING, REBOOT_PENDING, FAILED, UNREACHABLE)
NO_ROLE = "none"


def host_facts(
    host: HostReport,
    deploy_failed: bool,
    approved_missing: int | None,
    deploy_blocked: str | None = None,
    excepted: int = 0,
) -> ComplianceFacts:
    """What the one rule (:func:`patchctl.rules.compliance.compliance_state`) reads of a host of
    the report. ``approved_missing`` None: nothing was ever decided, every missing update counts.
    ``deploy_blocked``: the reason of the host's blocked last deploy, if it was blocked.
    ``excepted``: how many of those missing updates valid exceptions cover."""
    return ComplianceFacts(
        excepted=excepted,
        last_scan=host.reachability,
        last_scan_at=host.last_scan_at,
        approved_missing=host.missing.total if approved_missing is None else approved_missing,
        reboot_pending=host.reboot_pending,
        deploy_failed=deploy_failed,
        deploy_blocked=deploy_blocked,
    )


def split_deploy_results(
    deploy_failures: Iterable[DeployFailure], blocked: Iterable[DeployFailure], hosts: Iterable[str]
) -> tuple[dict[str, DeployFailure], dict[str, DeployFailure]]:
    """(failed, blocked) by host, for ``hosts``: the latest rollout's failed (not blocked) last
    deploys, and the hosts whose last deploy in any rollout was blocked. verify and the report
    both read a host's deploy facts through this."""
    wanted = set(hosts)
    failed = {f.host: f for f in deploy_failures if f.host in wanted and f.status != HOST_BLOCKED}
    return failed, {b.host: b for b in blocked if b.host in wanted}


def _state_counts(states: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for s in states:
        counts[s] += 1
    return counts


@dataclass(frozen=True)
class WaveRow:
    """One wave of a rollout (a row of ``v_wave_progress``) and the hosts recorded for it."""

    rollout_id: int
    position: int
    wave: str
    state: str
    hosts_total: int
    hosts_ok: int
    hosts_failed: int
    hosts_unreachable: int
    hosts_pending: int
    started_at: datetime | None
    finished_at: datetime | None
    bake_days: float
    halted_reason: str | None
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class DeployFailure:
    """The last deploy result of a host in a rollout, when it was not ok."""

    rollout_id: int
    wave: str
    host: str
    status: str  # failed | unreachable
    reason: str
    at: datetime


@dataclass(frozen=True)
class TopMissing:
    """An update and the hosts it is missing on."""

    uid: str
    source: str
    name: str
    version: str
    classification: str
    severity: str | None
    major: bool
    cves: tuple[str, ...]
    hosts: int  # how many hosts miss it
    urgency: str | None = None  # apt: the Debian urgency of the changelog entries it brings


@dataclass(frozen=True)
class PendingReboot:
    host: str
    patch_role: str | None
    patch_window: str | None
    since: datetime | None
    age: timedelta | None

    @property
    def age_hours(self) -> float | None:
        return None if self.age is None else round(self.age.total_seconds() / 3600, 1)


@dataclass(frozen=True)
class Failure:
    host: str
    stage: str  # scan | deploy
    status: str  # failed | unreachable
    reason: str
    at: datetime | None
    rollout_id: int | None = None
    wave: str | None = None


@dataclass(frozen=True)
class HistoryPoint:
    """Compliance as one scan run found it: the hosts that run scanned, by state."""

    run_id: int
    at: datetime  # when the run finished (started, when it never finished)
    hosts: int
    by_state: Mapping[str, int]  # compliant, missing, reboot_pending, failed, unreachable
    missing_total: int  # missing updates summed over the run's hosts

    @property
    def compliant_percent(self) -> float:
        return round(100.0 * self.by_state.get(COMPLIANT, 0) / self.hosts, 1) if self.hosts else 0.0


@dataclass(frozen=True)
class NodeThroughput:
    """How fast an execution node (or the control node) scans or deploys (``v_node_throughput``)."""

    node: str
    kind: str  # scan | deploy
    parts: int  # its parts of runs recorded (a deploy: one per batch)
    parts_failed: int
    hosts: int
    seconds: float
    hosts_per_minute: float | None  # over every recorded part
    last_hosts: int
    last_hosts_per_minute: float | None  # its latest part
    last_forks: int | None
    last_error: str | None
    last_finished_at: datetime | None


@dataclass(frozen=True)
class Exposure:
    """Since when a host has lacked a version of a lineage (a row of ``v_host_exposure``): from the
    first version of the lineage it was found missing, surviving supersedes, ended by an install."""

    host: str
    source: str
    name: str
    since: datetime

    @property
    def lineage(self) -> str:
        return f"{self.source}:{self.name}"

    def days(self, now: datetime) -> float:
        return round(max(0.0, (now - self.since).total_seconds()) / 86400, 1)


@dataclass(frozen=True)
class WaveSummary:
    """One wave of the latest rollout: its progress and the compliance of its hosts."""

    row: WaveRow
    bake_until: datetime | None
    by_state: Mapping[str, int]


@dataclass(frozen=True)
class Report:
    """Everything ``patchctl report`` shows: one :class:`HostReport` per host, sorted by name,
    the totals over them, and the sections around them."""

    generated_at: datetime
    hosts: tuple[HostReport, ...]
    totals: ReportTotals
    stale_days: float
    states: Mapping[str, str]  # host -> compliance state
    waves_of: Mapping[str, str]  # host -> wave of the latest rollout (absent: none)
    by_state: Mapping[str, int]
    by_role: Mapping[str, Mapping[str, int]]  # role (or "none") -> state -> hosts
    rollout_id: int | None
    waves: tuple[WaveSummary, ...]
    top_missing: tuple[TopMissing, ...]
    pending_reboots: tuple[PendingReboot, ...]
    failures: tuple[Failure, ...]
    history: tuple[HistoryPoint, ...]
    nodes: tuple[NodeThroughput, ...] = ()  # per execution node throughput
    # host -> how many of its missing updates are approved (every one when nothing was decided)
    approved_missing: Mapping[str, int] = field(default_factory=dict)

    def missing_approved(self, host: HostReport) -> int:
        """How many of the host's missing updates are approved (all of them when no decision exists)."""
        return self.approved_missing.get(host.name, host.missing.total)

    # the exposure clock: per host its oldest open exposure; per lineage the oldest of its hosts'
    oldest_exposure: Mapping[str, Exposure] = field(default_factory=dict)
    lineage_exposure: Mapping[tuple[str, str], Exposure] = field(default_factory=dict)
    # lineages never delivered beyond the pilot for longer than starved_after_days
    starved: tuple[Starved, ...] = ()
    # the exceptions valid now, and per host the missing updates they cover (uid -> exception id)
    exceptions: tuple[UpdateException, ...] = ()
    excepted: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # per host its package holds and the updates they keep back (reported held, never missing)
    holds: Mapping[str, HostHolds] = field(default_factory=dict)
    # the policy's freezes active now or coming (rules.freezes.active_and_next)
    freezes: tuple[Mapping[str, Any], ...] = ()
    # change safety: each host's latest health checks, and the hosts with a restart pending
    health: tuple[HealthCheck, ...] = ()
    restart_pending: tuple[RestartPending, ...] = ()
    # the policy's days-to-patch measured on the fleet (None: the policy sets no sla)
    sla: SlaReport | None = None

    def state_label(self, host: str, word: Callable[[str], str] = str) -> str:
        """The host's state as it reads (``word`` writes the state): ``compliant (2 excepted)``."""
        return state_label(word(self.states.get(host, NEVER_SCANNED)), len(self.excepted.get(host, {})))

    def exposure_days(self, source: str, name: str) -> float | None:
        """The oldest exposure among the hosts missing a version of the lineage, in days."""
        e = self.lineage_exposure.get((source, name))
        return None if e is None else e.days(self.generated_at)

    @property
    def compliant_percent(self) -> float:
        n = self.totals.hosts
        return round(100.0 * self.by_state.get(COMPLIANT, 0) / n, 1) if n else 0.0


def build_report(
    rows: Iterable[HostComplianceRow],
    generated_at: datetime,
    *,
    top_missing: Sequence[TopMissing] = (),
    history: Sequence[HistoryPoint] = (),
    reboot_since: Mapping[str, datetime | None] | None = None,
    windows: Mapping[str, str | None] | None = None,
    waves: Sequence[WaveRow] = (),
    deploy_failures: Iterable[DeployFailure] = (),
    stale_days: float = 7,
    nodes: Sequence[NodeThroughput] = (),
    approved_missing: Mapping[str, int] | None = None,
    blocked: Iterable[DeployFailure] = (),
    exposures: Iterable[Exposure] = (),
    starved: Sequence[Starved] = (),
    exceptions: Sequence[UpdateException] = (),
    excepted: Mapping[str, Mapping[str, int]] | None = None,
    holds: Mapping[str, HostHolds] | None = None,
    freezes: Sequence[Mapping[str, Any]] = (),
) -> Report:
    """The report over ``rows`` (one per host), as of ``generated_at``.

    ``waves`` are the waves of one rollout (the latest); ``deploy_failures`` the hosts whose last
    deploy result in it was not ok; ``reboot_since`` and ``windows`` map hosts to the time they
    started to need a reboot and to their maintenance window; ``blocked`` the hosts whose last
    deploy in any rollout was blocked; ``exposures`` the open exposures (``v_host_exposure``);
    ``exceptions`` those valid now and ``excepted`` per host the missing updates they cover.
    """
    hosts, totals = _hosts_and_totals(rows)
    now = generated_at
    stale_after = timedelta(days=stale_days)
    names = [h.name for h in hosts]
    dfail, dblock = split_deploy_results(deploy_failures, blocked, names)
    states = {
        h.name: compliance_state(
            host_facts(
                h,
                deploy_failed=h.name in dfail,
                approved_missing=None if approved_missing is None else approved_missing.get(h.name, 0),
                deploy_blocked=dblock[h.name].reason if h.name in dblock else None,
                excepted=len((excepted or {}).get(h.name, {})),
            ),
            now,
            stale_after,
        )
        for h in hosts
    }
    waves_of: dict[str, str] = {}
    for w in sorted(waves, key=lambda w: w.position):
        for host in w.hosts:
            waves_of.setdefault(host, w.wave)
    by_role: dict[str, dict[str, int]] = {}
    for h in hosts:
        by_role.setdefault(h.patch_role or NO_ROLE, dict.fromkeys(STATES, 0))[states[h.name]] += 1
    wave_summaries = tuple(
        WaveSummary(
            row=w,
            bake_until=w.finished_at + timedelta(days=w.bake_days) if w.finished_at is not None else None,
            by_state=_state_counts(states[h] for h in w.hosts if h in states),
        )
        for w in sorted(waves, key=lambda w: w.position)
    )
    since = reboot_since or {}
    reboots = tuple(
        PendingReboot(
            host=h.name,
            patch_role=h.patch_role,
            patch_window=(windows or {}).get(h.name),
            since=since.get(h.name),
            age=(now - s) if (s := since.get(h.name)) is not None else None,
        )
        for h in hosts
        if h.reboot_pending
    )
    reboots = tuple(sorted(reboots, key=lambda r: (r.since is None, r.since or now, r.host)))
    failures: list[Failure] = [
        Failure(h.name, "scan", h.reachability, h.error or h.reachability, h.last_scan_at)
        for h in hosts
        if h.reachability in (HOST_FAILED, HOST_UNREACHABLE)
    ]
    failures.extend(
        Failure(f.host, "deploy", f.status, f.reason, f.at, f.rollout_id, f.wave)
        for f in sorted([*dfail.values(), *dblock.values()], key=lambda f: f.host)
    )
    oldest: dict[str, Exposure] = {}
    by_lineage: dict[tuple[str, str], Exposure] = {}
    for e in exposures:
        if e.host not in states:
            continue
        if e.host not in oldest or e.since < oldest[e.host].since:
            oldest[e.host] = e
        key = (e.source, e.name)
        if key not in by_lineage or e.since < by_lineage[key].since:
            by_lineage[key] = e
    return Report(
        exceptions=tuple(exceptions),
        holds={h: v for h, v in (holds or {}).items() if h in states},
        freezes=tuple(freezes),
        excepted={h: dict(v) for h, v in (excepted or {}).items() if h in states},
        oldest_exposure=oldest,
        lineage_exposure=by_lineage,
        starved=tuple(starved),
        generated_at=generated_at,
        hosts=hosts,
        totals=totals,
        stale_days=stale_days,
        states=states,
        waves_of=waves_of,
        by_state=_state_counts(states.values()),
        by_role={role: by_role[role] for role in sorted(by_role)},
        rollout_id=waves[0].rollout_id if waves else None,
        waves=wave_summaries,
        top_missing=tuple(top_missing),
        pending_reboots=reboots,
        failures=tuple(failures),
        history=tuple(history),
        nodes=tuple(nodes),
        approved_missing=(
            {h.name: h.missing.total for h in hosts}
            if approved_missing is None
            else {h.name: min(approved_missing.get(h.name, 0), h.missing.total) for h in hosts}
        ),
    )


# --- change safety: health checks and services pending restart ---------------------------------


@dataclass(frozen=True)
class HealthCheck:
    """One health check of a host's latest run of checks (a deploy, reboot, restart or health
    run): ``state`` ``passed``, ``failed`` (passed before, failed after: the host failed) or
    ``pre_existing`` (already failing before; reported, never failing the host)."""

    host: str
    context: str
    name: str
    kind: str
    state: str
    before: str | None
    message: str
    at: datetime | None


@dataclass(frozen=True)
class RestartPending:
    """A host still running replaced files after a change: the services (systemd units, else the
    process names) that need a restart to run the new code."""

    host: str
    services: tuple[str, ...]
    since: datetime | None


def restart_services(entries: Iterable[Mapping[str, object]]) -> tuple[str, ...]:
    """The names ``restart pending: ...`` shows for a host's entries ({unit, processes}): the unit
    without ``.service``, else the processes' names; sorted, each once."""
    names: set[str] = set()
    for e in entries:
        unit = e.get("unit")
        if isinstance(unit, str) and unit:
            names.add(unit.removesuffix(".service"))
            continue
        procs = e.get("processes")
        for p in procs if isinstance(procs, list) else []:
            if isinstance(p, Mapping) and isinstance(p.get("comm"), str):
                names.add(str(p["comm"]))
    return tuple(sorted(names))
