"""Package holds of each host (``hosts.holds``) and exceptions (``patchctl except``): accepted,
owned, expiring reasons why hosts may lack updates.

``update_exceptions``: one row per exception: ``target`` (a host or group pattern), ``pattern``
(an update name, uid or KB pattern), ``reason``, ``owner``, ``until`` (it ends by itself then),
who made it when; ``ended_at``/``ended_by``/``end_reason`` (``removed`` or ``expired``) once it
ended. Rows are never deleted: the table is its own history, with the audit trail beside it.

Revision ID: 0012_cal
Revises: 0009_lineage
Create Date: 2026-12-06

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_cal"
down_revision: str | None = "0011_cve"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "update_exceptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("pattern", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("until", _ts(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("ended_at", _ts()),
        sa.Column("ended_by", sa.String(128)),
        sa.Column("end_reason", sa.String(16)),
    )
    op.create_index("ix_update_exceptions_open", "update_exceptions", ["ended_at"])
    # the package holds of the host's last successful scan and the updates they keep back (JSON)
    op.add_column("hosts", sa.Column("holds", sa.Text))


def downgrade() -> None:
    op.drop_column("hosts", "holds")
    op.drop_index("ix_update_exceptions_open", table_name="update_exceptions")
    op.drop_table("update_exceptions")
