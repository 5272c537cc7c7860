"""Exceptions, as pure rules: an accepted, owned, expiring reason why hosts may lack updates.

``patchctl except add HOST-OR-GROUP UPDATE-PATTERN --reason TEXT --owner NAME --until WHEN``
makes one. While it is valid (``created_at <= now < until``, not removed), the updates it names
are neither deployed to the hosts it names nor counted as missing: a host whose only missing
approved updates are excepted is ``compliant``, and reads ``compliant (2 excepted)``
(:func:`state_label`). At ``until`` exactly the exception has ended, by itself: the updates count
again and the next deploy installs them. There is no exception without an end.

- ``HOST-OR-GROUP``: a host name or an inventory group the host's last scan recorded it in
  (shell wildcards allowed: ``web*``);
- ``UPDATE-PATTERN``: the update's package name, its uid (``apt:openssl:3.0.15-1``) or a KB
  (shell wildcards, case-insensitive, as the policy's ``reject`` and ``allow`` patterns).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from patchctl.rules.clock import iso_utc


@dataclass(frozen=True)
class UpdateException:
    id: int
    target: str  # a host or group pattern
    pattern: str  # an update name, uid or KB pattern
    reason: str
    owner: str
    until: datetime
    created_at: datetime
    created_by: str
    ended_at: datetime | None = None
    end_reason: str | None = None  # removed or expired

    def valid_at(self, now: datetime) -> bool:
        """In force at ``now``: made, not removed, and ``now`` before ``until`` (exactly at
        ``until`` it has ended)."""
        if self.ended_at is not None and self.ended_at <= now:
            return False
        return self.created_at <= now < self.until

    def covers_host(self, host: str, groups: Iterable[str]) -> bool:
        names = (host, *groups)
        return any(fnmatch.fnmatchcase(n, self.target) for n in names)

    def covers_update(self, uid: str, name: str, kbs: Sequence[str] = ()) -> bool:
        pattern = self.pattern.lower()
        return any(fnmatch.fnmatchcase(n.lower(), pattern) for n in (name, uid, *kbs))

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "target": self.target,
            "pattern": self.pattern,
            "reason": self.reason,
            "owner": self.owner,
            "until": iso_utc(self.until),
            "created_at": iso_utc(self.created_at),
            "created_by": self.created_by,
            "ended_at": iso_utc(self.ended_at),
            "end_reason": self.end_reason,
        }


@dataclass(frozen=True)
class MissingOnHost:
    """One approved update a host misses, as far as exceptions look at it."""

    host: str
    groups: tuple[str, ...]
    uid: str
    name: str
    kbs: tuple[str, ...] = ()


def excepted(
    exceptions: Sequence[UpdateException], missing: Iterable[MissingOnHost], now: datetime
) -> dict[str, dict[str, int]]:
    """host -> {uid: the id of the first valid exception covering it} for the ``missing`` updates."""
    valid = [e for e in exceptions if e.valid_at(now)]
    out: dict[str, dict[str, int]] = {}
    if not valid:
        return out
    for m in missing:
        for e in valid:
            if e.covers_host(m.host, m.groups) and e.covers_update(m.uid, m.name, m.kbs):
                out.setdefault(m.host, {})[m.uid] = e.id
                break
    return out


def excepted_on_host(
    valid: Sequence[UpdateException],
    host: str,
    groups: Iterable[str],
    updates: Iterable[tuple[str, str, Sequence[str]]],
) -> dict[str, UpdateException]:
    """uid -> the exception keeping it off ``host``, for ``updates`` given as (uid, name, kbs):
    what a deploy leaves out. ``valid``: the exceptions valid now."""
    names = tuple(groups)
    mine = [e for e in valid if e.covers_host(host, names)]
    out: dict[str, UpdateException] = {}
    for uid, name, kbs in updates:
        hit = next((e for e in mine if e.covers_update(uid, name, kbs)), None)
        if hit is not None:
            out[uid] = hit
    return out


def due_to_expire(exceptions: Iterable[UpdateException], now: datetime) -> list[UpdateException]:
    """Exceptions not ended yet whose ``until`` has come (their expiry is to be recorded)."""
    return [e for e in exceptions if e.ended_at is None and e.until <= now]


def state_label(state_text: str, excepted_count: int) -> str:
    """How a host's state reads: ``compliant (2 excepted)`` when exceptions cover some of its
    missing updates; the state alone otherwise."""
    return f"{state_text} ({excepted_count} excepted)" if excepted_count else state_text


def covered_by(excepted_by_host: Mapping[str, Mapping[str, int]], exception_id: int) -> dict[str, list[str]]:
    """host -> the uids (sorted) that exception covers, from :func:`excepted`'s answer."""
    out: dict[str, list[str]] = {}
    for host, uids in sorted(excepted_by_host.items()):
        mine = sorted(uid for uid, eid in uids.items() if eid == exception_id)
        if mine:
            out[host] = mine
    return out
