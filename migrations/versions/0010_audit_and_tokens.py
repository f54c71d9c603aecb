"""Who changed what, and when: the audit trail; and the API's bearer tokens.

``audit_log`` gets a row for every change to a schedule, a workflow, an instance, an account
or an API token, and for every manual run queued. Triggers write it, not the commands, so
that every path (the CLI, ``sync``, the API, the daemon's own auto-pause and quarantine, and
psql) is recorded without each remembering to. A row holds only the columns that changed,
each before and after, as JSON in UTC; bookkeeping (``updated_at``, ``next_run_at``, the
claim's lock, failure counts, a token's hash and last use) is not recorded.

Who: the transaction's ``scheduler.actor`` setting (``SELECT set_config('scheduler.actor',
'cli:alice', true)``, as the CLI and the API do), else ``daemon`` for a connection of
scheduler-daemon's own (``application_name``), else ``sql:`` and the database role.

``api_tokens`` keeps only the SHA-256 of each token.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ENTITIES = ("account", "instance", "workflow", "schedule", "token")
ACTIONS = (
    "create",
    "update",
    "delete",
    "pause",
    "resume",
    "enable",
    "disable",
    "trigger",
    "revoke",
)

# table, entity, the columns recorded: what an operator sets. A schedule's runtime state
# (next_run_at, last_run_at, locked_by, locked_at, fencing_token, consecutive_failures,
# last_error) is left out: the daemon's claims and releases write it thousands of times a
# second and never fire the trigger, whose UPDATE OF lists these columns only.
AUDITED = (
    ("amc_accounts", "account", ("name", "account_id", "marketplace_id", "region")),
    ("amc_instances", "instance", ("name", "instance_id", "account_id")),
    (
        "workflows",
        "workflow",
        ("name", "user_id", "instance_id", "amc_workflow_id", "sql_query", "parameters"),
    ),
    (
        "workflow_schedules",
        "schedule",
        (
            "name",
            "workflow_id",
            "user_id",
            "config_key",
            "cron_expression",
            "interval_seconds",
            "interval_anchor",
            "timezone",
            "enabled",
            "misfire_policy",
            "misfire_grace_seconds",
            "max_catchup_runs",
            "overlap_policy",
            "parameters",
            "paused_at",
            "paused_until",
            "pause_reason",
            "deleted_at",
        ),
    ),
    ("api_tokens", "token", ("name", "role", "created_by", "revoked_at")),
)

FUNCTIONS = """
CREATE FUNCTION scheduler_daemon_actor() RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(nullif(current_setting('scheduler.actor', true), ''),
                    CASE WHEN current_setting('application_name') = 'scheduler-daemon'
                         THEN 'daemon'
                         ELSE 'sql:' || session_user END)
$$;

-- The trigger functions' arguments: the entity, then the columns recorded. They run in UTC,
-- so that the times recorded read alike whoever made the change.

-- Rows inserted or deleted, a statement at a time: one INSERT for a whole batch (a sync of a
-- thousand schedules, a bulk load) where a row trigger would run once per row.
CREATE FUNCTION scheduler_daemon_audit_rows() RETURNS trigger
LANGUAGE plpgsql SET timezone = 'UTC'
AS $$
DECLARE
    -- 'name', r.name, 'enabled', r.enabled, ...: jsonb_build_object's arguments
    recorded text := (SELECT string_agg(format('%L, r.%I', c, c), ', ')
                        FROM unnest(TG_ARGV[1:]) AS c);
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO audit_log (actor, entity, entity_id, entity_name, action,
                                               after)
                        SELECT scheduler_daemon_actor(), %L, r.id, r.name, ''create'',
                               jsonb_build_object(%s)
                          FROM new_rows AS r', TG_ARGV[0], recorded);
    ELSE
        EXECUTE format('INSERT INTO audit_log (actor, entity, entity_id, entity_name, action,
                                               before)
                        SELECT scheduler_daemon_actor(), %L, r.id, r.name, ''delete'',
                               jsonb_build_object(%s)
                          FROM old_rows AS r', TG_ARGV[0], recorded);
    END IF;
    RETURN NULL;
END;
$$;

-- A row updated: the recorded columns that changed, and what the change was.
CREATE FUNCTION scheduler_daemon_audit_update() RETURNS trigger
LANGUAGE plpgsql SET timezone = 'UTC'
AS $$
DECLARE
    entity text := TG_ARGV[0];
    new_row jsonb := to_jsonb(NEW);
    before jsonb;
    after jsonb;
    action text;
BEGIN
    SELECT jsonb_object_agg(n.key, o.value), jsonb_object_agg(n.key, n.value)
      INTO before, after
      FROM jsonb_each(new_row) AS n
      JOIN jsonb_each(to_jsonb(OLD)) AS o ON o.key = n.key
     WHERE n.key = ANY(TG_ARGV[1:]) AND n.value IS DISTINCT FROM o.value;
    IF after IS NULL THEN
        RETURN NULL;
    END IF;
    action := CASE
        WHEN entity = 'schedule' AND after ? 'deleted_at'
             AND before->'deleted_at' = 'null' THEN 'delete'
        WHEN entity = 'schedule' AND after ? 'enabled'
             AND after - ARRAY['enabled', 'paused_at', 'paused_until', 'pause_reason'] = '{}'
            THEN CASE WHEN (after->>'enabled')::boolean THEN 'enable' ELSE 'disable' END
        WHEN entity = 'schedule'
             AND after - ARRAY['paused_at', 'paused_until', 'pause_reason'] = '{}'
            THEN CASE WHEN new_row->'paused_at' = 'null' THEN 'resume' ELSE 'pause' END
        WHEN entity = 'token' AND after ? 'revoked_at' AND after->'revoked_at' <> 'null'
            THEN 'revoke'
        ELSE 'update'
    END;
    INSERT INTO audit_log (actor, entity, entity_id, entity_name, action, before, after)
    VALUES (scheduler_daemon_actor(), entity, NEW.id, NEW.name, action, before, after);
    RETURN NULL;
END;
$$;

CREATE FUNCTION scheduler_daemon_audit_manual_run() RETURNS trigger
LANGUAGE plpgsql SET timezone = 'UTC'
AS $$
BEGIN
    INSERT INTO audit_log (actor, entity, entity_id, entity_name, action, after)
    SELECT scheduler_daemon_actor(), 'schedule', s.id, s.name, 'trigger',
           jsonb_build_object('run_id', NEW.id, 'scheduled_for', NEW.scheduled_for,
                              'parameters_override', NEW.parameters_override)
      FROM workflow_schedules s
     WHERE s.id = NEW.schedule_id;
    RETURN NULL;
END;
$$;
"""


def _triggers(table: str, entity: str, columns: tuple[str, ...]) -> str:
    arguments = ", ".join(f"'{value}'" for value in (entity, *columns))
    listed = ", ".join(columns)
    # A statement that sets a recorded column to the value it has (the daemon's outcome
    # writes set paused_at to itself) is filtered here, before any function is called.
    old = ", ".join(f"OLD.{column}" for column in columns)
    new = ", ".join(f"NEW.{column}" for column in columns)
    return f"""
CREATE TRIGGER {table}_audit_insert
AFTER INSERT ON {table}
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION scheduler_daemon_audit_rows({arguments});

CREATE TRIGGER {table}_audit_delete
AFTER DELETE ON {table}
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION scheduler_daemon_audit_rows({arguments});

CREATE TRIGGER {table}_audit_update
AFTER UPDATE OF {listed} ON {table}
FOR EACH ROW
WHEN (ROW({old}) IS DISTINCT FROM ROW({new}))
EXECUTE FUNCTION scheduler_daemon_audit_update({arguments});
"""


MANUAL_RUN_TRIGGER = """
CREATE TRIGGER schedule_runs_audit_manual_run
AFTER INSERT ON schedule_runs
FOR EACH ROW
WHEN (NEW.trigger = 'manual')
EXECUTE FUNCTION scheduler_daemon_audit_manual_run();
"""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column(
            "token_hash",
            sa.Text(),
            nullable=False,
            comment="SHA-256 of the token, hex; the token itself is never stored",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("btrim(name) <> ''", name=op.f("ck_api_tokens_name_not_blank")),
        sa.CheckConstraint("role IN ('read', 'write')", name=op.f("ck_api_tokens_role_allowed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.UUID(), nullable=False),
        sa.Column("entity_name", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(_in("entity", ENTITIES), name=op.f("ck_audit_log_entity_allowed")),
        sa.CheckConstraint(_in("action", ACTIONS), name=op.f("ck_audit_log_action_allowed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_history",
        "audit_log",
        ["entity", "entity_id", sa.literal_column("id DESC")],
        unique=False,
    )
    op.execute(FUNCTIONS)
    for table, entity, columns in AUDITED:
        op.execute(_triggers(table, entity, columns))
    op.execute(MANUAL_RUN_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER schedule_runs_audit_manual_run ON schedule_runs")
    for table, _, _ in AUDITED:
        for event in ("update", "delete", "insert"):
            op.execute(f"DROP TRIGGER {table}_audit_{event} ON {table}")
    op.execute("DROP FUNCTION scheduler_daemon_audit_manual_run()")
    op.execute("DROP FUNCTION scheduler_daemon_audit_update()")
    op.execute("DROP FUNCTION scheduler_daemon_audit_rows()")
    op.execute("DROP FUNCTION scheduler_daemon_actor()")
    op.drop_index("ix_audit_log_history", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
