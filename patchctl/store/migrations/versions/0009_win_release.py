"""The release date of an update, where its source gives one (``updates.released_at``).

Windows Update dates every update (WUA's ``LastDeploymentChangeTime``, read by
``patch_win_update_info``); the policy's ``approve_after_days`` counts from it when it is known,
from ``first_seen_at`` otherwise. NULL for the rows of earlier scans and for sources that give no
date (apt, dnf, zypper, Chocolatey): the next scan that reports a dated update fills it.

Revision ID: 0009_win_release
Revises: 0008
Create Date: 2026-12-04

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_win_release"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a timestamp as in 0001: DateTime(timezone=True)
    op.add_column("updates", sa.Column("released_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("updates", "released_at")
