"""Vulnerability facts of apt updates: the candidate's Debian changelog, read once per source
package and version for the whole fleet.

``apt_changelogs``: one row per (source package, source version): ``status`` (``parsed``,
``unreadable``: the package came and its changelog could not be read, ``fetch_failed``: no
package could be downloaded, tried again by the next scan), ``reason``, ``entries`` (the parsed
entries, newest first: version, urgency, CVEs, DSA/DLA ids, date), the host and package it came
from, when, and how many package files were downloaded for it.

``updates`` gets ``source_package`` and ``source_version`` (apt: the changelog's key) and
``urgency`` (the highest Debian urgency of the entries the update brings). The CVE ids go to
the existing ``cves`` column and the DSA/DLA ids to ``advisory_ids``.

``v_update_changelogs``: one row per apt update with a source package: its changelog's status
and reason beside the parsed fields. ``v_time_to_patch``: per host and update found installed
after it was missing, since when it was missing and when it was found installed (the SLA
section's time to patch).

Revision ID: 0011_cve
Revises: 0009_lineage
Create Date: 2026-12-06

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_cve"
down_revision: str | None = "0009_lineage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UPDATE_CHANGELOGS_SQL = """
CREATE VIEW v_update_changelogs AS
SELECT u.id AS update_id, u.uid, u.name, u.version, u.classification,
       u.source_package, u.source_version, u.urgency, u.cves, u.advisory_ids,
       c.status AS changelog_status, c.reason AS changelog_reason,
       c.host AS changelog_host, c.fetched_at AS changelog_fetched_at
FROM updates u
LEFT JOIN apt_changelogs c ON c.source_package = u.source_package AND c.source_version = u.source_version
WHERE u.source = 'apt' AND u.source_package IS NOT NULL
"""

# SLAs: per host and update found installed after it was missing, the time it took
_TIME_TO_PATCH_SQL = """
CREATE VIEW v_time_to_patch AS
SELECT h.id AS host_id, h.name AS host, u.id AS update_id, u.uid, u.source, u.name, u.version,
       u.classification, u.severity, u.urgency,
       hu.first_seen_at AS missing_since, hu.resolved_at AS installed_at
FROM host_updates hu
JOIN hosts h ON h.id = hu.host_id
JOIN updates u ON u.id = hu.update_id
WHERE hu.state = 'installed' AND hu.resolved_at IS NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        "apt_changelogs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source_package", sa.String(255), nullable=False),
        sa.Column("source_version", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("entries", sa.Text),  # JSON
        sa.Column("host", sa.String(255)),
        sa.Column("package", sa.String(512)),
        sa.Column("downloads", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("source_package", "source_version", name="uq_apt_changelogs_source"),
    )
    op.add_column("updates", sa.Column("source_package", sa.String(255)))
    op.add_column("updates", sa.Column("source_version", sa.String(255)))
    op.add_column("updates", sa.Column("urgency", sa.String(16)))
    op.create_index("ix_updates_source_package", "updates", ["source_package", "source_version"])
    op.execute(_UPDATE_CHANGELOGS_SQL)
    op.execute(_TIME_TO_PATCH_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW v_time_to_patch")
    op.execute("DROP VIEW v_update_changelogs")
    op.drop_index("ix_updates_source_package", "updates")
    for column in ("urgency", "source_version", "source_package"):
        op.drop_column("updates", column)
    op.drop_table("apt_changelogs")
