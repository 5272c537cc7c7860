"""Package holds, as the report shows them: what a host's package manager will not upgrade
(``apt-mark hold``, ``dnf versionlock``, ``zypper lock``) and the updates that keeps back.

The scan module names the hold of each update it keeps back (``held``); such an update is
reported ``held`` with its hold, is never counted missing (it is not in the host's missing
updates at all) and never deployed. patchctl never removes a hold: that is an operator's act on
the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HeldUpdate:
    host: str
    uid: str
    name: str
    version: str
    installed_version: str | None
    by: str  # the kind of hold: apt-mark hold, dnf versionlock, zypper lock


@dataclass(frozen=True)
class HostHolds:
    host: str
    holds: tuple[tuple[str, str], ...]  # (package name or glob, kind of hold)
    updates: tuple[HeldUpdate, ...]


def host_holds(host: str, data: Mapping[str, Any] | None) -> HostHolds:
    """A host's ``hosts.holds`` JSON (as the scan writes it) as :class:`HostHolds`."""
    data = data or {}
    holds = tuple((str(h.get("name")), str(h.get("by"))) for h in data.get("holds") or [] if isinstance(h, Mapping))
    updates = tuple(
        HeldUpdate(
            host=host,
            uid=str(u.get("uid")),
            name=str(u.get("name")),
            version=str(u.get("version")),
            installed_version=None if u.get("installed_version") is None else str(u.get("installed_version")),
            by=str(u.get("by")),
        )
        for u in data.get("updates") or []
        if isinstance(u, Mapping)
    )
    return HostHolds(host, holds, updates)
