"""The statements operators' commands and ``sync`` run on schedule rows.

Each function takes a Connection and never commits: the caller owns the transaction and has
validated its input. Slot times (``next_run_at``) are computed by the caller from the
database's clock and passed in.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from scheduler_daemon.db.constraints import unique_fields


def _with_parameters(statement: str) -> TextClause:
    """``:parameters`` is sent as JSON, as the table's JSONB column type sends it."""
    return text(statement).bindparams(bindparam("parameters", type_=JSONB))


# What a schedule is, as opposed to its runtime state (enabled, next and last run, locks,
# pauses): the columns a config file owns and a definition update writes.
DEFINITION_COLUMNS = (
    "name",
    "workflow_id",
    "cron_expression",
    "interval_seconds",
    "interval_anchor",
    "timezone",
    "misfire_policy",
    "overlap_policy",
    "misfire_grace_seconds",
    "max_catchup_runs",
    "parameters",
)

SELECT_SCHEDULE = text("SELECT * FROM workflow_schedules WHERE id = :id AND deleted_at IS NULL")

# Every change of one schedule reads it first under this lock, so that two operators (or an
# operator and a sync) do not decide from the same old row.
SELECT_SCHEDULE_FOR_UPDATE = text(
    "SELECT * FROM workflow_schedules WHERE id = :id AND deleted_at IS NULL FOR UPDATE"
)

INSERT_SCHEDULE = _with_parameters(
    """
    INSERT INTO workflow_schedules
           (workflow_id, name, config_key, user_id, cron_expression, interval_seconds,
            interval_anchor, timezone, misfire_policy, overlap_policy, misfire_grace_seconds,
            max_catchup_runs, parameters, enabled, next_run_at)
    VALUES (:workflow_id, :name, :config_key, :user_id, :cron_expression, :interval_seconds,
            :interval_anchor, :timezone, :misfire_policy, :overlap_policy, :misfire_grace_seconds,
            :max_catchup_runs, :parameters, :enabled, :next_run_at)
    RETURNING id
    """
)
_INSERT_OPTIONAL = ("config_key", "user_id")

# The whole definition at once. A new spec or zone (:restart) starts an enabled schedule from
# :next_run_at and leaves a disabled one unscheduled; otherwise next_run_at is runtime state
# and stays as it is.
UPDATE_DEFINITION = _with_parameters(
    """
    UPDATE workflow_schedules
       SET name = :name, workflow_id = :workflow_id,
           cron_expression = :cron_expression, interval_seconds = :interval_seconds,
           interval_anchor = :interval_anchor, timezone = :timezone,
           misfire_policy = :misfire_policy, overlap_policy = :overlap_policy,
           misfire_grace_seconds = :misfire_grace_seconds, max_catchup_runs = :max_catchup_runs,
           parameters = :parameters,
           next_run_at = CASE WHEN NOT :restart THEN next_run_at
                              WHEN enabled THEN CAST(:next_run_at AS timestamptz) END,
           updated_at = now()
     WHERE id = :id
    """
)

# Enabling lifts a quarantine (:lift) once the spec is valid again; an operator's pause stays.
ENABLE = text(
    """
    UPDATE workflow_schedules
       SET enabled = true, next_run_at = :next_run_at, updated_at = now(),
           paused_at = CASE WHEN :lift THEN NULL ELSE paused_at END,
           pause_reason = CASE WHEN :lift THEN NULL ELSE pause_reason END
     WHERE id = :id
    """
)

# Disabling keeps the history and next_run_at: the claim reads only enabled rows.
DISABLE = text(
    """
    UPDATE workflow_schedules SET enabled = false, updated_at = now()
     WHERE id = ANY(CAST(:ids AS uuid[]))
    """
)

PAUSE = text(
    """
    UPDATE workflow_schedules
       SET paused_at = now(), paused_until = :until, pause_reason = :reason, updated_at = now()
     WHERE id = :id
    """
)

# A soft delete keeps the row and its runs for the record; the claim never sees it again.
SOFT_DELETE = text(
    """
    UPDATE workflow_schedules SET deleted_at = now(), enabled = false, updated_at = now()
     WHERE id = :id
    """
)

# A deleted schedule runs nothing more: its manual runs no daemon has claimed yet are
# cancelled with it (one a daemon already claimed runs to its end).
CANCEL_PENDING_RUNS = text(
    """
    UPDATE schedule_runs
       SET status = 'cancelled', finished_at = now(),
           error_message = 'cancelled: its schedule was deleted before a daemon claimed it'
     WHERE schedule_id = :id AND status = 'pending'
    """
)

DELETE_RUNS_OF_SCHEDULE = text("DELETE FROM schedule_runs WHERE schedule_id = :id")

DELETE_SCHEDULE = text("DELETE FROM workflow_schedules WHERE id = :id")

# Every command that shows schedules (``schedules list``, ``schedules show``, what a change
# returns, the API's pages) reads them here, so a schedule has one shape; a filter given as
# NULL (or false) is not applied. A page starts after the row (:after_key, :after_id) in the
# listing's order (keyset paging: a row inserted meanwhile neither repeats nor hides one).
# One statement per order (SCHEDULE_ORDERS), each whole: print LIST_SCHEDULES[order, False].
_LIST_SCHEDULES = """
    SELECT s.id, s.name, v.workflow_name AS workflow, s.workflow_id, s.cron_expression,
           s.interval_seconds, s.interval_anchor, s.timezone, v.state, s.enabled,
           s.misfire_policy, s.misfire_grace_seconds, s.max_catchup_runs, s.overlap_policy,
           s.parameters, s.next_run_at, s.last_run_at, v.last_run_status,
           s.locked_by AS running_on, s.paused_at, s.paused_until, s.pause_reason,
           s.consecutive_failures, s.last_error, s.config_key, s.created_at, s.updated_at
      FROM schedule_status v
      JOIN workflow_schedules s ON s.id = v.schedule_id
     WHERE s.deleted_at IS NULL
       AND (CAST(:ids AS uuid[]) IS NULL OR s.id = ANY(CAST(:ids AS uuid[])))
       AND (CAST(:enabled AS boolean) IS NULL OR s.enabled = :enabled)
       AND (CAST(:paused AS boolean) IS NULL OR (s.paused_at IS NOT NULL) = :paused)
       AND (CAST(:failing AS boolean) IS NULL OR (s.consecutive_failures > 0) = :failing)
       AND (NOT :overdue OR s.id IN (SELECT schedule_id FROM overdue_schedules))
       AND (CAST(:workflow AS uuid) IS NULL OR s.workflow_id = :workflow)
       AND (CAST(:name_like AS text) IS NULL OR s.name ILIKE :name_like)
       AND (CAST(:after_id AS uuid) IS NULL
            OR ({key}, s.id) {after} (CAST(:after_key AS {key_type}), CAST(:after_id AS uuid)))
     ORDER BY {key} {direction}, s.id {direction}
     LIMIT :limit
    """

# order: (the sort key, its type). A schedule without a next run sorts after every time.
SCHEDULE_ORDERS: Mapping[str, tuple[str, str]] = {
    "name": ("s.name", "text"),
    "next_run_at": ("coalesce(s.next_run_at, 'infinity')", "timestamptz"),
    "created_at": ("s.created_at", "timestamptz"),
}

LIST_SCHEDULES: Mapping[tuple[str, bool], TextClause] = {
    (order, descending): text(
        _LIST_SCHEDULES.format(
            key=key,
            key_type=key_type,
            after="<" if descending else ">",
            direction="DESC" if descending else "ASC",
        )
    )
    for order, (key, key_type) in SCHEDULE_ORDERS.items()
    for descending in (False, True)
}

# The demo runs a daemon of its own against a fake AMC: it must not run anyone else's.
SELECT_ENABLED_BESIDES = text(
    """
    SELECT name
      FROM workflow_schedules
     WHERE enabled AND deleted_at IS NULL AND NOT name = ANY(CAST(:names AS text[]))
     ORDER BY name
    """
)

# ``schedules validate``: the stored specs, each parsed in Python as the daemon parses it.
SELECT_SPECS = text(
    """
    SELECT id, name, cron_expression, interval_seconds, interval_anchor, timezone
      FROM workflow_schedules
     WHERE deleted_at IS NULL
     ORDER BY name
    """
)

# ``sync``: the file-managed schedules, locked until the file is applied, so that no one
# changes them between the plan and its writes.
SELECT_MANAGED = text(
    """
    SELECT id, config_key, enabled,
           name, workflow_id, cron_expression, interval_seconds, interval_anchor, timezone,
           misfire_policy, overlap_policy, misfire_grace_seconds, max_catchup_runs, parameters
      FROM workflow_schedules
     WHERE config_key IS NOT NULL AND deleted_at IS NULL
       FOR UPDATE
    """
)


def select_schedule(
    conn: Connection, schedule_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    """The schedule's row, unless it does not exist or was deleted."""
    statement = SELECT_SCHEDULE_FOR_UPDATE if lock else SELECT_SCHEDULE
    row = conn.execute(statement, {"id": schedule_id}).mappings().first()
    return None if row is None else dict(row)


def insert_schedule(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    """``values`` has every column of INSERT_SCHEDULE but config_key and user_id."""
    with unique_fields():
        row_id: uuid.UUID = conn.execute(
            INSERT_SCHEDULE, {**dict.fromkeys(_INSERT_OPTIONAL), **values}
        ).scalar_one()
    return row_id


def insert_schedules(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Many rows as ``insert_schedule`` takes them, in one executemany; no ids come back."""
    with unique_fields():
        conn.execute(INSERT_SCHEDULE, [{**dict.fromkeys(_INSERT_OPTIONAL), **row} for row in rows])


def update_definition(
    conn: Connection,
    schedule_id: uuid.UUID,
    definition: Mapping[str, Any],
    *,
    restart: bool,
    next_run_at: datetime | None,
) -> None:
    """Write ``definition`` (every one of DEFINITION_COLUMNS) over the schedule's."""
    update_definitions(conn, [(schedule_id, definition, restart, next_run_at)])


def update_definitions(
    conn: Connection,
    updates: Sequence[tuple[uuid.UUID, Mapping[str, Any], bool, datetime | None]],
) -> None:
    """Many ``update_definition`` calls (id, definition, restart, next_run_at) in one
    executemany."""
    with unique_fields():
        conn.execute(
            UPDATE_DEFINITION,
            [
                {column: definition[column] for column in DEFINITION_COLUMNS}
                | {"id": schedule_id, "restart": restart, "next_run_at": next_run_at}
                for schedule_id, definition, restart, next_run_at in updates
            ],
        )


def enable(conn: Connection, schedule_id: uuid.UUID, next_run_at: datetime, *, lift: bool) -> None:
    conn.execute(ENABLE, {"id": schedule_id, "next_run_at": next_run_at, "lift": lift})


def disable(conn: Connection, schedule_ids: Sequence[uuid.UUID]) -> None:
    conn.execute(DISABLE, {"ids": list(schedule_ids)})


def pause(conn: Connection, schedule_id: uuid.UUID, until: datetime | None, reason: str) -> None:
    conn.execute(PAUSE, {"id": schedule_id, "until": until, "reason": reason})


def soft_delete(conn: Connection, schedule_id: uuid.UUID) -> None:
    conn.execute(SOFT_DELETE, {"id": schedule_id})
    conn.execute(CANCEL_PENDING_RUNS, {"id": schedule_id})


def hard_delete(conn: Connection, schedule_id: uuid.UUID) -> None:
    """The schedule and its whole run history, for good."""
    conn.execute(DELETE_RUNS_OF_SCHEDULE, {"id": schedule_id})
    conn.execute(DELETE_SCHEDULE, {"id": schedule_id})


def list_schedules(
    conn: Connection,
    *,
    ids: Sequence[uuid.UUID] | None = None,
    enabled: bool | None = None,
    paused: bool | None = None,
    failing: bool | None = None,
    overdue: bool = False,
    workflow: uuid.UUID | None = None,
    name_contains: str | None = None,
    order: str = "next_run_at",
    descending: bool = False,
    after: tuple[str, uuid.UUID] | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """The schedules in ``order``; ``after``: the (sort key as text, id) a page starts after
    (``sort_key`` gives a row's)."""
    params = {
        "ids": None if ids is None else list(ids),
        "enabled": enabled,
        "paused": paused,
        "failing": failing,
        "overdue": overdue,
        "workflow": workflow,
        "name_like": None if name_contains is None else f"%{_like_escaped(name_contains)}%",
        "after_key": None if after is None else after[0],
        "after_id": None if after is None else after[1],
        "limit": limit,
    }
    statement = LIST_SCHEDULES[order, descending]
    return [dict(row) for row in conn.execute(statement, params).mappings()]


def sort_key(row: Mapping[str, Any], order: str) -> str:
    """The row's key in ``order``, as ``list_schedules``'s ``after`` takes it."""
    value = row[order]
    if value is None:  # next_run_at: sorts as 'infinity'
        return "infinity"
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _like_escaped(text_: str) -> str:
    """``text_`` matched literally by ILIKE (its default escape character is the backslash)."""
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def enabled_schedules_besides(conn: Connection, names: Sequence[str]) -> list[str]:
    """The names of the enabled schedules not named in ``names``."""
    return list(conn.execute(SELECT_ENABLED_BESIDES, {"names": list(names)}).scalars())


def select_specs(conn: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(SELECT_SPECS).mappings()]


def select_managed(conn: Connection) -> dict[str, dict[str, Any]]:
    """The file-managed schedules by their key, locked."""
    return {row["config_key"]: dict(row) for row in conn.execute(SELECT_MANAGED).mappings()}
