"""The verify flow (``patchctl verify``, daily from cron): rescan, then answer two questions per
host and record the answers.

*Is the host compliant with its baseline's approvals?* Its ``state``, by the one rule
(:func:`patchctl.rules.compliance.compliance_state`, the same call and inputs as ``patchctl
report``): never_scanned, unreachable, failed, blocked, stale, missing, reboot_pending, compliant.

*Did the started waves deliver what they froze?* Its ``delivery``
(:data:`patchctl.rules.compliance.DELIVERY_STATES`): the updates *frozen for a host* are those
of every rollout with a wave that holds the host and has started deploying (a wave still
pending has froze nothing for its hosts yet); ``undelivered`` lists those not installed (for
example a package downgraded by hand; the next deploy of the host's wave installs it again),
``deploy_failed`` those whose last deploy on the host failed. The scan reports what the
repositories offer now, which may be a newer version than the frozen one: a frozen update also
counts as not installed when the host's installed version of its package is older than the
frozen version (apt, dnf and zypper versions are ordered by :mod:`patchctl.rules.versions`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from patchctl.errors import EXIT_HOST_FAILURES, EXIT_OK
from patchctl.rules.clock import iso_utc
from patchctl.rules.compliance import (
    BLOCKED,
    COMPLIANT,
    DELIVERY_STATES,
    FAILED,
    MISSING,
    NEVER_SCANNED,
    REBOOT_PENDING,
    STALE,
    STATES,
    UNREACHABLE,
    ComplianceFacts,
    compliance_state,
    delivery_state,
)
from patchctl.rules.model import HOST_OK
from patchctl.rules.report import host_facts, host_report, split_deploy_results
from patchctl.rules.versions import older
from patchctl.store import MissingUpdateRow, Store, safety_reads
from patchctl.store import reports as reads
from patchctl.store.exception_reads import excepted_now, exceptions
from patchctl.store.reboots import RebootStore, VerifyRow
from patchctl.store.rollouts import RolloutStore, RolloutUpdate

if TYPE_CHECKING:
    from patchctl.scan import ProgressFn as ScanProgressFn


@dataclass(frozen=True)
class DeliveryFacts:
    """What verify knows of one host's rollouts after the rescan."""

    host: str
    scan_ok: bool  # the host's last scan was ok (else what is installed is the last ok scan's word)
    frozen: frozenset[str]  # uids its started waves froze for it
    missing: frozenset[str]  # uids the host's last successful scan reports missing
    # frozen uids whose package the host has at an older version than the frozen one
    below_frozen: frozenset[str] = frozenset()
    deploy_failed: Mapping[str, str] = field(default_factory=dict)  # uid -> reason, last deploy


@dataclass(frozen=True)
class WaveDelivery:
    """verify's answer to "did the started waves deliver what they froze?" for one host."""

    state: str  # one of DELIVERY_STATES
    undelivered: tuple[str, ...]  # frozen uids not installed, sorted
    deploy_failed: Mapping[str, str]  # of those, uid -> reason of its failed last deploy


def delivery(facts: DeliveryFacts) -> WaveDelivery:
    """The delivery of one host; see the module docstring."""
    undelivered = tuple(sorted(facts.frozen & (facts.missing | facts.below_frozen)))
    failed = {uid: facts.deploy_failed[uid] for uid in undelivered if uid in facts.deploy_failed}
    state = delivery_state(facts.scan_ok, len(facts.frozen), len(undelivered), len(failed))
    return WaveDelivery(state=state, undelivered=undelivered, deploy_failed=failed)


def state_detail(state: str, facts: ComplianceFacts, error: str | None, delivered: WaveDelivery) -> str:
    """One line on why the host is in ``state``, then what the started waves did not deliver."""
    words = {
        NEVER_SCANNED: "no scan of the host recorded",
        UNREACHABLE: error or "unreachable",
        FAILED: f"last scan failed: {error or 'no message'}"
        if not facts.deploy_failed or error
        else "last deploy in the latest rollout failed",
        BLOCKED: f"last deploy blocked: {facts.deploy_blocked}",
        STALE: f"no scan since {iso_utc(facts.last_scan_at)}",
        MISSING: f"{facts.approved_missing - facts.excepted} approved update(s) not installed",
        REBOOT_PENDING: "approved updates installed; waiting for a reboot",
        COMPLIANT: "approved updates installed",
    }
    text = words.get(state, state)
    if facts.excepted:
        text += f" ({facts.excepted} excepted)"
    if delivered.undelivered:
        text += f"; undelivered by the started waves: {', '.join(delivered.undelivered)}"
    for uid, reason in delivered.deploy_failed.items():
        text += f"; {uid}: {reason}"
    return text


@dataclass(frozen=True)
class VerifiedHost:
    row: VerifyRow  # what the store keeps: the state, and the delivery in its missing/failed
    delivery: str
    # services still running files a change replaced (beside reboot pending; not a state)
    restart_pending: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        r = self.row
        return {
            "host": r.host,
            "state": r.state,
            "detail": r.detail,
            "delivery": self.delivery,
            "undelivered": list(r.missing),
            "deploy_failed": dict(r.failed),
            "verified_at": iso_utc(r.verified_at),
            "restart_pending": list(self.restart_pending),
        }


@dataclass
class VerifyReport:
    now: datetime
    scan_run_id: int | None
    hosts: list[VerifiedHost] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if all(h.row.state == COMPLIANT for h in self.hosts) else EXIT_HOST_FAILURES

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for h in self.hosts:
            out[h.row.state] += 1
        return out

    def delivery_counts(self) -> dict[str, int]:
        out = dict.fromkeys(DELIVERY_STATES, 0)
        for h in self.hosts:
            out[h.delivery] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": iso_utc(self.now),
            "scan_run": self.scan_run_id,
            "counts": self.counts(),
            "delivery_counts": self.delivery_counts(),
            "hosts": [h.as_dict() for h in self.hosts],
        }


@dataclass(frozen=True)
class VerifyOptions:
    inventory: str
    db_url: str
    now: datetime
    stale_days: float = 7
    limit: str | None = None
    rescan: bool = True
    forks: int = 20


def frozen_for_hosts(
    rs: RolloutStore, hosts: Iterable[str]
) -> tuple[dict[str, set[str]], dict[str, dict[str, str]], dict[str, RolloutUpdate]]:
    """host -> uids its started waves froze for it; host -> {uid: reason} of its last failed deploys;
    uid -> the update (source, name, version) of every rollout's updates."""
    wanted = set(hosts)
    approved: dict[str, set[str]] = {h: set() for h in wanted}
    failed: dict[str, dict[str, str]] = {h: {} for h in wanted}
    details: dict[str, RolloutUpdate] = {}
    for rollout_id in rs.rollout_ids():
        r = rs.rollout(rollout_id)
        uids = {u.uid for u in r.updates}
        details.update((u.uid, u) for u in r.updates)
        for rec in r.waves:
            if rec.state == "pending":
                continue
            for host in set(rec.hosts) & wanted:
                approved[host] |= uids
                res = r.results.get(host)
                if res is not None and res.status != HOST_OK:
                    reason = res.error or res.status
                    for uid in res.failed or dict.fromkeys(uids, reason):
                        failed[host][uid] = str((res.failed or {}).get(uid, reason))
    return approved, failed, details


def below_frozen(
    frozen: Iterable[str], details: Mapping[str, RolloutUpdate], missing: Iterable[MissingUpdateRow]
) -> set[str]:
    """The frozen uids whose package the host has at a version older than the frozen one.

    A scan lists what the repositories offer now: after a newer version is published, a host
    downgraded below the frozen version misses the newer update, not the frozen one. Its
    missing row still says which version is installed; that version is compared with the
    frozen one (sources whose versions are not ordered, Windows and Chocolatey, are skipped)."""
    installed = {(m.source, m.name): m.installed_version for m in missing if m.installed_version}
    below = set()
    for uid in frozen:
        upd = details.get(uid)
        if upd is None:
            continue
        have = installed.get((upd.source, upd.name))
        if have is not None and older(upd.source, have, upd.version):
            below.add(uid)
    return below


def verify(opts: VerifyOptions, progress: ScanProgressFn | None = None) -> VerifyReport:
    """Rescan (unless ``opts.rescan`` is False), compare, record and return each host's state;
    ``progress`` is called for each host the rescan records."""
    from patchctl.ansible.inventory import load_inventory
    from patchctl.exceptions import record_expiries
    from patchctl.scan import ScanOptions, run_scan

    scan_run: int | None = None
    if opts.rescan:
        summary = run_scan(
            ScanOptions(inventory=opts.inventory, db_url=opts.db_url, limit=opts.limit, forks=opts.forks),
            progress=progress,
        )
        scan_run = summary.run_id
        targets = sorted(summary.hosts)
        # Scanned just now (the clock may be simulated: the rescan counts as "now" for staleness).
        fresh = {h for h, s in summary.hosts.items() if s.status == HOST_OK}
    else:
        targets = load_inventory(opts.inventory).match(opts.limit)
        fresh = set()
    report = VerifyReport(now=opts.now, scan_run_id=scan_run)
    stale_after = timedelta(days=opts.stale_days)
    # without a rescan there must be a store to compare with: none is created
    with Store.open(opts.db_url, create=opts.rescan) as store:
        rs = RolloutStore(store)
        record_expiries(store, opts.now)
        rows = {r.host: r for r in store.host_compliance(targets)}
        # The one rule's inputs, read as patchctl report reads them.
        with store.engine.connect() as conn:
            q = reads.sqlalchemy_query(conn)
            approved_missing = reads.approved_missing(q, targets)
            _valid, covered = excepted_now(q, exceptions(q), opts.now, targets)
            rollout = reads.latest_rollout_id(q)
            restarts = {r.host: r.services for r in safety_reads.restart_pending_hosts(q, targets)}
            deploy_failed, deploy_blocked = split_deploy_results(
                reads.deploy_failures(q, rollout) if rollout is not None else [], reads.blocked_hosts(q), targets
            )
        frozen, failed, details = frozen_for_hosts(rs, targets)
        missing_ids = rs.missing_on_hosts(targets)
        uid_of = _uids(rs, {i for ids in missing_ids.values() for i in ids})
        for host in targets:
            row = rows.get(host)
            if row is None:
                facts = ComplianceFacts(NEVER_SCANNED, None, approved_missing=0, reboot_pending=False)
                error = None
            else:
                hr = host_report(row)
                if host in fresh:
                    hr = dataclasses.replace(hr, last_scan_at=opts.now)
                facts = host_facts(
                    hr,
                    deploy_failed=host in deploy_failed,
                    approved_missing=None if approved_missing is None else approved_missing.get(host, 0),
                    deploy_blocked=deploy_blocked[host].reason if host in deploy_blocked else None,
                    excepted=len(covered.get(host, {})),
                )
                error = hr.error
            # what an exception covers is not to be delivered while it holds
            mine = frozen.get(host, set()) - set(covered.get(host, {}))
            scan_ok = row is not None and row.reachability == HOST_OK
            below = below_frozen(mine, details, store.missing_updates(host)) if row and mine else set()
            delivered = delivery(
                DeliveryFacts(
                    host=host,
                    scan_ok=scan_ok,
                    frozen=frozenset(mine),
                    missing=frozenset(uid_of[i] for i in missing_ids.get(host, set()) if i in uid_of),
                    below_frozen=frozenset(below),
                    deploy_failed=failed.get(host, {}),
                )
            )
            state = compliance_state(facts, opts.now, stale_after)
            report.hosts.append(
                VerifiedHost(
                    VerifyRow(
                        host=host,
                        state=state,
                        detail=state_detail(state, facts, error, delivered),
                        verified_at=opts.now,
                        missing=delivered.undelivered,
                        failed=dict(delivered.deploy_failed),
                        run_id=scan_run,
                    ),
                    delivered.state,
                    restarts.get(host, ()),
                )
            )
        RebootStore(store).record_verify([h.row for h in report.hosts])
    return report


def _uids(rs: RolloutStore, update_ids: set[int]) -> dict[int, str]:
    if not update_ids:
        return {}
    return {e.id: e.uid for e in rs.catalog() if e.id in update_ids}
