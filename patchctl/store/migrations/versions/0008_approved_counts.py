"""Approved missing updates counted per host, kept like the summary columns of 0006.

``patchctl report`` counts a host compliant when it misses no approved update (once any decision
exists). It joined a million missing ``host_updates`` rows to the latest decision of each update:
4 s on 10,000 hosts x 100 missing updates, 0.3 s with 0007's index. Now:

- ``updates.approved``: whether the update's latest decision (``v_update_decisions``) approves it,
  kept by the writer of decisions.
- ``hosts.missing_approved``: how many of the updates missing on the host are approved, kept by
  every writer of ``host_updates`` (a scan, a deploy result) in the same transaction, and by the
  writer of decisions for the hosts missing an update whose approval it changes.

Existing rows are filled here from ``decisions`` and ``host_updates``.

Revision ID: 0008
Revises: 0007
Create Date: 2024-07-09

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FILL_UPDATES_SQL = """
UPDATE updates SET approved = TRUE
WHERE id IN (SELECT update_id FROM v_update_decisions WHERE state = 'approved')
"""

# UPDATE ... FROM: SQLite >= 3.33, as in 0006.
_FILL_HOSTS_SQL = """
UPDATE hosts SET missing_approved = m.n
FROM (
    SELECT hu.host_id, COUNT(*) AS n
    FROM host_updates hu
    JOIN updates u ON u.id = hu.update_id
    WHERE hu.state = 'missing' AND u.approved
    GROUP BY hu.host_id
) AS m
WHERE m.host_id = hosts.id
"""


def upgrade() -> None:
    op.add_column("updates", sa.Column("approved", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("hosts", sa.Column("missing_approved", sa.Integer, nullable=False, server_default="0"))
    op.execute(_FILL_UPDATES_SQL)
    op.execute(_FILL_HOSTS_SQL)


def downgrade() -> None:
    op.drop_column("hosts", "missing_approved")
    op.drop_column("updates", "approved")
