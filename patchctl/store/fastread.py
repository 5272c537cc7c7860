"""A read-only path to ``v_host_compliance`` for SQLite stores, on the standard library alone.

``patchctl report`` has to answer in a fraction of a second, and importing SQLAlchemy and Alembic
alone costs about that. This module reads the same view with :mod:`sqlite3` when it safely can:
the store is a SQLite file that exists and is already at the newest schema revision (read from
``alembic_version`` and compared with the revision files, without Alembic). Otherwise
:func:`open_current` returns None and the caller opens :class:`patchctl.store.Store`, which
creates or migrates the database.

The view is the contract: rows come back with the same fields and types as
:meth:`patchctl.store.Store.host_compliance` gives (a unit test compares the two).
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from patchctl.rules.model import CLASSIFICATIONS
from patchctl.rules.report import HostComplianceRow

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION_RE = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_RE = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED_RE = re.compile(r"['\"]([^'\"]+)['\"]")


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for anything else (memory, options, ...)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = unquote(url[len(prefix) :])
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path).expanduser()


def head_revisions(versions_dir: Path = VERSIONS_DIR) -> set[str]:
    """The head revisions of the migration files (revisions no other file revises)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in versions_dir.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = _REVISION_RE.search(text)
        if rev is None:
            continue
        revisions.add(rev.group(1))
        down = _DOWN_RE.search(text)
        if down is not None:
            revised.update(_QUOTED_RE.findall(down.group(1).split("#")[0]))
    return revisions - revised


def open_current(url: str) -> sqlite3.Connection | None:
    """A read-only connection to the store at ``url`` if it is a SQLite file at the newest
    schema revision; else None (the caller then opens the Store, which migrates)."""
    path = sqlite_file(url)
    if path is None or not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        current = {str(r[0]) for r in conn.execute("SELECT version_num FROM alembic_version")}
        if not current or current != head_revisions():
            conn.close()
            return None
    except sqlite3.Error:
        conn.close()
        return None
    return conn


def _dt(value: object) -> datetime | None:
    """A timestamp as SQLAlchemy keeps it in SQLite (naive UTC text), as an aware datetime."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def host_names(conn: sqlite3.Connection) -> list[str]:
    """Names of every host in the store, sorted."""
    return [str(r[0]) for r in conn.execute("SELECT name FROM hosts ORDER BY name")]


def host_compliance(conn: sqlite3.Connection, hosts: set[str] | None = None) -> list[HostComplianceRow]:
    """Rows of ``v_host_compliance`` (all hosts, or those in ``hosts``), sorted by host."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    rows = []
    for r in cur.execute("SELECT * FROM v_host_compliance ORDER BY host"):
        if hosts is not None and r["host"] not in hosts:
            continue
        rows.append(
            HostComplianceRow(
                host=r["host"],
                os=r["os"] or "",
                os_family=r["os_family"],
                pkg_mgr=r["pkg_mgr"],
                patch_role=r["patch_role"],
                patch_window=r["patch_window"],
                last_scan_at=_dt(r["last_scan_at"]),
                last_ok_scan_at=_dt(r["last_ok_scan_at"]),
                reachability=r["reachability"],
                last_error=r["last_error"],
                missing_total=int(r["missing_total"]),
                missing_by_class={c: int(r[f"missing_{c}"]) for c in CLASSIFICATIONS},
                missing_major=int(r["missing_major"]),
                reboot_required=bool(r["reboot_required"]),
                reboot_required_since=_dt(r["reboot_required_since"]),
            )
        )
    return rows
