"""The store's tables and views as SQLAlchemy Core objects.

``metadata`` describes the tables exactly as the Alembic migrations create them (a unit test
compares the two). ``views`` describes the SQL views the migrations create, so they can be read
with typed columns; it is never used to create anything.

Conventions:
- every timestamp is a :class:`UTCDateTime`: timezone-aware UTC datetimes in Python, UTC in the
  database (naive UTC text in SQLite, ``timestamptz`` in PostgreSQL);
- lists (groups, CVEs, advisory ids, KBs) and small maps are :class:`JSONText`: JSON in a TEXT
  column, portable to any database;
- host states are the words of :mod:`patchctl.model` (``ok``, ``failed``, ``unreachable``);
  ``host_updates.state`` is one of ``missing``, ``installed``, ``gone``.

Views (created by migration 0001):

``v_host_compliance``
    One row per host: ``host``, ``os`` (distribution and version), ``os_family``,
    ``distribution``, ``os_version``, ``pkg_mgr``, ``patch_role``, ``patch_window``,
    ``last_scan_at`` (last scan attempt), ``last_ok_scan_at`` (last successful scan),
    ``reachability`` (``ok`` | ``failed`` | ``unreachable`` | ``never_scanned``: the status of the
    last scan), ``last_error``, ``missing_total``, ``missing_<classification>`` for every
    classification of :data:`patchctl.model.CLASSIFICATIONS` (unknown classifications count as
    ``other``), ``missing_major``, ``reboot_required``, ``reboot_required_since``.
``v_missing_updates``
    One row per update missing on a host: ``host``, ``uid``, ``source``, ``name``, ``version``
    (the target version), ``installed_version`` (the version on the host), ``classification``,
    ``severity``, ``major``, ``reboot_hint``, ``cves``, ``first_seen_at`` (first time this host
    reported it), ``last_seen_at``, ``catalog_first_seen_at`` (first time any host reported it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from patchctl.model import CLASSIFICATIONS

STATE_MISSING = "missing"
STATE_INSTALLED = "installed"
STATE_GONE = "gone"
HOST_UPDATE_STATES = (STATE_MISSING, STATE_INSTALLED, STATE_GONE)

NEVER_SCANNED = "never_scanned"

# Classifications that get their own column in v_host_compliance, in this order.
VIEW_CLASSIFICATIONS: tuple[str, ...] = CLASSIFICATIONS


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned as an aware UTC datetime.

    A naive datetime given to the store is taken to be UTC already.
    """

    impl = sa.DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """A JSON document kept in a TEXT column (sorted keys, compact)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, tuple):
            value = list(value)
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)


metadata = sa.MetaData()

hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("address", sa.String(255)),
    sa.Column("os_family", sa.String(64)),
    sa.Column("distribution", sa.String(128)),
    sa.Column("os_version", sa.String(64)),
    sa.Column("pkg_mgr", sa.String(32)),
    sa.Column("patch_role", sa.String(32)),
    sa.Column("patch_window", sa.String(128)),
    sa.Column("groups", JSONText()),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_scan_at", UTCDateTime()),
    sa.Column("last_ok_scan_at", UTCDateTime()),
    sa.Column("last_status", sa.String(16)),
    sa.Column("last_error", sa.Text),
    sa.Column("reboot_required", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reboot_required_since", UTCDateTime()),
)

scan_runs = sa.Table(
    "scan_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("inventory", sa.Text, nullable=False),
    sa.Column("limit_pattern", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("hosts_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("hosts_ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("hosts_failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("hosts_unreachable", sa.Integer, nullable=False, server_default="0"),
)

scans = sa.Table(
    "scans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("scan_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("scanned_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("reboot_required", sa.Boolean),
    # NULL when the scan failed: the counts are unknown, not zero.
    sa.Column("missing_total", sa.Integer),
    sa.Column("missing_security", sa.Integer),
    sa.Column("missing_major", sa.Integer),
    sa.Column("missing_by_class", JSONText()),  # {"security": 2, "bugfix": 1}
    sa.Index("ix_scans_host_scanned", "host_id", "scanned_at"),
    sa.Index("ix_scans_run", "run_id"),
)

updates = sa.Table(
    "updates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uid", sa.String(512), nullable=False, unique=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("arch", sa.String(32)),
    sa.Column("classification", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(32)),
    sa.Column("cves", JSONText()),
    sa.Column("advisory_ids", JSONText()),
    sa.Column("kbs", JSONText()),
    sa.Column("title", sa.Text),
    sa.Column("origin", sa.String(255)),
    sa.Column("major", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reboot_hint", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("update_id", sa.String(128)),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Index("ix_updates_source_name", "source", "name"),
)

host_updates = sa.Table(
    "host_updates",
    metadata,
    sa.Column(
        "host_id",
        sa.Integer,
        sa.ForeignKey("hosts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "update_id",
        sa.Integer,
        sa.ForeignKey("updates.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("installed_version", sa.String(255)),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("resolved_at", UTCDateTime()),
    sa.Index("ix_host_updates_host_state", "host_id", "state"),
    sa.Index("ix_host_updates_update_state", "update_id", "state"),
)


# --- views: read-only descriptions, created by the migrations -------------------------------

views = sa.MetaData()

v_host_compliance = sa.Table(
    "v_host_compliance",
    views,
    sa.Column("host_id", sa.Integer),
    sa.Column("host", sa.String),
    sa.Column("os", sa.String),
    sa.Column("os_family", sa.String),
    sa.Column("distribution", sa.String),
    sa.Column("os_version", sa.String),
    sa.Column("pkg_mgr", sa.String),
    sa.Column("patch_role", sa.String),
    sa.Column("patch_window", sa.String),
    sa.Column("last_scan_at", UTCDateTime()),
    sa.Column("last_ok_scan_at", UTCDateTime()),
    sa.Column("reachability", sa.String),
    sa.Column("last_error", sa.Text),
    sa.Column("missing_total", sa.Integer),
    *(sa.Column(f"missing_{c}", sa.Integer) for c in VIEW_CLASSIFICATIONS),
    sa.Column("missing_major", sa.Integer),
    sa.Column("reboot_required", sa.Boolean),
    sa.Column("reboot_required_since", UTCDateTime()),
)

v_missing_updates = sa.Table(
    "v_missing_updates",
    views,
    sa.Column("host_id", sa.Integer),
    sa.Column("host", sa.String),
    sa.Column("update_id", sa.Integer),
    sa.Column("uid", sa.String),
    sa.Column("source", sa.String),
    sa.Column("name", sa.String),
    sa.Column("version", sa.String),
    sa.Column("installed_version", sa.String),
    sa.Column("classification", sa.String),
    sa.Column("severity", sa.String),
    sa.Column("major", sa.Boolean),
    sa.Column("reboot_hint", sa.Boolean),
    sa.Column("cves", JSONText()),
    sa.Column("first_seen_at", UTCDateTime()),
    sa.Column("last_seen_at", UTCDateTime()),
    sa.Column("catalog_first_seen_at", UTCDateTime()),
)
