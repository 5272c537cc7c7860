"""The store's tables and views as SQLAlchemy Core objects.

``metadata`` describes the tables exactly as the Alembic migrations create them (a unit test
compares the two). ``views`` describes the SQL views the migrations create, so they can be read
with typed columns; it is never used to create anything.

Conventions:
- every timestamp is a :class:`UTCDateTime`: timezone-aware UTC datetimes in Python, UTC in the
  database (naive UTC text in SQLite, ``timestamptz`` in PostgreSQL);
- lists (groups, CVEs, advisory ids, KBs) and small maps are :class:`JSONText`: JSON in a TEXT
  column, portable to any database;
- host states are the words of :mod:`patchctl.rules.model` (``ok``, ``failed``, ``unreachable``);
  ``host_updates.state`` is one of ``missing``, ``installed``, ``gone``.

Views (created by migration 0001; ``v_host_compliance`` reads the hosts' summary columns since
migration 0006):

``v_host_compliance``
    One row per host: ``host``, ``os`` (distribution and version), ``os_family``,
    ``distribution``, ``os_version``, ``pkg_mgr``, ``patch_role``, ``patch_window``,
    ``last_scan_at`` (last scan attempt), ``last_ok_scan_at`` (last successful scan),
    ``reachability`` (``ok`` | ``failed`` | ``unreachable`` | ``never_scanned``: the status of the
    last scan), ``last_error``, ``missing_total``, ``missing_<classification>`` for every
    classification of :data:`patchctl.rules.model.CLASSIFICATIONS` (unknown classifications count as
    ``other``), ``missing_major``, ``reboot_required``, ``reboot_required_since``.
``v_missing_updates``
    One row per update missing on a host: ``host``, ``uid``, ``source``, ``name``, ``version``
    (the target version), ``installed_version`` (the version on the host), ``classification``,
    ``severity``, ``major``, ``reboot_hint``, ``cves``, ``first_seen_at`` (first time this host
    reported it), ``last_seen_at``, ``catalog_first_seen_at`` (first time any host reported it).

Views created by migration 0002 (decisions, rollouts, waves): ``v_update_decisions``,
``v_audit_log``, ``v_wave_progress``. docs/schema.md documents every view.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from patchctl.rules.model import CLASSIFICATIONS

STATE_MISSING = "missing"
STATE_INSTALLED = "installed"
STATE_GONE = "gone"
HOST_UPDATE_STATES = (STATE_MISSING, STATE_INSTALLED, STATE_GONE)
# The decision state that approves an update (patchctl.rules.policy.STATE_APPROVED).
DECISION_APPROVED = "approved"

# The status of a run (scan, deploy, reboot) started and not finished yet.
RUN_RUNNING = "running"

# Classifications that get their own column in v_host_compliance, in this order.
VIEW_CLASSIFICATIONS: tuple[str, ...] = CLASSIFICATIONS
# The per-host summary columns of ``hosts`` (migration 0006), in the view's order.
HOST_SUMMARY_COLUMNS: tuple[str, ...] = (
    "missing_total",
    *(f"missing_{c}" for c in VIEW_CLASSIFICATIONS),
    "missing_major",
)
# The per-run history columns of ``scan_runs`` (migration 0006).
RUN_SUMMARY_COLUMNS: tuple[str, ...] = (
    "scans_total",
    "scans_compliant",
    "scans_missing",
    "scans_reboot_pending",
    "scans_failed",
    "scans_unreachable",
    "scans_missing_updates",
)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_timestamp(value: datetime) -> str:
    """The text a :class:`UTCDateTime` column keeps in SQLite for ``value``: its UTC time in
    SQLAlchemy's SQLite DATETIME storage format (``2024-06-01 10:00:00.000000``), byte for byte.

    For writers that bypass SQLAlchemy's bind processing (the scan's write path); a unit test
    compares the two.
    """
    v = as_utc(value)
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"


def json_text(value: Any) -> str:
    """The text a :class:`JSONText` column keeps for ``value`` (sorted keys, compact; tuples as lists)."""
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


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
        value = as_utc(value)
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
        return None if value is None else json_text(value)

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
    # What is missing on the host now (migration 0006): kept by every writer of host_updates in
    # the same transaction (see HOST_SUMMARY_COLUMNS); v_host_compliance reads them.
    sa.Column("missing_total", sa.Integer, nullable=False, server_default="0"),
    *(sa.Column(f"missing_{c}", sa.Integer, nullable=False, server_default="0") for c in VIEW_CLASSIFICATIONS),
    sa.Column("missing_major", sa.Integer, nullable=False, server_default="0"),
    # Of those, how many are approved (their latest decision approves them; migration 0008): kept
    # by the same writers, and by the writer of decisions for the hosts missing what it changes.
    sa.Column("missing_approved", sa.Integer, nullable=False, server_default="0"),
    # The host's package holds and the updates they keep back, as its last successful scan found
    # them (migration 0012): {"holds": [{name, by}], "updates": [{uid, name, version, ...}]}
    sa.Column("holds", JSONText()),
    # Services still running replaced code after a change (migration 0013_safety): a list of
    # {unit, processes: [{pid, comm}]} (unit null when unknown) and since when; null: none known.
    sa.Column("restart_pending", JSONText()),
    sa.Column("restart_pending_since", UTCDateTime()),
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
    # The report's history point of the run (migration 0006), every scan of the run counted;
    # written when the run finishes (see RUN_SUMMARY_COLUMNS), NULL while it runs.
    *(sa.Column(name, sa.Integer) for name in RUN_SUMMARY_COLUMNS),
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
    # Covers the report's compliance-per-run history (migration 0004).
    sa.Index("ix_scans_run_state", "run_id", "status", "missing_total", "reboot_required"),
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
    # Whether its latest decision approves it (migration 0008), kept by the writer of decisions.
    sa.Column("approved", sa.Boolean, nullable=False, server_default=sa.false()),
    # When the source released it (migration 0009_win_release; Windows: LastDeploymentChangeTime),
    # NULL when it gives no date. approve_after_days counts from it, else from first_seen_at.
    sa.Column("released_at", UTCDateTime()),
    sa.Index("ix_updates_source_name", "source", "name"),
    # apt (migration 0011_cve): the candidate's source package and version (its changelog's key)
    # and the highest Debian urgency of the changelog entries the update brings
    sa.Column("source_package", sa.String(255)),
    sa.Column("source_version", sa.String(255)),
    sa.Column("urgency", sa.String(16)),
    sa.Index("ix_updates_source_package", "source_package", "source_version"),
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
    # The missing rows in host order (migration 0007). No index in update order: a scan's rows
    # would land at random places in it; update_counts keeps what its readers wanted.
    sa.Index(
        "ix_host_updates_missing",
        "host_id",
        "update_id",
        sqlite_where=sa.text("state = 'missing'"),
        postgresql_where=sa.text("state = 'missing'"),
    ),
)

# Per update, how many hosts miss it now and have it installed (migration 0007): kept by every
# writer of host_updates in the same transaction (a row appears with an update's first count).
update_counts = sa.Table(
    "update_counts",
    metadata,
    sa.Column(
        "update_id",
        sa.Integer,
        sa.ForeignKey("updates.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("hosts_missing", sa.Integer, nullable=False, server_default="0"),
    sa.Column("hosts_installed", sa.Integer, nullable=False, server_default="0"),
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


# --- decisions, rollouts, waves, deploy results, incidents (migration 0002) -------------------
# decisions, audit_events and rollout_updates are append-only (SQLite triggers refuse UPDATE and
# DELETE). See docs/schema.md for every table and view.

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("update_id", sa.Integer, sa.ForeignKey("updates.id"), nullable=False),
    sa.Column("uid", sa.String(512), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("automatic", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("major", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reason", sa.Text),
    sa.Column("decided_at", UTCDateTime(), nullable=False),
    sa.Index("ix_decisions_update", "update_id", "id"),
)

rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("policy_source", sa.Text, nullable=False),
    sa.Column("waves", JSONText(), nullable=False),  # the policy's waves, frozen
    sa.Column("note", sa.Text),
    # a follow-up rollout (successors: repilot, migration 0009): the rollout whose blocked
    # updates' successors it holds
    sa.Column("follows_rollout_id", sa.Integer),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(512)),
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id")),
    sa.Column("detail", sa.Text),
    sa.Index("ix_audit_events_at", "at"),
)

rollout_updates = sa.Table(
    "rollout_updates",
    metadata,
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
    sa.Column("update_id", sa.Integer, sa.ForeignKey("updates.id"), primary_key=True),
    sa.Column("uid", sa.String(512), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("classification", sa.String(32), nullable=False),
    sa.Column("major", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("update_ref", sa.String(128)),  # Windows update id
    sa.Column("kbs", JSONText()),
)

rollout_waves = sa.Table(
    "rollout_waves",
    metadata,
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | deploying | finished | halted
    sa.Column("hosts", JSONText()),  # fixed when the wave first deploys
    sa.Column("hosts_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bake_days", sa.Float, nullable=False),
    sa.Column("promoted_at", UTCDateTime()),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("halted_reason", sa.Text),
)

deploy_runs = sa.Table(
    "deploy_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
    sa.Column("wave", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("status", sa.String(16), nullable=False),
)

deploy_results = sa.Table(
    "deploy_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("deploy_runs.id"), nullable=False),
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
    sa.Column("wave", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ok | failed | unreachable
    sa.Column("installed", JSONText()),  # uids installed by this run
    sa.Column("present", JSONText()),  # uids the host already had
    sa.Column("failed", JSONText()),  # uid -> reason
    sa.Column("reboot_required", sa.Boolean),
    sa.Column("error", sa.Text),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Index("ix_deploy_results_rollout_host", "rollout_id", "host"),
    # the hooks that ran (migration 0013_safety): phase, name, rc, ok, output; never a command
    sa.Column("hooks", JSONText()),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
    sa.Column("host", sa.String(255)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("opened_by", sa.String(128), nullable=False),
    sa.Column("closed_at", UTCDateTime()),
    sa.Column("closed_by", sa.String(128)),
    sa.Column("close_reason", sa.Text),
    sa.Index("ix_incidents_rollout", "rollout_id", "closed_at"),
)

# Exceptions (migration 0012): accepted, owned, expiring reasons why hosts may lack updates.
EXCEPTION_REMOVED = "removed"
EXCEPTION_EXPIRED = "expired"
update_exceptions = sa.Table(
    "update_exceptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("target", sa.String(255), nullable=False),  # a host or group pattern
    sa.Column("pattern", sa.String(255), nullable=False),  # an update name, uid or KB pattern
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("until", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("ended_at", UTCDateTime()),
    sa.Column("ended_by", sa.String(128)),
    sa.Column("end_reason", sa.String(16)),  # EXCEPTION_REMOVED or EXCEPTION_EXPIRED
    sa.Index("ix_update_exceptions_open", "ended_at"),
)

v_update_decisions = sa.Table(
    "v_update_decisions",
    views,
    sa.Column("update_id", sa.Integer),
    sa.Column("uid", sa.String),
    sa.Column("state", sa.String),
    sa.Column("actor", sa.String),
    sa.Column("automatic", sa.Boolean),
    sa.Column("major", sa.Boolean),
    sa.Column("reason", sa.Text),
    sa.Column("decided_at", UTCDateTime()),
    sa.Column("decision_id", sa.Integer),
)

v_audit_log = sa.Table(
    "v_audit_log",
    views,
    sa.Column("at", UTCDateTime()),
    sa.Column("actor", sa.String),
    sa.Column("action", sa.String),
    sa.Column("subject", sa.String),
    sa.Column("rollout_id", sa.Integer),
    sa.Column("detail", sa.Text),
    sa.Column("source", sa.String),
    sa.Column("source_id", sa.Integer),
)

v_wave_progress = sa.Table(
    "v_wave_progress",
    views,
    sa.Column("rollout_id", sa.Integer),
    sa.Column("position", sa.Integer),
    sa.Column("wave", sa.String),
    sa.Column("state", sa.String),
    sa.Column("hosts_total", sa.Integer),
    sa.Column("hosts_ok", sa.Integer),
    sa.Column("hosts_failed", sa.Integer),
    sa.Column("hosts_unreachable", sa.Integer),
    sa.Column("hosts_pending", sa.Integer),
    sa.Column("promoted_at", UTCDateTime()),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("bake_days", sa.Float),
    sa.Column("halted_reason", sa.Text),
)


# --- reboots and verify results (migration 0003) ----------------------------------------------
# See patchctl/store/maintenance.py. Views: v_reboot_pending (hosts whose reboot is pending, with
# role, window and last attempt) and v_host_state (each host's latest verify result).

reboots = sa.Table(
    "reboots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),  # deploy | cron
    sa.Column("window", sa.String(128)),
    sa.Column("requested_at", UTCDateTime(), nullable=False),  # patchctl's clock (may be simulated)
    sa.Column("started_at", UTCDateTime(), nullable=False),  # the real time
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("status", sa.String(16), nullable=False),  # running | ok | failed | unreachable
    sa.Column("boot_id_before", sa.String(64)),
    sa.Column("boot_id_after", sa.String(64)),
    sa.Column("elapsed_seconds", sa.Float),
    sa.Column("error", sa.Text),
    sa.Index("ix_reboots_host", "host", "id"),
)

verify_results = sa.Table(
    "verify_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("scan_runs.id")),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("missing", JSONText()),  # approved uids not installed
    sa.Column("failed", JSONText()),  # uid -> reason, from the last deploy
    sa.Column("verified_at", UTCDateTime(), nullable=False),
    sa.Index("ix_verify_results_host", "host", "id"),
)

v_reboot_pending = sa.Table(
    "v_reboot_pending",
    views,
    sa.Column("host_id", sa.Integer),
    sa.Column("host", sa.String),
    sa.Column("patch_role", sa.String),
    sa.Column("patch_window", sa.String),
    sa.Column("pending_since", UTCDateTime()),
    sa.Column("last_attempt_at", UTCDateTime()),
    sa.Column("last_attempt_status", sa.String),
    sa.Column("last_attempt_error", sa.Text),
)

v_host_state = sa.Table(
    "v_host_state",
    views,
    sa.Column("host", sa.String),
    sa.Column("state", sa.String),
    sa.Column("detail", sa.Text),
    sa.Column("missing", JSONText()),
    sa.Column("failed", JSONText()),
    sa.Column("verified_at", UTCDateTime()),
    sa.Column("run_id", sa.Integer),
)


# --- the update catalog view (migration 0004) -------------------------------------------------

v_update_catalog = sa.Table(
    "v_update_catalog",
    views,
    sa.Column("update_id", sa.Integer),
    sa.Column("uid", sa.String),
    sa.Column("source", sa.String),
    sa.Column("name", sa.String),
    sa.Column("version", sa.String),
    sa.Column("arch", sa.String),
    sa.Column("classification", sa.String),
    sa.Column("severity", sa.String),
    sa.Column("major", sa.Boolean),
    sa.Column("reboot_hint", sa.Boolean),
    sa.Column("cves", JSONText()),
    sa.Column("advisory_ids", JSONText()),
    sa.Column("kbs", JSONText()),
    sa.Column("title", sa.Text),
    sa.Column("origin", sa.String),
    sa.Column("windows_update_id", sa.String),
    sa.Column("first_seen_at", UTCDateTime()),
    sa.Column("last_seen_at", UTCDateTime()),
    sa.Column("hosts_missing", sa.Integer),
    sa.Column("hosts_installed", sa.Integer),
    sa.Column("decision", sa.String),
    sa.Column("decided_by", sa.String),
    sa.Column("decided_automatically", sa.Boolean),
    sa.Column("decided_at", UTCDateTime()),
    sa.Column("decision_reason", sa.Text),
)


# --- per execution node throughput (migration 0005) -------------------------------------------

node_runs = sa.Table(
    "node_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # scan | deploy
    sa.Column("scan_run_id", sa.Integer, sa.ForeignKey("scan_runs.id", ondelete="CASCADE")),
    sa.Column("deploy_run_id", sa.Integer, sa.ForeignKey("deploy_runs.id", ondelete="CASCADE")),
    sa.Column("node", sa.String(255), nullable=False),  # an execution node, or "(control node)"
    sa.Column("hosts", sa.Integer, nullable=False),
    sa.Column("forks", sa.Integer),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("controller_cpu_seconds", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Index("ix_node_runs_node_kind", "node", "kind", "id"),
)

v_node_throughput = sa.Table(
    "v_node_throughput",
    views,
    sa.Column("node", sa.String),
    sa.Column("kind", sa.String),
    sa.Column("parts", sa.Integer),
    sa.Column("parts_failed", sa.Integer),
    sa.Column("hosts", sa.Integer),
    sa.Column("seconds", sa.Float),
    sa.Column("hosts_per_minute", sa.Float),
    sa.Column("last_hosts", sa.Integer),
    sa.Column("last_seconds", sa.Float),
    sa.Column("last_hosts_per_minute", sa.Float),
    sa.Column("last_forks", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_finished_at", UTCDateTime()),
)

# --- lineage: the exposure clock (migration 0009) ---------------------------------------------

v_host_exposure = sa.Table(
    "v_host_exposure",
    views,
    sa.Column("host_id", sa.Integer),
    sa.Column("host", sa.String),
    sa.Column("source", sa.String),
    sa.Column("name", sa.String),
    sa.Column("since", UTCDateTime()),
)


# --- change safety (migration 0013_safety) ---------------------------------------------------
# Health checks before and after a change, one row per check per run (see patchctl/safety.py).
HEALTH_FAILED = "failed"  # the other states: passed, pre_existing

health_results = sa.Table(
    "health_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("context", sa.String(16), nullable=False),  # deploy | reboot | restart | health
    sa.Column("rollout_id", sa.Integer),
    sa.Column("wave", sa.String(64)),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # passed | failed | pre_existing
    sa.Column("before", sa.String(16)),  # passed | failed | null (no baseline)
    sa.Column("message", sa.Text),
    sa.Column("checked_at", UTCDateTime(), nullable=False),
    sa.Index("ix_health_results_host", "host", "id"),
)

# --- vulnerability facts of apt updates (migration 0011_cve) -----------------------------------

apt_changelogs = sa.Table(
    "apt_changelogs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_package", sa.String(255), nullable=False),
    sa.Column("source_version", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # parsed | unreadable | fetch_failed
    sa.Column("reason", sa.Text),
    sa.Column("entries", JSONText()),  # [{version, urgency, cves, advisories, date}], newest first
    sa.Column("host", sa.String(255)),
    sa.Column("package", sa.String(512)),  # NAME=VERSION of the binary package it came from
    sa.Column("downloads", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fetched_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source_package", "source_version", name="uq_apt_changelogs_source"),
)

v_update_changelogs = sa.Table(
    "v_update_changelogs",
    views,
    sa.Column("update_id", sa.Integer),
    sa.Column("uid", sa.String),
    sa.Column("name", sa.String),
    sa.Column("version", sa.String),
    sa.Column("classification", sa.String),
    sa.Column("source_package", sa.String),
    sa.Column("source_version", sa.String),
    sa.Column("urgency", sa.String),
    sa.Column("cves", JSONText()),
    sa.Column("advisory_ids", JSONText()),
    sa.Column("changelog_status", sa.String),
    sa.Column("changelog_reason", sa.Text),
    sa.Column("changelog_host", sa.String),
    sa.Column("changelog_fetched_at", UTCDateTime()),
)

v_time_to_patch = sa.Table(
    "v_time_to_patch",
    views,
    sa.Column("host_id", sa.Integer),
    sa.Column("host", sa.String),
    sa.Column("update_id", sa.Integer),
    sa.Column("uid", sa.String),
    sa.Column("source", sa.String),
    sa.Column("name", sa.String),
    sa.Column("version", sa.String),
    sa.Column("classification", sa.String),
    sa.Column("severity", sa.String),
    sa.Column("urgency", sa.String),
    sa.Column("missing_since", UTCDateTime()),
    sa.Column("installed_at", UTCDateTime()),
)
