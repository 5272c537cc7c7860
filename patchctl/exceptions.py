"""The flow of ``patchctl except add | list | remove`` (the rules: :mod:`patchctl.rules.exceptions`),
and what the deploy, verify and the report read of exceptions.

Every writing command records the expiries that came due (:func:`record_expiries`), so the audit
trail says when each exception ended by itself, at its ``until``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from patchctl.decisions import actor
from patchctl.errors import ConfigError
from patchctl.rules.clock import parse
from patchctl.rules.exceptions import UpdateException
from patchctl.store import Store
from patchctl.store import exceptions as xs
from patchctl.store import reports as reads
from patchctl.store.exception_reads import excepted_now, exceptions

_MAX_TEXT = 255


@dataclass(frozen=True)
class ExceptionInput:
    target: str
    pattern: str
    reason: str | None
    owner: str | None
    until: str | None


def parse_until(value: str, now: datetime) -> datetime:
    """``--until``: an ISO 8601 time (UTC unless it says otherwise) or a date (its 00:00 UTC: the
    exception has ended when that day begins); it must lie after ``now``."""
    until = parse(value, "--until")
    if until <= now:
        raise ConfigError(f"--until: {value!r} is not in the future (now is {now.isoformat(timespec='minutes')})")
    return until


def _check(given: ExceptionInput, now: datetime) -> tuple[str, str, str, str, datetime]:
    for name, value in (("--reason", given.reason), ("--owner", given.owner), ("--until", given.until)):
        if value is None or not value.strip():
            why = " (an exception always ends: e.g. --until 2027-01-31)" if name == "--until" else ""
            raise ConfigError(f"except add: {name} is required{why}")
    assert given.reason is not None and given.owner is not None and given.until is not None
    for name, value in (("HOST-OR-GROUP", given.target), ("UPDATE-PATTERN", given.pattern), ("--owner", given.owner)):
        if not value.strip() or len(value) > _MAX_TEXT or any(c.isspace() for c in value.strip()):
            raise ConfigError(f"except add: {name}: must be one word of at most {_MAX_TEXT} characters, got {value!r}")
    return (
        given.target.strip(),
        given.pattern.strip(),
        given.reason.strip(),
        given.owner.strip(),
        parse_until(given.until, now),
    )


def add_exception(db_url: str, given: ExceptionInput, now: datetime) -> UpdateException:
    """Make an exception (audited); ConfigError (exit 2) for a missing or bad field, nothing written."""
    target, pattern, reason, owner, until = _check(given, now)
    with Store.open(db_url) as store, store.engine.begin() as conn:
        q = reads.sqlalchemy_query(conn)
        xs.record_expiries(conn, q, now)
        new_id = xs.add(conn, now, actor(), target, pattern, reason, owner, until)
        return next(e for e in exceptions(q) if e.id == new_id)


def remove_exception(db_url: str, exception_id: int, now: datetime) -> UpdateException:
    """End an exception now (audited); ConfigError when there is no such exception in force."""
    with Store.open(db_url, create=False) as store, store.engine.begin() as conn:
        q = reads.sqlalchemy_query(conn)
        xs.record_expiries(conn, q, now)
        found = next((e for e in exceptions(q) if e.id == exception_id), None)
        if found is None:
            raise ConfigError(f"except remove: no exception {exception_id} (see 'patchctl except list --all')")
        if not found.valid_at(now):
            raise ConfigError(f"except remove: exception {exception_id} has already ended ({found.end_reason})")
        xs.remove(conn, now, actor(), found)
    return found


@dataclass(frozen=True)
class ExceptionsView:
    now: datetime
    exceptions: tuple[UpdateException, ...]  # in force now (with --all: every one)
    # per exception id, the hosts and updates it covers now (uids by host)
    covers: Mapping[int, Mapping[str, tuple[str, ...]]]


def list_exceptions(db_url: str, now: datetime, include_ended: bool = False) -> ExceptionsView:
    """The exceptions in force (with ``include_ended``, every one) and what each covers now."""
    with Store.open(db_url) as store, store.engine.begin() as conn:
        q = reads.sqlalchemy_query(conn)
        xs.record_expiries(conn, q, now)
        every = exceptions(q)
        valid, covered = excepted_now(q, every, now)
    covers: dict[int, dict[str, list[str]]] = {}
    for host, uids in covered.items():
        for uid, eid in uids.items():
            covers.setdefault(eid, {}).setdefault(host, []).append(uid)
    shown = every if include_ended else list(valid)
    return ExceptionsView(
        now,
        tuple(shown),
        {eid: {h: tuple(sorted(u)) for h, u in sorted(hosts.items())} for eid, hosts in covers.items()},
    )


def record_expiries(store: Store, now: datetime) -> list[UpdateException]:
    """Write the expiries that came due (each audited at its ``until``): for the writing flows."""
    with store.engine.begin() as conn:
        return xs.record_expiries(conn, reads.sqlalchemy_query(conn), now)
