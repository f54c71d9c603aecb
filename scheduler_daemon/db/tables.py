"""The schema as SQLAlchemy Core tables (DESIGN §3).

The migrations in ``migrations/versions`` create exactly this; a test compares the two.
Constraints live in the database, so a row written by hand in SQL obeys them too.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from scheduler_daemon.domain import (
    UNFINISHED_RUN_STATUSES,
    AuditAction,
    AuditEntity,
    ExecutionStatus,
    MisfirePolicy,
    OverlapPolicy,
    RunStatus,
    RunTrigger,
    SkipReason,
    TokenRole,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Each list of allowed values comes from its enum in the domain module.
MISFIRE_POLICIES = tuple(MisfirePolicy)
OVERLAP_POLICIES = tuple(OverlapPolicy)
RUN_TRIGGERS = tuple(RunTrigger)
RUN_STATUSES = tuple(RunStatus)
SKIP_REASONS = tuple(SkipReason)
EXECUTION_STATUSES = tuple(ExecutionStatus)
TOKEN_ROLES = tuple(TokenRole)
AUDIT_ENTITIES = tuple(AuditEntity)
AUDIT_ACTIONS = tuple(AuditAction)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def _uuid_pk() -> Column[object]:
    return Column(
        "id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def _created_at() -> Column[object]:
    return Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
    )


def _updated_at() -> Column[object]:
    return Column(
        "updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
    )


amc_accounts = Table(
    "amc_accounts",
    metadata,
    _uuid_pk(),
    Column("account_id", Text, nullable=False, comment="AMC entity id (Advertiser id)"),
    Column("marketplace_id", Text),
    Column("region", Text),
    Column("name", Text, nullable=False, unique=True),
    _created_at(),
    CheckConstraint("account_id <> ''", name="account_id_not_empty"),
    CheckConstraint("btrim(name) <> ''", name="name_not_blank"),
)

amc_instances = Table(
    "amc_instances",
    metadata,
    _uuid_pk(),
    Column("instance_id", Text, nullable=False, unique=True, comment="AMC string id, never ours"),
    Column(
        "account_id",
        UUID(as_uuid=True),
        ForeignKey("amc_accounts.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("name", Text, nullable=False, unique=True),
    _created_at(),
    CheckConstraint("instance_id <> ''", name="instance_id_not_empty"),
    CheckConstraint("btrim(name) <> ''", name="name_not_blank"),
)

workflows = Table(
    "workflows",
    metadata,
    _uuid_pk(),
    Column("name", Text, nullable=False, unique=True),
    Column("user_id", Text),
    Column(
        "instance_id",
        UUID(as_uuid=True),
        ForeignKey("amc_instances.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("amc_workflow_id", Text, nullable=False),
    Column("sql_query", Text),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _created_at(),
    _updated_at(),
    CheckConstraint("btrim(name) <> ''", name="name_not_blank"),
)

workflow_schedules = Table(
    "workflow_schedules",
    metadata,
    _uuid_pk(),
    Column(
        "workflow_id",
        UUID(as_uuid=True),
        # Schedules are soft-deleted; a workflow with schedules cannot vanish under them.
        ForeignKey("workflows.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("user_id", Text),
    Column("name", Text, nullable=False),
    Column("cron_expression", Text),
    Column("interval_seconds", Integer),
    Column("interval_anchor", DateTime(timezone=True)),
    Column("timezone", Text, nullable=False, server_default=text("'UTC'")),
    Column("enabled", Boolean, nullable=False, server_default=text("false")),
    Column("misfire_policy", Text, nullable=False, server_default=text("'skip'")),
    Column("misfire_grace_seconds", Integer, nullable=False, server_default=text("300")),
    Column("max_catchup_runs", Integer, nullable=False, server_default=text("10")),
    Column("overlap_policy", Text, nullable=False, server_default=text("'skip'")),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("next_run_at", DateTime(timezone=True)),
    Column("last_run_at", DateTime(timezone=True)),
    Column("locked_by", Text),
    Column("locked_at", DateTime(timezone=True)),
    Column(
        "fencing_token",
        BigInteger,
        nullable=False,
        server_default=text("0"),
        comment="incremented by every claim; later writes for a run must quote it",
    ),
    Column("paused_at", DateTime(timezone=True)),
    Column("paused_until", DateTime(timezone=True)),
    Column("pause_reason", Text),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    _created_at(),
    _updated_at(),
    Column("deleted_at", DateTime(timezone=True)),
    Column(
        "config_key",
        Text,
        comment="set for schedules managed by a config file: their key in it",
    ),
    CheckConstraint(
        "(cron_expression IS NULL) <> (interval_seconds IS NULL)", name="exactly_one_spec"
    ),
    CheckConstraint("interval_seconds > 0", name="interval_positive"),
    CheckConstraint(
        "interval_anchor IS NULL OR interval_seconds IS NOT NULL", name="anchor_needs_interval"
    ),
    CheckConstraint("timezone <> ''", name="timezone_not_empty"),
    CheckConstraint(_in("misfire_policy", MISFIRE_POLICIES), name="misfire_policy_allowed"),
    CheckConstraint(_in("overlap_policy", OVERLAP_POLICIES), name="overlap_policy_allowed"),
    CheckConstraint("misfire_grace_seconds >= 0", name="misfire_grace_not_negative"),
    CheckConstraint("max_catchup_runs > 0", name="max_catchup_runs_positive"),
    CheckConstraint("consecutive_failures >= 0", name="consecutive_failures_not_negative"),
    CheckConstraint("(locked_by IS NULL) = (locked_at IS NULL)", name="lock_complete"),
    CheckConstraint(
        "paused_until IS NULL OR paused_at IS NOT NULL", name="pause_until_needs_pause"
    ),
    # The tick's "select due" reads this index only: O(due), not O(schedules).
    Index(
        "ix_workflow_schedules_due",
        "next_run_at",
        postgresql_where=text(
            "enabled AND deleted_at IS NULL AND paused_at IS NULL AND locked_by IS NULL"
        ),
    ),
    Index(
        "uq_workflow_schedules_config_key",
        "config_key",
        unique=True,
        postgresql_where=text("config_key IS NOT NULL AND deleted_at IS NULL"),
    ),
    Index(
        "ix_workflow_schedules_locked",
        "locked_at",
        postgresql_where=text("locked_by IS NOT NULL"),
    ),
    Index(
        "ix_workflow_schedules_paused_until",
        "paused_until",
        postgresql_where=text("paused_until IS NOT NULL"),
    ),
    Index(
        "ix_workflow_schedules_paused",
        "paused_at",
        postgresql_where=text("paused_at IS NOT NULL"),
    ),
    # The listings by next run (none last) and by creation read a page of these (keyset).
    Index(
        "ix_workflow_schedules_next_run_listed",
        text("coalesce(next_run_at, 'infinity')"),
        "id",
        postgresql_where=text("deleted_at IS NULL"),
    ),
    Index(
        "ix_workflow_schedules_created_listed",
        "created_at",
        "id",
        postgresql_where=text("deleted_at IS NULL"),
    ),
    Index(
        "ix_workflow_schedules_needs_next_run",
        "id",
        postgresql_where=text("enabled AND deleted_at IS NULL AND next_run_at IS NULL"),
    ),
    # Commands take a schedule's name wherever they take its id; a deleted one frees its name.
    Index(
        "uq_workflow_schedules_name",
        "name",
        unique=True,
        postgresql_where=text("deleted_at IS NULL"),
    ),
    CheckConstraint("btrim(name) <> ''", name="name_not_blank"),
)

workflow_executions = Table(
    "workflow_executions",
    metadata,
    _uuid_pk(),
    Column(
        "workflow_id",
        UUID(as_uuid=True),
        ForeignKey("workflows.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("amc_execution_id", Text),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("trigger", Text, nullable=False),
    Column(
        "schedule_run_id",
        UUID(as_uuid=True),
        ForeignKey("schedule_runs.id", ondelete="SET NULL"),
        index=True,
    ),
    Column("request", JSONB),
    Column("submitted_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("error_message", Text),
    _created_at(),
    _updated_at(),
    Column("next_poll_at", DateTime(timezone=True)),
    Column("poll_count", Integer, nullable=False, server_default=text("0")),
    Column("raw_status", Text),
    CheckConstraint(_in("status", EXECUTION_STATUSES), name="status_allowed"),
    CheckConstraint(_in("trigger", RUN_TRIGGERS), name="trigger_allowed"),
    Index("ix_workflow_executions_amc_execution_id", "amc_execution_id"),
    Index(
        "ix_workflow_executions_status_due",
        text("COALESCE(next_poll_at, submitted_at)"),
        postgresql_where=text("status IN ('pending', 'running')"),
    ),
)

schedule_runs = Table(
    "schedule_runs",
    metadata,
    _uuid_pk(),
    Column(
        "schedule_id",
        UUID(as_uuid=True),
        # History is kept: a schedule with runs can only be soft-deleted.
        ForeignKey("workflow_schedules.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column(
        "workflow_id",
        UUID(as_uuid=True),
        ForeignKey("workflows.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("scheduled_for", DateTime(timezone=True), nullable=False),
    Column("trigger", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("skip_reason", Text),
    Column("missed_slots", Integer),
    Column("fencing_token", BigInteger),
    Column("worker_id", Text),
    Column("claimed_at", DateTime(timezone=True)),
    Column(
        "started_at",
        DateTime(timezone=True),
        comment="when the run first began dispatching (database clock)",
    ),
    Column("finished_at", DateTime(timezone=True)),
    Column(
        "execution_id",
        UUID(as_uuid=True),
        ForeignKey(
            "workflow_executions.id",
            ondelete="SET NULL",
            use_alter=True,
            name="fk_schedule_runs_execution_id_workflow_executions",
        ),
    ),
    Column("amc_execution_id", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error_message", Text),
    Column("parameters_override", JSONB),
    Column("request", JSONB, comment="the fully resolved request sent for this run"),
    Column(
        "correlation_id",
        UUID(as_uuid=True),
        nullable=False,
        server_default=text("gen_random_uuid()"),
    ),
    _created_at(),
    Column(
        "call_started_at",
        DateTime(timezone=True),
        comment="set while a call to the executor is under way; cleared when it is over",
    ),
    CheckConstraint(_in("trigger", RUN_TRIGGERS), name="trigger_allowed"),
    CheckConstraint(_in("status", RUN_STATUSES), name="status_allowed"),
    CheckConstraint(
        f"skip_reason IS NULL OR {_in('skip_reason', SKIP_REASONS)}", name="skip_reason_allowed"
    ),
    CheckConstraint("(status = 'skipped') = (skip_reason IS NOT NULL)", name="skipped_has_reason"),
    CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    # Exactly once: the database itself refuses a second run of one scheduled slot.
    Index(
        "uq_schedule_runs_slot",
        "schedule_id",
        "scheduled_for",
        unique=True,
        postgresql_where=text("trigger = 'scheduled'"),
    ),
    # An AMC execution belongs to at most one run; recovery relies on it.
    Index(
        "uq_schedule_runs_amc_execution_id",
        "amc_execution_id",
        unique=True,
        postgresql_where=text("amc_execution_id IS NOT NULL"),
    ),
    Index("ix_schedule_runs_schedule_recent", "schedule_id", text("scheduled_for DESC")),
    # Every run, newest slot first: GET /runs reads a page of it (keyset).
    Index(
        "ix_schedule_runs_newest",
        text("scheduled_for DESC"),
        text("created_at DESC"),
        text("id DESC"),
    ),
    Index(
        "ix_schedule_runs_unfinished",
        "schedule_id",
        postgresql_where=text(f"{_in('status', UNFINISHED_RUN_STATUSES)}"),
    ),
    Index("ix_schedule_runs_pending", "created_at", postgresql_where=text("status = 'pending'")),
    Index(
        "ix_schedule_runs_unresolved",
        "created_at",
        postgresql_where=text("status = 'unresolved'"),
    ),
    Index("ix_schedule_runs_finished_at", "finished_at"),
)

scheduler_workers = Table(
    "scheduler_workers",
    metadata,
    Column("worker_id", Text, primary_key=True),
    Column("hostname", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("stopped_at", DateTime(timezone=True)),
    Column(
        "clock_skew_seconds",
        Double,
        comment="host clock minus database clock at the last heartbeat",
    ),
    Column(
        "session_pid",
        Integer,
        comment="the backend holding this worker's session lock; NULL: heartbeat only",
    ),
    Index("ix_scheduler_workers_heartbeat_at", "heartbeat_at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _uuid_pk(),
    Column("name", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column(
        "token_hash",
        Text,
        nullable=False,
        unique=True,
        comment="SHA-256 of the token, hex; the token itself is never stored",
    ),
    _created_at(),
    Column("created_by", Text),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("btrim(name) <> ''", name="name_not_blank"),
    CheckConstraint(_in("role", TOKEN_ROLES), name="role_allowed"),
)

# The web console's sessions (migration 0012): the cookie holds a secret, this its hash.
console_sessions = Table(
    "console_sessions",
    metadata,
    _uuid_pk(),
    Column(
        "secret_hash",
        Text,
        nullable=False,
        unique=True,
        comment="SHA-256 of the session cookie's secret, hex; the secret is never stored",
    ),
    Column(
        "token_id",
        UUID(as_uuid=True),
        ForeignKey("api_tokens.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("csrf_token", Text, nullable=False),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_console_sessions_expires_at", "expires_at"),
)

# Written by triggers (migration 0010), one row per change of an audited row: only the
# columns that changed, before and after.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("actor", Text, nullable=False),
    Column("entity", Text, nullable=False),
    Column("entity_id", UUID(as_uuid=True), nullable=False),
    Column("entity_name", Text),
    Column("action", Text, nullable=False),
    Column("before", JSONB),
    Column("after", JSONB),
    CheckConstraint(_in("entity", AUDIT_ENTITIES), name="entity_allowed"),
    CheckConstraint(_in("action", AUDIT_ACTIONS), name="action_allowed"),
    # An entity's history, newest first, a page at a time.
    Index("ix_audit_log_history", "entity", "entity_id", text("id DESC")),
)
