"""The store's side of reboots (table ``reboots``, view ``v_reboot_pending``, migration 0003).

A host's ``reboot pending`` is ``hosts.reboot_required`` (set by a scan that found
``/run/reboot-required`` or by a deploy whose packages asked for a reboot; cleared by a scan that
no longer finds it or by a reboot that came back). Each reboot attempt is a ``reboots`` row,
written ``running`` before the host is touched and finished with its outcome, so a crash of the
controller leaves evidence instead of nothing.

Verify's results are :mod:`patchctl.store.verify`; :class:`RebootStore` opens their transactions
too (``record_verify``, ``host_states``), as it did when they lived here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from patchctl.store import schema as t
from patchctl.store import verify as verify_results
from patchctl.store.db import Store
from patchctl.store.verify import VerifyRow

__all__ = [
    "REBOOT_FAILED",
    "REBOOT_OK",
    "REBOOT_RUNNING",
    "REBOOT_STATUSES",
    "REBOOT_UNREACHABLE",
    "PendingRebootRow",
    "RebootRow",
    "RebootStore",
    "VerifyRow",
]

REBOOT_RUNNING = t.RUN_RUNNING
REBOOT_OK = "ok"
REBOOT_FAILED = "failed"
REBOOT_UNREACHABLE = "unreachable"
REBOOT_STATUSES = (REBOOT_RUNNING, REBOOT_OK, REBOOT_FAILED, REBOOT_UNREACHABLE)


@dataclass(frozen=True)
class PendingRebootRow:
    """One row of ``v_reboot_pending``."""

    host: str
    patch_role: str | None
    patch_window: str | None
    pending_since: datetime | None
    last_attempt_at: datetime | None = None
    last_attempt_status: str | None = None
    last_attempt_error: str | None = None


@dataclass(frozen=True)
class RebootRow:
    id: int
    host: str
    trigger: str
    window: str | None
    requested_at: datetime
    started_at: datetime
    finished_at: datetime | None
    status: str
    boot_id_before: str | None
    boot_id_after: str | None
    elapsed_seconds: float | None
    error: str | None


class RebootStore:
    """Reboots and verify results, over an open :class:`Store` (one short transaction per write)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _write(self, what: str) -> Any:
        return self.store._write(what)  # a store module: the Store's own transactions

    def _read(self) -> Any:
        return self.store._read()

    # --- reboot pending ---------------------------------------------------------------------

    def mark_reboot_pending(self, host: str, at: datetime) -> None:
        """The host needs a reboot from ``at`` on (kept when it was already pending)."""
        with self._write(f"mark {host} reboot pending") as conn:
            conn.execute(
                t.hosts.update()
                .where(t.hosts.c.name == host)
                .values(
                    reboot_required=True,
                    reboot_required_since=sa.func.coalesce(t.hosts.c.reboot_required_since, at),
                )
            )

    def pending(self, hosts: Iterable[str] | None = None) -> list[PendingRebootRow]:
        v = t.v_reboot_pending
        query = sa.select(v).order_by(v.c.host)
        if hosts is not None:
            query = query.where(v.c.host.in_(list(hosts)))
        with self._read() as conn:
            return [
                PendingRebootRow(
                    host=r.host,
                    patch_role=r.patch_role,
                    patch_window=r.patch_window,
                    pending_since=r.pending_since,
                    last_attempt_at=r.last_attempt_at,
                    last_attempt_status=r.last_attempt_status,
                    last_attempt_error=r.last_attempt_error,
                )
                for r in conn.execute(query)
            ]

    # --- reboot attempts ----------------------------------------------------------------------

    def start_reboot(
        self, host: str, trigger: str, window: str | None, requested_at: datetime, started_at: datetime
    ) -> int:
        with self._write(f"record the reboot of {host}") as conn:
            result = conn.execute(
                t.reboots.insert().values(
                    host=host,
                    trigger=trigger,
                    window=window,
                    requested_at=requested_at,
                    started_at=started_at,
                    status=REBOOT_RUNNING,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def finish_reboot(
        self,
        reboot_id: int,
        status: str,
        finished_at: datetime,
        *,
        boot_id_before: str | None = None,
        boot_id_after: str | None = None,
        elapsed_seconds: float | None = None,
        error: str | None = None,
    ) -> None:
        """The attempt's outcome; a reboot that came back clears the host's reboot pending."""
        if status not in REBOOT_STATUSES or status == REBOOT_RUNNING:
            raise ValueError(f"finish_reboot: bad status {status!r}")
        with self._write("record a reboot's outcome") as conn:
            conn.execute(
                t.reboots.update()
                .where(t.reboots.c.id == reboot_id)
                .values(
                    status=status,
                    finished_at=finished_at,
                    boot_id_before=boot_id_before,
                    boot_id_after=boot_id_after,
                    elapsed_seconds=elapsed_seconds,
                    error=error,
                )
            )
            if status == REBOOT_OK:
                host = conn.execute(sa.select(t.reboots.c.host).where(t.reboots.c.id == reboot_id)).scalar_one()
                conn.execute(
                    t.hosts.update()
                    .where(t.hosts.c.name == host)
                    .values(reboot_required=False, reboot_required_since=None)
                )

    def reboots(self, host: str | None = None) -> list[RebootRow]:
        r = t.reboots
        query = sa.select(r).order_by(r.c.id)
        if host is not None:
            query = query.where(r.c.host == host)
        with self._read() as conn:
            return [
                RebootRow(
                    id=x.id,
                    host=x.host,
                    trigger=x.trigger,
                    window=x.window,
                    requested_at=x.requested_at,
                    started_at=x.started_at,
                    finished_at=x.finished_at,
                    status=x.status,
                    boot_id_before=x.boot_id_before,
                    boot_id_after=x.boot_id_after,
                    elapsed_seconds=x.elapsed_seconds,
                    error=x.error,
                )
                for x in conn.execute(query)
            ]

    # --- verify (patchctl.store.verify) -----------------------------------------------------

    def record_verify(self, results: Sequence[VerifyRow]) -> None:
        if not results:
            return
        with self._write("record verify results") as conn:
            verify_results.record_results(conn, results)

    def host_states(self) -> list[VerifyRow]:
        with self._read() as conn:
            return verify_results.host_states(conn)
