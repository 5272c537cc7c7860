"""Scan runs and their parts per execution node: started, finished with their counts, recorded.

Each function runs in the transaction of the connection it is given; :class:`patchctl.store.Store`
checks the arguments first (:func:`check_run`, :func:`check_node_kind`) and opens the transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from patchctl.errors import StoreError
from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE
from patchctl.store import schema as t
from patchctl.store.counters import run_history

RUN_KINDS = ("scan",)
NODE_RUN_KINDS = ("scan", "deploy")


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_run(kind: str, hosts_total: int) -> None:
    """StoreError unless a run of ``kind`` over ``hosts_total`` hosts can be started."""
    if kind not in RUN_KINDS:
        raise StoreError(f"unknown run kind {kind!r} (expected one of {', '.join(RUN_KINDS)})")
    if hosts_total < 0:
        raise StoreError(f"hosts_total must not be negative, got {hosts_total}")


def start_run(
    conn: Connection, kind: str, inventory: str, limit: str | None, hosts_total: int, now: datetime | None
) -> int:
    """Insert a running run; returns its id."""
    result = conn.execute(
        t.scan_runs.insert().values(
            kind=kind,
            started_at=now or utcnow(),
            inventory=inventory,
            limit_pattern=limit,
            status=t.RUN_RUNNING,
            hosts_total=hosts_total,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def finish_run(conn: Connection, run_id: int, status: str, now: datetime | None) -> bool:
    """Close a run: its status, finish time and host counts taken from its scans; False when
    there is no run ``run_id``.

    A host scanned twice in one run counts once, by its last scan. The report's history point of
    the run (``scan_runs.scans_*``: every scan counted) is kept with it.
    """
    history = run_history(conn, run_id)
    last = (
        sa.select(t.scans.c.host_id, sa.func.max(t.scans.c.id).label("scan_id"))
        .where(t.scans.c.run_id == run_id)
        .group_by(t.scans.c.host_id)
        .subquery()
    )
    counts = Counter(
        {
            str(row.status): int(row.n)
            for row in conn.execute(
                sa.select(t.scans.c.status, sa.func.count().label("n"))
                .join(last, last.c.scan_id == t.scans.c.id)
                .group_by(t.scans.c.status)
            )
        }
    )
    result = conn.execute(
        t.scan_runs.update()
        .where(t.scan_runs.c.id == run_id)
        .values(
            finished_at=now or utcnow(),
            status=status,
            hosts_ok=counts[HOST_OK],
            hosts_failed=counts[HOST_FAILED],
            hosts_unreachable=counts[HOST_UNREACHABLE],
            **history,
        )
    )
    return result.rowcount == 1


def check_node_kind(kind: str) -> None:
    """StoreError unless ``kind`` is a kind of run whose parts per node are recorded."""
    if kind not in NODE_RUN_KINDS:
        raise StoreError(f"unknown node run kind {kind!r} (expected one of {', '.join(NODE_RUN_KINDS)})")


def node_part_rows(
    kind: str, run_id: int, parts: Iterable[Mapping[str, Any]], now: datetime | None
) -> list[dict[str, Any]]:
    """The ``node_runs`` rows of ``parts`` (see :meth:`patchctl.store.Store.record_node_parts`)."""
    run_column = "scan_run_id" if kind == "scan" else "deploy_run_id"
    return [
        {
            "kind": kind,
            run_column: run_id,
            "node": str(p["node"]),
            "hosts": int(p["hosts"]),
            "forks": int(p["forks"]) if p.get("forks") else None,
            "seconds": float(p["seconds"]),
            "controller_cpu_seconds": p.get("controller_cpu_seconds"),
            "error": p.get("error"),
            "finished_at": now or utcnow(),
        }
        for p in parts
    ]
