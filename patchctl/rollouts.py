"""The rollout lifecycle: create a rollout, its status, promote the next wave, incidents.

A rollout freezes the updates approved at one moment (:func:`create_rollout`); its waves move
on by the rules of :mod:`patchctl.rules.waves`: a wave that finished bakes, and after its
``bake_days`` without an open incident the next wave may be promoted (:func:`promote`, cron-safe:
two promoters take turns on the rollout's store lock). Deploying a wave is
:mod:`patchctl.deploy`'s; ``patchctl rollout promote --deploy`` is
:func:`patchctl.deploy.promote_and_deploy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from patchctl.decisions import actor, evaluate_catalog
from patchctl.errors import ConfigError, PolicyBlocked
from patchctl.rules import waves as rollout
from patchctl.rules.clock import iso_utc
from patchctl.rules.model import HOST_BLOCKED
from patchctl.rules.policy import STATE_APPROVED, Policy
from patchctl.rules.waves import Promotion
from patchctl.store import Store
from patchctl.store.locks import store_lock
from patchctl.store.rollouts import Incident, Rollout, RolloutStore, RolloutUpdate

if TYPE_CHECKING:
    from patchctl.notify import Notifier

PROMOTE_LOCK_WAIT = 60.0  # seconds a promotion waits for a deploy or promotion of the same rollout


def rollout_lock_name(rollout_id: int) -> str:
    """The store lock (patchctl.store.locks) held while a rollout deploys or promotes."""
    return f"rollout {rollout_id}"


def rollout_or_latest(rs: RolloutStore, rollout_id: int | None) -> int:
    """``rollout_id``, else the latest rollout's id; ConfigError when there is none."""
    if rollout_id is not None:
        return rollout_id
    latest = rs.latest_rollout_id()
    if latest is None:
        raise ConfigError(f"no rollout in {rs.store.url} yet: run 'patchctl rollout create'")
    return latest


# --- rollout create ---------------------------------------------------------------------------


def create_rollout(db_url: str, policy: Policy, now: datetime) -> tuple[int, list[RolloutUpdate]]:
    """Freeze the updates approved now (and missing on some host) into a new rollout."""
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        rows = evaluate_catalog(rs, policy, now)
        approved = [r.entry for r in rows if r.state == STATE_APPROVED and r.entry.hosts_missing > 0]
        if not approved:
            raise PolicyBlocked(
                "no approved update is missing on any host: nothing to roll out (see 'patchctl updates')"
            )
        rollout_id = rs.create_rollout(now, actor(), policy.source, policy.waves, approved)
        return rollout_id, list(rs.rollout(rollout_id).updates)


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutStatus:
    rollout: Rollout
    now: datetime
    incidents: list[Incident]
    promotion: Promotion

    def as_dict(self) -> dict[str, Any]:
        r = self.rollout
        return {
            "id": r.id,
            "created_at": iso_utc(r.created_at),
            "created_by": r.created_by,
            "policy": r.policy_source,
            "now": iso_utc(self.now),
            "updates": [u.uid for u in r.updates],
            "waves": [
                {
                    "name": w.wave.name,
                    "state": w.shown_state(self.now),
                    "hosts": list(w.hosts),
                    "hosts_ok": w.ok_hosts,
                    "hosts_failed": w.failed_hosts,
                    "hosts_blocked": _blocked(w),
                    "hosts_pending": len(w.hosts) - w.ok_hosts - w.failed_hosts - _blocked(w),
                    "promoted_at": iso_utc(w.promoted_at),
                    "started_at": iso_utc(w.started_at),
                    "finished_at": iso_utc(w.finished_at),
                    "bake_until": iso_utc(w.bake_until),
                    **{k: v for k, v in w.wave.as_dict().items() if k not in ("name", "hosts")},
                    "pattern": w.wave.hosts,
                }
                for w in r.waves
            ],
            "results": [
                {
                    "host": h.host,
                    "wave": h.wave,
                    "status": h.status,
                    "installed": list(h.installed),
                    "present": list(h.present),
                    "failed": h.failed,
                    "reboot_required": h.reboot_required,
                    "error": h.error,
                    "finished_at": iso_utc(h.finished_at),
                }
                for h in sorted(r.results.values(), key=lambda x: x.host)
            ],
            # hosts an approved update no longer offered keeps from ok (the baseline's successors);
            # no follow-up rollout holds their successors yet (successors: repilot is not built)
            "blocked": [
                {"host": h.host, "wave": h.wave, "reason": h.error or "", "follow_up_rollout": None}
                for h in sorted(r.results.values(), key=lambda x: x.host)
                if h.status == HOST_BLOCKED
            ],
            "open_incidents": [
                {"id": i.id, "host": i.host, "text": i.text, "opened_at": iso_utc(i.opened_at)} for i in self.incidents
            ],
            "promotion": {
                "allowed": self.promotion.allowed and not self.promotion.already,
                "reason": self.promotion.reason,
                "complete": self.promotion.complete,
            },
        }


def _blocked(w: rollout.WaveRecord) -> int:
    return sum(1 for h in w.hosts if w.results.get(h) == HOST_BLOCKED)


def rollout_status(db_url: str, rollout_id: int | None, now: datetime) -> RolloutStatus:
    with Store.open_existing(db_url) as store:
        rs = RolloutStore(store)
        r = rs.rollout(rollout_or_latest(rs, rollout_id))
        incidents = rs.incidents(r.id, open_only=True)
    return RolloutStatus(r, now, incidents, rollout.can_promote(r.waves, len(incidents), now))


def rollout_list(db_url: str) -> list[int]:
    with Store.open_existing(db_url) as store:
        return RolloutStore(store).rollout_ids()


# --- promote ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromoteResult:
    rollout_id: int
    promotion: Promotion
    promoted: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollout": self.rollout_id,
            "promoted": self.promoted,
            "wave": self.promotion.wave.wave.name if self.promotion.wave else None,
            "reason": self.promotion.reason,
            "complete": self.promotion.complete,
        }


def promote(db_url: str, rollout_id: int | None, now: datetime) -> PromoteResult:
    """Promote the next wave when the rule allows it; PolicyBlocked (exit 3) with the reason when not."""
    with Store.open(db_url, create=False) as store:
        rs = RolloutStore(store)
        rid = rollout_or_latest(rs, rollout_id)
        # Two promoters (cron on two control nodes) take turns; the second finds it done.
        with store_lock(store, rollout_lock_name(rid), wait=PROMOTE_LOCK_WAIT):
            return _promote_locked(rs, rid, now)


def _promote_locked(rs: RolloutStore, rollout_id: int, now: datetime) -> PromoteResult:
    r = rs.rollout(rollout_id)
    p = rollout.can_promote(r.waves, len(rs.incidents(r.id, open_only=True)), now)
    if p.complete:
        return PromoteResult(r.id, p, promoted=False)
    if not p.allowed or p.wave is None:
        raise PolicyBlocked(f"rollout {r.id}: not promoted: {p.reason}")
    if p.already:
        return PromoteResult(r.id, p, promoted=False)
    rs.set_wave(r.id, p.wave.position, now, actor(), "promote", p.reason, promoted_at=now)
    return PromoteResult(r.id, p, promoted=True)


# --- incidents --------------------------------------------------------------------------------


def open_incident(
    db_url: str, rollout_id: int, host: str | None, text: str, now: datetime, notifier: Notifier | None = None
) -> int:
    if not text.strip():
        raise ConfigError("incident open: the text must not be empty")
    with Store.open(db_url, create=False) as store:
        incident_id = RolloutStore(store).open_incident(rollout_id, host, text.strip(), actor(), now)
    if notifier is not None:
        notifier(
            "incident.opened", {"incident": incident_id, "rollout": rollout_id, "host": host, "text": text.strip()}
        )
    return incident_id


def close_incident(db_url: str, incident_id: int, reason: str | None, now: datetime) -> Incident:
    with Store.open(db_url, create=False) as store:
        return RolloutStore(store).close_incident(incident_id, reason, actor(), now)


def list_incidents(db_url: str, rollout_id: int | None, include_closed: bool) -> list[Incident]:
    with Store.open_existing(db_url) as store:
        return RolloutStore(store).incidents(rollout_id, open_only=not include_closed)
