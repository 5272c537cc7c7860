"""CVE exposure: per CVE, the hosts missing an update that fixes it, since when, and where each
fix stands. Pure: the ``patchctl cve`` flow (:mod:`patchctl.cve`) gathers the inputs.

A host is exposed to a CVE while it misses an update whose CVEs name it (any source: apt's from
the Debian changelog entries between the host's installed and the candidate version, dnf's and
zypper's advisories, Windows' CVE ids). It is exposed since the exposure clock of that update's
lineage on the host (``v_host_exposure``: surviving supersedes), else since it was first found
missing it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchctl.errors import ConfigError
from patchctl.rules.clock import iso_utc

_CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")


def cve_id(text: str, what: str = "CVE-ID") -> str:
    """``text`` as a CVE id (upper case); ConfigError naming it when it is not one."""
    value = text.strip().upper()
    if not _CVE_ID.match(value):
        raise ConfigError(f"{what}: {text!r} is not a CVE id (CVE-YYYY-NNNN)")
    return value


@dataclass(frozen=True)
class Fix:
    """An update that fixes a CVE and where it stands."""

    uid: str
    source: str
    name: str
    version: str
    severity: str | None  # the source's severity, else an apt update's Debian urgency
    state: str  # the catalog's: approved, waiting N days, needs manual approval, rejected, new
    where: str  # "not approved", "waiting 3 days", "in rollout 2, wave pilot (baking)", "blocked ..."
    hosts_missing: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "source": self.source,
            "name": self.name,
            "version": self.version,
            "severity": self.severity,
            "state": self.state,
            "where": self.where,
            "hosts_missing": self.hosts_missing,
        }


@dataclass(frozen=True)
class ExposedHost:
    host: str
    since: datetime
    updates: tuple[str, ...]  # the uids of the fixes it misses

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "host": self.host,
            "since": iso_utc(self.since),
            "days": round((now - self.since).total_seconds() / 86400, 1),
            "updates": list(self.updates),
        }


@dataclass(frozen=True)
class CveExposure:
    cve: str
    hosts: tuple[ExposedHost, ...]
    fixes: tuple[Fix, ...]

    @property
    def since(self) -> datetime | None:
        return min((h.since for h in self.hosts), default=None)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "cve": self.cve,
            "hosts_exposed": len(self.hosts),
            "exposed_since": iso_utc(self.since),
            "hosts": [h.as_dict(now) for h in self.hosts],
            "fixes": [f.as_dict() for f in self.fixes],
        }


@dataclass(frozen=True)
class Missing:
    """One update missing on one host, with the CVEs it fixes there and since when."""

    host: str
    uid: str
    cves: tuple[str, ...]
    since: datetime


def exposures(
    missing: Iterable[Missing],
    fixes: Mapping[str, Fix],
    known: Mapping[str, Sequence[str]],
    wanted: Sequence[str] | None = None,
) -> list[CveExposure]:
    """Per CVE (``wanted``, in that order, each even when no host is exposed; else every CVE some
    host is exposed to, most exposed hosts first, then the longest exposed), its exposed hosts
    and its fixes. ``known``: uid -> CVEs of every update of the catalog (the fixes of a CVE no
    host misses any more)."""
    hosts: dict[str, dict[str, tuple[datetime, list[str]]]] = {}
    for m in missing:
        for cve in m.cves:
            by_host = hosts.setdefault(cve, {})
            since, uids = by_host.get(m.host, (m.since, []))
            by_host[m.host] = (min(since, m.since), [*uids, m.uid])
    fixers: dict[str, set[str]] = {}
    for uid, cves in known.items():
        for cve in cves:
            fixers.setdefault(cve, set()).add(uid)
    names = list(dict.fromkeys(wanted)) if wanted else list(hosts)
    out = []
    for cve in names:
        exposed = tuple(
            sorted(
                (ExposedHost(h, since, tuple(sorted(set(uids)))) for h, (since, uids) in hosts.get(cve, {}).items()),
                key=lambda e: (e.since, e.host),
            )
        )
        fix = tuple(fixes[u] for u in sorted(fixers.get(cve, set())) if u in fixes)
        out.append(CveExposure(cve, exposed, fix))
    if not wanted:
        far = datetime.max.replace(tzinfo=None)
        out.sort(key=lambda c: (-len(c.hosts), c.since.replace(tzinfo=None) if c.since else far, c.cve))
    return out
