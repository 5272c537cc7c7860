"""The compliance report, built from store rows: pure rules, no SQL, no click, no output.

The rows come from :meth:`patchctl.store.Store.host_compliance` (``v_host_compliance``); this
module only needs their shape (:class:`ComplianceRow`), so it does not import the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from patchctl.model import CLASSIFICATIONS, HOST_FAILED, HOST_OK, HOST_UNREACHABLE

NEVER_SCANNED = "never_scanned"
REACHABILITY = (HOST_OK, HOST_FAILED, HOST_UNREACHABLE, NEVER_SCANNED)


class ComplianceRow(Protocol):
    """What the report reads from one host's compliance row."""

    @property
    def host(self) -> str: ...
    @property
    def os(self) -> str: ...
    @property
    def pkg_mgr(self) -> str | None: ...
    @property
    def patch_role(self) -> str | None: ...
    @property
    def last_scan_at(self) -> datetime | None: ...
    @property
    def reachability(self) -> str: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def missing_total(self) -> int: ...
    @property
    def missing_by_class(self) -> Mapping[str, int]: ...
    @property
    def missing_major(self) -> int: ...
    @property
    def reboot_required(self) -> bool: ...


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


@dataclass(frozen=True)
class FleetReport:
    """The compliance report: one :class:`HostReport` per host, sorted by name, and totals."""

    generated_at: datetime
    hosts: tuple[HostReport, ...]
    totals: ReportTotals


def _counts(by_class: Mapping[str, int], total: int, major: int) -> MissingCounts:
    ordered = {c: int(by_class.get(c, 0)) for c in CLASSIFICATIONS}
    # Classifications unknown to this version of patchctl count as "other".
    extra = sum(int(n) for c, n in by_class.items() if c not in ordered)
    ordered["other"] += extra
    return MissingCounts(total=int(total), by_class=ordered, major=int(major))


def host_report(row: ComplianceRow) -> HostReport:
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


def build_report(rows: Iterable[ComplianceRow], generated_at: datetime) -> FleetReport:
    """The report over ``rows`` (one per host), as of ``generated_at``."""
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
    return FleetReport(generated_at=generated_at, hosts=hosts, totals=totals)
