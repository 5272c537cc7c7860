"""Decisions and audit trail (append-only), rollouts with frozen updates, waves, deploy results,
incidents, and the views v_update_decisions, v_audit_log and v_wave_progress.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-08

Spelled out here (not imported from ``schema.py``), like 0001. Triggers make ``decisions``,
``audit_events`` and ``rollout_updates`` refuse UPDATE and DELETE: on SQLite ``RAISE(ABORT)``, on
PostgreSQL a PL/pgSQL trigger function (and TRUNCATE is refused there too).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY = ("decisions", "audit_events", "rollout_updates")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


_UPDATE_DECISIONS_SQL = """
CREATE VIEW v_update_decisions AS
SELECT d.update_id,
       d.uid,
       d.state,
       d.actor,
       d.automatic,
       d.major,
       d.reason,
       d.decided_at,
       d.id AS decision_id
FROM decisions d
JOIN (SELECT update_id, MAX(id) AS id FROM decisions GROUP BY update_id) last ON last.id = d.id
"""

_AUDIT_LOG_SQL = """
CREATE VIEW v_audit_log AS
SELECT d.decided_at AS at,
       d.actor,
       CASE WHEN d.automatic THEN 'policy ' || d.state ELSE d.state END AS action,
       d.uid AS subject,
       NULL AS rollout_id,
       d.reason AS detail,
       'decision' AS source,
       d.id AS source_id
FROM decisions d
UNION ALL
SELECT e.at, e.actor, e.action, e.subject, e.rollout_id, e.detail, 'event' AS source, e.id AS source_id
FROM audit_events e
"""

_WAVE_PROGRESS_SQL = """
CREATE VIEW v_wave_progress AS
SELECT w.rollout_id,
       w.position,
       w.name AS wave,
       w.state,
       w.hosts_total,
       COALESCE(r.n_ok, 0) AS hosts_ok,
       COALESCE(r.n_failed, 0) AS hosts_failed,
       COALESCE(r.n_unreachable, 0) AS hosts_unreachable,
       w.hosts_total - COALESCE(r.n_ok, 0) - COALESCE(r.n_failed, 0) - COALESCE(r.n_unreachable, 0)
           AS hosts_pending,
       w.promoted_at,
       w.started_at,
       w.finished_at,
       w.bake_days,
       w.halted_reason
FROM rollout_waves w
LEFT JOIN (
    SELECT dr.rollout_id,
           dr.wave,
           SUM(CASE WHEN dr.status = 'ok' THEN 1 ELSE 0 END) AS n_ok,
           SUM(CASE WHEN dr.status = 'failed' THEN 1 ELSE 0 END) AS n_failed,
           SUM(CASE WHEN dr.status = 'unreachable' THEN 1 ELSE 0 END) AS n_unreachable
    FROM deploy_results dr
    JOIN (SELECT rollout_id, host, MAX(id) AS id FROM deploy_results GROUP BY rollout_id, host) last
      ON last.id = dr.id
    GROUP BY dr.rollout_id, dr.wave
) r ON r.rollout_id = w.rollout_id AND r.wave = w.name
"""


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("update_id", sa.Integer, sa.ForeignKey("updates.id"), nullable=False),
        sa.Column("uid", sa.String(512), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("automatic", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("major", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text),
        sa.Column("decided_at", _ts(), nullable=False),
    )
    op.create_index("ix_decisions_update", "decisions", ["update_id", "id"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("policy_source", sa.Text, nullable=False),
        sa.Column("waves", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(512)),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id")),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_table(
        "rollout_updates",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("update_id", sa.Integer, sa.ForeignKey("updates.id"), primary_key=True),
        sa.Column("uid", sa.String(512), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("classification", sa.String(32), nullable=False),
        sa.Column("major", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("update_ref", sa.String(128)),
        sa.Column("kbs", sa.Text),
    )
    op.create_table(
        "rollout_waves",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("hosts", sa.Text),
        sa.Column("hosts_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("bake_days", sa.Float, nullable=False),
        sa.Column("promoted_at", _ts()),
        sa.Column("started_at", _ts()),
        sa.Column("finished_at", _ts()),
        sa.Column("halted_reason", sa.Text),
    )
    op.create_table(
        "deploy_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("wave", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts()),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_table(
        "deploy_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("deploy_runs.id"), nullable=False),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("wave", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("installed", sa.Text),
        sa.Column("present", sa.Text),
        sa.Column("failed", sa.Text),
        sa.Column("reboot_required", sa.Boolean),
        sa.Column("error", sa.Text),
        sa.Column("finished_at", _ts(), nullable=False),
    )
    op.create_index("ix_deploy_results_rollout_host", "deploy_results", ["rollout_id", "host"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("host", sa.String(255)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("opened_at", _ts(), nullable=False),
        sa.Column("opened_by", sa.String(128), nullable=False),
        sa.Column("closed_at", _ts()),
        sa.Column("closed_by", sa.String(128)),
        sa.Column("close_reason", sa.Text),
    )
    op.create_index("ix_incidents_rollout", "incidents", ["rollout_id", "closed_at"])
    op.execute(_UPDATE_DECISIONS_SQL)
    op.execute(_AUDIT_LOG_SQL)
    op.execute(_WAVE_PROGRESS_SQL)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in _APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
    elif dialect == "postgresql":
        op.execute(_PG_APPEND_ONLY_FUNCTION)
        for table in _APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION patchctl_append_only()"
                )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION patchctl_append_only()"
            )


# The same message as SQLite's triggers: "<table> is append-only".
_PG_APPEND_ONLY_FUNCTION = """
CREATE FUNCTION patchctl_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$
"""


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in _APPEND_ONLY:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
    elif dialect == "postgresql":
        for table in _APPEND_ONLY:
            for verb in ("update", "delete", "truncate"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS patchctl_append_only()")
    op.execute("DROP VIEW IF EXISTS v_wave_progress")
    op.execute("DROP VIEW IF EXISTS v_audit_log")
    op.execute("DROP VIEW IF EXISTS v_update_decisions")
    op.drop_table("incidents")
    op.drop_table("deploy_results")
    op.drop_table("deploy_runs")
    op.drop_table("rollout_waves")
    op.drop_table("rollout_updates")
    op.drop_table("audit_events")
    op.drop_table("rollouts")
    op.drop_table("decisions")
