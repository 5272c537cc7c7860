"""The scan flow: run ``playbooks/scan.yml`` over the inventory and record each host's result in
the store as it arrives (one transaction per host: a crash loses at most the host in flight)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from patchctl import paths
from patchctl.ansible.fleet import run_split
from patchctl.ansible.inventory import load_inventory
from patchctl.ansible.runner import HostEvent, result_message
from patchctl.changelogs import ChangelogSummary, fetch_changelogs
from patchctl.errors import EXIT_HOST_FAILURES, EXIT_OK, PatchctlError
from patchctl.rules import normalize, normalize_windows
from patchctl.rules.apps import Catalog, load_catalog
from patchctl.rules.clock import iso_utc
from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE, HostScan
from patchctl.store import Store
from patchctl.store.locks import LockBusy, store_lock

SCAN_PLAYBOOK = "scan.yml"
RESULT_KEY = "patchctl_scan"
DEAD_SCAN_GRACE = 10  # seconds
# how the scan module's message about a failed signature or checksum starts (patch_scan_linux)
INTEGRITY = "integrity: "  # the modules' marker (plugins/module_utils/patchctl_linux.py), checked equal by a test


@dataclass(frozen=True)
class ScanOptions:
    inventory: str
    db_url: str
    limit: str | None = None
    forks: int | None = None  # None: sized to the hosts (scan_forks)
    cache_valid_time: int = 0
    timeout: int | None = None


@dataclass
class ScanSummary:
    run_id: int
    inventory: str
    started_at: datetime
    finished_at: datetime | None = None
    hosts: dict[str, HostScan] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)  # per part: node, hosts, seconds, ...
    controller_cpu_seconds: float = 0.0
    changelogs: ChangelogSummary = field(default_factory=ChangelogSummary)

    def count(self, status: str) -> int:
        return sum(1 for scan in self.hosts.values() if scan.status == status)

    @property
    def exit_code(self) -> int:
        if any(scan.status != HOST_OK for scan in self.hosts.values()):
            return EXIT_HOST_FAILURES
        return EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "inventory": self.inventory,
            "started_at": iso_utc(self.started_at),
            "finished_at": iso_utc(self.finished_at),
            "hosts_total": len(self.hosts),
            "hosts_ok": self.count(HOST_OK),
            "hosts_failed": self.count(HOST_FAILED),
            "hosts_unreachable": self.count(HOST_UNREACHABLE),
            "nodes": self.nodes,
            "controller_cpu_seconds": round(self.controller_cpu_seconds, 2),
            "changelogs": self.changelogs.as_dict(),
            "hosts": [
                {
                    "name": scan.host,
                    "status": scan.status,
                    "error": scan.error,
                    "missing": len(scan.updates),
                    "security": sum(1 for u in scan.updates if u.classification == "security"),
                    "major": sum(1 for u in scan.updates if u.major),
                    "reboot_required": scan.reboot_required,
                }
                for scan in sorted(self.hosts.values(), key=lambda s: s.host)
            ],
        }


ProgressFn = Callable[[HostScan, int, int], None]

# A scan is one module call per host that mostly waits (SSH set-up, the metadata download), so
# every host gets its own worker, up to this many (bench/scan_bench.py: forks 20 -> hosts).
SCAN_FORKS_MAX = 100


def scan_forks(hosts: int) -> int:
    """Ansible forks for a scan of ``hosts`` hosts when neither --forks nor the config sets them."""
    return max(1, min(hosts, SCAN_FORKS_MAX))


def scan_request(cache_valid_time: int, watch: list[str]) -> dict[str, Any]:
    """The scan playbook's extra vars: what this run asks of the patch_scan_linux role, in its one
    ``patch_scan_linux_request`` variable. The role's defaults read it, so a host's or group's own
    ``patch_scan_linux_*`` variables still win (extra vars of those names would override them)."""
    return {"patch_scan_linux_request": {"cache_valid_time": cache_valid_time, "watch": list(watch)}}


def _now() -> datetime:
    return datetime.now(UTC)


def run_scan(opts: ScanOptions, progress: ProgressFn | None = None) -> ScanSummary:
    """Scan the selected hosts; return what each answered. Raises ConfigError on bad input."""
    inventory = load_inventory(opts.inventory)
    if not inventory.hosts:
        raise PatchctlError(f"{opts.inventory}: the inventory holds no hosts", 2)
    targets = inventory.match(opts.limit)
    catalogs: list[Catalog] = []
    if any("windows" in inventory.groups_of(h) for h in targets):
        # the effective catalog (the user's PATCHCTL_CATALOG too), read before the run is recorded:
        # the Windows scan role searches with its registry patterns
        catalogs.append(load_catalog())
    store = Store.open(opts.db_url)
    held = contextlib.ExitStack()
    try:
        close_dead_scans(store)
        run_id = store.start_run("scan", opts.inventory, opts.limit, len(targets))
        # Held while this run lives: a later scan that finds the run still 'running' and its lock
        # free knows it died (kill -9) and closes it; the hosts it recorded stay recorded.
        held.enter_context(store_lock(store, scan_lock_name(run_id)))
        summary = ScanSummary(run_id=run_id, inventory=opts.inventory, started_at=_now())
        lock = threading.Lock()
        # Windows hosts answer in three results (patch_win_update_info, win_updates,
        # win_chocolatey_facts) and the `choco search` loop; they are held here until the last
        # one (Chocolatey's facts, ok or skipped) arrives.
        windows_parts: dict[str, dict[str, Any]] = {}

        def base_scan(host: str, status: str, error: str | None = None) -> HostScan:
            return HostScan(
                host=host,
                status=status,
                scanned_at=_now(),
                error=error,
                groups=inventory.groups_of(host),
                address=inventory.var(host, "ansible_host"),
                patch_role=inventory.var(host, "patch_role"),
                patch_window=inventory.var(host, "patch_window"),
            )

        def ok_scan(host: str, found: normalize.LinuxScan | normalize_windows.WindowsScan) -> HostScan:
            """A successful scan of ``host``: what its normalized result found, with its inventory facts."""
            return replace(
                base_scan(host, HOST_OK),
                os_family=found.os_family,
                distribution=found.distribution,
                os_version=found.os_version,
                pkg_mgr=found.pkg_mgr,
                reboot_required=found.reboot_required,
                updates=list(found.updates),
                installed=dict(found.installed),
                held=list(found.held) if isinstance(found, normalize.LinuxScan) else [],
                holds=found.holds if isinstance(found, normalize.LinuxScan) else (),
            )

        def record(scan: HostScan) -> None:
            with lock:
                if scan.host in summary.hosts and summary.hosts[scan.host].status == HOST_OK:
                    return  # a later event for a host already recorded (e.g. a handler) changes nothing
                store.record_host_scan(run_id, scan)
                summary.hosts[scan.host] = scan
                if progress is not None:
                    progress(scan, len(summary.hosts), len(targets))

        def finish_windows(host: str, parts: dict[str, Any], chocolatey: dict[str, Any] | None) -> None:
            if "win_updates" not in parts:
                record(base_scan(host, HOST_FAILED, "bad scan result: no win_updates result before Chocolatey's"))
                return
            try:
                if not catalogs:
                    catalogs.append(load_catalog())
                found = normalize_windows.normalize_windows_scan(
                    parts["win_updates"],
                    catalog=catalogs[0],
                    details=parts.get("details"),
                    chocolatey=chocolatey,
                    choco_search=parts.get("choco_search"),
                    host=host,
                )
            except PatchctlError as exc:
                record(base_scan(host, HOST_FAILED, f"bad scan result: {exc.message}"))
                return
            record(ok_scan(host, found))

        def on_windows_event(event: HostEvent) -> bool:
            """Route a Windows scan role's event; False when it is not one."""
            action = event.action
            if event.status == "ok" and action in normalize_windows.INFO_ACTIONS:
                windows_parts.setdefault(event.host, {})["details"] = event.result
            elif event.status == "ok" and action in normalize_windows.WIN_UPDATES_ACTIONS:
                windows_parts.setdefault(event.host, {})["win_updates"] = event.result
            elif event.status in ("ok", "skipped") and action in normalize_windows.CHOCO_SEARCH_ACTIONS:
                if event.status == "ok" and not event.item:  # the loop's own event: every item's result
                    windows_parts.setdefault(event.host, {})["choco_search"] = event.result
            elif event.status in ("ok", "skipped") and action in normalize_windows.CHOCO_FACTS_ACTIONS:
                parts = windows_parts.pop(event.host, {})
                finish_windows(event.host, parts, event.result if event.status == "ok" else None)
            else:
                return False
            return True

        def on_event(event: HostEvent) -> None:
            if event.host not in targets:
                return
            if on_windows_event(event):
                return
            if event.status == "ok" and isinstance(event.result, dict) and RESULT_KEY in event.result:
                try:
                    found = normalize.normalize_scan(event.result, host=event.host)
                except PatchctlError as exc:
                    record(base_scan(event.host, HOST_FAILED, f"bad scan result: {exc.message}"))
                    return
                record(ok_scan(event.host, found))
            elif event.status == "unreachable":
                record(base_scan(event.host, HOST_UNREACHABLE, result_message(event.result)))
            elif event.status == "failed":
                msg = result_message(event.result)
                # an integrity problem (bad signature, checksum, verification turned off) says so first
                record(base_scan(event.host, HOST_FAILED, msg if msg.startswith(INTEGRITY) else f"{event.task}: {msg}"))

        extravars = scan_request(opts.cache_valid_time, store.watched_packages("apt"))
        if catalogs:
            extravars["patchctl_app_catalog"] = catalogs[0].as_vars()
        # Hosts with patchctl_execution_node run through their node (ansible-runner streaming),
        # the others from here; all parts at once (patchctl.ansible.fleet).
        split = run_split(
            inventory,
            opts.inventory,
            targets,
            paths.playbook(SCAN_PLAYBOOK),
            extravars,
            on_event,
            opts.timeout,
            opts.forks or scan_forks(len(targets)),
            results_seen=lambda host: host in summary.hosts,
        )
        summary.nodes = [p.as_dict() for p in split.parts]
        store.record_node_parts("scan", run_id, summary.nodes)  # v_node_throughput, the report
        summary.controller_cpu_seconds = split.controller_cpu_seconds
        for host, reason in split.unknown.items():
            record(base_scan(host, HOST_UNREACHABLE, reason))
        statuses = {r.status for r in split.results.values()}
        for host in targets:
            if host not in summary.hosts:
                reason = "no scan result (the playbook did not reach this host)"
                odd = statuses - {"successful", "failed"}
                if odd:
                    reason = f"no scan result: the run ended {', '.join(sorted(odd))}"
                record(base_scan(host, HOST_FAILED, reason))
        # apt updates new to the catalog: their changelogs, one host per source package and version
        summary.changelogs = fetch_changelogs(
            store, inventory, opts.inventory, list(summary.hosts.values()), _now(), opts.timeout
        )
        summary.finished_at = _now()
        store.finish_run(run_id, "ok" if summary.exit_code == EXIT_OK else "host failures")
        return summary
    finally:
        held.close()
        store.close()


def inventory_names(inventory: str) -> list[str]:
    """The inventory's host and group names (shell completion of ``--limit``)."""
    inv = load_inventory(inventory)
    return sorted(set(inv.hosts) | set(inv.groups))


def scan_lock_name(run_id: int) -> str:
    return f"scan run {run_id}"


def close_dead_scans(store: Store) -> list[int]:
    """Close the scan runs left 'running' by a scan that died: status 'crashed', hosts counted."""
    closed = []
    # a grace time: a run that started just now may not hold its lock yet (milliseconds)
    for run_id in store.unfinished_runs("scan", _now() - timedelta(seconds=DEAD_SCAN_GRACE)):
        try:
            with store_lock(store, scan_lock_name(run_id)):
                store.finish_run(run_id, "crashed")
        except LockBusy:
            continue  # alive
        closed.append(run_id)
    return closed
