"""The reboot flow: restart the hosts whose reboot is pending and whose window allows it now.

Who reboots and when is decided by :mod:`patchctl.rules.reboot_policy` (by ``patch_role`` /
``patch_reboot``) and :mod:`patchctl.rules.maintenance` (the host's ``patch_window`` at the possibly simulated
current time); this module runs ``playbooks/reboot.yml`` (role ``patch_reboot``) over those
hosts, grouped by rollout wave and each group with its wave's ``max_concurrency`` (Ansible
forks), and records every attempt in the store:

- a ``running`` row before the host is touched;
- ``ok`` when the role reports the host back with a new boot id (and its test command passing):
  the host's ``reboot pending`` is cleared;
- ``failed`` when the host did not come back within the timeout, came back with the same boot
  id, or a pre/post command failed; ``unreachable`` when it could not be reached to start with.
  Failed hosts stay ``reboot pending``; the other hosts proceed.

Clients (reboot policy ``never``) are never rebooted: they stay ``reboot pending``.

Reboot runs never overlap: ``patchctl reboot`` holds the store lock ``reboot``
(:func:`patchctl.store.locks.store_lock`) for its whole run and a second one is refused (exit 3,
naming the holder); the reboots right after a deploy wait for it up to
``AFTER_DEPLOY_LOCK_WAIT`` seconds, else leave their hosts ``reboot pending`` for the next run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from patchctl import paths
from patchctl.ansible.inventory import Inventory, load_inventory
from patchctl.ansible.runner import HostEvent, PlaybookRunner, result_message
from patchctl.errors import EXIT_HOST_FAILURES, EXIT_OK, ConfigError
from patchctl.rules.clock import iso_utc
from patchctl.rules.freezes import STOP_REBOOT, Freeze, freeze_for
from patchctl.rules.maintenance import Window
from patchctl.rules.model import HOST_OK, ApplyOutcome
from patchctl.rules.policy import Policy, Wave
from patchctl.rules.reboot_policy import (
    ACTION_NONE,
    ACTION_PENDING,
    ACTION_REBOOT,
    RebootDecision,
    reboot_decision,
    reboot_mode,
)
from patchctl.rules.waves import assign_hosts
from patchctl.store import Store
from patchctl.store.freezes import record_transitions
from patchctl.store.locks import LockBusy, store_lock
from patchctl.store.reboots import REBOOT_FAILED, REBOOT_OK, REBOOT_UNREACHABLE, RebootStore

REBOOT_PLAYBOOK = "reboot.yml"
# The patch_reboot role's result fact (docs/contracts.md): set with ``status: started`` and the boot
# id once it was read (the host is touched from then on), and with ``status: done`` and both boot
# ids when the host is back. The controller reads this fact, never a task name.
RESULT_FACT = "patch_reboot_result"
RESULT_DONE = "done"
TRIGGER_CRON = "cron"
TRIGGER_DEPLOY = "deploy"
# The store lock every reboot run holds (one at a time, across processes and control nodes).
REBOOT_LOCK = "reboot"
AFTER_DEPLOY_LOCK_WAIT = 120.0  # seconds


@dataclass(frozen=True)
class HostPlan:
    """What the reboot policy says about one host now."""

    host: str
    role: str | None
    mode: str
    window: str | None
    action: str  # reboot_policy.ACTION_*
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "role": self.role,
            "mode": self.mode,
            "window": self.window,
            "action": self.action,
            "reason": self.reason,
        }


@dataclass
class HostReboot:
    """How one reboot went."""

    host: str
    status: str  # ok | failed | unreachable
    boot_id_before: str | None = None
    boot_id_after: str | None = None
    elapsed: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "boot_id_before": self.boot_id_before,
            "boot_id_after": self.boot_id_after,
            "elapsed": self.elapsed,
            "error": self.error,
        }


@dataclass
class RebootReport:
    now: datetime
    plans: list[HostPlan] = field(default_factory=list)
    results: dict[str, HostReboot] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_HOST_FAILURES if any(r.status != REBOOT_OK for r in self.results.values()) else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": iso_utc(self.now),
            "dry_run": self.dry_run,
            "hosts": [
                {**p.as_dict(), "result": self.results[p.host].as_dict() if p.host in self.results else None}
                for p in self.plans
            ],
        }


ProgressFn = Callable[[HostReboot], None]


# --- deciding ---------------------------------------------------------------------------------


def plan_host(
    inventory: Inventory,
    host: str,
    windows: Mapping[str, Window],
    now: datetime,
    *,
    reboot_required: bool = True,
    changed: bool = False,
    freezes: Sequence[Freeze] = (),
) -> HostPlan:
    """The reboot policy's verdict on ``host`` at ``now`` (inventory variables ``patch_role``,
    ``patch_window``, ``patch_reboot``); a freeze that stops reboots and covers the host (by its
    name or groups, or every host) turns a reboot into a wait."""
    role = inventory.var(host, "patch_role")
    window_name = inventory.var(host, "patch_window")
    try:
        mode = reboot_mode(role, inventory.var(host, "patch_reboot"))
    except ValueError as exc:
        raise ConfigError(f"inventory {inventory.source}: host {host}: {exc}") from None
    window = windows.get(str(window_name)) if window_name else None
    decision: RebootDecision = reboot_decision(
        mode, reboot_required, window, now, changed=changed, window_name=window_name
    )
    if decision.action == ACTION_REBOOT:
        hit = freeze_for(freezes, STOP_REBOOT, now, host, inventory.groups_of(host))
        if hit is not None:
            return HostPlan(host, role, mode, window_name, ACTION_PENDING, f"{hit.reason}: the reboot waits")
    return HostPlan(host, role, mode, window_name, decision.action, decision.reason)


def wave_groups(inventory: Inventory, waves: Sequence[Wave], hosts: Iterable[str]) -> list[tuple[str, list[str], int]]:
    """``hosts`` grouped by their rollout wave: (wave name, hosts, concurrency). The concurrency
    is the wave's ``max_concurrency`` of the whole wave's size; hosts in no wave form a last
    group that reboots one at a time."""
    wanted = set(hosts)
    matched: list[set[str]] = []
    for wave in waves:
        try:
            matched.append(set(inventory.match(wave.hosts)))
        except ConfigError:
            matched.append(set())  # a wave whose pattern matches nothing holds no host
    groups: list[tuple[str, list[str], int]] = []
    taken: set[str] = set()
    for wave, members in zip(waves, assign_hosts(waves, matched), strict=True):
        mine = sorted(wanted & set(members))
        taken |= set(mine)
        if mine:
            groups.append((wave.name, mine, wave.max_concurrency.hosts(len(members))))
    rest = sorted(wanted - taken)
    if rest:
        groups.append(("(no wave)", rest, 1))
    return groups


# --- running ----------------------------------------------------------------------------------


def run_reboots(
    *,
    inventory_path: str,
    inventory: Inventory,
    db_url: str,
    plans: Sequence[HostPlan],
    waves: Sequence[Wave],
    now: datetime,
    trigger: str,
    timeout: int | None = None,
    progress: ProgressFn | None = None,
    runner: PlaybookRunner | None = None,
) -> dict[str, HostReboot]:
    """Reboot the hosts whose plan says ``reboot``; record each attempt; return the outcomes."""
    chosen = [p for p in plans if p.action == ACTION_REBOOT]
    if not chosen:
        return {}
    by_host = {p.host: p for p in chosen}
    results: dict[str, HostReboot] = {}
    lock = threading.Lock()
    extravars: dict[str, Any] = {}
    if timeout is not None:
        extravars["patch_reboot_timeout"] = timeout
    store = Store.open(db_url)
    try:
        rs = RebootStore(store)
        for _wave, hosts, concurrency in wave_groups(inventory, waves, by_host):
            ids = {h: rs.start_reboot(h, trigger, by_host[h].window, now, datetime.now(UTC)) for h in hosts}
            before: dict[str, str] = {}

            def finish(outcome: HostReboot, ids: dict[str, int] = ids) -> None:
                with lock:
                    if outcome.host in results:
                        return
                    results[outcome.host] = outcome
                    rs.finish_reboot(
                        ids[outcome.host],
                        outcome.status,
                        datetime.now(UTC),
                        boot_id_before=outcome.boot_id_before,
                        boot_id_after=outcome.boot_id_after,
                        elapsed_seconds=outcome.elapsed,
                        error=outcome.error,
                    )
                    if progress is not None:
                        progress(outcome)

            def on_event(event: HostEvent, hosts: list[str] = hosts, before: dict[str, str] = before) -> None:
                if event.host not in hosts or event.item:
                    return
                data = _result_fact(event)
                if data is not None:
                    b, a = str(data.get("boot_id_before", "")).strip(), str(data.get("boot_id_after", "")).strip()
                    if b:
                        before[event.host] = b
                    if data.get("status") != RESULT_DONE:
                        return
                    ok = bool(a) and a != b
                    finish(
                        HostReboot(
                            event.host,
                            REBOOT_OK if ok else REBOOT_FAILED,
                            boot_id_before=b or None,
                            boot_id_after=a or None,
                            elapsed=_float(data.get("elapsed")),
                            error=None if ok else "the boot id did not change",
                        )
                    )
                elif event.status == "unreachable":
                    # unreachable before the role read the boot id: never touched
                    status = REBOOT_UNREACHABLE if event.host not in before else REBOOT_FAILED
                    finish(HostReboot(event.host, status, before.get(event.host), error=result_message(event.result)))
                elif event.status == "failed":
                    finish(
                        HostReboot(
                            event.host,
                            REBOOT_FAILED,
                            before.get(event.host),
                            error=f"{event.task}: {result_message(event.result)}",
                        )
                    )

            (runner or PlaybookRunner()).run(
                paths.playbook(REBOOT_PLAYBOOK),
                inventory=inventory_path,
                limit=",".join(hosts),
                extravars=extravars or None,
                on_event=on_event,
                forks=concurrency,
            )
            for host in hosts:
                if host not in results:
                    finish(HostReboot(host, REBOOT_FAILED, before.get(host), error="no result from the reboot role"))
        return results
    finally:
        store.close()


def _result_fact(event: HostEvent) -> dict[str, Any] | None:
    """The role's ``patch_reboot_result`` fact when ``event`` (an ok result) sets it."""
    if event.status != "ok":
        return None
    facts = event.result.get("ansible_facts")
    data = facts.get(RESULT_FACT) if isinstance(facts, dict) else None
    return data if isinstance(data, dict) else None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- patchctl reboot --------------------------------------------------------------------------


@dataclass(frozen=True)
class RebootOptions:
    inventory: str
    db_url: str
    policy: Policy
    now: datetime
    limit: str | None = None
    timeout: int | None = None
    dry_run: bool = False


def reboot_pending(opts: RebootOptions, progress: ProgressFn | None = None) -> RebootReport:
    """``patchctl reboot``: every host with a reboot pending gets the policy's verdict at
    ``opts.now``; those whose window allows it are rebooted (unless ``dry_run``)."""
    inventory = load_inventory(opts.inventory)
    targets = set(inventory.match(opts.limit))
    # A dry run only reads: it neither creates nor migrates a store; a run never creates one.
    opened = Store.open_existing(opts.db_url) if opts.dry_run else Store.open(opts.db_url, create=False)
    with opened as store, contextlib.ExitStack() as held:
        if not opts.dry_run:
            # LockBusy (exit 3) when another reboot run is going; a crashed one holds nothing.
            held.enter_context(store_lock(store, REBOOT_LOCK))
        pending = [p for p in RebootStore(store).pending() if p.host in targets and p.host in inventory.hostvars]
        report = RebootReport(now=opts.now, dry_run=opts.dry_run)
        if not opts.dry_run:
            with store.engine.begin() as conn:
                record_transitions(conn, opts.policy.freezes, opts.now)
        report.plans = [
            plan_host(inventory, p.host, opts.policy.windows, opts.now, freezes=opts.policy.freezes) for p in pending
        ]
        if not opts.dry_run:
            report.results = run_reboots(
                inventory_path=opts.inventory,
                inventory=inventory,
                db_url=opts.db_url,
                plans=report.plans,
                waves=opts.policy.waves,
                now=opts.now,
                trigger=TRIGGER_CRON,
                timeout=opts.timeout,
                progress=progress,
            )
    return report


def after_deploy(
    *,
    inventory_path: str,
    inventory: Inventory,
    db_url: str,
    policy: Policy,
    now: datetime,
    reboot_required: Mapping[str, bool],
    changed: Mapping[str, bool],
    progress: ProgressFn | None = None,
) -> RebootReport:
    """After a deploy: mark the hosts that need a reboot ``reboot pending``, then reboot at once
    those whose window allows it now. ``reboot_required`` and ``changed`` are per host that
    the deploy succeeded on (``changed``: something was installed)."""
    report = RebootReport(now=now)
    with Store.open(db_url) as store:
        rs = RebootStore(store)
        for host in sorted(reboot_required):
            plan = plan_host(
                inventory,
                host,
                policy.windows,
                now,
                reboot_required=reboot_required[host],
                changed=changed.get(host, False),
                freezes=policy.freezes,
            )
            if plan.action == ACTION_NONE:
                continue
            rs.mark_reboot_pending(host, now)
            report.plans.append(plan)
    if not any(p.action == ACTION_REBOOT for p in report.plans):
        return report
    with Store.open(db_url) as store:
        try:
            with store_lock(store, REBOOT_LOCK, wait=AFTER_DEPLOY_LOCK_WAIT):
                report.results = run_reboots(
                    inventory_path=inventory_path,
                    inventory=inventory,
                    db_url=db_url,
                    plans=report.plans,
                    waves=policy.waves,
                    now=now,
                    trigger=TRIGGER_DEPLOY,
                    progress=progress,
                )
        except LockBusy:
            # another reboot run holds the hosts' reboots: they stay 'reboot pending' for the next run
            return report
    return report


def after_deploy_outcomes(
    inventory_path: str,
    db_url: str,
    policy: Policy,
    now: datetime,
    outcomes: Mapping[str, ApplyOutcome],
    progress: ProgressFn | None = None,
) -> RebootReport:
    """:func:`after_deploy` for a deploy's per-host outcomes (hosts that failed are left alone)."""
    ok = {h: o for h, o in outcomes.items() if o.status == HOST_OK}
    if not ok:
        return RebootReport(now=now)
    return after_deploy(
        inventory_path=inventory_path,
        inventory=load_inventory(inventory_path),
        db_url=db_url,
        policy=policy,
        now=now,
        reboot_required={h: o.reboot_required for h, o in ok.items()},
        changed={h: bool(o.installed) for h, o in ok.items()},
        progress=progress,
    )
