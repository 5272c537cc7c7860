"""Change safety: health checks before and after a change (``health_results``), the hooks a
deploy ran (``deploy_results.hooks``) and the services still running replaced code on a host
(``hosts.restart_pending``, ``hosts.restart_pending_since``).

``health_results``: one row per check per run: ``context`` says which run (``deploy``,
``reboot``, ``restart``, ``health``), ``rollout_id`` and ``wave`` when a rollout is known,
``state`` is ``passed``, ``failed`` (passed before, failed after: the host failed) or
``pre_existing`` (failed before already), ``before`` the baseline's word (``passed``,
``failed``, or null without one) and ``message`` what the check said.

Revision ID: 0013_safety
Revises: 0009_lineage
Create Date: 2026-12-06

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_safety"
down_revision: str | None = "0012_cal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "health_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("context", sa.String(16), nullable=False),
        sa.Column("rollout_id", sa.Integer),
        sa.Column("wave", sa.String(64)),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("before", sa.String(16)),
        sa.Column("message", sa.Text),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_health_results_host", "host", "id"),
    )
    op.add_column("deploy_results", sa.Column("hooks", sa.Text))
    op.add_column("hosts", sa.Column("restart_pending", sa.Text))
    op.add_column("hosts", sa.Column("restart_pending_since", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("hosts", "restart_pending_since")
    op.drop_column("hosts", "restart_pending")
    op.drop_column("deploy_results", "hooks")
    op.drop_table("health_results")
