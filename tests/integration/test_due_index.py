"""Selecting due work reads the partial index, not the table, even with 100,000 schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from scheduler_daemon.db import queries
from tests.helpers import Rows


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


def test_due_selection_uses_the_partial_index_on_100k_schedules(engine: Engine, rows: Rows) -> None:
    workflow_id = rows.workflow()
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled, next_run_at)
                SELECT :workflow_id, 'bulk ' || n, '0 * * * *', n % 10 <> 0,
                       timestamptz '2026-01-01 00:00+00' + n * interval '1 minute'
                  FROM generate_series(1, 100000) AS n
                """
            ),
            {"workflow_id": workflow_id},
        )
        conn.execute(text("ANALYZE workflow_schedules"))
        explain = conn.execute(
            text("EXPLAIN (FORMAT JSON) " + queries.SELECT_DUE.text),
            {"now": datetime(2026, 1, 2, tzinfo=UTC), "batch_size": 500},
        ).scalar_one()
    plan = (json.loads(explain) if isinstance(explain, str) else explain)[0]["Plan"]
    nodes = _plan_nodes(plan)
    scans = {
        (node["Node Type"], node.get("Relation Name"), node.get("Index Name")) for node in nodes
    }
    assert ("Seq Scan", "workflow_schedules", None) not in scans
    assert any(index == "ix_workflow_schedules_due" for _, _, index in scans), scans
