"""The verify flow (``patchctl verify``, daily from cron): rescan, then compare each host with the
updates its rollout waves approved for it, and record each host's state.

The updates *approved for a host* are those of every rollout with a wave that holds the host and
has started deploying (a wave still pending has approved nothing for its hosts yet). States, in
order of precedence (:func:`verify_state`, a pure rule):

``stale``
    no successful scan for more than ``stale_days`` (config key ``stale_days``);
``unreachable``
    the rescan could not reach the host (its last successful scan is recent);
``failed``
    the rescan failed on the host, or an approved update is still missing and the host's last
    deploy of it failed;
``missing``
    an approved update is not installed (for example a package downgraded by hand); the next
    deploy of the host's wave installs it again. The scan reports what the repositories offer
    now, which may be a newer version than the approved one: an approved update also counts as
    not installed when the host's installed version of its package is older than the approved
    version (apt, dnf and zypper versions are ordered by :mod:`patchctl.rules.versions`);
``reboot_pending``
    everything approved is installed but the host waits for a reboot;
``compliant``
    everything approved is installed and no reboot is pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from patchctl.errors import EXIT_HOST_FAILURES, EXIT_OK
from patchctl.rules.clock import iso_utc
from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE
from patchctl.rules.report import COMPLIANT, FAILED, MISSING, REBOOT_PENDING, STALE, UNREACHABLE
from patchctl.rules.versions import older
from patchctl.store import MissingUpdateRow, Store
from patchctl.store.reboots import RebootStore, VerifyRow
from patchctl.store.rollouts import RolloutStore, RolloutUpdate

VERIFY_STATES = (COMPLIANT, MISSING, FAILED, REBOOT_PENDING, UNREACHABLE, STALE)


@dataclass(frozen=True)
class HostFacts:
    """What verify knows of one host after the rescan."""

    host: str
    scan_status: str | None  # ok | failed | unreachable | None (never scanned)
    last_ok_scan_at: datetime | None
    reboot_required: bool
    approved: frozenset[str]  # uids approved for the host
    missing: frozenset[str]  # uids the host's last successful scan reports missing
    # approved uids whose package the host has at an older version than the approved one
    below_approved: frozenset[str] = frozenset()
    deploy_failed: Mapping[str, str] = field(default_factory=dict)  # uid -> reason, last deploy
    scan_error: str | None = None


def verify_state(facts: HostFacts, now: datetime, stale_after: timedelta) -> tuple[str, str, tuple[str, ...]]:
    """(state, detail, approved uids not installed) of one host; see the module docstring."""
    missing = tuple(sorted(facts.approved & (facts.missing | facts.below_approved)))
    last_ok = facts.last_ok_scan_at
    if last_ok is None or now - last_ok > stale_after:
        since = f"since {last_ok.isoformat(timespec='minutes')}" if last_ok else "ever"
        why = f"; last scan {facts.scan_status}: {facts.scan_error}" if facts.scan_status != HOST_OK else ""
        return STALE, f"no successful scan {since}{why}", missing
    if facts.scan_status == HOST_UNREACHABLE:
        return UNREACHABLE, facts.scan_error or "unreachable", missing
    if facts.scan_status == HOST_FAILED:
        return FAILED, f"scan failed: {facts.scan_error or 'no message'}", missing
    failed = [uid for uid in missing if uid in facts.deploy_failed]
    if failed:
        return FAILED, "; ".join(f"{uid}: {facts.deploy_failed[uid]}" for uid in failed), missing
    if missing:
        return MISSING, f"{len(missing)} approved update(s) not installed: {', '.join(missing)}", missing
    if facts.reboot_required:
        return REBOOT_PENDING, "approved updates installed; waiting for a reboot", missing
    return COMPLIANT, f"{len(facts.approved)} approved update(s) installed", missing


@dataclass
class VerifyReport:
    now: datetime
    scan_run_id: int | None
    hosts: list[VerifyRow] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if all(h.state == COMPLIANT for h in self.hosts) else EXIT_HOST_FAILURES

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERIFY_STATES, 0)
        for h in self.hosts:
            out[h.state] = out.get(h.state, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": iso_utc(self.now),
            "scan_run": self.scan_run_id,
            "counts": self.counts(),
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


def approved_for_hosts(
    rs: RolloutStore, hosts: Iterable[str]
) -> tuple[dict[str, set[str]], dict[str, dict[str, str]], dict[str, RolloutUpdate]]:
    """host -> uids its started waves approved; host -> {uid: reason} of its last failed deploys;
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


def below_approved(
    approved: Iterable[str], details: Mapping[str, RolloutUpdate], missing: Iterable[MissingUpdateRow]
) -> set[str]:
    """The approved uids whose package the host has at a version older than the approved one.

    A scan lists what the repositories offer now: after a newer version is published, a host
    downgraded below the approved version misses the newer update, not the approved one. Its
    missing row still says which version is installed; that version is compared with the
    approved one (sources whose versions are not ordered, Windows and Chocolatey, are skipped)."""
    installed = {(m.source, m.name): m.installed_version for m in missing if m.installed_version}
    below = set()
    for uid in approved:
        upd = details.get(uid)
        if upd is None:
            continue
        have = installed.get((upd.source, upd.name))
        if have is not None and older(upd.source, have, upd.version):
            below.add(uid)
    return below


def verify(opts: VerifyOptions) -> VerifyReport:
    """Rescan (unless ``opts.rescan`` is False), compare, record and return each host's state."""
    from patchctl.scan import ScanOptions, load_inventory, run_scan

    scan_run: int | None = None
    if opts.rescan:
        summary = run_scan(
            ScanOptions(inventory=opts.inventory, db_url=opts.db_url, limit=opts.limit, forks=opts.forks)
        )
        scan_run = summary.run_id
        targets = sorted(summary.hosts)
        # Scanned just now (the clock may be simulated: the rescan counts as "now" for staleness).
        fresh = {h for h, s in summary.hosts.items() if s.status == HOST_OK}
    else:
        targets = load_inventory(opts.inventory).match(opts.limit)
        fresh = set()
    report = VerifyReport(now=opts.now, scan_run_id=scan_run)
    with Store.open(opts.db_url) as store:
        rs = RolloutStore(store)
        rows = {r.host: r for r in store.host_compliance(targets)}
        approved, failed, details = approved_for_hosts(rs, targets)
        missing_ids = rs.missing_on_hosts(targets)
        uid_of = _uids(rs, {i for ids in missing_ids.values() for i in ids})
        for host in targets:
            row = rows.get(host)
            mine = approved.get(host, set())
            below = below_approved(mine, details, store.missing_updates(host)) if row and mine else set()
            facts = HostFacts(
                host=host,
                scan_status=None if row is None or row.reachability == "never_scanned" else row.reachability,
                last_ok_scan_at=opts.now if host in fresh else (row.last_ok_scan_at if row else None),
                reboot_required=bool(row.reboot_required) if row else False,
                approved=frozenset(approved.get(host, set())),
                missing=frozenset(uid_of[i] for i in missing_ids.get(host, set()) if i in uid_of),
                below_approved=frozenset(below),
                deploy_failed=failed.get(host, {}),
                scan_error=row.last_error if row else None,
            )
            state, detail, missing = verify_state(facts, opts.now, timedelta(days=opts.stale_days))
            report.hosts.append(
                VerifyRow(
                    host=host,
                    state=state,
                    detail=detail,
                    verified_at=opts.now,
                    missing=missing,
                    failed={u: facts.deploy_failed[u] for u in missing if u in facts.deploy_failed},
                    run_id=scan_run,
                )
            )
        RebootStore(store).record_verify(report.hosts)
    return report


def _uids(rs: RolloutStore, update_ids: set[int]) -> dict[int, str]:
    if not update_ids:
        return {}
    return {e.id: e.uid for e in rs.catalog() if e.id in update_ids}
