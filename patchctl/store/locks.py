"""Store locks: one deploy (or promotion, or reboot run) of a thing at a time, across processes and
control nodes, and no lock a crashed run can leave behind.

:func:`store_lock` takes a named lock *held by the operating system or the database server for
the life of the process or connection*, never a row that someone must remember to delete:

- SQLite file store: ``fcntl.flock`` on ``<db>.locks/<name>.lock`` next to the database (mode
  0600). The kernel drops it when the holder exits, ``kill -9`` included. The file records who
  holds it (machine, pid, command, since) for the refusal message.
- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection of its own,
  keyed by the schema and the name. The server drops it when that connection ends, so a dead
  control node frees it as soon as its TCP connection is gone. The holder is named from
  ``pg_stat_activity.application_name`` (``patchctl <machine> pid <pid>``).
- in-memory SQLite (tests): a lock of this process.

A lock that is held raises :class:`LockBusy` (exit 3, "blocked, try again later") naming the
holder, after waiting up to ``wait`` seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from patchctl.errors import EXIT_POLICY_BLOCKED, PatchctlError, StoreError
from patchctl.store.db import Store
from patchctl.store.engine import sqlite_file

POLL_SECONDS = 0.2
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
_memory_locks: dict[str, threading.Lock] = {}
_memory_guard = threading.Lock()


class LockBusy(PatchctlError):
    """Another live run holds the lock (exit 3: blocked, try again when it ends)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_POLICY_BLOCKED)


@dataclass(frozen=True)
class LockInfo:
    """The lock this process now holds."""

    name: str
    machine: str
    pid: int
    since: datetime
    where: str  # the lock file, or "postgresql advisory lock", or "process"


def _busy(name: str, holder: str | None, waited: float) -> LockBusy:
    who = holder or "another patchctl run"
    after = f" (waited {waited:.0f} s)" if waited >= 1 else ""
    return LockBusy(f"{name} is in use by {who}{after}: refused; try again when it ends")


def lock_dir(db_file: Path) -> Path:
    return db_file.with_name(db_file.name + ".locks")


@contextmanager
def store_lock(store: Store, name: str, *, wait: float = 0.0) -> Iterator[LockInfo]:
    """Hold the lock ``name`` of ``store`` for the block; LockBusy when another run holds it."""
    backend = store.engine.dialect.name
    if backend == "postgresql":
        with _pg_lock(store, name, wait) as info:
            yield info
        return
    db_file = sqlite_file(store.engine.url) if backend == "sqlite" else None
    if db_file is not None:
        with _file_lock(lock_dir(db_file), name, wait) as info:
            yield info
        return
    with _process_lock(f"{store.url} {name}", name, wait) as info:
        yield info


def _info(name: str, where: str) -> LockInfo:
    return LockInfo(name, socket.gethostname(), os.getpid(), datetime.now(UTC), where)


@contextmanager
def _file_lock(directory: Path, name: str, wait: float) -> Iterator[LockInfo]:
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{_SLUG.sub('_', name)}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create the lock {name} in {directory}: {exc}") from exc
    try:
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - start >= wait:
                    raise _busy(name, _file_holder(fd), time.monotonic() - start) from None
                time.sleep(POLL_SECONDS)
        info = _info(name, str(path))
        holder = {
            "machine": info.machine,
            "pid": info.pid,
            # not argv: it may hold a database URL with its password
            "command": "patchctl",
            "since": info.since.isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield info
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _file_holder(fd: int) -> str | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return f"'{data.get('command')}' (pid {data.get('pid')} on {data.get('machine')}, since {data.get('since')})"


@contextmanager
def _process_lock(key: str, name: str, wait: float) -> Iterator[LockInfo]:
    with _memory_guard:
        lock = _memory_locks.setdefault(key, threading.Lock())
    got = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
    if not got:
        raise _busy(name, "another run in this process", wait)
    try:
        yield _info(name, "process")
    finally:
        lock.release()


# The lock key: the schema and the name, hashed to the bigint advisory locks take.
_PG_TRY = sa.text("SELECT pg_try_advisory_lock(hashtextextended(current_schema() || ' ' || :n, 0))")
_PG_UNLOCK = sa.text("SELECT pg_advisory_unlock(hashtextextended(current_schema() || ' ' || :n, 0))")
_PG_HOLDER = sa.text(
    "SELECT a.application_name, a.backend_start FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(current_schema() || ' ' || :n, 0) "
    "LIMIT 1"
)


@contextmanager
def _pg_lock(store: Store, name: str, wait: float) -> Iterator[LockInfo]:
    try:
        conn = store.engine.connect()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot take the lock {name} in {store.url}: {exc}") from exc
    try:
        start = time.monotonic()
        while True:
            got = conn.scalar(_PG_TRY, {"n": name})
            conn.commit()
            if got:
                break
            if time.monotonic() - start >= wait:
                raise _busy(name, _pg_holder(conn, name), time.monotonic() - start)
            time.sleep(POLL_SECONDS)
        try:
            yield _info(name, "postgresql advisory lock")
        finally:
            with contextlib.suppress(SQLAlchemyError):
                conn.scalar(_PG_UNLOCK, {"n": name})
                conn.commit()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot take the lock {name} in {store.url}: {exc}") from exc
    finally:
        conn.close()


def _pg_holder(conn: sa.Connection, name: str) -> str | None:
    row = conn.execute(_PG_HOLDER, {"n": name}).one_or_none()
    conn.commit()
    if row is None:
        return None
    return f"'{row.application_name}' (connected since {row.backend_start.isoformat(timespec='seconds')})"
