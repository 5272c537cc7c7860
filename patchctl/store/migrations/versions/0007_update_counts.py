"""Per update counts kept beside ``host_updates``, and indexes a scan can write quickly at scale.

A scan of 10,000 hosts x 100 missing updates spent most of its time in ``ix_host_updates_update_state``:
an index in update order gets each host's 100 rows at 100 random places, so every host's
transaction rewrote about 100 index pages (400 kB of WAL per host, and the checkpoints after it).
Its readers wanted how many hosts miss (or have) each update; those counts are now kept:

- ``update_counts``: per update, ``hosts_missing`` (hosts where it is missing now) and
  ``hosts_installed`` (hosts where it is installed). Every writer of ``host_updates`` (a scan, a
  deploy result) keeps them in the same transaction, like the hosts' summary columns of 0006.
  Narrow rows: a scan's changes land on a few pages. ``v_update_catalog`` reads them (same
  columns, same meaning).
- ``ix_host_updates_update_state`` (update_id, state) is dropped, and
  ``ix_host_updates_host_state`` (host_id, state) gives way to ``ix_host_updates_missing``, a
  partial index of the missing rows in host order (host_id, update_id): what the report's count of
  approved missing updates per host scans, and what a scan reads of its host. A host's lookups
  of all its rows use the primary key (host_id, update_id).

Existing counts are filled here from ``host_updates``.

Revision ID: 0007
Revises: 0006
Create Date: 2024-07-08

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FILL_COUNTS_SQL = """
INSERT INTO update_counts (update_id, hosts_missing, hosts_installed)
SELECT update_id,
       SUM(CASE WHEN state = 'missing' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state = 'installed' THEN 1 ELSE 0 END)
FROM host_updates
GROUP BY update_id
"""

_CATALOG_COLUMNS = """SELECT u.id AS update_id,
       u.uid,
       u.source,
       u.name,
       u.version,
       u.arch,
       u.classification,
       u.severity,
       u.major,
       u.reboot_hint,
       u.cves,
       u.advisory_ids,
       u.kbs,
       u.title,
       u.origin,
       u.update_id AS windows_update_id,
       u.first_seen_at,
       u.last_seen_at,
       COALESCE(c.n_missing, 0) AS hosts_missing,
       COALESCE(c.n_installed, 0) AS hosts_installed,
       d.state AS decision,
       d.actor AS decided_by,
       d.automatic AS decided_automatically,
       d.decided_at,
       d.reason AS decision_reason
FROM updates u"""

# This revision's view: the kept counts.
_UPDATE_CATALOG_SQL = f"""
CREATE VIEW v_update_catalog AS
{_CATALOG_COLUMNS}
LEFT JOIN (
    SELECT update_id, hosts_missing AS n_missing, hosts_installed AS n_installed FROM update_counts
) c ON c.update_id = u.id
LEFT JOIN v_update_decisions d ON d.update_id = u.id
"""  # noqa: S608 - constants only

# 0004's view, for the downgrade: aggregated from host_updates.
_UPDATE_CATALOG_0004_SQL = f"""
CREATE VIEW v_update_catalog AS
{_CATALOG_COLUMNS}
LEFT JOIN (
    SELECT update_id,
           SUM(CASE WHEN state = 'missing' THEN 1 ELSE 0 END) AS n_missing,
           SUM(CASE WHEN state = 'installed' THEN 1 ELSE 0 END) AS n_installed
    FROM host_updates
    GROUP BY update_id
) c ON c.update_id = u.id
LEFT JOIN v_update_decisions d ON d.update_id = u.id
"""  # noqa: S608 - constants only

_MISSING = sa.text("state = 'missing'")


def upgrade() -> None:
    op.create_table(
        "update_counts",
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
    op.execute(_FILL_COUNTS_SQL)
    op.execute("DROP VIEW IF EXISTS v_update_catalog")
    op.execute(_UPDATE_CATALOG_SQL)
    op.drop_index("ix_host_updates_update_state", table_name="host_updates")
    op.drop_index("ix_host_updates_host_state", table_name="host_updates")
    op.create_index(
        "ix_host_updates_missing",
        "host_updates",
        ["host_id", "update_id"],
        sqlite_where=_MISSING,
        postgresql_where=_MISSING,
    )


def downgrade() -> None:
    op.drop_index("ix_host_updates_missing", table_name="host_updates")
    op.create_index("ix_host_updates_host_state", "host_updates", ["host_id", "state"])
    op.create_index("ix_host_updates_update_state", "host_updates", ["update_id", "state"])
    op.execute("DROP VIEW IF EXISTS v_update_catalog")
    op.execute(_UPDATE_CATALOG_0004_SQL)
    op.drop_table("update_counts")
