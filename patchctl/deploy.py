"""The deploy flow: install one wave of a rollout (the rollout's lifecycle is :mod:`patchctl.rollouts`).

``deploy`` computes, per host of the wave, the rollout's updates that apply to it
(:func:`patchctl.rules.lineage.host_plan` for apt, dnf and zypper: those its last scan shows
missing are installed, the others only checked, and an approved version no longer offered goes
by the baseline's ``successors``; Windows and Chocolatey updates the host is missing, and a
Windows update no longer offered and not in the host's install history blocks it), passes them
to ``playbooks/deploy.yml`` as ``patchctl_deploy``
(docs/contracts.md) in batches of the wave's ``max_concurrency`` (one Ansible run per batch),
records each host's result as it arrives, and halts the wave (no further batch starts) when
failed and unreachable hosts pass ``max_fail_percent``. Hosts that already succeeded in the
rollout are not run again, so an interrupted deploy continues where it stopped and a second
deploy of a finished wave changes nothing, unless the host's last scan shows it below one of the
rollout's versions again (a package downgraded by hand): then it is retried.

A Linux host is ``ok`` only when the package manager, read by the apply module after the run,
shows every planned update at its version or a newer one (:func:`patchctl.rules.lineage.below_floor`);
a host below one is ``failed`` with the reason, one whose approved version is not offered any more
is ``blocked`` (``successors``), and neither counts as ok towards ``min_success_percent``.

Each batch runs like a scan (:func:`patchctl.ansible.fleet.run_split`): hosts with an execution node
(``patchctl_execution_node``) through their node, the others from here, all parts at once; a node
that fails leaves its hosts of the batch ``unreachable`` ("outcome unknown: rescan"), and they
count towards ``max_fail_percent`` like any other unreachable host.

``deploy`` then performs the reboots the deploy implies (:func:`patchctl.reboot.after_deploy_outcomes`):
a server whose maintenance window allows it now is rebooted at once and checked; the other hosts
that need a reboot are marked ``reboot pending`` for ``patchctl reboot``. The report carries those
reboots (:attr:`DeployReport.reboots`), so a library caller gets what ``patchctl deploy`` does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from patchctl import paths
from patchctl.ansible.fleet import PartStats, merge_parts, run_split
from patchctl.ansible.inventory import Inventory, load_inventory
from patchctl.ansible.runner import HostEvent, result_message
from patchctl.decisions import actor
from patchctl.errors import EXIT_HOST_FAILURES, EXIT_OK, EXIT_POLICY_BLOCKED, ConfigError, PolicyBlocked
from patchctl.reboot import RebootReport, after_deploy_outcomes
from patchctl.report import host_states
from patchctl.restart import RestartReport, after_deploy_restarts
from patchctl.rollouts import PromoteResult, ensure_follow_up, promote, rollout_lock_name, rollout_or_latest
from patchctl.rules import waves as rollout
from patchctl.rules.clock import Clock, iso_utc
from patchctl.rules.exceptions import UpdateException, excepted_on_host
from patchctl.rules.freezes import STOP_DEPLOY, Freeze, FreezeHit, freeze_for
from patchctl.rules.install_windows import HOST_VAR, install_window_for, waiting
from patchctl.rules.lineage import Approved, HostPlan, Offered, below_floor, host_plan, windows_unoffered
from patchctl.rules.model import HOST_BLOCKED, HOST_FAILED, HOST_OK, HOST_UNREACHABLE, ApplyOutcome, is_unmanaged_uid
from patchctl.rules.policy import Policy, Wave
from patchctl.store import Store
from patchctl.store.exception_reads import exceptions
from patchctl.store.freezes import record_transitions
from patchctl.store.locks import store_lock
from patchctl.store.reports import sqlalchemy_query
from patchctl.store.rollouts import Rollout, RolloutStore, RolloutUpdate
from patchctl.verify import below_frozen

if TYPE_CHECKING:
    from patchctl.notify import Notifier

DEPLOY_PLAYBOOK = "deploy.yml"
RESULT_KEY = "patchctl_apply"


@dataclass(frozen=True)
class DeployOptions:
    inventory: str
    db_url: str
    clock: Clock
    # its maintenance windows (and waves) decide the reboots after the deploy
    policy: Policy
    rollout_id: int | None = None
    wave: str | None = None
    timeout: int | None = None
    # called with (event, payload) for wave.finished, wave.halted and host.failed (notifications)
    notifier: Notifier | None = None
    # a host without a successful scan for longer is stale (the compliance rule's stale_days)
    stale_days: float = 7
    # called with (wave, batch number from 1, batches) as each batch starts (the live display)
    on_batch: Callable[[str, int, int], None] | None = None


@dataclass
class DeployReport:
    rollout_id: int
    wave: str
    wave_hosts: tuple[str, ...] = ()
    outcomes: dict[str, ApplyOutcome] = field(default_factory=dict)  # this run's results
    already_done: list[str] = field(default_factory=list)  # hosts that succeeded before
    not_started: list[str] = field(default_factory=list)  # left out because the wave halted
    state: str = rollout.PENDING
    halted_reason: str | None = None
    message: str | None = None
    parts: list[PartStats] = field(default_factory=list)  # per node (and the control node), all batches
    controller_cpu_seconds: float = 0.0
    reboots: RebootReport | None = None  # the reboots after the deploy (None until they are done)
    # services still running replaced files: restarted in the window, or left pending (patch_restart)
    restarts: RestartReport | None = None
    # each wave host's compliance state after the deploy and its reboots (rules.compliance)
    compliance: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)  # host -> "installed 1.2-1 (successor of ...)"
    # successors: repilot: the follow-up rollout holding the successors of the updates it blocked
    follow_up_rollout: int | None = None
    # hosts a freeze kept out of this run (host -> the freeze and until when); the wave halted by a
    # freeze alone (no host failed) exits 3, as a promotion a freeze holds back
    frozen: dict[str, str] = field(default_factory=dict)
    halted_by_freeze: bool = False
    # hosts outside their install window (host -> "waiting for install window NAME (opens ...)"),
    # left for a later deploy; a wave waiting for them alone exits 3 as a freeze does
    waiting: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """1 when a host failed, the wave halted or a reboot after the deploy failed, else 0."""
        failed = any(o.status != HOST_OK for o in self.outcomes.values())
        if (self.halted_by_freeze or self.waiting) and not failed:
            return EXIT_POLICY_BLOCKED
        if self.halted_reason or failed:
            return EXIT_HOST_FAILURES
        if self.reboots is not None and self.reboots.exit_code != EXIT_OK:
            return self.reboots.exit_code
        if self.restarts is not None and self.restarts.failed:
            return EXIT_HOST_FAILURES
        return EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollout": self.rollout_id,
            "wave": self.wave,
            "state": self.state,
            "halted_reason": self.halted_reason,
            "message": self.message,
            "wave_hosts": list(self.wave_hosts),
            "already_done": self.already_done,
            "not_started": self.not_started,
            "nodes": [p.as_dict() for p in self.parts],
            "controller_cpu_seconds": round(self.controller_cpu_seconds, 2),
            "hosts": [
                {
                    "host": o.host,
                    "status": o.status,
                    "installed": o.installed,
                    "failed": o.failed,
                    "reboot_required": o.reboot_required,
                    "error": o.error,
                    "notes": self.notes.get(o.host, []),
                }
                for o in sorted(self.outcomes.values(), key=lambda o: o.host)
            ],
            "reboots": self.reboots.as_dict()["hosts"] if self.reboots is not None else [],
            "restarts": [r.as_dict() for _h, r in sorted(self.restarts.hosts.items())] if self.restarts else [],
            "compliance": dict(sorted(self.compliance.items())),
            "follow_up_rollout": self.follow_up_rollout,
            "frozen": dict(sorted(self.frozen.items())),
            "waiting": dict(sorted(self.waiting.items())),
        }


ProgressFn = Callable[[ApplyOutcome, int, int], None]


def apply_outcome(host: str, event: HostEvent) -> tuple[ApplyOutcome, list[str]] | None:
    """An apply result event as an ApplyOutcome (and the uids the host already had), else None."""
    res = event.result
    data = res.get(RESULT_KEY) if isinstance(res, dict) else None
    if isinstance(data, dict) and event.status in ("ok", "failed"):
        failed = {str(k): str(v) for k, v in (data.get("failed") or {}).items()}
        ok = event.status == "ok" and not failed
        outcome = ApplyOutcome(
            host=host,
            status=HOST_OK if ok else HOST_FAILED,
            installed=[str(u) for u in data.get("installed") or []],
            failed=failed,
            reboot_required=bool(data.get("reboot_required")),
            error=None if ok else result_message(res),
            versions={str(k): str(v) for k, v in (data.get("versions") or {}).items()},
            hooks=[h for h in data.get("hooks") or [] if isinstance(h, dict)],
            health=[c for c in data.get("health") or [] if isinstance(c, dict)],
            restart_pending=(
                [p for p in data["restart_pending"] if isinstance(p, dict)]
                if isinstance(data.get("restart_pending"), list)
                else None
            ),
        )
        return outcome, [str(u) for u in data.get("present") or []]
    if event.status == "unreachable":
        return ApplyOutcome(host=host, status=HOST_UNREACHABLE, error=result_message(res)), []
    if event.status == "failed":
        return ApplyOutcome(host=host, status=HOST_FAILED, error=f"{event.task}: {result_message(res)}"), []
    return None


def _contract_entry(u: RolloutUpdate) -> dict[str, Any]:
    """One entry of ``patchctl_deploy[host]`` (docs/contracts.md)."""
    return {
        "uid": u.uid,
        "source": u.source,
        "name": u.name,
        "version": u.version,
        "update_id": u.update_ref,
        "kbs": list(u.kbs),
        "major": u.major,
        # an application installed outside Chocolatey, approved with --take-over
        "take_over": is_unmanaged_uid(u.uid),
    }


def _linux_entry(u: RolloutUpdate, uid: str, version: str, install: bool) -> dict[str, Any]:
    """A Linux entry of ``patchctl_deploy[host]``: the approved update, a successor of it
    (``uid`` and ``version`` its own), or with ``install`` False one only checked."""
    return {**_contract_entry(u), "uid": uid, "version": version, "install": install}


def judge(outcome: ApplyOutcome, plan: HostPlan) -> ApplyOutcome:
    """A Linux host's final outcome: its apply result checked against the plan with the versions
    the package manager reports after the run; ``blocked`` when nothing failed but the plan
    blocked an update. An unreachable host, or a failure without a module result, stays as it is."""
    if outcome.status == HOST_UNREACHABLE or (outcome.status == HOST_FAILED and not outcome.versions):
        if plan.blocked and outcome.status == HOST_FAILED:
            return replace(outcome, failed={**plan.blocked, **outcome.failed})
        return outcome
    below = below_floor(plan.entries, outcome.versions)
    failed = {**plan.blocked, **below, **outcome.failed}
    if outcome.status == HOST_FAILED or below:
        error = outcome.error or "; ".join(f"{uid}: {why}" for uid, why in sorted(below.items()))
        return replace(outcome, status=HOST_FAILED, failed=failed, error=error)
    if plan.blocked:
        error = "; ".join(f"{uid}: {why}" for uid, why in sorted(plan.blocked.items()))
        return replace(outcome, status=HOST_BLOCKED, failed=failed, error=error)
    return outcome


def _wave_hosts(r: Rollout, target: rollout.WaveRecord, inventory: Inventory) -> tuple[str, ...]:
    fixed = {w.position: w.hosts for w in r.waves if w.state != rollout.PENDING}
    matched: list[list[str]] = []
    for w in r.waves:
        try:
            matched.append(inventory.match(w.wave.hosts))
        except ConfigError as exc:
            if w.position == target.position:
                raise ConfigError(
                    f"wave {w.wave.name}: hosts {w.wave.hosts!r}: {exc.message.removeprefix('--limit: ')}"
                ) from None
            matched.append([])
    return rollout.assign_hosts([w.wave for w in r.waves], matched, fixed)[target.position]


def _choose_wave(rs: RolloutStore, r: Rollout, name: str | None, now: datetime) -> rollout.WaveRecord:
    promotion = rollout.can_promote(r.waves, len(rs.incidents(r.id, open_only=True)), now)
    if name is not None:
        rec = r.wave(name)
        if rec.state == rollout.PENDING and rec.position > 0 and rec.promoted_at is None:
            raise PolicyBlocked(
                f"rollout {r.id}: wave {name} is not promoted: {promotion.reason} (see 'patchctl rollout promote')"
            )
        return rec
    due = rollout.next_due(r.waves)
    if due is not None:
        return due
    finished = [w for w in r.waves if w.state == rollout.FINISHED]
    if promotion.complete or len(finished) == len(r.waves):
        return finished[-1]
    raise PolicyBlocked(f"rollout {r.id}: no wave is due: {promotion.reason}")


def deploy(opts: DeployOptions, progress: ProgressFn | None = None) -> DeployReport:
    """Deploy one wave of a rollout, then the reboots it implies (see the module docstring)."""
    who = actor()
    # a deploy needs a rollout: it never creates a store (StoreMissing names the URL)
    with Store.open(opts.db_url, create=False) as store:
        rs = RolloutStore(store)
        rollout_id = rollout_or_latest(rs, opts.rollout_id)
        # One deploy or promotion of a rollout at a time, across processes and control nodes.
        with store_lock(store, rollout_lock_name(rollout_id)):
            report = _deploy_locked(rs, rollout_id, opts, who, progress)
    # With the rollout's lock released: the reboots may wait for another reboot run's lock.
    report.reboots = after_deploy_outcomes(opts.inventory, opts.db_url, opts.policy, opts.clock.now(), report.outcomes)
    # the services still running replaced files: restarted in the window, or left pending
    report.restarts = after_deploy_restarts(
        opts.inventory, opts.db_url, opts.policy, opts.clock.now(), report.outcomes, report.reboots
    )
    # The last word on each host of the wave: its compliance state by the one rule, as report says it.
    report.compliance = host_states(opts.db_url, report.wave_hosts, opts.clock.now(), stale_days=opts.stale_days)
    return report


def promote_and_deploy(
    opts: DeployOptions,
    progress: ProgressFn | None = None,
    promoted: Callable[[PromoteResult], None] | None = None,
) -> tuple[PromoteResult, DeployReport | None]:
    """``patchctl rollout promote --deploy``: promote the rollout's next wave
    (:func:`patchctl.rollouts.promote`; PolicyBlocked, exit 3, when the rule does not allow it
    yet), then :func:`deploy` that wave, its reboots included. No deploy (``None``) when the
    rollout is complete. ``promoted`` is told the promotion before the deploy starts. Hosts the
    deploy blocked under ``successors: repilot`` get their follow-up rollout at once
    (:func:`patchctl.rollouts.ensure_follow_up`; :attr:`DeployReport.follow_up_rollout`)."""
    result = promote(opts.db_url, opts.rollout_id, opts.clock.now(), opts.policy)
    if promoted is not None:
        promoted(result)
    p = result.promotion
    if p.wave is None or p.complete:
        return result, None
    report = deploy(replace(opts, rollout_id=result.rollout_id, wave=p.wave.wave.name), progress)
    # successors: repilot: the hosts this deploy blocked wait for a follow-up rollout, made now
    if any(o.status == HOST_BLOCKED for o in report.outcomes.values()):
        follow_up = ensure_follow_up(opts.db_url, report.rollout_id, opts.policy, opts.clock.now())
        report.follow_up_rollout = follow_up.rollout_id if follow_up is not None else None
    return result, report


def _deploy_locked(
    rs: RolloutStore, rollout_id: int, opts: DeployOptions, who: str, progress: ProgressFn | None
) -> DeployReport:
    clock = opts.clock
    # Holding the lock, a run still marked running died without finishing (kill -9): say so.
    rs.close_dead_runs(rollout_id, clock.now(), who)
    # exceptions that came due end now in the audit trail (also when a freeze then stops the deploy)
    from patchctl.exceptions import record_expiries

    record_expiries(rs.store, clock.now())
    r = rs.rollout(rollout_id)
    target = _choose_wave(rs, r, opts.wave, clock.now())
    wave = target.wave
    report = DeployReport(rollout_id=r.id, wave=wave.name, state=target.state)
    inventory: Inventory | None = None
    if target.state == rollout.PENDING:
        inventory = load_inventory(opts.inventory)
        hosts = _wave_hosts(r, target, inventory)
    else:
        hosts = target.hosts
    report.wave_hosts = hosts
    # A host that succeeded before is done, unless its latest scan shows one of the rollout's
    # updates missing again (e.g. downgraded by hand, as `patchctl verify` reports): retried.
    # The same for a host below one of the rollout's versions after the repositories moved on
    # (verify's below_frozen: its scan lists the newer version missing, not the rollout's).
    in_rollout = {u.update_id for u in r.updates}
    missing_now = rs.missing_on_hosts(hosts)
    details = {u.uid: u for u in r.updates}

    def still_done(h: str) -> bool:
        res = r.results.get(h)
        if res is None or res.status != HOST_OK or missing_now.get(h, set()) & in_rollout:
            return False
        return not below_frozen(details, details, rs.store.missing_updates(h))

    report.already_done = [h for h in hosts if still_done(h)]
    todo = [h for h in hosts if h not in report.already_done]
    if opts.policy.freezes and todo:
        inventory = inventory or load_inventory(opts.inventory)
        todo = _leave_frozen_out(rs, r.id, wave.name, todo, inventory, opts, report)
    if opts.policy.windows and todo:
        inventory = inventory or load_inventory(opts.inventory)
        todo = _leave_outside_window(r.id, wave.name, todo, inventory, opts, report)
    if not todo and target.state == rollout.FINISHED:
        report.state = rollout.FINISHED
        report.message = f"wave {wave.name} is already deployed on all its {len(hosts)} hosts: nothing to do"
        return report

    now = clock.now()
    values: dict[str, Any] = {"state": rollout.DEPLOYING, "hosts": list(hosts), "halted_reason": None}
    if target.started_at is None:
        values["started_at"] = now
    rs.set_wave(r.id, target.position, now, who, "deploy start", f"{len(todo)} of {len(hosts)} hosts to do", **values)
    run_id = rs.start_deploy_run(r.id, wave.name, who, now)
    status = "interrupted"
    try:
        # Hosts to retry start afresh: only this run's failures count towards the threshold.
        results = {h: res.status for h, res in r.results.items() if h in hosts and h not in todo}
        _deploy_hosts(rs, r, wave, run_id, hosts, todo, results, report, opts, progress, inventory)
        if report.frozen and not report.halted_reason:
            # the hosts a freeze kept out wait: the wave is not finished (a later deploy resumes it)
            reason = next(iter(report.frozen.values()))
            report.halted_reason = f"{len(report.frozen)} host(s) wait: {reason}"
            report.halted_by_freeze = True
        if report.waiting and not report.halted_reason:
            # the hosts outside their install window wait: a later deploy inside it resumes the wave
            reason = next(iter(report.waiting.values()))
            report.halted_reason = f"{len(report.waiting)} host(s) {reason}"
        failed = sum(1 for h in hosts if results.get(h) in (HOST_FAILED, HOST_UNREACHABLE))
        now = clock.now()
        if report.halted_reason:
            report.state = rollout.HALTED
            rs.set_wave(
                r.id,
                target.position,
                now,
                who,
                "wave halted",
                report.halted_reason,
                state=rollout.HALTED,
                halted_reason=report.halted_reason,
            )
        else:
            report.state = rollout.FINISHED
            ok = sum(1 for h in hosts if results.get(h) == HOST_OK)
            blocked = sum(1 for h in hosts if results.get(h) == HOST_BLOCKED)
            rs.set_wave(
                r.id,
                target.position,
                now,
                who,
                "wave finished",
                f"{ok} ok, {failed} failed"
                + (f", {blocked} blocked" if blocked else "")
                + f" of {len(hosts)}; baking {wave.bake_days:g} days",
                state=rollout.FINISHED,
                # a retry of a finished wave (a host found missing) does not restart its bake
                finished_at=target.finished_at or now,
            )
        status = report.state
    finally:
        rs.finish_deploy_run(run_id, status, clock.now())
    _notify(opts.notifier, r.id, wave.name, report, failed, len(hosts))
    return report


def _notify(
    notifier: Notifier | None, rollout_id: int, wave: str, report: DeployReport, failed: int, total: int
) -> None:
    """Tell the notification channels what the deploy did (deliveries never raise)."""
    if notifier is None:
        return
    for o in sorted(report.outcomes.values(), key=lambda o: o.host):
        if o.status != HOST_OK:
            reason = o.error or "; ".join(f"{k}: {v}" for k, v in o.failed.items())
            notifier(
                "host.failed",
                {"rollout": rollout_id, "wave": wave, "host": o.host, "status": o.status, "reason": reason},
            )
    base = {"rollout": rollout_id, "wave": wave, "hosts": total, "failed": failed}
    if report.state == rollout.HALTED:
        notifier("wave.halted", {**base, "reason": report.halted_reason})
    elif report.state == rollout.FINISHED:
        notifier("wave.finished", base)


def _deploy_hosts(
    rs: RolloutStore,
    r: Rollout,
    wave: Wave,
    run_id: int,
    hosts: tuple[str, ...],
    todo: list[str],
    results: dict[str, str],
    report: DeployReport,
    opts: DeployOptions,
    progress: ProgressFn | None,
    inventory: Inventory | None,
) -> None:
    clock = opts.clock
    update_ids = {u.uid: u.update_id for u in r.updates}
    missing = rs.missing_on_hosts(todo)
    lock = threading.Lock()
    plans: dict[str, HostPlan] = {}

    def record(outcome: ApplyOutcome, present: list[str] | None = None) -> None:
        with lock:
            if outcome.host in report.outcomes:
                return
            if outcome.host in plans:
                outcome = judge(outcome, plans[outcome.host])
            rs.record_deploy_result(
                run_id, r.id, wave.name, outcome, clock.now(), present=present or [], update_ids=update_ids
            )
            report.outcomes[outcome.host] = outcome
            results[outcome.host] = outcome.status
            if progress is not None:
                progress(outcome, len(report.outcomes), len(todo))

    work: dict[str, list[dict[str, Any]]] = {}
    # exceptions valid now keep the updates they name off their hosts (rules.exceptions)
    valid = _valid_exceptions(rs, clock.now())
    if valid and inventory is None:
        inventory = load_inventory(opts.inventory)
    windows_updates = [u for u in r.updates if u.source == "windows"]
    gone = rs.gone_on_hosts(todo, (u.update_id for u in windows_updates))
    lineages = rs.store.host_lineages(todo)
    by_uid = {u.uid: u for u in r.updates}
    approved = [Approved(u.uid, u.source, u.name, u.version) for u in r.updates]
    for host in todo:
        if host not in missing:
            record(ApplyOutcome(host, HOST_FAILED, error="no successful scan of this host: run 'patchctl scan' first"))
            continue
        rows = rs.store.missing_updates(host)
        kept_off: dict[str, UpdateException] = {}
        if valid:
            assert inventory is not None
            kept_off = excepted_on_host(
                valid,
                host,
                inventory.groups_of(host),
                [(u.uid, u.name, u.kbs) for u in r.updates] + [(m.uid, m.name, ()) for m in rows],
            )
            if kept_off:
                report.notes.setdefault(host, []).extend(
                    f"excepted {uid} (exception {e.id}, owner {e.owner}, until {iso_utc(e.until)})"
                    for uid, e in sorted(kept_off.items())
                )
        plan = host_plan(
            [a for a in approved if a.uid not in kept_off],
            {m.uid for m in rows if m.uid not in kept_off},
            [
                Offered(m.uid, m.source, m.name, m.version, m.installed_version, m.classification, m.severity, m.major)
                for m in rows
                if m.uid not in kept_off
            ],
            lineages.get(host, set()),
            opts.policy,
            clock.now(),
        )
        # a Windows update no longer offered and not in the host's install history: blocked
        plan.blocked.update(
            windows_unoffered(
                ((u.uid, u.name) for u in windows_updates if u.update_id not in missing[host]),
                {u.uid for u in windows_updates if u.update_id in gone.get(host, set())},
            )
        )
        planned = {e.approved.uid for e in plan.entries} | set(plan.blocked)
        entries = [_linux_entry(by_uid[e.approved.uid], e.uid, e.version, e.install) for e in plan.entries]
        entries += [
            _contract_entry(u)
            for u in r.updates
            if u.update_id in missing[host] and u.uid not in planned and u.uid not in kept_off
        ]
        notes = [e.note for e in plan.entries if e.note]
        if notes:
            report.notes.setdefault(host, []).extend(notes)
        plans[host] = plan
        if not entries:
            record(ApplyOutcome(host, HOST_OK), present=[])
            continue
        work[host] = entries

    def over() -> str | None:
        failed = sum(1 for h in hosts if results.get(h) in (HOST_FAILED, HOST_UNREACHABLE))
        if rollout.over_fail_threshold(wave, failed, len(hosts)):
            return (
                f"{failed} of {len(hosts)} hosts failed or unreachable "
                f"({rollout.percent(failed, len(hosts)):.0f}% > max_fail_percent {wave.max_fail_percent:g})"
            )
        return None

    queue = [h for h in todo if h in work]
    if queue and inventory is None:  # which host runs through which node
        inventory = load_inventory(opts.inventory)
    parts: list[PartStats] = []
    batches = rollout.batches(queue, wave, total=len(hosts))
    for number, batch in enumerate(batches, start=1):
        reason = over()
        if reason:
            report.halted_reason = reason
            report.not_started = [h for h in queue if h not in report.outcomes]
            return
        # a freeze that began while the deploy ran: no new batch starts
        assert inventory is not None
        hit = _frozen_batch(opts.policy.freezes, clock.now(), batch, inventory, wave.name)
        if hit is not None:
            report.halted_reason = f"{hit.reason}: no new batch started"
            report.halted_by_freeze = True
            report.not_started = [h for h in queue if h not in report.outcomes]
            return
        if opts.on_batch is not None:
            opts.on_batch(wave.name, number, len(batches))
        handler = _BatchHandler({h: work[h] for h in batch}, record)
        extravars: dict[str, Any] = {"patchctl_deploy": {h: work[h] for h in batch}}
        if handler.windows_hosts:
            from patchctl.rules.apps import load_catalog

            extravars["patchctl_app_catalog"] = load_catalog().as_vars()
        assert inventory is not None
        # Hosts with an execution node run through it, the others from here, all at once.
        split = run_split(
            inventory,
            opts.inventory,
            batch,
            paths.playbook(DEPLOY_PLAYBOOK),
            extravars,
            handler,
            opts.timeout,
            len(batch),
            results_seen=lambda host: host in report.outcomes,
        )
        parts.extend(split.parts)
        rs.store.record_node_parts("deploy", run_id, [p.as_dict() for p in split.parts])
        report.parts = merge_parts(parts)
        report.controller_cpu_seconds += split.controller_cpu_seconds
        # A failed node's hosts first: partial Windows results must not make an outcome.
        for host, reason in sorted(split.unknown.items()):
            if host not in report.outcomes:
                record(ApplyOutcome(host, HOST_UNREACHABLE, error=reason))
        handler.finish()
        for host in batch:
            if host not in report.outcomes:
                record(ApplyOutcome(host, HOST_FAILED, error="no result: the deploy playbook did not reach this host"))
    report.halted_reason = over()


# --- freezes (patchctl.rules.freezes) --------------------------------------------------------------


def _leave_frozen_out(
    rs: RolloutStore,
    rollout_id: int,
    wave: str,
    todo: list[str],
    inventory: Inventory,
    opts: DeployOptions,
    report: DeployReport,
) -> list[str]:
    """``todo`` without the hosts a freeze that stops deploys covers now (kept in ``report.frozen``);
    PolicyBlocked (exit 3, nothing recorded) when it covers them all. Freeze starts and ends are
    audited first."""
    now = opts.clock.now()
    freezes = opts.policy.freezes
    with rs.store.engine.begin() as conn:
        record_transitions(conn, freezes, now)
    for host in todo:
        hit = freeze_for(freezes, STOP_DEPLOY, now, host, inventory.groups_of(host), wave)
        if hit is not None:
            report.frozen[host] = hit.reason
    if report.frozen and len(report.frozen) == len(todo):
        reason = next(iter(report.frozen.values()))
        raise PolicyBlocked(f"rollout {rollout_id}: wave {wave}: nothing deployed: {reason} ({len(todo)} host(s))")
    return [h for h in todo if h not in report.frozen]


# --- install windows (patchctl.rules.install_windows) ----------------------------------------------


def _leave_outside_window(
    rollout_id: int, wave: str, todo: list[str], inventory: Inventory, opts: DeployOptions, report: DeployReport
) -> list[str]:
    """``todo`` without the hosts whose install window is closed now (kept in ``report.waiting``);
    PolicyBlocked (exit 3, nothing recorded) when they all wait."""
    now = opts.clock.now()
    policy = opts.policy
    for host in todo:
        chosen = install_window_for(
            inventory.var(host, HOST_VAR),
            policy.wave_install_window(wave),
            inventory.var(host, "patch_role"),
            policy.role_install_windows,
        )
        if chosen is None:
            continue
        window = policy.windows.get(chosen.name)
        if window is None:
            raise ConfigError(
                f"{opts.inventory}: {host}: {HOST_VAR}: window {chosen.name!r} is not defined in {policy.source}"
            )
        wait = waiting(window, now)
        if wait is not None:
            report.waiting[host] = wait.reason
    if report.waiting and len(report.waiting) == len(todo):
        reason = next(iter(report.waiting.values()))
        raise PolicyBlocked(f"rollout {rollout_id}: wave {wave}: nothing deployed: {len(todo)} host(s) {reason}")
    return [h for h in todo if h not in report.waiting]


def _frozen_batch(
    freezes: Sequence[Freeze], now: datetime, batch: Sequence[str], inventory: Inventory, wave: str
) -> FreezeHit | None:
    for host in batch:
        hit = freeze_for(freezes, STOP_DEPLOY, now, host, inventory.groups_of(host), wave)
        if hit is not None:
            return hit
    return None


def _valid_exceptions(rs: RolloutStore, now: datetime) -> list[UpdateException]:
    """The exceptions valid at ``now``, after recording the expiries that came due (audited)."""
    from patchctl.exceptions import record_expiries

    record_expiries(rs.store, now)
    with rs.store.engine.connect() as conn:
        return [e for e in exceptions(sqlalchemy_query(conn)) if e.valid_at(now)]


WINDOWS_SOURCES = ("windows", "chocolatey")
# The patch_apply_windows role's result fact (docs/contracts.md): its win_updates install result
# (null when it did not run) and its win_chocolatey items. Read as data, never by task name.
WIN_RESULT_FACT = "patch_apply_windows_result"
# The hooks the role ran (phase, name, rc, ok, output), set as each phase ends.
WIN_HOOKS_FACT = "patch_apply_windows_hook_results"


class _BatchHandler:
    """Turns one batch's events into ApplyOutcomes as they arrive.

    Linux hosts answer with one ``patchctl_apply`` result. A Windows host's outcome needs its
    ``win_updates`` install result and its ``win_chocolatey`` items together (the role's
    ``patch_apply_windows_result`` fact), and whether a later task failed, so it is computed when
    the host's run ends (:meth:`finish`), through the same normalization the contract tests feed
    with recorded result shapes.
    """

    def __init__(self, work: dict[str, list[dict[str, Any]]], record: Callable[[ApplyOutcome, list[str]], None]):
        self.work = work
        self.record = record
        self.windows_hosts = {
            h for h, entries in work.items() if entries and all(e.get("source") in WINDOWS_SOURCES for e in entries)
        }
        self._win_result: dict[str, dict[str, Any]] = {}
        self._choco: dict[str, list[dict[str, Any]]] = {}
        self._win_error: dict[str, str] = {}
        self._hooks: dict[str, list[dict[str, Any]]] = {}
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, event: HostEvent) -> None:
        host = event.host
        if host not in self.work or host in self._done:
            return
        if host in self.windows_hosts:
            with self._lock:
                self._windows_event(event)
            return
        if event.item:
            return
        found = apply_outcome(host, event)
        if found is not None:
            self._done.add(host)
            self.record(*found)

    def _windows_event(self, event: HostEvent) -> None:
        host = event.host
        if event.status == "unreachable":
            self._done.add(host)
            self.record(ApplyOutcome(host, HOST_UNREACHABLE, error=result_message(event.result)), [])
        elif event.status == "ok" and not event.item and isinstance(hooks := _fact(event, WIN_HOOKS_FACT), list):
            self._hooks[host] = [h for h in hooks if isinstance(h, dict)]
        elif event.status == "ok" and not event.item and isinstance(data := _fact(event, WIN_RESULT_FACT), dict):
            result, items = data.get("win_updates"), data.get("chocolatey")
            if isinstance(result, dict):
                self._win_result[host] = result
            self._choco[host] = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        elif event.status == "failed" and not event.item and host not in self._win_error:
            self._win_error[host] = f"{event.task}: {result_message(event.result)}"

    def finish(self) -> None:
        """Record the Windows hosts of the batch (Linux hosts were recorded as they answered)."""
        from patchctl.rules.normalize_windows import apply_outcome as windows_outcome

        for host in sorted(self.windows_hosts - self._done):
            if host not in self._win_result and host not in self._choco and host not in self._win_error:
                continue  # no event at all: the caller records "did not reach this host"
            outcome = windows_outcome(host, self.work[host], self._win_result.get(host), self._choco.get(host, []))
            outcome = replace(outcome, hooks=self._hooks.get(host, []))
            if host in self._win_error:
                # the failed task's message (the role's check, a failed pre-install search) is kept
                # beside what the results say, whether or not they already failed the host
                error = "; ".join(e for e in (outcome.error, self._win_error[host]) if e)
                outcome = replace(outcome, status=HOST_FAILED, error=error)
            self._done.add(host)
            self.record(outcome, [])


def _fact(event: HostEvent, name: str) -> Any:
    """The fact ``name`` that ``event`` (a set_fact result) sets, else None."""
    facts = event.result.get("ansible_facts")
    return facts.get(name) if isinstance(facts, dict) else None
