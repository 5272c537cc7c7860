"""Per execution node throughput: each part of a scan or deploy run (an execution node, or the
control node) with its hosts, forks, seconds and errors, in ``node_runs``; the view
``v_node_throughput`` adds them up per node for ``patchctl report``.

Revision ID: 0005
Revises: 0004
Create Date: 2024-06-28

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Per node and kind of run: all its parts added up, and its latest part.
_NODE_THROUGHPUT_SQL = """
CREATE VIEW v_node_throughput AS
SELECT n.node,
       n.kind,
       n.parts,
       n.parts_failed,
       n.hosts,
       n.seconds,
       CASE WHEN n.seconds > 0 THEN 60.0 * n.hosts / n.seconds END AS hosts_per_minute,
       l.hosts AS last_hosts,
       l.seconds AS last_seconds,
       CASE WHEN l.seconds > 0 THEN 60.0 * l.hosts / l.seconds END AS last_hosts_per_minute,
       l.forks AS last_forks,
       l.error AS last_error,
       l.finished_at AS last_finished_at
FROM (
    SELECT node,
           kind,
           COUNT(*) AS parts,
           SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) AS parts_failed,
           SUM(hosts) AS hosts,
           SUM(seconds) AS seconds,
           MAX(id) AS last_id
    FROM node_runs
    GROUP BY node, kind
) n
JOIN node_runs l ON l.id = n.last_id
"""


def upgrade() -> None:
    op.create_table(
        "node_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),  # scan | deploy
        sa.Column("scan_run_id", sa.Integer, sa.ForeignKey("scan_runs.id", ondelete="CASCADE")),
        sa.Column("deploy_run_id", sa.Integer, sa.ForeignKey("deploy_runs.id", ondelete="CASCADE")),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("hosts", sa.Integer, nullable=False),
        sa.Column("forks", sa.Integer),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("controller_cpu_seconds", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_node_runs_node_kind", "node_runs", ["node", "kind", "id"])
    op.execute(_NODE_THROUGHPUT_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_node_throughput")
    op.drop_index("ix_node_runs_node_kind", table_name="node_runs")
    op.drop_table("node_runs")
