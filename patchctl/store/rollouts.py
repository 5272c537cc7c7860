"""The store's side of rollouts, their waves, deploy runs and results, and incidents.

:class:`RolloutStore` wraps an open :class:`~patchctl.store.Store`; each write is one short
transaction, like the scan's. ``rollout_updates`` is only ever inserted into. The catalog and its
decisions (:mod:`patchctl.store.catalog`) and the audit trail (:mod:`patchctl.store.audit`) are
modules of their own; RolloutStore opens their transactions too, so a flow holds one object for
all of them. A change here and its audit row are written in one transaction: both commit or
neither does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from patchctl.errors import ConfigError, StoreError
from patchctl.rules.model import HOST_OK, ApplyOutcome
from patchctl.rules.policy import Wave
from patchctl.rules.waves import PENDING, WaveRecord
from patchctl.store import audit as audit_trail
from patchctl.store import catalog as update_catalog
from patchctl.store import schema as t
from patchctl.store.audit import AuditRow
from patchctl.store.catalog import CatalogEntry, Decision
from patchctl.store.counters import bump_update_counts, refresh_host_summaries
from patchctl.store.db import Store
from patchctl.store.safety import write_health, write_restart_pending

__all__ = [
    "AuditRow",
    "CatalogEntry",
    "Decision",
    "HostResult",
    "Incident",
    "Rollout",
    "RolloutStore",
    "RolloutUpdate",
]


@dataclass(frozen=True)
class RolloutUpdate:
    update_id: int
    uid: str
    source: str
    name: str
    version: str
    classification: str
    major: bool
    update_ref: str | None
    kbs: tuple[str, ...]


@dataclass(frozen=True)
class HostResult:
    host: str
    wave: str
    status: str
    installed: tuple[str, ...]
    present: tuple[str, ...]
    failed: dict[str, str]
    reboot_required: bool | None
    error: str | None
    finished_at: datetime


@dataclass(frozen=True)
class Rollout:
    id: int
    created_at: datetime
    created_by: str
    policy_source: str
    updates: tuple[RolloutUpdate, ...]
    waves: tuple[WaveRecord, ...]
    results: dict[str, HostResult] = field(default_factory=dict)  # host -> its latest result
    follows: int | None = None  # a follow-up rollout (successors: repilot): the rollout it follows

    def wave(self, name: str) -> WaveRecord:
        for rec in self.waves:
            if rec.wave.name == name:
                return rec
        known = ", ".join(r.wave.name for r in self.waves)
        raise ConfigError(f"rollout {self.id} has no wave {name!r} (waves: {known})")


@dataclass(frozen=True)
class Incident:
    id: int
    rollout_id: int
    host: str | None
    text: str
    opened_at: datetime
    opened_by: str
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str | None


class RolloutStore:
    """The catalog and its decisions, the audit trail, rollouts, deploy results and incidents in an
    open store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- catalog and decisions (patchctl.store.catalog) --------------------------------------

    def catalog(self) -> list[CatalogEntry]:
        """Every update ever seen, sorted by source, name, version."""
        with self.store._read() as conn:
            return update_catalog.read_catalog(conn)

    def record_decisions(self, decisions: Sequence[tuple[CatalogEntry, Decision, bool]]) -> None:
        """Append decisions ``(update, decision, automatic)`` in one transaction."""
        if not decisions:
            return
        with self.store._write("record decisions") as conn:
            update_catalog.record_decisions(conn, decisions)

    # --- audit (patchctl.store.audit) --------------------------------------------------------

    def audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        subject: str | None = None,
        rollout_id: int | None = None,
        detail: str | None = None,
    ) -> None:
        with self.store._write("write the audit trail") as conn:
            audit_trail.record(conn, at, actor, action, subject, rollout_id, detail)

    def audit_log(self, rollout_id: int | None = None, limit: int | None = None) -> list[AuditRow]:
        with self.store._read() as conn:
            return audit_trail.audit_log(conn, rollout_id, limit)

    # --- rollouts ---------------------------------------------------------------------------

    def create_rollout(
        self,
        at: datetime,
        actor: str,
        policy_source: str,
        waves: Sequence[Wave],
        updates: Sequence[CatalogEntry],
        follows: int | None = None,
        why: str | None = None,
    ) -> int:
        """A new rollout of ``updates`` through ``waves``; ``follows``: the rollout it is the
        follow-up of (its audit trail names the follow-up too, with ``why``)."""
        with self.store._write("create a rollout") as conn:
            result = conn.execute(
                t.rollouts.insert().values(
                    created_at=at,
                    created_by=actor,
                    policy_source=policy_source,
                    waves=[w.as_dict() for w in waves],
                    follows_rollout_id=follows,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            rollout_id = int(pk[0])
            conn.execute(
                t.rollout_updates.insert(),
                [
                    {
                        "rollout_id": rollout_id,
                        "update_id": e.id,
                        "uid": e.uid,
                        "source": e.source,
                        "name": e.name,
                        "version": e.version,
                        "classification": e.classification,
                        "major": e.major,
                        "update_ref": e.update_id,
                        "kbs": list(e.kbs),
                    }
                    for e in updates
                ],
            )
            conn.execute(
                t.rollout_waves.insert(),
                [
                    {
                        "rollout_id": rollout_id,
                        "position": i,
                        "name": w.name,
                        "state": PENDING,
                        "bake_days": w.bake_days,
                    }
                    for i, w in enumerate(waves)
                ],
            )
            audit_trail.record(
                conn,
                at,
                actor,
                "rollout create",
                f"rollout {rollout_id}",
                rollout_id,
                f"{len(updates)} updates: "
                + ", ".join(e.uid for e in updates)
                + (f"; follow-up of rollout {follows}" if follows is not None else ""),
            )
            if follows is not None:
                audit_trail.record(
                    conn,
                    at,
                    actor,
                    "rollout follow-up",
                    f"rollout {rollout_id}",
                    follows,
                    why or f"follow-up rollout {rollout_id}",
                )
            return rollout_id

    def follow_ups(self, rollout_id: int) -> list[int]:
        """The rollouts created as follow-ups of ``rollout_id``, oldest first."""
        r = t.rollouts
        with self.store._read() as conn:
            return [
                int(i)
                for i in conn.scalars(sa.select(r.c.id).where(r.c.follows_rollout_id == rollout_id).order_by(r.c.id))
            ]

    def latest_rollout_id(self) -> int | None:
        with self.store._read() as conn:
            value = conn.scalar(sa.select(sa.func.max(t.rollouts.c.id)))
        return None if value is None else int(value)

    def rollout_ids(self) -> list[int]:
        with self.store._read() as conn:
            return [int(i) for i in conn.scalars(sa.select(t.rollouts.c.id).order_by(t.rollouts.c.id))]

    def rollout(self, rollout_id: int) -> Rollout:
        r, ru, rw, dr = t.rollouts, t.rollout_updates, t.rollout_waves, t.deploy_results
        with self.store._read() as conn:
            row = conn.execute(sa.select(r).where(r.c.id == rollout_id)).one_or_none()
            if row is None:
                raise ConfigError(f"no rollout {rollout_id} in {self.store.url}")
            updates = tuple(
                RolloutUpdate(
                    int(x.update_id),
                    x.uid,
                    x.source,
                    x.name,
                    x.version,
                    x.classification,
                    bool(x.major),
                    x.update_ref,
                    tuple(x.kbs or ()),
                )
                for x in conn.execute(sa.select(ru).where(ru.c.rollout_id == rollout_id).order_by(ru.c.uid))
            )
            last = sa.select(sa.func.max(dr.c.id)).where(dr.c.rollout_id == rollout_id).group_by(dr.c.host)
            results = {
                x.host: HostResult(
                    x.host,
                    x.wave,
                    x.status,
                    tuple(x.installed or ()),
                    tuple(x.present or ()),
                    dict(x.failed or {}),
                    x.reboot_required,
                    x.error,
                    x.finished_at,
                )
                for x in conn.execute(sa.select(dr).where(dr.c.id.in_(last)))
            }
            wave_rows = conn.execute(sa.select(rw).where(rw.c.rollout_id == rollout_id).order_by(rw.c.position)).all()
        definitions = {str(w["name"]): Wave.from_dict(w) for w in row.waves}
        waves = tuple(
            WaveRecord(
                position=int(w.position),
                wave=definitions[w.name],
                state=w.state,
                hosts=tuple(w.hosts or ()),
                promoted_at=w.promoted_at,
                started_at=w.started_at,
                finished_at=w.finished_at,
                results={h: res.status for h, res in results.items() if res.wave == w.name},
            )
            for w in wave_rows
        )
        return Rollout(
            rollout_id,
            row.created_at,
            row.created_by,
            row.policy_source,
            updates,
            waves,
            results,
            row.follows_rollout_id,
        )

    def set_wave(
        self,
        rollout_id: int,
        position: int,
        at: datetime,
        actor: str,
        action: str,
        detail: str | None = None,
        **values: Any,
    ) -> None:
        """Change a wave's recorded state (``values``: state, hosts, started_at, ...) and audit it."""
        rw = t.rollout_waves
        if "hosts" in values:
            values["hosts_total"] = len(values["hosts"])
        with self.store._write("update a wave") as conn:
            result = conn.execute(
                rw.update().where(rw.c.rollout_id == rollout_id, rw.c.position == position).values(**values)
            )
            if result.rowcount != 1:
                raise StoreError(f"no wave {position} in rollout {rollout_id}")
            name = conn.scalar(sa.select(rw.c.name).where(rw.c.rollout_id == rollout_id, rw.c.position == position))
            audit_trail.record(conn, at, actor, action, f"rollout {rollout_id} wave {name}", rollout_id, detail)

    # --- deploy runs and results ------------------------------------------------------------

    def start_deploy_run(self, rollout_id: int, wave: str, actor: str, at: datetime) -> int:
        with self.store._write("start a deploy run") as conn:
            result = conn.execute(
                t.deploy_runs.insert().values(
                    rollout_id=rollout_id, wave=wave, actor=actor, started_at=at, status=t.RUN_RUNNING
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def close_dead_runs(self, rollout_id: int, at: datetime, actor: str) -> list[int]:
        """Mark the rollout's deploy runs still ``running`` as ``crashed`` (and audit each).

        Only call this holding the rollout's lock: then no live run of the rollout exists, so a
        ``running`` row is a run that died (``kill -9``, a lost control node) before it finished.
        Its finished hosts keep their results; its host in flight has none (a rerun finds it).
        """
        dr = t.deploy_runs
        with self.store._write("close the deploy runs that died") as conn:
            ids = [
                int(i)
                for i in conn.scalars(
                    sa.select(dr.c.id).where(dr.c.rollout_id == rollout_id, dr.c.status == t.RUN_RUNNING)
                )
            ]
            if ids:
                conn.execute(dr.update().where(dr.c.id.in_(ids)).values(status="crashed", finished_at=at))
            for run_id in ids:
                audit_trail.record(
                    conn,
                    at,
                    actor,
                    "deploy run crashed",
                    f"deploy run {run_id}",
                    rollout_id,
                    "found running with no live holder of the rollout's lock: it ended without finishing",
                )
        return ids

    def finish_deploy_run(self, run_id: int, status: str, at: datetime) -> None:
        with self.store._write("finish a deploy run") as conn:
            conn.execute(
                t.deploy_runs.update().where(t.deploy_runs.c.id == run_id).values(finished_at=at, status=status)
            )

    def record_deploy_result(
        self,
        run_id: int,
        rollout_id: int,
        wave: str,
        outcome: ApplyOutcome,
        at: datetime,
        present: Iterable[str] = (),
        update_ids: dict[str, int] | None = None,
    ) -> None:
        """One host's result, in one transaction; what it installed (or already had) is marked
        installed on the host, and its reboot-required state is kept."""
        present = list(present)
        with self.store._write(f"record the deploy result of {outcome.host}") as conn:
            conn.execute(
                t.deploy_results.insert().values(
                    run_id=run_id,
                    rollout_id=rollout_id,
                    wave=wave,
                    host=outcome.host,
                    status=outcome.status,
                    installed=list(outcome.installed),
                    present=present,
                    failed=dict(outcome.failed),
                    reboot_required=outcome.reboot_required if outcome.status == HOST_OK or outcome.installed else None,
                    error=outcome.error,
                    finished_at=at,
                    hooks=list(outcome.hooks) or None,
                )
            )
            write_health(conn, outcome.host, "deploy", outcome.health, at, rollout_id, wave)
            if outcome.restart_pending is not None:
                write_restart_pending(conn, outcome.host, outcome.restart_pending, at)
            host_id = conn.scalar(sa.select(t.hosts.c.id).where(t.hosts.c.name == outcome.host))
            if host_id is None:
                return
            done = [(update_ids or {}).get(uid) for uid in [*outcome.installed, *present]]
            ids = [i for i in done if i is not None]
            if ids:
                hu = t.host_updates
                installed = [
                    int(i)
                    for i in conn.scalars(
                        hu.update()
                        .where(hu.c.host_id == host_id, hu.c.update_id.in_(ids), hu.c.state == t.STATE_MISSING)
                        .values(state=t.STATE_INSTALLED, resolved_at=at)
                        .returning(hu.c.update_id)
                    )
                ]
                if installed:
                    # The summary counts, same transaction: hosts.missing_* and update_counts.
                    refresh_host_summaries(conn, [int(host_id)])
                    bump_update_counts(conn, [(i, -1, 1) for i in installed])
            if outcome.reboot_required:
                conn.execute(
                    t.hosts.update()
                    .where(t.hosts.c.id == host_id, t.hosts.c.reboot_required == sa.false())
                    .values(reboot_required=True, reboot_required_since=at)
                )

    def missing_on_hosts(self, hosts: Iterable[str]) -> dict[str, set[int]]:
        """host -> ids of the updates missing on it, for hosts whose last scan succeeded once."""
        h, hu = t.hosts, t.host_updates
        names = list(hosts)
        out: dict[str, set[int]] = {}
        with self.store._read() as conn:
            for row in conn.execute(sa.select(h.c.name).where(h.c.name.in_(names), h.c.last_ok_scan_at.is_not(None))):
                out[row.name] = set()
            for row in conn.execute(
                sa.select(h.c.name, hu.c.update_id)
                .join(hu, hu.c.host_id == h.c.id)
                .where(h.c.name.in_(names), hu.c.state == t.STATE_MISSING)
            ):
                out.setdefault(row.name, set()).add(int(row.update_id))
        return out

    def gone_on_hosts(self, hosts: Iterable[str], update_ids: Iterable[int]) -> dict[str, set[int]]:
        """host -> which of ``update_ids`` were missing on it once and are ``gone`` now: no longer
        offered and not installed (for Windows: not in the install history its scan read)."""
        h, hu = t.hosts, t.host_updates
        names, ids = list(hosts), list(update_ids)
        out: dict[str, set[int]] = {}
        if not names or not ids:
            return out
        with self.store._read() as conn:
            for row in conn.execute(
                sa.select(h.c.name, hu.c.update_id)
                .join(hu, hu.c.host_id == h.c.id)
                .where(h.c.name.in_(names), hu.c.update_id.in_(ids), hu.c.state == t.STATE_GONE)
            ):
                out.setdefault(row.name, set()).add(int(row.update_id))
        return out

    # --- incidents --------------------------------------------------------------------------

    def open_incident(self, rollout_id: int, host: str | None, text: str, actor: str, at: datetime) -> int:
        with self.store._write("open an incident") as conn:
            if conn.scalar(sa.select(t.rollouts.c.id).where(t.rollouts.c.id == rollout_id)) is None:
                raise ConfigError(f"no rollout {rollout_id} in {self.store.url}")
            result = conn.execute(
                t.incidents.insert().values(rollout_id=rollout_id, host=host, text=text, opened_at=at, opened_by=actor)
            )
            pk = result.inserted_primary_key
            assert pk is not None
            incident_id = int(pk[0])
            audit_trail.record(conn, at, actor, "incident open", f"incident {incident_id}", rollout_id, text)
            return incident_id

    def close_incident(self, incident_id: int, reason: str | None, actor: str, at: datetime) -> Incident:
        inc = t.incidents
        with self.store._write("close an incident") as conn:
            row = conn.execute(sa.select(inc).where(inc.c.id == incident_id)).one_or_none()
            if row is None:
                raise ConfigError(f"no incident {incident_id} in {self.store.url}")
            if row.closed_at is not None:
                raise ConfigError(f"incident {incident_id} was closed at {row.closed_at.isoformat(timespec='minutes')}")
            conn.execute(
                inc.update().where(inc.c.id == incident_id).values(closed_at=at, closed_by=actor, close_reason=reason)
            )
            audit_trail.record(
                conn, at, actor, "incident close", f"incident {incident_id}", int(row.rollout_id), reason
            )
        return self.incidents(incident_id=incident_id)[0]

    def incidents(
        self, rollout_id: int | None = None, open_only: bool = False, incident_id: int | None = None
    ) -> list[Incident]:
        inc = t.incidents
        query = sa.select(inc).order_by(inc.c.id)
        if rollout_id is not None:
            query = query.where(inc.c.rollout_id == rollout_id)
        if open_only:
            query = query.where(inc.c.closed_at.is_(None))
        if incident_id is not None:
            query = query.where(inc.c.id == incident_id)
        with self.store._read() as conn:
            return [
                Incident(
                    int(r.id),
                    int(r.rollout_id),
                    r.host,
                    r.text,
                    r.opened_at,
                    r.opened_by,
                    r.closed_at,
                    r.closed_by,
                    r.close_reason,
                )
                for r in conn.execute(query)
            ]
