"""Create the core tables of DESIGN §3 with their constraints and indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 13:29:28.297679
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "amc_accounts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False, comment="AMC entity id (Advertiser id)"),
        sa.Column("marketplace_id", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("account_id <> ''", name=op.f("ck_amc_accounts_account_id_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amc_accounts")),
    )
    op.create_table(
        "scheduler_workers",
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "heartbeat_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "clock_skew_seconds",
            sa.Double(),
            nullable=True,
            comment="host clock minus database clock at the last heartbeat",
        ),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_scheduler_workers")),
    )
    op.create_index(
        "ix_scheduler_workers_heartbeat_at", "scheduler_workers", ["heartbeat_at"], unique=False
    )
    op.create_table(
        "amc_instances",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("instance_id", sa.Text(), nullable=False, comment="AMC string id, never ours"),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "instance_id <> ''", name=op.f("ck_amc_instances_instance_id_not_empty")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["amc_accounts.id"],
            name=op.f("fk_amc_instances_account_id_amc_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amc_instances")),
        sa.UniqueConstraint("instance_id", name=op.f("uq_amc_instances_instance_id")),
    )
    op.create_index(
        op.f("ix_amc_instances_account_id"), "amc_instances", ["account_id"], unique=False
    )
    op.create_table(
        "workflows",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("amc_workflow_id", sa.Text(), nullable=False),
        sa.Column("sql_query", sa.Text(), nullable=True),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["amc_instances.id"],
            name=op.f("fk_workflows_instance_id_amc_instances"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
    )
    op.create_index(op.f("ix_workflows_instance_id"), "workflows", ["instance_id"], unique=False)
    op.create_table(
        "workflow_schedules",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("workflow_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("cron_expression", sa.Text(), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("interval_anchor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timezone", sa.Text(), server_default=sa.text("'UTC'"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("misfire_policy", sa.Text(), server_default=sa.text("'skip'"), nullable=False),
        sa.Column(
            "misfire_grace_seconds", sa.Integer(), server_default=sa.text("300"), nullable=False
        ),
        sa.Column("max_catchup_runs", sa.Integer(), server_default=sa.text("10"), nullable=False),
        sa.Column("overlap_policy", sa.Text(), server_default=sa.text("'skip'"), nullable=False),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.Text(), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "fencing_token",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="incremented by every claim; later writes for a run must quote it",
        ),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column(
            "consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "misfire_policy IN ('skip', 'run_once', 'run_all')",
            name=op.f("ck_workflow_schedules_misfire_policy_allowed"),
        ),
        sa.CheckConstraint(
            "overlap_policy IN ('skip', 'allow')",
            name=op.f("ck_workflow_schedules_overlap_policy_allowed"),
        ),
        sa.CheckConstraint("timezone <> ''", name=op.f("ck_workflow_schedules_timezone_not_empty")),
        sa.CheckConstraint(
            "(cron_expression IS NULL) <> (interval_seconds IS NULL)",
            name=op.f("ck_workflow_schedules_exactly_one_spec"),
        ),
        sa.CheckConstraint(
            "(locked_by IS NULL) = (locked_at IS NULL)",
            name=op.f("ck_workflow_schedules_lock_complete"),
        ),
        sa.CheckConstraint(
            "consecutive_failures >= 0",
            name=op.f("ck_workflow_schedules_consecutive_failures_not_negative"),
        ),
        sa.CheckConstraint(
            "interval_anchor IS NULL OR interval_seconds IS NOT NULL",
            name=op.f("ck_workflow_schedules_anchor_needs_interval"),
        ),
        sa.CheckConstraint(
            "interval_seconds > 0", name=op.f("ck_workflow_schedules_interval_positive")
        ),
        sa.CheckConstraint(
            "max_catchup_runs > 0", name=op.f("ck_workflow_schedules_max_catchup_runs_positive")
        ),
        sa.CheckConstraint(
            "misfire_grace_seconds >= 0",
            name=op.f("ck_workflow_schedules_misfire_grace_not_negative"),
        ),
        sa.CheckConstraint(
            "paused_until IS NULL OR paused_at IS NOT NULL",
            name=op.f("ck_workflow_schedules_pause_until_needs_pause"),
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_schedules_workflow_id_workflows"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_schedules")),
    )
    op.create_index(
        "ix_workflow_schedules_due",
        "workflow_schedules",
        ["next_run_at"],
        unique=False,
        postgresql_where=sa.text(
            "enabled AND deleted_at IS NULL AND paused_at IS NULL AND locked_by IS NULL"
        ),
    )
    op.create_index(
        "ix_workflow_schedules_locked",
        "workflow_schedules",
        ["locked_at"],
        unique=False,
        postgresql_where=sa.text("locked_by IS NOT NULL"),
    )
    op.create_index(
        "ix_workflow_schedules_needs_next_run",
        "workflow_schedules",
        ["id"],
        unique=False,
        postgresql_where=sa.text("enabled AND deleted_at IS NULL AND next_run_at IS NULL"),
    )
    op.create_index(
        "ix_workflow_schedules_paused_until",
        "workflow_schedules",
        ["paused_until"],
        unique=False,
        postgresql_where=sa.text("paused_until IS NOT NULL"),
    )
    op.create_index(
        op.f("ix_workflow_schedules_workflow_id"),
        "workflow_schedules",
        ["workflow_id"],
        unique=False,
    )
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("schedule_id", sa.UUID(), nullable=False),
        sa.Column("workflow_id", sa.UUID(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("missed_slots", sa.Integer(), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("execution_id", sa.UUID(), nullable=True),
        sa.Column("amc_execution_id", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("parameters_override", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "request",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="the fully resolved request sent for this run",
        ),
        sa.Column(
            "correlation_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(status = 'skipped') = (skip_reason IS NOT NULL)",
            name=op.f("ck_schedule_runs_skipped_has_reason"),
        ),
        sa.CheckConstraint(
            "skip_reason IS NULL OR skip_reason IN ('misfire', 'overlap', 'quarantined')",
            name=op.f("ck_schedule_runs_skip_reason_allowed"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'dispatching', 'dispatched', "
            "'succeeded', 'failed', 'skipped', 'cancelled')",
            name=op.f("ck_schedule_runs_status_allowed"),
        ),
        sa.CheckConstraint(
            "trigger IN ('scheduled', 'manual')", name=op.f("ck_schedule_runs_trigger_allowed")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_schedule_runs_attempts_not_negative")),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["workflow_schedules.id"],
            name=op.f("fk_schedule_runs_schedule_id_workflow_schedules"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_schedule_runs_workflow_id_workflows"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_runs")),
    )
    op.create_index("ix_schedule_runs_finished_at", "schedule_runs", ["finished_at"], unique=False)
    op.create_index(
        "ix_schedule_runs_pending",
        "schedule_runs",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_schedule_runs_schedule_recent",
        "schedule_runs",
        ["schedule_id", sa.literal_column("scheduled_for DESC")],
        unique=False,
    )
    op.create_index(
        "ix_schedule_runs_unfinished",
        "schedule_runs",
        ["schedule_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'claimed', 'dispatching', 'dispatched')"),
    )
    op.create_index(
        op.f("ix_schedule_runs_workflow_id"), "schedule_runs", ["workflow_id"], unique=False
    )
    op.create_index(
        "uq_schedule_runs_slot",
        "schedule_runs",
        ["schedule_id", "scheduled_for"],
        unique=True,
        postgresql_where=sa.text("trigger = 'scheduled'"),
    )
    op.create_table(
        "workflow_executions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("workflow_id", sa.UUID(), nullable=False),
        sa.Column("amc_execution_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("schedule_run_id", sa.UUID(), nullable=True),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'unknown')",
            name=op.f("ck_workflow_executions_status_allowed"),
        ),
        sa.CheckConstraint(
            "trigger IN ('scheduled', 'manual')",
            name=op.f("ck_workflow_executions_trigger_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["schedule_run_id"],
            ["schedule_runs.id"],
            name=op.f("fk_workflow_executions_schedule_run_id_schedule_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_executions_workflow_id_workflows"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_executions")),
    )
    op.create_index(
        "ix_workflow_executions_amc_execution_id",
        "workflow_executions",
        ["amc_execution_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_workflow_executions_schedule_run_id"),
        "workflow_executions",
        ["schedule_run_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_workflow_executions_workflow_id"),
        "workflow_executions",
        ["workflow_id"],
        unique=False,
    )
    # schedule_runs and workflow_executions point at each other: the second key comes last.
    op.create_foreign_key(
        "fk_schedule_runs_execution_id_workflow_executions",
        "schedule_runs",
        "workflow_executions",
        ["execution_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_constraint(
        "fk_schedule_runs_execution_id_workflow_executions", "schedule_runs", type_="foreignkey"
    )
    op.drop_index(op.f("ix_workflow_executions_workflow_id"), table_name="workflow_executions")
    op.drop_index(op.f("ix_workflow_executions_schedule_run_id"), table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_amc_execution_id", table_name="workflow_executions")
    op.drop_table("workflow_executions")
    op.drop_index(
        "uq_schedule_runs_slot",
        table_name="schedule_runs",
        postgresql_where=sa.text("trigger = 'scheduled'"),
    )
    op.drop_index(op.f("ix_schedule_runs_workflow_id"), table_name="schedule_runs")
    op.drop_index(
        "ix_schedule_runs_unfinished",
        table_name="schedule_runs",
        postgresql_where=sa.text("status IN ('pending', 'claimed', 'dispatching', 'dispatched')"),
    )
    op.drop_index("ix_schedule_runs_schedule_recent", table_name="schedule_runs")
    op.drop_index(
        "ix_schedule_runs_pending",
        table_name="schedule_runs",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_schedule_runs_finished_at", table_name="schedule_runs")
    op.drop_table("schedule_runs")
    op.drop_index(op.f("ix_workflow_schedules_workflow_id"), table_name="workflow_schedules")
    op.drop_index(
        "ix_workflow_schedules_paused_until",
        table_name="workflow_schedules",
        postgresql_where=sa.text("paused_until IS NOT NULL"),
    )
    op.drop_index(
        "ix_workflow_schedules_needs_next_run",
        table_name="workflow_schedules",
        postgresql_where=sa.text("enabled AND deleted_at IS NULL AND next_run_at IS NULL"),
    )
    op.drop_index(
        "ix_workflow_schedules_locked",
        table_name="workflow_schedules",
        postgresql_where=sa.text("locked_by IS NOT NULL"),
    )
    op.drop_index(
        "ix_workflow_schedules_due",
        table_name="workflow_schedules",
        postgresql_where=sa.text(
            "enabled AND deleted_at IS NULL AND paused_at IS NULL AND locked_by IS NULL"
        ),
    )
    op.drop_table("workflow_schedules")
    op.drop_index(op.f("ix_workflows_instance_id"), table_name="workflows")
    op.drop_table("workflows")
    op.drop_index(op.f("ix_amc_instances_account_id"), table_name="amc_instances")
    op.drop_table("amc_instances")
    op.drop_index("ix_scheduler_workers_heartbeat_at", table_name="scheduler_workers")
    op.drop_table("scheduler_workers")
    op.drop_table("amc_accounts")
