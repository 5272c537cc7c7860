"""Services pending restart after a deploy (the ``patch_restart`` policy of
:mod:`patchctl.rules.reboot_policy`).

The apply module reports, per host, the services still running files the install replaced (a
library, an executable); the deploy records them (``hosts.restart_pending``). Then, for each host
the deploy left ok with services pending: a host rebooted by the deploy runs the new code (its
pending services are cleared); ``patch_restart: services`` (a server's default) restarts them when
the host's window allows it now, through ``playbooks/restart.yml`` (role ``patch_restart``: each
unit with systemctl, or the host's ``patch_restart_commands``), then runs its health checks;
``reboot`` leaves the host reboot pending for its window; ``never`` (a client's default) only
reports them. A restart looks again afterwards: the host's pending services are what is still
running replaced files then, never what patchctl hoped for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchctl import paths
from patchctl.ansible.inventory import Inventory, load_inventory
from patchctl.ansible.runner import HostEvent, PlaybookRunner, result_message
from patchctl.errors import ConfigError
from patchctl.reboot import RebootReport
from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE, ApplyOutcome
from patchctl.rules.policy import Policy
from patchctl.rules.reboot_policy import (
    ACTION_REBOOT,
    RESTART_REBOOT,
    restart_decision,
    restart_mode,
)
from patchctl.rules.report import restart_services
from patchctl.store import Store
from patchctl.store.reboots import RebootStore
from patchctl.store.safety import SafetyStore

RESTART_PLAYBOOK = "restart.yml"
RESULT_KEY = "patchctl_restart"


@dataclass
class HostRestart:
    host: str
    action: str  # restart | pending | rebooted
    reason: str
    services: tuple[str, ...] = ()  # pending before
    status: str | None = None  # ok | failed | unreachable, when restarted
    restarted: list[str] = field(default_factory=list)
    still_pending: tuple[str, ...] = ()
    error: str | None = None
    health: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "action": self.action,
            "reason": self.reason,
            "services": list(self.services),
            "status": self.status,
            "restarted": self.restarted,
            "still_pending": list(self.still_pending),
            "error": self.error,
            "health": self.health,
        }


@dataclass
class RestartReport:
    hosts: dict[str, HostRestart] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(h.status not in (None, HOST_OK) for h in self.hosts.values())


def _plan(inventory: Inventory, host: str, policy: Policy, now: datetime) -> tuple[str, str, str]:
    """(mode, action, reason) of ``patch_restart`` for ``host`` now."""
    try:
        mode = restart_mode(inventory.var(host, "patch_role"), inventory.var(host, "patch_restart"))
    except ValueError as exc:
        raise ConfigError(f"inventory {inventory.source}: host {host}: {exc}") from None
    name = inventory.var(host, "patch_window")
    window = policy.windows.get(str(name)) if name else None
    d = restart_decision(mode, window, now, window_name=name)
    return mode, ("restart" if d.action == ACTION_REBOOT else "pending"), d.reason


def after_deploy_restarts(
    inventory_path: str,
    db_url: str,
    policy: Policy,
    now: datetime,
    outcomes: Mapping[str, ApplyOutcome],
    reboots: RebootReport | None,
    runner: PlaybookRunner | None = None,
) -> RestartReport:
    """What ``patch_restart`` does about the services a deploy left running replaced files."""
    report = RestartReport()
    pending = {h: o.restart_pending for h, o in outcomes.items() if o.status == HOST_OK and o.restart_pending}
    if not pending:
        return report
    inventory = load_inventory(inventory_path)
    rebooted = {h for h, r in (reboots.results if reboots else {}).items() if r.status == HOST_OK}
    todo: list[str] = []
    with Store.open(db_url) as store:
        safety = SafetyStore(store)
        for host in sorted(pending):
            services = restart_services(pending[host] or [])
            if host in rebooted:
                safety.record_restart(host, [], [], now)
                report.hosts[host] = HostRestart(
                    host, "rebooted", "rebooted by the deploy: runs the new files", services
                )
                continue
            mode, action, reason = _plan(inventory, host, policy, now)
            if mode == RESTART_REBOOT:
                RebootStore(store).mark_reboot_pending(host, now)
            report.hosts[host] = HostRestart(host, action, reason, services)
            if action == "restart":
                todo.append(host)
    if todo:
        _restart(inventory_path, db_url, todo, report, now, runner)
    return report


def _restart(
    inventory_path: str,
    db_url: str,
    hosts: list[str],
    report: RestartReport,
    now: datetime,
    runner: PlaybookRunner | None,
) -> None:
    seen: dict[str, HostEvent] = {}

    def on_event(event: HostEvent) -> None:
        wanted = event.host in hosts and not event.item and event.status in ("ok", "failed", "unreachable")
        if wanted and (event.host not in seen or isinstance(event.result.get(RESULT_KEY), dict)):
            seen[event.host] = event

    (runner or PlaybookRunner()).run(
        paths.playbook(RESTART_PLAYBOOK),
        inventory=inventory_path,
        limit=",".join(hosts),
        on_event=on_event,
        forks=min(len(hosts), 4),
    )
    with Store.open(db_url) as store:
        safety = SafetyStore(store)
        for host in hosts:
            h = report.hosts[host]
            event = seen.get(host)
            data = event.result.get(RESULT_KEY) if event is not None else None
            if event is None or not isinstance(data, dict):
                h.status = HOST_UNREACHABLE if event is not None and event.status == "unreachable" else HOST_FAILED
                h.error = result_message(event.result) if event is not None else "no result from the restart role"
                continue
            still = [g for g in data.get("restart_pending") or [] if isinstance(g, dict)]
            h.health = [c for c in data.get("health") or [] if isinstance(c, dict)]
            h.restarted = [str(r.get("name")) for r in data.get("restarted") or [] if isinstance(r, dict)]
            h.still_pending = restart_services(still)
            h.status = HOST_OK if event.status == "ok" else HOST_FAILED
            h.error = None if event.status == "ok" else result_message(event.result)
            safety.record_restart(host, still, h.health, now)
