"""Reading exceptions (table ``update_exceptions``, migration 0012) through a
:data:`~patchctl.store.reports.Query` (plain SQL): ``patchctl report`` reads them with the standard
library alone, like the rest of the report. The writes are :mod:`patchctl.store.exceptions`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from patchctl.rules.exceptions import MissingOnHost, UpdateException, excepted
from patchctl.store.reports import Query, _dt, _host_filter, approved_missing


def _exception(r: Any) -> UpdateException:
    until, created = _dt(r["until"]), _dt(r["created_at"])
    assert until is not None and created is not None
    return UpdateException(
        id=int(r["id"]),
        target=str(r["target"]),
        pattern=str(r["pattern"]),
        reason=str(r["reason"]),
        owner=str(r["owner"]),
        until=until,
        created_at=created,
        created_by=str(r["created_by"]),
        ended_at=_dt(r["ended_at"]),
        end_reason=r["end_reason"],
    )


_MISSING_SQL = (
    "SELECT h.name AS host, h.groups AS groups, u.uid AS uid, u.name AS name, u.kbs AS kbs"
    " FROM host_updates hu JOIN hosts h ON h.id = hu.host_id JOIN updates u ON u.id = hu.update_id"
    " WHERE hu.state = 'missing'"
)


def exceptions(q: Query) -> list[UpdateException]:
    """Every exception ever made, in order (the table is small: the rules filter)."""
    return [_exception(r) for r in q("SELECT * FROM update_exceptions ORDER BY id", {})]


def approved_missing_updates(q: Query, approved_only: bool, hosts: Sequence[str] | None = None) -> list[MissingOnHost]:
    """The updates the hosts miss (only the approved ones with ``approved_only``), with the
    hosts' recorded groups: what exceptions are matched against."""
    params: dict[str, Any] = {}
    where = _host_filter("hu.host_id", hosts, params)
    if approved_only:
        where += " AND u.approved = :yes"
        params["yes"] = True
    sql = _MISSING_SQL + where
    rows = q(sql, params)
    return [
        MissingOnHost(
            host=str(r["host"]),
            groups=tuple(_strings(r["groups"])),
            uid=str(r["uid"]),
            name=str(r["name"]),
            kbs=tuple(_strings(r["kbs"])),
        )
        for r in rows
    ]


def _strings(value: Any) -> list[str]:
    data = json.loads(value) if isinstance(value, str) else value
    return [str(v) for v in data] if isinstance(data, list) else []


def excepted_now(
    q: Query, every: Sequence[UpdateException], now: datetime, hosts: Sequence[str] | None = None
) -> tuple[tuple[UpdateException, ...], dict[str, dict[str, int]]]:
    """(the exceptions valid at ``now``, per host the missing updates they cover: uid -> id).
    Approved updates only, unless nothing was ever decided (then every missing update counts, as
    in the compliance rule)."""
    valid = tuple(e for e in every if e.valid_at(now))
    if not valid:
        return valid, {}
    decided = approved_missing(q, hosts) is not None
    return valid, excepted(valid, approved_missing_updates(q, decided, hosts), now)
