"""Reboots (each attempt with its boot ids and outcome) and verify results (each host's compliance
state as ``patchctl verify`` found it), and the views v_reboot_pending and v_host_state.

Revision ID: 0003
Revises: 0002
Create Date: 2024-06-15

Spelled out here (not imported from ``schema.py``), like 0001 and 0002.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


# Hosts that need a reboot, with their role, window and the last reboot attempt (if any).
_REBOOT_PENDING_SQL = """
CREATE VIEW v_reboot_pending AS
SELECT h.id AS host_id,
       h.name AS host,
       h.patch_role,
       h.patch_window,
       h.reboot_required_since AS pending_since,
       r.requested_at AS last_attempt_at,
       r.status AS last_attempt_status,
       r.error AS last_attempt_error
FROM hosts h
LEFT JOIN reboots r ON r.id = (SELECT MAX(r2.id) FROM reboots r2 WHERE r2.host = h.name)
WHERE h.reboot_required
"""

# The latest verify result of each host.
_HOST_STATE_SQL = """
CREATE VIEW v_host_state AS
SELECT v.host,
       v.state,
       v.detail,
       v.missing,
       v.failed,
       v.verified_at,
       v.run_id
FROM verify_results v
JOIN (SELECT host, MAX(id) AS id FROM verify_results GROUP BY host) last ON last.id = v.id
"""


def upgrade() -> None:
    op.create_table(
        "reboots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),  # deploy | cron
        sa.Column("window", sa.String(128)),
        sa.Column("requested_at", _ts(), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts()),
        sa.Column("status", sa.String(16), nullable=False),  # running | ok | failed | unreachable
        sa.Column("boot_id_before", sa.String(64)),
        sa.Column("boot_id_after", sa.String(64)),
        sa.Column("elapsed_seconds", sa.Float),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_reboots_host", "reboots", ["host", "id"])
    op.create_table(
        "verify_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("scan_runs.id")),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("missing", sa.Text),  # JSON list of approved uids not installed
        sa.Column("failed", sa.Text),  # JSON map uid -> reason of the last deploy
        sa.Column("verified_at", _ts(), nullable=False),
    )
    op.create_index("ix_verify_results_host", "verify_results", ["host", "id"])
    op.execute(_REBOOT_PENDING_SQL)
    op.execute(_HOST_STATE_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_host_state")
    op.execute("DROP VIEW IF EXISTS v_reboot_pending")
    op.drop_table("verify_results")
    op.drop_table("reboots")
