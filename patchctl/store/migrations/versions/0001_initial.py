"""Initial schema: hosts, scan runs, scans, the update catalog, host updates and two views.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

The tables are spelled out here (not imported from ``schema.py``) so that this revision keeps
meaning the same thing when the schema moves on. Timestamps are ``DateTime(timezone=True)``
holding UTC; JSON documents are TEXT.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of patchctl.rules.model.CLASSIFICATIONS as of this revision: one view column each.
_CLASSIFICATIONS = (
    "security",
    "critical",
    "bugfix",
    "enhancement",
    "feature",
    "rollup",
    "definition",
    "driver",
    "other",
)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _host_compliance_sql() -> str:
    known = ", ".join(f"'{c}'" for c in _CLASSIFICATIONS)
    per_class_sums = []
    per_class_cols = []
    for c in _CLASSIFICATIONS:
        if c == "other":
            cond = f"u.classification = 'other' OR u.classification NOT IN ({known})"
        else:
            cond = f"u.classification = '{c}'"
        per_class_sums.append(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END) AS n_{c}")
        per_class_cols.append(f"COALESCE(m.n_{c}, 0) AS missing_{c}")
    sums = ",\n           ".join(per_class_sums)
    cols = ",\n       ".join(per_class_cols)
    # Built only from the constants above, never from input.
    return f"""
CREATE VIEW v_host_compliance AS
SELECT h.id AS host_id,
       h.name AS host,
       TRIM(COALESCE(h.distribution, '') || ' ' || COALESCE(h.os_version, '')) AS os,
       h.os_family,
       h.distribution,
       h.os_version,
       h.pkg_mgr,
       h.patch_role,
       h.patch_window,
       h.last_scan_at,
       h.last_ok_scan_at,
       COALESCE(h.last_status, 'never_scanned') AS reachability,
       h.last_error,
       COALESCE(m.n_total, 0) AS missing_total,
       {cols},
       COALESCE(m.n_major, 0) AS missing_major,
       h.reboot_required,
       h.reboot_required_since
FROM hosts h
LEFT JOIN (
    SELECT hu.host_id,
           COUNT(*) AS n_total,
           {sums},
           SUM(CASE WHEN u.major THEN 1 ELSE 0 END) AS n_major
    FROM host_updates hu
    JOIN updates u ON u.id = hu.update_id
    WHERE hu.state = 'missing'
    GROUP BY hu.host_id
) m ON m.host_id = h.id
"""  # noqa: S608


_MISSING_UPDATES_SQL = """
CREATE VIEW v_missing_updates AS
SELECT h.id AS host_id,
       h.name AS host,
       u.id AS update_id,
       u.uid,
       u.source,
       u.name,
       u.version,
       hu.installed_version,
       u.classification,
       u.severity,
       u.major,
       u.reboot_hint,
       u.cves,
       hu.first_seen_at,
       hu.last_seen_at,
       u.first_seen_at AS catalog_first_seen_at
FROM host_updates hu
JOIN hosts h ON h.id = hu.host_id
JOIN updates u ON u.id = hu.update_id
WHERE hu.state = 'missing'
"""


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("address", sa.String(255)),
        sa.Column("os_family", sa.String(64)),
        sa.Column("distribution", sa.String(128)),
        sa.Column("os_version", sa.String(64)),
        sa.Column("pkg_mgr", sa.String(32)),
        sa.Column("patch_role", sa.String(32)),
        sa.Column("patch_window", sa.String(128)),
        sa.Column("groups", sa.Text),
        sa.Column("first_seen_at", _ts(), nullable=False),
        sa.Column("last_scan_at", _ts()),
        sa.Column("last_ok_scan_at", _ts()),
        sa.Column("last_status", sa.String(16)),
        sa.Column("last_error", sa.Text),
        sa.Column("reboot_required", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reboot_required_since", _ts()),
    )
    op.create_table(
        "scan_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts()),
        sa.Column("inventory", sa.Text, nullable=False),
        sa.Column("limit_pattern", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("hosts_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("hosts_ok", sa.Integer, nullable=False, server_default="0"),
        sa.Column("hosts_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("hosts_unreachable", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "scans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey("scan_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "host_id",
            sa.Integer,
            sa.ForeignKey("hosts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("scanned_at", _ts(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("reboot_required", sa.Boolean),
        sa.Column("missing_total", sa.Integer),
        sa.Column("missing_security", sa.Integer),
        sa.Column("missing_major", sa.Integer),
        sa.Column("missing_by_class", sa.Text),
    )
    op.create_index("ix_scans_host_scanned", "scans", ["host_id", "scanned_at"])
    op.create_index("ix_scans_run", "scans", ["run_id"])
    op.create_table(
        "updates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uid", sa.String(512), nullable=False, unique=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("arch", sa.String(32)),
        sa.Column("classification", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(32)),
        sa.Column("cves", sa.Text),
        sa.Column("advisory_ids", sa.Text),
        sa.Column("kbs", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("origin", sa.String(255)),
        sa.Column("major", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reboot_hint", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("update_id", sa.String(128)),
        sa.Column("first_seen_at", _ts(), nullable=False),
        sa.Column("last_seen_at", _ts(), nullable=False),
    )
    op.create_index("ix_updates_source_name", "updates", ["source", "name"])
    op.create_table(
        "host_updates",
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
        sa.Column("first_seen_at", _ts(), nullable=False),
        sa.Column("last_seen_at", _ts(), nullable=False),
        sa.Column("resolved_at", _ts()),
    )
    op.create_index("ix_host_updates_host_state", "host_updates", ["host_id", "state"])
    op.create_index("ix_host_updates_update_state", "host_updates", ["update_id", "state"])
    op.execute(_host_compliance_sql())
    op.execute(_MISSING_UPDATES_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_missing_updates")
    op.execute("DROP VIEW IF EXISTS v_host_compliance")
    op.drop_table("host_updates")
    op.drop_table("updates")
    op.drop_table("scans")
    op.drop_table("scan_runs")
    op.drop_table("hosts")
