"""The ``patchctl cve`` flow: which hosts are exposed to a CVE, since when, the updates that fix
it and where each fix stands (:mod:`patchctl.rules.cve` does the counting)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from patchctl.decisions import CatalogRow, evaluate_catalog
from patchctl.rules import changelog
from patchctl.rules import cve as rule
from patchctl.rules.policy import STATE_APPROVED, STATE_REJECTED, STATE_WAITING, Policy
from patchctl.store import Store
from patchctl.store import reports as reads
from patchctl.store.changelogs import ChangelogStore
from patchctl.store.queries import MissingUpdateRow
from patchctl.store.rollouts import Rollout, RolloutStore

HOST_BLOCKED = "blocked"


def where_fix_stands(row: CatalogRow, rollout: Rollout | None, now: datetime) -> str:
    """Where one fix stands: in which rollout and wave (blocked on how many hosts), else its
    state in the catalog."""
    if rollout is not None:
        started = [w for w in rollout.waves if w.started_at is not None]
        wave = started[-1] if started else rollout.waves[0]
        text = f"in rollout {rollout.id}, wave {wave.wave.name} ({wave.shown_state(now)})"
        blocked = sum(1 for r in rollout.results.values() if r.status == HOST_BLOCKED)
        if blocked:
            text += f", blocked on {blocked} host{'s' if blocked != 1 else ''}"
        return text
    if row.state == STATE_APPROVED:
        return "approved, in no rollout yet"
    if row.state == STATE_WAITING:
        return row.shown_state
    if row.state == STATE_REJECTED:
        return f"rejected: {row.reason}"
    if row.state == "new":
        return "not approved"
    return row.state


def cve_exposures(db_url: str, policy: Policy, now: datetime, cves: Sequence[str] = ()) -> list[rule.CveExposure]:
    """Per CVE (the ones named, else every open one ranked by exposed hosts) its exposure."""
    wanted = [rule.cve_id(c) for c in cves]
    with Store.open_existing(db_url) as store:
        rs = RolloutStore(store)
        rows = {r.entry.uid: r for r in evaluate_catalog(rs, policy, now)}
        missing = store.missing_updates()
        with store.engine.connect() as conn:
            clock = {(e.host, e.source, e.name): e.since for e in reads.exposures(reads.sqlalchemy_query(conn))}
        apt_keys = set()
        for r in rows.values():
            if r.entry.source == "apt" and r.entry.source_package and r.entry.source_version:
                apt_keys.add((r.entry.source_package, r.entry.source_version))
        entries = ChangelogStore(store).entries_of(apt_keys)
        in_rollout: dict[str, Rollout] = {}
        for rid in rs.rollout_ids():
            held = rs.rollout(rid)
            for u in held.updates:
                in_rollout[u.uid] = held  # the latest rollout holding it wins

    def host_cves(m: MissingUpdateRow) -> tuple[str, ...]:
        row = rows.get(m.uid)
        entry = row.entry if row is not None else None
        if entry is not None and entry.source == "apt" and entry.source_package and entry.source_version:
            logged = entries.get((entry.source_package, entry.source_version))
            if logged is not None:
                return changelog.facts(changelog.between(logged, m.installed_version, m.version)).cves
        return m.cves or (entry.cves if entry is not None else ())

    found = [
        rule.Missing(m.host, m.uid, host_cves(m), clock.get((m.host, m.source, m.name), m.first_seen_at))
        for m in missing
    ]
    fixes = {
        uid: rule.Fix(
            uid=uid,
            source=r.entry.source,
            name=r.entry.name,
            version=r.entry.version,
            severity=r.entry.severity or r.entry.urgency,
            state=r.shown_state,
            where=where_fix_stands(r, in_rollout.get(uid), now),
            hosts_missing=r.entry.hosts_missing,
        )
        for uid, r in rows.items()
    }
    known = {uid: r.entry.cves for uid, r in rows.items() if r.entry.cves}
    return rule.exposures(found, fixes, known, wanted or None)
