"""The normalized update model shared by every scan source (apt, dnf, zypper, Windows, Chocolatey).

Rules only: no I/O, no Ansible, no SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Classification words, shared by every source.
CLASSIFICATIONS = (
    "security",
    "critical",
    "bugfix",
    "enhancement",
    "feature",
    "rollup",
    "definition",
    "driver",
    "other",
)

SOURCES = ("apt", "dnf", "zypper", "windows", "chocolatey")

HOST_OK = "ok"
HOST_FAILED = "failed"
HOST_UNREACHABLE = "unreachable"
# A deploy result: an approved update the host cannot get as the policy stands (its version is no
# longer offered; the baseline's ``successors`` decides, patchctl.rules.lineage). Not ok.
HOST_BLOCKED = "blocked"


# Debian's upload urgencies, least urgent first (deb-changelog(5)); the order is the ranking.
URGENCIES = ("low", "medium", "high", "emergency", "critical")

@dataclass(frozen=True)
class Update:
    """One installable change, identified stably across hosts by ``uid``."""

    source: str
    name: str
    version: str  # the target (candidate) version; for Windows the update revision
    classification: str = "other"
    installed_version: str | None = None
    arch: str | None = None
    severity: str | None = None
    cves: tuple[str, ...] = ()
    advisory_ids: tuple[str, ...] = ()
    kbs: tuple[str, ...] = ()
    title: str | None = None
    origin: str | None = None  # apt origin/suite, dnf repo, ...
    major: bool = False
    reboot_hint: bool = False
    update_id: str | None = None  # Windows update id
    # when the source released it (Windows: WUA's LastDeploymentChangeTime), None when the source
    # does not say; the policy's approve_after_days counts from it, else from first seen
    released_at: datetime | None = None
    # a catalogued application installed outside Chocolatey (found in the registry): Chocolatey
    # would install over that copy, so it is an update of its own (uid ending UNMANAGED_SUFFIX)
    # that only an operator approves (patchctl approve ID --take-over)
    unmanaged: bool = False
    # the package hold that keeps it from installing (apt-mark hold, dnf versionlock, zypper
    # lock): a held update is reported held, never missing, never deployed
    held: str | None = None
    # apt: the source package and source version the candidate is built from (its changelog's key)
    source_package: str | None = None
    source_version: str | None = None

    @property
    def uid(self) -> str:
        """Stable identity: source + name + target version (Windows: update id); an unmanaged
        application's ends with :data:`UNMANAGED_SUFFIX`."""
        if self.source == "windows" and self.update_id:
            return f"windows:{self.update_id}"
        if self.unmanaged:
            return f"{self.source}:{self.name}:{self.version}{UNMANAGED_SUFFIX}"
        return f"{self.source}:{self.name}:{self.version}"


UNMANAGED_SUFFIX = ":unmanaged"


def is_unmanaged_uid(uid: str) -> bool:
    """Whether ``uid`` is an application installed outside Chocolatey (see ``Update.unmanaged``)."""
    return uid.startswith("chocolatey:") and uid.endswith(UNMANAGED_SUFFIX)


@dataclass
class HostScan:
    """What one scan of one host found."""

    host: str
    status: str  # HOST_OK | HOST_FAILED | HOST_UNREACHABLE
    scanned_at: datetime
    error: str | None = None
    os_family: str | None = None
    distribution: str | None = None
    os_version: str | None = None
    pkg_mgr: str | None = None
    reboot_required: bool = False
    updates: list[Update] = field(default_factory=list)
    # installed versions of packages the store asked about (name -> version)
    installed: dict[str, str] = field(default_factory=dict)
    # updates a package hold keeps back (Update.held): not missing, never deployed; and the
    # host's holds as (package name or glob, kind of hold)
    held: list[Update] = field(default_factory=list)
    holds: tuple[tuple[str, str], ...] = ()
    # inventory facts about the host, for the store
    groups: tuple[str, ...] = ()
    address: str | None = None
    patch_role: str | None = None
    patch_window: str | None = None


@dataclass
class ApplyOutcome:
    """What one deploy did on one host: the updates (by uid) it installed and those that failed."""

    host: str
    status: str  # HOST_OK | HOST_FAILED | HOST_UNREACHABLE | HOST_BLOCKED (a deploy, patchctl.deploy.judge)
    installed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # uid -> reason
    reboot_required: bool = False
    error: str | None = None
    # package name -> version, as the package manager reports it after the run (Linux)
    versions: dict[str, str] = field(default_factory=dict)
    # change safety: the hooks that ran (phase, name, rc, ok, output), each health check after
    # the change against its baseline (name, kind, state, before, message), and the services
    # still running replaced code after it ({unit, processes}; None: not looked at)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    restart_pending: list[dict[str, Any]] | None = None
