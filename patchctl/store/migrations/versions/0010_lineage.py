"""Rollouts that survive repository churn: a follow-up rollout names the rollout it follows
(``rollouts.follows_rollout_id``: ``successors: repilot`` sends the successors of a rollout's
blocked updates through a rollout of their own), and the exposure clock per host and package
lineage (the view ``v_host_exposure``).

``v_host_exposure``: one row per host and lineage (source + name) the host misses a version of
now: ``since`` is when the host was first found missing a version of that lineage, surviving
supersedes. The rows of a lineage on a host (``host_updates``: first seen missing, resolved) are
chained: a row that starts before (or when) an earlier one ends belongs to its exposure, so a
superseded version (``gone`` in the scan that first lists its successor missing) hands its start
on. An ``installed`` row ends the exposure: rows resolved by then are past, and a version still
missing counts from the install on.

Revision ID: 0009_lineage
Revises: 0009_win_release
Create Date: 2026-12-04

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_lineage"
down_revision: str | None = "0009_win_release"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOST_EXPOSURE_SQL = """
CREATE VIEW v_host_exposure AS
WITH open_lineages AS (
    SELECT DISTINCT hu.host_id, u.source, u.name
    FROM host_updates hu
    JOIN updates u ON u.id = hu.update_id
    WHERE hu.state = 'missing'
),
lr AS (
    SELECT hu.host_id, u.source, u.name, hu.state, hu.first_seen_at AS s, hu.resolved_at AS e
    FROM host_updates hu
    JOIN updates u ON u.id = hu.update_id
    JOIN open_lineages o ON o.host_id = hu.host_id AND o.source = u.source AND o.name = u.name
),
cut AS (
    SELECT host_id, source, name, MAX(e) AS installed_at
    FROM lr
    WHERE state = 'installed'
    GROUP BY host_id, source, name
),
live AS (
    SELECT lr.host_id, lr.source, lr.name, lr.e,
           CASE WHEN c.installed_at IS NOT NULL AND c.installed_at > lr.s THEN c.installed_at ELSE lr.s END AS s
    FROM lr
    LEFT JOIN cut c ON c.host_id = lr.host_id AND c.source = lr.source AND c.name = lr.name
    WHERE lr.state <> 'installed' AND (c.installed_at IS NULL OR lr.e IS NULL OR lr.e > c.installed_at)
)
SELECT h.id AS host_id, h.name AS host, l.source, l.name, MAX(l.s) AS since
FROM live l
JOIN hosts h ON h.id = l.host_id
WHERE NOT EXISTS (
    SELECT 1 FROM live p
    WHERE p.host_id = l.host_id AND p.source = l.source AND p.name = l.name
      AND p.s < l.s AND (p.e IS NULL OR p.e >= l.s)
)
GROUP BY h.id, h.name, l.source, l.name
"""


def upgrade() -> None:
    # the id of a rollout (no foreign key: SQLite adds none to an existing table)
    op.add_column("rollouts", sa.Column("follows_rollout_id", sa.Integer))
    op.execute(_HOST_EXPOSURE_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW v_host_exposure")
    op.drop_column("rollouts", "follows_rollout_id")
