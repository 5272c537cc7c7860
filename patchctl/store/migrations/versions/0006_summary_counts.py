"""Summary counts kept beside the rows they summarize, so that ``patchctl report`` on 10,000 hosts
x 100 missing updates reads 10,000 host rows and 30 run rows instead of aggregating a million
``host_updates`` rows and 300,000 ``scans`` rows.

- ``hosts.missing_total``, ``hosts.missing_<classification>`` (one per classification, frozen
  below; unknown ones count as ``other``), ``hosts.missing_major``: what is missing on the host
  now, by the catalog's classification and ``major``. Every writer of ``host_updates`` (a scan,
  a deploy result) keeps them in the same transaction. ``v_host_compliance`` now reads them
  (same columns as before, same meaning).
- ``scan_runs.scans_total``, ``scans_compliant``, ``scans_missing``, ``scans_reboot_pending``,
  ``scans_failed``, ``scans_unreachable``, ``scans_missing_updates``: the report's history point
  of the run (every scan of the run counted, as the report's history always counted them),
  written when the run finishes; NULL while it runs.

Existing rows are filled here from ``host_updates`` and ``scans``.

Revision ID: 0006
Revises: 0005
Create Date: 2024-07-01

Spelled out here (not imported from ``schema.py``), like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of patchctl.rules.model.CLASSIFICATIONS as of this revision (the same as 0001's).
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
_RUN_COLUMNS = (
    "scans_total",
    "scans_compliant",
    "scans_missing",
    "scans_reboot_pending",
    "scans_failed",
    "scans_unreachable",
    "scans_missing_updates",
)


def _class_condition(c: str) -> str:
    if c != "other":
        return f"u.classification = '{c}'"
    known = ", ".join(f"'{k}'" for k in _CLASSIFICATIONS)
    return f"(u.classification = 'other' OR u.classification NOT IN ({known}))"


def _fill_hosts_sql() -> str:
    sums = ",\n           ".join(
        f"SUM(CASE WHEN {_class_condition(c)} THEN 1 ELSE 0 END) AS n_{c}" for c in _CLASSIFICATIONS
    )
    sets = ",\n    ".join(f"missing_{c} = m.n_{c}" for c in _CLASSIFICATIONS)
    # Built only from the constants above, never from input. UPDATE ... FROM: SQLite >= 3.33.
    return f"""
UPDATE hosts SET
    missing_total = m.n_total,
    {sets},
    missing_major = m.n_major
FROM (
    SELECT hu.host_id,
           COUNT(*) AS n_total,
           {sums},
           SUM(CASE WHEN u.major THEN 1 ELSE 0 END) AS n_major
    FROM host_updates hu
    JOIN updates u ON u.id = hu.update_id
    WHERE hu.state = 'missing'
    GROUP BY hu.host_id
) AS m
WHERE m.host_id = hosts.id
"""  # noqa: S608


# The same counts as the report's history query (patchctl/store/reports.py) over each run's scans.
_FILL_RUNS_SQL = """
UPDATE scan_runs SET
    scans_total = s.n,
    scans_compliant = s.compliant,
    scans_missing = s.missing,
    scans_reboot_pending = s.reboot_pending,
    scans_failed = s.failed,
    scans_unreachable = s.unreachable,
    scans_missing_updates = s.missing_updates
FROM (
    SELECT run_id,
           COUNT(*) AS n,
           SUM(CASE WHEN status = 'ok' AND COALESCE(missing_total, 0) = 0
                     AND NOT (reboot_required IS TRUE) THEN 1 ELSE 0 END) AS compliant,
           SUM(CASE WHEN status = 'ok' AND missing_total > 0 THEN 1 ELSE 0 END) AS missing,
           SUM(CASE WHEN status = 'ok' AND COALESCE(missing_total, 0) = 0
                     AND reboot_required IS TRUE THEN 1 ELSE 0 END) AS reboot_pending,
           SUM(CASE WHEN status NOT IN ('ok', 'unreachable') THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN status = 'unreachable' THEN 1 ELSE 0 END) AS unreachable,
           SUM(CASE WHEN status = 'ok' THEN COALESCE(missing_total, 0) ELSE 0 END) AS missing_updates
    FROM scans
    GROUP BY run_id
) AS s
WHERE s.run_id = scan_runs.id AND scan_runs.finished_at IS NOT NULL
"""


def _host_compliance_sql(from_summary: bool) -> str:
    """The view: reading the hosts' summary columns (this revision), or aggregating (0001)."""
    if from_summary:
        counts = ",\n       ".join(
            ["h.missing_total", *(f"h.missing_{c}" for c in _CLASSIFICATIONS), "h.missing_major"]
        )
        source = "FROM hosts h"
    else:
        counts = ",\n       ".join(
            [
                "COALESCE(m.n_total, 0) AS missing_total",
                *(f"COALESCE(m.n_{c}, 0) AS missing_{c}" for c in _CLASSIFICATIONS),
                "COALESCE(m.n_major, 0) AS missing_major",
            ]
        )
        sums = ",\n           ".join(
            f"SUM(CASE WHEN {_class_condition(c)} THEN 1 ELSE 0 END) AS n_{c}" for c in _CLASSIFICATIONS
        )
        source = f"""FROM hosts h
LEFT JOIN (
    SELECT hu.host_id,
           COUNT(*) AS n_total,
           {sums},
           SUM(CASE WHEN u.major THEN 1 ELSE 0 END) AS n_major
    FROM host_updates hu
    JOIN updates u ON u.id = hu.update_id
    WHERE hu.state = 'missing'
    GROUP BY hu.host_id
) m ON m.host_id = h.id"""  # noqa: S608
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
       {counts},
       h.reboot_required,
       h.reboot_required_since
{source}
"""


def upgrade() -> None:
    for name in ("missing_total", *(f"missing_{c}" for c in _CLASSIFICATIONS), "missing_major"):
        op.add_column("hosts", sa.Column(name, sa.Integer, nullable=False, server_default="0"))
    for name in _RUN_COLUMNS:
        op.add_column("scan_runs", sa.Column(name, sa.Integer))
    op.execute(_fill_hosts_sql())
    op.execute(_FILL_RUNS_SQL)
    op.execute("DROP VIEW IF EXISTS v_host_compliance")
    op.execute(_host_compliance_sql(from_summary=True))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_host_compliance")
    op.execute(_host_compliance_sql(from_summary=False))
    for name in reversed(_RUN_COLUMNS):
        op.drop_column("scan_runs", name)
    for name in ("missing_major", *(f"missing_{c}" for c in reversed(_CLASSIFICATIONS)), "missing_total"):
        op.drop_column("hosts", name)
