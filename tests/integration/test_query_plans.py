"""The claim protocol's plans stay O(work) whatever the planner's statistics say: selecting
due work reads the partial index, and writes keyed by id go through the primary key."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, TextClause, text

from scheduler_daemon.db import queries
from scheduler_daemon.db.engine import make_engine
from tests.helpers import Rows


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


def _plan(
    engine: Engine, statement: TextClause, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every node of the statement's plan for these values (planned in a transaction rolled
    back); without values, of its generic plan: the one the dispatch threads' connections keep
    (``plan_cache_mode = force_generic_plan``)."""
    with engine.connect() as conn:
        if params is not None:
            explain = conn.execute(text("EXPLAIN (FORMAT JSON) " + statement.text), params)
        else:
            if conn.exec_driver_sql("SHOW server_version_num").scalar_one() < "160000":
                pytest.skip("EXPLAIN (GENERIC_PLAN) needs PostgreSQL 16")
            explain = conn.exec_driver_sql(
                "EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + _numbered(statement.text)
            )
        plan = explain.scalar_one()
        conn.rollback()
    return _plan_nodes((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])


def _numbered(statement: str) -> str:
    """The statement with ``$1, $2…`` for its ``:name`` parameters."""
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", placeholder, statement)


def _indexes(nodes: list[dict[str, Any]]) -> set[str | None]:
    return {node.get("Index Name") for node in nodes}


def _scans(nodes: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(node type, table) of every node that reads or writes a table."""
    return {(node["Node Type"], node["Relation Name"]) for node in nodes if "Relation Name" in node}


def test_due_selection_uses_the_partial_index_on_100k_schedules(engine: Engine, rows: Rows) -> None:
    workflow_id = rows.workflow()
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled, next_run_at)
                SELECT :workflow_id, 'bulk ' || n || ' ' || gen_random_uuid(), '0 * * * *', n % 10 <> 0,
                       timestamptz '2026-01-01 00:00+00' + n * interval '1 minute'
                  FROM generate_series(1, 100000) AS n
                """
            ),
            {"workflow_id": workflow_id},
        )
        conn.execute(text("ANALYZE workflow_schedules"))
    nodes = _plan(
        engine, queries.SELECT_DUE, {"now": datetime(2026, 1, 2, tzinfo=UTC), "batch_size": 500}
    )
    assert ("Seq Scan", "workflow_schedules") not in _scans(nodes)
    assert "ix_workflow_schedules_due" in _indexes(nodes), _scans(nodes)


def _burst_after_quiet_statistics(engine: Engine, rows: Rows, runs: int) -> list[uuid.UUID]:
    """Runs that the statistics saw finished and that are now all claimed: the state of the
    tables in the middle of a burst, before autovacuum has analyzed them again."""
    schedule_id = rows.schedule()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        ids = (
            conn.execute(
                text(
                    """
                INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger,
                                           status, finished_at, fencing_token, worker_id)
                SELECT s.id, s.workflow_id, :start + n * interval '1 minute', 'scheduled',
                       'succeeded', now(), 1, 'w1'
                  FROM workflow_schedules s, generate_series(1, :runs) AS n
                 WHERE s.id = :schedule_id
                RETURNING id
                """
                ),
                {"schedule_id": schedule_id, "start": start, "runs": runs},
            )
            .scalars()
            .all()
        )
        conn.execute(text("ANALYZE schedule_runs"))
        conn.execute(text("UPDATE schedule_runs SET status = 'claimed', finished_at = NULL"))
    return list(ids)


def _batch_params(ids: list[uuid.UUID]) -> dict[str, Any]:
    """Parameters for any of the batch writes: each takes the arrays it names."""
    n = len(ids)
    return {
        "worker_id": "w1",
        "max_failures": 5,
        "first_check": 60.0,
        "ids": ids,
        "tokens": [1] * n,
        "statuses": ["succeeded"] * n,
        "execution_ids": [None] * n,
        "errors": [None] * n,
        "releases": [True] * n,
        "requests": [None] * n,
    }


@pytest.mark.parametrize("statement", ["MARK_DISPATCHING", "RECORD_OUTCOMES", "RENEW_MANUAL_RUNS"])
def test_writes_by_run_id_use_the_primary_key_when_statistics_say_few_runs_are_unfinished(
    engine: Engine, rows: Rows, statement: str
) -> None:
    ids = _burst_after_quiet_statistics(engine, rows, 5000)[:50]
    indexes = _indexes(_plan(engine, getattr(queries, statement), _batch_params(ids)))
    assert "ix_schedule_runs_unfinished" not in indexes
    assert "pk_schedule_runs" in indexes


def test_status_writes_use_primary_keys_when_statistics_say_nothing_is_polled(
    engine: Engine, rows: Rows
) -> None:
    run_ids = _burst_after_quiet_statistics(engine, rows, 5000)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schedule_runs SET status = 'succeeded'"))
        conn.execute(
            text(
                """
                INSERT INTO workflow_executions (workflow_id, amc_execution_id, status, trigger,
                                                 schedule_run_id, submitted_at)
                SELECT r.workflow_id, 'x-' || r.id, 'succeeded', 'scheduled', r.id, now()
                  FROM schedule_runs r
                """
            )
        )
        conn.execute(text("ANALYZE"))
        conn.execute(text("UPDATE schedule_runs SET status = 'dispatched'"))
        execution_ids = (
            conn.execute(
                text(
                    "UPDATE workflow_executions SET status = 'running', next_poll_at = :at RETURNING id"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC) - timedelta(minutes=1)},
            )
            .scalars()
            .all()
        )
    assert len(execution_ids) == len(run_ids)
    params = {
        "ids": execution_ids[:50],
        "statuses": ["succeeded"] * 50,
        "raw": ["SUCCEEDED"] * 50,
        "reasons": [None] * 50,
        "max_failures": 5,
    }
    indexes = _indexes(_plan(engine, queries.RECORD_STATUSES, params))
    assert not indexes & {"ix_schedule_runs_unfinished", "ix_workflow_executions_status_due"}
    assert {"pk_schedule_runs", "pk_workflow_executions"} <= indexes


@pytest.mark.parametrize("statement", ["RELEASE_LOCKS", "RENEW_LOCKS", "RECORD_OUTCOMES"])
def test_writes_by_schedule_id_use_the_primary_key_when_statistics_say_few_are_locked(
    engine: Engine, rows: Rows, statement: str
) -> None:
    run_ids = _burst_after_quiet_statistics(engine, rows, 50)
    workflow_id = rows.workflow()
    with engine.begin() as conn:
        schedule_ids = (
            conn.execute(
                text(
                    """
                    INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled,
                                                    next_run_at)
                    SELECT :workflow_id, 'bulk ' || n || ' ' || gen_random_uuid(), '0 * * * *', true, now()
                      FROM generate_series(1, 5000) AS n
                    RETURNING id
                    """
                ),
                {"workflow_id": workflow_id},
            )
            .scalars()
            .all()
        )
        conn.execute(text("ANALYZE workflow_schedules"))
        conn.execute(text("UPDATE workflow_schedules SET locked_by = 'w1', locked_at = now()"))
    ids = run_ids if statement == "RECORD_OUTCOMES" else schedule_ids[:50]
    indexes = _indexes(_plan(engine, getattr(queries, statement), _batch_params(list(ids))))
    assert "ix_workflow_schedules_locked" not in indexes
    assert "pk_workflow_schedules" in indexes


def _grown_since_analyzed_empty(engine: Engine, rows: Rows, count: int) -> list[uuid.UUID]:
    """A new database: its tables were analyzed empty, then a first burst filled them (the
    planner knows their size, not what is in them). Returns the schedules, each with a run."""
    workflow_id = rows.workflow()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE workflow_schedules"))
        conn.execute(text("ANALYZE schedule_runs"))
        schedule_ids = (
            conn.execute(
                text(
                    """
                    INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled,
                                                    next_run_at, locked_by, locked_at,
                                                    fencing_token)
                    SELECT :workflow_id, 'bulk ' || n || ' ' || gen_random_uuid(), '0 * * * *', true, now(), 'w1', now(), 1
                      FROM generate_series(1, :count) AS n
                    RETURNING id
                    """
                ),
                {"workflow_id": workflow_id, "count": count},
            )
            .scalars()
            .all()
        )
        conn.execute(
            text(
                """
                INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger,
                                           status, fencing_token, worker_id, claimed_at)
                SELECT id, workflow_id, now(), 'scheduled', 'claimed', 1, 'w1', now()
                  FROM workflow_schedules
                """
            )
        )
    return list(schedule_ids)


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("MARK_DISPATCHING", "schedule_runs"),
        ("RECORD_OUTCOMES", "schedule_runs"),
        ("CLAIM", "workflow_schedules"),
        ("RELEASE_LOCKS", "workflow_schedules"),
        ("TAKE_OVER_LOCKS", "workflow_schedules"),
        ("SET_NEXT_RUNS", "workflow_schedules"),
        ("INSERT_RUNS", "workflow_schedules"),
    ],
)
def test_batch_writes_never_scan_a_whole_table_that_grew_since_it_was_analyzed(
    engine: Engine, rows: Rows, statement: str, table: str
) -> None:
    """Without column statistics the planner guesses that few rows are this worker's and
    would hash the batch against a scan of the whole table: each 50-run write of a burst then
    reads every run ever made. The writes name their ids so that the primary key is the way."""
    schedule_ids = _grown_since_analyzed_empty(engine, rows, 5000)
    with engine.connect() as conn:
        run_ids = conn.execute(text("SELECT id FROM schedule_runs LIMIT 50")).scalars().all()
    ids = run_ids if table == "schedule_runs" else schedule_ids[:50]
    n = len(ids)
    params = _batch_params(list(ids)) | {
        "old_last": [None] * n,
        "new_last": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
        "new_next": [datetime(2026, 1, 2, tzinfo=UTC)] * n,
        "next": [datetime(2026, 1, 2, tzinfo=UTC)] * n,
        "take_lock": [True] * n,
        "resume": False,
        "schedule_ids": ids,
        "workflow_ids": [None] * n,
        "slots": [datetime(2026, 1, 3, tzinfo=UTC)] * n,
        "skip_reasons": [None] * n,
        "missed": [None] * n,
        "messages": [None] * n,
    }
    scans = _scans(_plan(engine, getattr(queries, statement), params))
    assert not {("Seq Scan", "schedule_runs"), ("Seq Scan", "workflow_schedules")} & scans, scans


@pytest.mark.parametrize("statement", ["MARK_DISPATCHING", "RECORD_OUTCOMES", "RECORD_STATUSES"])
def test_the_dispatch_threads_generic_plans_go_through_primary_keys(
    engine: Engine, rows: Rows, statement: str
) -> None:
    """Planned once per connection without the values, on tables grown since analyzed."""
    _grown_since_analyzed_empty(engine, rows, 5000)
    scans = _scans(_plan(engine, getattr(queries, statement)))
    assert not {node for node in scans if node[0] == "Seq Scan"}, scans


def test_the_dispatch_threads_connections_prepare_at_once_and_plan_once(
    database_url: str,
) -> None:
    engine = make_engine(database_url, generic_plans=True)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == (
                "force_generic_plan"
            )
            conn.execute(text("SELECT count(*) FROM schedule_runs WHERE id = :id"), {"id": None})
            prepared = conn.execute(
                text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :like"),
                {"like": "%schedule_runs%"},
            )
            assert prepared.scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("statement", ["CLAIM_STATUS_CHECKS", "NEXT_STATUS_CHECK_IN"])
def test_the_status_threads_generic_plans_read_only_the_executions_due(
    engine: Engine, rows: Rows, statement: str
) -> None:
    """Planned once per connection (the status threads' connections keep generic plans),
    among 20,000 executions of which a hundred run: the due ones come from the index on the
    due time, never from a scan of every execution."""
    workflow_id = rows.workflow()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE workflow_executions"))
        conn.execute(
            text(
                """
                INSERT INTO workflow_executions (workflow_id, amc_execution_id, status, trigger,
                                                 submitted_at, next_poll_at)
                SELECT :workflow_id, 'x-' || n,
                       CASE WHEN n % 200 = 0 THEN 'running' ELSE 'succeeded' END,
                       'scheduled', now() - interval '1 hour', now() - n * interval '1 second'
                  FROM generate_series(1, 20000) AS n
                """
            ),
            {"workflow_id": workflow_id},
        )
        conn.execute(text("ANALYZE workflow_executions"))
    scans = _scans(_plan(engine, getattr(queries, statement)))
    assert ("Seq Scan", "workflow_executions") not in scans, scans
    assert "ix_workflow_executions_status_due" in _indexes(
        _plan(engine, getattr(queries, statement))
    )
