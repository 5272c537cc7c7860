"""The rollout lifecycle: create a rollout, its status, promote the next wave, incidents.

A rollout freezes the updates approved at one moment (:func:`create_rollout`); its waves move
on by the rules of :mod:`patchctl.rules.waves`: a wave that finished bakes, and after its
``bake_days`` without an open incident the next wave may be promoted (:func:`promote`, cron-safe:
two promoters take turns on the rollout's store lock).

``successors: repilot``: hosts blocked because an approved version is no longer offered wait for
a *follow-up rollout* holding only the successors (:func:`ensure_follow_up`), created by
:func:`promote` (the cron path) once: it goes through the policy's waves, its first one baking
``successor_bake_days``, before the blocked hosts get the successor. The audit trail of both
rollouts names the link; ``rollout status`` shows the blocked hosts with their follow-up and the
lineages *starved* (never beyond the pilot for ``starved_after_days``). Deploying a wave is
:mod:`patchctl.deploy`'s; ``patchctl rollout promote --deploy`` is
:func:`patchctl.deploy.promote_and_deploy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from patchctl.decisions import POLICY_ACTOR, actor, evaluate_catalog
from patchctl.errors import ConfigError, PolicyBlocked
from patchctl.rules import waves as rollout
from patchctl.rules.clock import iso_utc
from patchctl.rules.freezes import STOP_PROMOTE, Freeze, freeze_for_wave
from patchctl.rules.lineage import (
    Approved,
    Offered,
    Starved,
    follow_up_successors,
    follow_up_waves,
    starved_after,
    starved_lineages,
)
from patchctl.rules.model import HOST_BLOCKED
from patchctl.rules.policy import FAST_LANE_PREFIX, STATE_APPROVED, Policy, Wave, fast_lane_waves
from patchctl.rules.waves import Promotion
from patchctl.store import Store
from patchctl.store import reports as reads
from patchctl.store.freezes import record_transitions
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


@dataclass(frozen=True)
class CreatedRollout:
    id: int
    updates: list[RolloutUpdate]
    waves: tuple[Wave, ...]
    fast_lane: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollout": self.id,
            "updates": [u.uid for u in self.updates],
            "waves": [w.name for w in self.waves],
            "fast_lane": self.fast_lane,
            "pilot_bake_days": self.waves[0].bake_days,
        }


def create_rollouts(db_url: str, policy: Policy, now: datetime) -> list[CreatedRollout]:
    """Freeze the updates approved now (and missing on some host) into a new rollout; those the
    policy's fast lane approved (not an operator) into a rollout of their own, first, whose
    first wave bakes ``fast_lane_bake_days``."""
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        rows = evaluate_catalog(rs, policy, now)
        approved = [r for r in rows if r.state == STATE_APPROVED and r.entry.hosts_missing > 0]
        if not approved:
            raise PolicyBlocked(
                "no approved update is missing on any host: nothing to roll out (see 'patchctl updates')"
            )
        fast = [r.entry for r in approved if r.decided_by == POLICY_ACTOR and r.reason.startswith(FAST_LANE_PREFIX)]
        rest = [r.entry for r in approved if r.entry not in fast]
        made = []
        for entries, waves, is_fast in ((fast, fast_lane_waves(policy), True), (rest, policy.waves, False)):
            if entries:
                rid = rs.create_rollout(now, actor(), policy.source, waves, entries)
                made.append(CreatedRollout(rid, list(rs.rollout(rid).updates), waves, is_fast))
        return made


def create_rollout(db_url: str, policy: Policy, now: datetime) -> tuple[int, list[RolloutUpdate]]:
    """:func:`create_rollouts`, the last rollout made (the usual one when there are two)."""
    made = create_rollouts(db_url, policy, now)
    return made[-1].id, made[-1].updates


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockedHost:
    """A host whose last deploy in ``rollout`` was blocked, and the follow-up that holds its successors."""

    host: str
    rollout: int
    wave: str
    reason: str
    follow_up_rollout: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "rollout": self.rollout,
            "wave": self.wave,
            "reason": self.reason,
            "follow_up_rollout": self.follow_up_rollout,
        }


@dataclass(frozen=True)
class RolloutStatus:
    rollout: Rollout
    now: datetime
    incidents: list[Incident]
    promotion: Promotion
    # its blocked hosts, and for a follow-up those of the rollout it follows not deployed here yet
    blocked: tuple[BlockedHost, ...] = ()
    follow_ups: tuple[int, ...] = ()
    starved: tuple[Starved, ...] = ()

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
            # hosts an approved update no longer offered keeps from ok (the baseline's successors)
            # and the follow-up rollout holding their successors (successors: repilot)
            "blocked": [b.as_dict() for b in self.blocked],
            "follows": r.follows,
            "follow_ups": list(self.follow_ups),
            # lineages never delivered beyond the pilot for longer than starved_after_days
            "starved": [
                {
                    "lineage": f"{x.source}:{x.name}",
                    "since": iso_utc(x.since),
                    "days": x.days,
                    "rollouts": list(x.rollouts),
                    "versions": list(x.versions),
                    "reason": x.reason,
                }
                for x in self.starved
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


def _blocked_hosts(rs: RolloutStore, r: Rollout) -> tuple[tuple[BlockedHost, ...], tuple[int, ...]]:
    """``r``'s blocked hosts with its follow-up, and, when ``r`` is a follow-up, the hosts of
    the rollout it follows still blocked there (no result in ``r`` yet); ``r``'s follow-ups."""
    follow_ups = tuple(rs.follow_ups(r.id))
    out = [
        BlockedHost(h.host, r.id, h.wave, h.error or "", follow_ups[0] if follow_ups else None)
        for h in r.results.values()
        if h.status == HOST_BLOCKED
    ]
    if r.follows is not None:
        parent = rs.rollout(r.follows)
        out += [
            BlockedHost(h.host, parent.id, h.wave, h.error or "", r.id)
            for h in parent.results.values()
            if h.status == HOST_BLOCKED and h.host not in r.results
        ]
    return tuple(sorted(out, key=lambda b: (b.host, b.rollout))), follow_ups


def rollout_status(db_url: str, rollout_id: int | None, now: datetime, policy: Policy | None = None) -> RolloutStatus:
    with Store.open_existing(db_url) as store:
        rs = RolloutStore(store)
        r = rs.rollout(rollout_or_latest(rs, rollout_id))
        incidents = rs.incidents(r.id, open_only=True)
        blocked, follow_ups = _blocked_hosts(rs, r)
        with store.engine.connect() as conn:
            lineages = reads.lineage_rollouts(reads.sqlalchemy_query(conn))
    starved = tuple(starved_lineages(lineages, starved_after(policy), now))
    return RolloutStatus(
        r, now, incidents, rollout.can_promote(r.waves, len(incidents), now), blocked, follow_ups, starved
    )


def rollout_list(db_url: str) -> list[int]:
    with Store.open_existing(db_url) as store:
        return RolloutStore(store).rollout_ids()


# --- promote ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromoteResult:
    rollout_id: int
    promotion: Promotion
    promoted: bool
    # the follow-up rollout this promotion created (successors: repilot), promoted in its place
    follow_up_of: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollout": self.rollout_id,
            "promoted": self.promoted,
            "wave": self.promotion.wave.wave.name if self.promotion.wave else None,
            "reason": self.promotion.reason,
            "complete": self.promotion.complete,
            "follow_up_of": self.follow_up_of,
        }


def promote(db_url: str, rollout_id: int | None, now: datetime, policy: Policy | None = None) -> PromoteResult:
    """Promote the next wave when the rule allows it; PolicyBlocked (exit 3) with the reason when not.

    With ``policy``: when the rollout (the latest, without ``rollout_id``) has hosts blocked under
    ``successors: repilot`` and no follow-up yet, the follow-up is created first; without
    ``rollout_id`` it is the follow-up that is then promoted (its first wave is due)."""
    with Store.open(db_url, create=False) as store:
        rs = RolloutStore(store)
        rid = rollout_or_latest(rs, rollout_id)
        follow_up = None
        if policy is not None:
            with store_lock(store, rollout_lock_name(rid), wait=PROMOTE_LOCK_WAIT):
                follow_up = _follow_up_locked(rs, rid, policy, now)
        parent = None
        if follow_up is not None and follow_up.created and rollout_id is None:
            parent, rid = rid, follow_up.rollout_id
        # Two promoters (cron on two control nodes) take turns; the second finds it done.
        with store_lock(store, rollout_lock_name(rid), wait=PROMOTE_LOCK_WAIT):
            freezes = policy.freezes if policy is not None else ()
            with store.engine.begin() as conn:
                record_transitions(conn, freezes, now)
            return replace(_promote_locked(rs, rid, now, freezes), follow_up_of=parent)


@dataclass(frozen=True)
class FollowUp:
    rollout_id: int
    created: bool  # False: it existed before


def ensure_follow_up(db_url: str, rollout_id: int, policy: Policy, now: datetime) -> FollowUp | None:
    """The follow-up rollout of ``rollout_id`` (created now when its hosts blocked under
    ``successors: repilot`` have successors and it has none yet); None when it needs none."""
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        with store_lock(store, rollout_lock_name(rollout_id), wait=PROMOTE_LOCK_WAIT):
            return _follow_up_locked(rs, rollout_id, policy, now)


def _follow_up_locked(rs: RolloutStore, rollout_id: int, policy: Policy, now: datetime) -> FollowUp | None:
    existing = rs.follow_ups(rollout_id)
    if existing:
        return FollowUp(existing[0], created=False)
    r = rs.rollout(rollout_id)
    blocked_uids = {uid for h in r.results.values() if h.status == HOST_BLOCKED for uid in h.failed}
    blocked = [Approved(u.uid, u.source, u.name, u.version) for u in r.updates if u.uid in blocked_uids]
    if not blocked:
        return None
    catalog = [e for e in rs.catalog() if e.hosts_missing > 0]
    offers = [Offered(e.uid, e.source, e.name, e.version, None, e.classification, e.severity, e.major) for e in catalog]
    successors = follow_up_successors(blocked, offers, policy)
    if not successors:
        return None
    by_uid = {e.uid: e for e in catalog}
    entries = sorted({by_uid[o.uid] for o in successors.values()}, key=lambda e: e.uid)
    why = "; ".join(f"{o.uid} succeeds approved {uid}" for uid, o in sorted(successors.items()))
    waves = follow_up_waves(policy, (e.source for e in entries))
    fid = rs.create_rollout(
        now, actor(), policy.source, waves, entries, follows=r.id, why=f"successors: repilot: {why}"
    )
    return FollowUp(fid, created=True)


def _promote_locked(rs: RolloutStore, rollout_id: int, now: datetime, freezes: Sequence[Freeze] = ()) -> PromoteResult:
    r = rs.rollout(rollout_id)
    p = rollout.can_promote(r.waves, len(rs.incidents(r.id, open_only=True)), now)
    if p.complete:
        return PromoteResult(r.id, p, promoted=False)
    if not p.allowed or p.wave is None:
        raise PolicyBlocked(f"rollout {r.id}: not promoted: {p.reason}")
    if p.already:
        return PromoteResult(r.id, p, promoted=False)
    # a freeze that stops promote and covers the wave (by name, or its hosts pattern): wait (exit 3)
    hit = freeze_for_wave(freezes, STOP_PROMOTE, now, p.wave.wave.name, [p.wave.wave.hosts])
    if hit is not None:
        raise PolicyBlocked(f"rollout {r.id}: wave {p.wave.wave.name} not promoted: {hit.reason}")
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


def open_incidents_from_alert(
    db_url: str, text: str, source: str, rollout_id: int | None, now: datetime, notifier: Notifier | None = None
) -> list[tuple[int, int, str | None, str]]:
    """``patchctl incident open --from-alert``: one incident per firing alert of an Alertmanager
    webhook payload, or the one a plain ``{rollout, host, text}`` asks for
    (:func:`patchctl.rules.alerts.parse_alert`); each on its own rollout, else ``rollout_id``,
    else the latest. The payload is read whole before anything is written. Returns
    (incident, rollout, host, text) per incident opened (none when nothing is firing)."""
    from patchctl.rules.alerts import parse_alert

    wanted = parse_alert(text, source)
    if not wanted:
        return []
    with Store.open(db_url, create=False) as store:
        rs = RolloutStore(store)
        default = rollout_or_latest(rs, rollout_id) if any(a.rollout is None for a in wanted) else None
        targets = [(a.rollout if a.rollout is not None else default, a) for a in wanted]
        for rid, _a in targets:
            assert rid is not None
            rs.rollout(rid)  # an unknown rollout fails before any incident is written
        who = actor()
        opened = [(rs.open_incident(rid, a.host, a.text, who, now), rid, a.host, a.text) for rid, a in targets if rid]
    for incident_id, rid, host, body in opened:
        if notifier is not None:
            notifier("incident.opened", {"incident": incident_id, "rollout": rid, "host": host, "text": body})
    return opened


def close_incident(db_url: str, incident_id: int, reason: str | None, now: datetime) -> Incident:
    with Store.open(db_url, create=False) as store:
        return RolloutStore(store).close_incident(incident_id, reason, actor(), now)


def list_incidents(db_url: str, rollout_id: int | None, include_closed: bool) -> list[Incident]:
    with Store.open_existing(db_url) as store:
        return RolloutStore(store).incidents(rollout_id, open_only=not include_closed)
