"""The flow of ``patchctl report``: read the store and build the :class:`~patchctl.rules.report.Report`.

A SQLite store at the newest schema is read with the standard library alone
(:mod:`patchctl.store.fastread`: no SQLAlchemy or Alembic import, ``patchctl report`` starts
fast); any other store through the Store.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from patchctl.errors import ConfigError
from patchctl.rules.compliance import NEVER_SCANNED
from patchctl.rules.freezes import Freeze, active_and_next
from patchctl.rules.lineage import starved_after, starved_lineages
from patchctl.rules.policy import Policy
from patchctl.rules.report import HostComplianceRow, Report, build_report
from patchctl.rules.sla import Sla, breach_history, evaluate_sla
from patchctl.store import fastread
from patchctl.store import reports as reads
from patchctl.store import safety_reads as safety
from patchctl.store import sla as sla_reads
from patchctl.store.exception_reads import excepted_now, exceptions
from patchctl.store.hold_reads import holds


def matching_hosts(names: list[str], limit: str | None, where: str) -> set[str] | None:
    """The host names matching ``limit`` (None: no limit, every host)."""
    if not limit:
        return None
    patterns = [p.strip() for p in limit.replace(":", ",").split(",") if p.strip()]
    wanted = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
    if not wanted:
        raise ConfigError(f"--limit: {limit!r} matches no host in the store {where}")
    return wanted


def _build(
    q: reads.Query,
    rows: Sequence[HostComplianceRow],
    wanted: set[str] | None,
    now: datetime,
    *,
    stale_days: float,
    top: int,
    history_runs: int,
    starved_after: Mapping[str, float],
    freezes: Sequence[Freeze] = (),
    sla: Sla | None = None,
    sla_since: datetime | None = None,
) -> Report:
    names = None if wanted is None else sorted(wanted)
    report = _build_report(q, rows, names, now, stale_days, top, history_runs, starved_after, freezes)
    if sla is None:
        return report
    open_now = sla_reads.open_items(q, names)  # read once: the SLA states now and the history's open spans
    measured = evaluate_sla(sla, open_now, sla_reads.patched(q, names), now, sla_since)
    history = breach_history(sla, sla_reads.spans(q, open_now, names), [(p.run_id, p.at) for p in report.history])
    return replace(report, sla=replace(measured, history=history))


def _build_report(
    q: reads.Query,
    rows: Sequence[HostComplianceRow],
    names: list[str] | None,
    now: datetime,
    stale_days: float,
    top: int,
    history_runs: int,
    starved_after: Mapping[str, float],
    freezes: Sequence[Freeze],
) -> Report:
    rollout = reads.latest_rollout_id(q)
    waves = reads.wave_rows(q, rollout) if rollout is not None else []
    failures = reads.deploy_failures(q, rollout) if rollout is not None else []
    valid, covered = excepted_now(q, exceptions(q), now, names)
    report = build_report(
        rows,
        now,
        top_missing=reads.top_missing(q, top, names),
        history=reads.history(q, history_runs, names),
        reboot_since={r.host: getattr(r, "reboot_required_since", None) for r in rows},
        windows={r.host: getattr(r, "patch_window", None) for r in rows},
        waves=waves,
        deploy_failures=failures,
        blocked=reads.blocked_hosts(q),
        exposures=reads.exposures(q, names),
        starved=starved_lineages(reads.lineage_rollouts(q), starved_after, now),
        stale_days=stale_days,
        nodes=reads.node_throughput(q),
        approved_missing=reads.approved_missing(q, names),
        exceptions=valid,
        excepted=covered,
        holds=holds(q, names),
        freezes=[f for f in active_and_next(freezes, now) if f["active"] or f["next_start"]],
    )
    # change safety: the latest health checks and the services pending restart
    return replace(
        report,
        health=tuple(safety.health_checks(q, names)),
        restart_pending=tuple(safety.restart_pending_hosts(q, names)),
    )


def full_report(
    db_url: str,
    limit: str | None,
    now: datetime,
    *,
    stale_days: float = 7,
    top: int = 10,
    history_runs: int = 30,
    policy: Policy | None = None,
    sla_since: datetime | None = None,
) -> Report:
    """Everything ``patchctl report`` shows, for every host (or those matching ``limit``).

    Waves and deploy failures are those of the latest rollout, when there is one; the history
    has one point per scan run, for the last ``history_runs`` runs. ``policy``: its baselines'
    ``starved_after_days`` name the starved lineages (without it: 30 days).
    """
    conn = fastread.open_current(db_url)
    if conn is not None:
        try:
            wanted = matching_hosts(fastread.host_names(conn), limit, db_url)
            rows = fastread.host_compliance(conn, wanted)
            return _build(
                reads.sqlite_query(conn),
                rows,
                wanted,
                now,
                stale_days=stale_days,
                top=top,
                history_runs=history_runs,
                starved_after=starved_after(policy),
                freezes=policy.freezes if policy is not None else (),
                sla=policy.sla if policy is not None else None,
                sla_since=sla_since,
            )
        finally:
            conn.close()
    from patchctl.store import Store

    with Store.open_existing(db_url) as store:
        wanted = matching_hosts(store.hosts(), limit, store.url)
        # All rows and a filter here: an IN list of thousands of names is slow in SQLite.
        all_rows = [r for r in store.host_compliance() if wanted is None or r.host in wanted]
        with store.engine.connect() as c:
            return _build(
                reads.sqlalchemy_query(c),
                all_rows,
                wanted,
                now,
                stale_days=stale_days,
                top=top,
                history_runs=history_runs,
                starved_after=starved_after(policy),
                freezes=policy.freezes if policy is not None else (),
                sla=policy.sla if policy is not None else None,
                sla_since=sla_since,
            )


def host_states(db_url: str, hosts: Sequence[str], now: datetime, *, stale_days: float = 7) -> dict[str, str]:
    """Each host's compliance state by the one rule (:func:`patchctl.rules.compliance.compliance_state`),
    read as ``patchctl report`` reads it: the deploy's last word on its wave's hosts."""
    states = full_report(db_url, None, now, stale_days=stale_days).states
    return {h: states.get(h, NEVER_SCANNED) for h in hosts}
