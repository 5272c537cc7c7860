"""The changelog step of a scan: the CVE ids, Debian urgency and DSA/DLA ids of apt updates.

After the hosts' scans are recorded, each apt update names its source package and source version
(``apt-cache show``'s ``Source:``). A pair that the catalog has no changelog for yet is fetched
by ONE host, the first of this scan to report it: ``playbooks/changelogs.yml`` downloads one of
its binary packages (signatures checked, into a throwaway directory) and returns the changelog
text; the control node parses it (:mod:`patchctl.rules.changelog`) and stores it once for the
whole fleet. Later scans, and every other host, reuse it.

Nothing here fails a scan: a changelog that cannot be had is stored with its reason (shown by
``patchctl updates --json`` as ``cves_reason``) and the update keeps empty CVEs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchctl import paths
from patchctl.ansible.fleet import run_split
from patchctl.ansible.inventory import Inventory
from patchctl.ansible.runner import HostEvent, result_message
from patchctl.errors import PatchctlError
from patchctl.rules import changelog
from patchctl.rules.model import HOST_OK, HostScan
from patchctl.store import Store
from patchctl.store.changelogs import ChangelogStore, Fetched

CHANGELOG_PLAYBOOK = "changelogs.yml"
RESULT_KEY = "patchctl_changelogs"
REQUEST_VAR = "patch_scan_linux_changelogs_request"


@dataclass
class ChangelogSummary:
    """What the changelog step of one scan did."""

    asked: int = 0
    parsed: int = 0
    unreadable: int = 0
    failed: int = 0
    downloads: int = 0
    hosts: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "parsed": self.parsed,
            "unreadable": self.unreadable,
            "fetch_failed": self.failed,
            "downloads": self.downloads,
            "hosts": self.hosts,
            "error": self.error,
        }


def plan_fetches(scans: Iterable[HostScan], wanted: set[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """host -> what it fetches: each wanted (source, version) goes to the first ok apt host (in
    ``scans`` order) that reports an update of it, with that host's binaries of it."""
    plan: dict[str, list[dict[str, Any]]] = {}
    taken: set[tuple[str, str]] = set()
    for scan in scans:
        if scan.status != HOST_OK or scan.pkg_mgr != "apt":
            continue
        mine: dict[tuple[str, str], list[dict[str, str]]] = {}
        for upd in scan.updates:
            if upd.source_package and upd.source_version:
                key = (upd.source_package, upd.source_version)
                if key in wanted and key not in taken:
                    mine.setdefault(key, []).append({"name": upd.name, "version": upd.version})
        for key, binaries in mine.items():
            taken.add(key)
            # the binary named like its source first: its doc directory is rarely a symlink
            binaries.sort(key=lambda b: (b["name"].split(":")[0] != key[0], b["name"]))
            plan.setdefault(scan.host, []).append({"source": key[0], "source_version": key[1], "binaries": binaries})
    return plan


def fetched_of(host: str, item: dict[str, Any]) -> Fetched:
    """One entry of a host's ``patchctl_changelogs`` result, parsed."""
    status, reason = str(item.get("status")), item.get("reason")
    entries: tuple[changelog.Entry, ...] = ()
    if status == "ok":
        try:
            entries = tuple(changelog.parse(str(item.get("text") or "")))
            status, reason = changelog.PARSED, None
        except changelog.ChangelogUnreadable as exc:
            status, reason = changelog.UNREADABLE, f"{item.get('package')}: {exc}"
    elif status == "unreadable":
        status = changelog.UNREADABLE
    else:
        status = changelog.FETCH_FAILED
    return Fetched(
        source_package=str(item.get("source")),
        source_version=str(item.get("source_version")),
        status=status,
        reason=None if reason is None else str(reason),
        entries=entries,
        host=host,
        package=item.get("package"),
        downloads=int(item.get("downloads") or 0),
    )


def fetch_changelogs(
    store: Store,
    inventory: Inventory,
    inventory_source: str,
    scans: Iterable[HostScan],
    now: datetime,
    timeout: int | None = None,
) -> ChangelogSummary:
    """The changelog step (module docstring); never raises for what a host or a package did."""
    scans = list(scans)
    summary = ChangelogSummary()
    cs = ChangelogStore(store)
    cs.link_sources(
        (u.uid, u.source_package, u.source_version)
        for s in scans
        if s.status == HOST_OK and s.pkg_mgr == "apt"
        for u in s.updates
        if u.source_package and u.source_version
    )
    keys = {
        (u.source_package, u.source_version)
        for s in scans
        if s.status == HOST_OK and s.pkg_mgr == "apt"
        for u in s.updates
        if u.source_package and u.source_version
    }
    plan = plan_fetches(scans, set(cs.wanted(keys)))
    fetched: dict[tuple[str, str], Fetched] = {}
    if plan:
        summary.hosts = sorted(plan)

        def fail_all(host: str, reason: str) -> None:
            for item in plan.get(host, []):
                key = (item["source"], item["source_version"])
                fetched.setdefault(key, Fetched(key[0], key[1], changelog.FETCH_FAILED, reason, (), host, None, 0))

        def on_event(event: HostEvent) -> None:
            if event.host not in plan:
                return
            if event.status == "ok" and isinstance(event.result.get(RESULT_KEY), list):
                for item in event.result[RESULT_KEY]:
                    if isinstance(item, dict):
                        f = fetched_of(event.host, item)
                        fetched[(f.source_package, f.source_version)] = f
            elif event.status in ("failed", "unreachable"):
                fail_all(event.host, f"{event.host}: {result_message(event.result)}")

        try:
            run_split(
                inventory,
                inventory_source,
                sorted(plan),
                paths.playbook(CHANGELOG_PLAYBOOK),
                {REQUEST_VAR: plan},
                on_event,
                timeout,
                len(plan),
                results_seen=lambda host: any(f.host == host for f in fetched.values()),
            )
        except PatchctlError as exc:
            summary.error = exc.message
        for host in plan:
            fail_all(host, f"{host}: no changelog result" + (f" ({summary.error})" if summary.error else ""))
    results = list(fetched.values())
    cs.record(results, now)
    cs.apply()
    summary.asked = len(results)
    summary.parsed = sum(1 for f in results if f.status == changelog.PARSED)
    summary.unreadable = sum(1 for f in results if f.status == changelog.UNREADABLE)
    summary.failed = sum(1 for f in results if f.status == changelog.FETCH_FAILED)
    summary.downloads = sum(f.downloads for f in results)
    return summary
