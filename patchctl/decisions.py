"""The decisions flow: every update seen, its state under the policy, and operators' decisions.

Each update's state is the latest operator decision (``patchctl approve`` / ``decline``) when
there is one, else the policy's evaluation at the (possibly simulated) current time. Every
change of the policy's verdict and every operator decision is appended to the audit trail.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchctl.errors import ConfigError, PolicyBlocked
from patchctl.rules import changelog
from patchctl.rules.apps import TAKE_OVER_SAFE, Catalog, load_catalog
from patchctl.rules.clock import iso_utc
from patchctl.rules.cve import cve_id
from patchctl.rules.model import is_unmanaged_uid
from patchctl.rules.policy import (
    STATE_APPROVED,
    STATE_REJECTED,
    STATE_WAITING,
    Policy,
    UpdateFacts,
    evaluate,
)
from patchctl.store import Store
from patchctl.store.rollouts import AuditRow, CatalogEntry, Decision, RolloutStore

POLICY_ACTOR = "policy"


def actor() -> str:
    """Who is acting: the OS user (the one behind sudo when run with sudo)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


@dataclass(frozen=True)
class CatalogRow:
    entry: CatalogEntry
    state: str  # new | approved | rejected | waiting | needs manual approval
    reason: str
    decided_by: str
    waiting_days: int = 0

    @property
    def shown_state(self) -> str:
        if self.state == STATE_WAITING:
            return f"waiting {self.waiting_days} day{'s' if self.waiting_days != 1 else ''}"
        return self.state

    def as_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "id": e.id,
            "uid": e.uid,
            "source": e.source,
            "name": e.name,
            "version": e.version,
            "classification": e.classification,
            "severity": e.severity,
            "urgency": e.urgency,
            "cves": list(e.cves),
            "advisory_ids": list(e.advisory_ids),
            # why an apt update's CVEs are empty or not known yet (None: known, or not apt)
            "cves_reason": cves_reason(e),
            "source_package": e.source_package,
            "source_version": e.source_version,
            "major": e.major,
            "first_seen_at": iso_utc(e.first_seen_at),
            "released_at": iso_utc(e.released_at),
            # what approve_after_days counts from: "released" (the source's date) or "first_seen"
            "age_from": facts_of(e).counted_from,
            "hosts_missing": e.hosts_missing,
            "state": self.state,
            "waiting_days": self.waiting_days,
            "reason": self.reason,
            "decided_by": self.decided_by,
        }


def cves_reason(entry: CatalogEntry) -> str | None:
    """Why an apt update's CVE list says nothing (its changelog not fetched, unreadable, ...);
    None when it was read (an empty list then means the changelog names no CVE) or not apt."""
    if entry.source != "apt":
        return None
    if entry.source_package is None:
        return "the scan did not say which source package it is built from"
    status = entry.changelog_status
    if status is None:
        return f"the changelog of {entry.source_package} {entry.source_version} is not fetched yet"
    if status == changelog.PARSED:
        return None
    what = "unreadable" if status == changelog.UNREADABLE else "could not be fetched"
    return f"the changelog of {entry.source_package} {entry.source_version} {what}: {entry.changelog_reason}"


def facts_of(entry: CatalogEntry) -> UpdateFacts:
    return UpdateFacts(
        uid=entry.uid,
        source=entry.source,
        name=entry.name,
        classification=entry.classification,
        first_seen_at=entry.first_seen_at,
        severity=entry.severity,
        major=entry.major,
        kbs=entry.kbs,
        released_at=entry.released_at,
        unmanaged=is_unmanaged_uid(entry.uid),
        cves=entry.cves,
        urgency=entry.urgency,
    )


def evaluate_catalog(rs: RolloutStore, policy: Policy, now: datetime) -> list[CatalogRow]:
    """Every update's state now; the policy's changed verdicts are appended to the audit trail."""
    rows: list[CatalogRow] = []
    changed: list[tuple[CatalogEntry, Decision, bool]] = []
    for entry in rs.catalog():
        if entry.manual is not None:
            rows.append(CatalogRow(entry, entry.manual.state, entry.manual.reason or "", entry.manual.actor))
            continue
        ev = evaluate(policy, facts_of(entry), now)
        if entry.automatic is None or (entry.automatic.state, entry.automatic.reason) != (ev.state, ev.reason):
            changed.append((entry, Decision(ev.state, POLICY_ACTOR, ev.reason, now), True))
        rows.append(CatalogRow(entry, ev.state, ev.reason, POLICY_ACTOR, ev.waiting_days(now)))
    rs.record_decisions(changed)
    return rows


def list_updates(
    db_url: str, policy: Policy, now: datetime, *, everything: bool = True, cves: Sequence[str] = ()
) -> list[CatalogRow]:
    """Every update's state now (:func:`evaluate_catalog`); without ``everything`` only those
    still missing on some host or approved (what ``patchctl updates`` shows without ``--all``);
    with ``cves`` only those whose CVEs include one of them (ids compared case-insensitively)."""
    with Store.open_existing(db_url) as store:
        rows = evaluate_catalog(RolloutStore(store), policy, now)
    if cves:
        wanted = {cve_id(c, "--cve") for c in cves}
        rows = [r for r in rows if wanted & {c.upper() for c in r.entry.cves}]
    if everything:
        return rows
    return [r for r in rows if r.entry.hosts_missing or r.state == STATE_APPROVED]


def check_take_over(entries: Sequence[CatalogEntry], take_over: bool, catalog: Catalog) -> None:
    """PolicyBlocked unless every one of ``entries`` (applications installed outside Chocolatey)
    may be taken over: ``take_over`` asked and the catalog marking the application safe."""
    if not take_over:
        uids = ", ".join(e.uid for e in entries)
        raise PolicyBlocked(
            f"{uids}: installed outside Chocolatey; approving it lets Chocolatey install over that copy,"
            " which only --take-over does"
        )
    for entry in entries:
        app = catalog.by_package(entry.name)
        if app is None or app.take_over != TAKE_OVER_SAFE:
            name = app.name if app is not None else entry.name
            raise PolicyBlocked(
                f"{entry.uid}: --take-over refused: the application catalog does not mark {name} "
                f"take_over: safe (its installer may not upgrade a copy installed outside Chocolatey); "
                "update or remove that copy on the host, or mark it safe in your catalog (PATCHCTL_CATALOG)"
            )


def audit_log(db_url: str, rollout_id: int | None = None, last: int | None = None) -> list[AuditRow]:
    """The append-only audit trail in time order: decisions (by an operator or the policy),
    rollouts, incidents; only ``rollout_id``'s when given, only the ``last`` N when given."""
    with Store.open_existing(db_url) as store:
        return RolloutStore(store).audit_log(rollout_id, last)


def resolve(entries: Sequence[CatalogEntry], ref: str) -> CatalogEntry:
    """An update by catalog id, uid, or name (when one version of it is missing somewhere)."""
    if ref.isdigit():
        found = [e for e in entries if e.id == int(ref)]
    else:
        found = [e for e in entries if e.uid == ref]
        if not found:
            named = [e for e in entries if e.name == ref]
            found = [e for e in named if e.hosts_missing] or named
    if not found:
        raise ConfigError(f"no update {ref!r} in the catalog (see 'patchctl updates')")
    if len(found) > 1:
        raise ConfigError(f"{ref!r} names {len(found)} updates: {', '.join(e.uid for e in found)}; give the uid")
    return found[0]


def decide(
    db_url: str,
    refs: Sequence[str],
    *,
    approve: bool,
    now: datetime,
    reason: str | None = None,
    major: bool = False,
    take_over: bool = False,
    catalog: Catalog | None = None,
) -> list[CatalogEntry]:
    """Record an operator's approval or decline of each update (all or none).

    A major upgrade is approved only with ``major``; otherwise PolicyBlocked (exit 3). An
    application installed outside Chocolatey (an ``:unmanaged`` uid) is approved only with
    ``take_over``, and only where ``catalog`` (default: the effective application catalog)
    marks the application ``take_over: safe``; otherwise PolicyBlocked naming why.
    """
    who = actor()
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        entries = rs.catalog()
        chosen = [resolve(entries, ref) for ref in refs]
        if approve:
            majors = [e.uid for e in chosen if e.major and not major]
            if majors:
                raise PolicyBlocked(f"{', '.join(majors)}: a major upgrade is approved only with --major")
            take_overs = [e for e in chosen if is_unmanaged_uid(e.uid)]
            if take_overs:
                check_take_over(take_overs, take_over, catalog if catalog is not None else load_catalog())
        state = STATE_APPROVED if approve else STATE_REJECTED
        default_reason = "approved by an operator" if approve else "declined by an operator"
        if approve and major:
            default_reason = "major upgrade approved by an operator (--major)"
        take_over_reason = "approved by an operator to install over the copy outside Chocolatey (--take-over)"

        def why(e: CatalogEntry) -> str:
            if reason:
                return reason
            return take_over_reason if approve and is_unmanaged_uid(e.uid) else default_reason

        rs.record_decisions([(e, Decision(state, who, why(e), now, major=approve and e.major), False) for e in chosen])
        return chosen
