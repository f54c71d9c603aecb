"""The statements of a run's recovery: what the database knows about who started what.

One transaction per decision. It first takes a transaction-level advisory lock on the run's
instance and AMC workflow, so that two daemons recovering runs of one workflow decide one
after the other; every read after the lock sees the other's attribution (read committed: each
statement has its own snapshot). The decision itself is ``scheduler_daemon.recovery.decide``.

"The same request" is what AMC can tell apart when it lists executions: the workflow, the time
window and the parameter values (``scheduler_daemon.amc.client.same_request``); two requests
that differ only in, say, their timeout are the same to recovery.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from scheduler_daemon.recovery import (
    Adopt,
    Claimant,
    Decision,
    FoundExecution,
    Resubmit,
    decide,
)

LOCK_REQUEST = text(
    """
    SELECT pg_advisory_xact_lock(hashtextextended(
               w.instance_id::text || ' ' || COALESCE(r.request->>'workflowId', ''), 0))
      FROM schedule_runs r
      JOIN workflows w ON w.id = r.workflow_id
     WHERE r.id = :run_id
    """
)

# The run, if it is still ours and still being sent.
SELECT_RECOVERING_RUN = text(
    """
    SELECT r.started_at, r.amc_execution_id
      FROM schedule_runs r
     WHERE r.id = :run_id AND r.fencing_token = :token AND r.worker_id = :worker_id
       AND r.status = 'dispatching'
    """
)

SELECT_ATTRIBUTED = text(
    """
    SELECT amc_execution_id FROM schedule_runs
     WHERE amc_execution_id = ANY(CAST(:execution_ids AS text[]))
    """
)

# Other runs on the same instance that sent (or are sending) the same request and have no
# execution yet: they may have started one of the executions found.
SELECT_CLAIMANTS = text(
    """
    SELECT other.id AS run_id, other.started_at AS dispatch_started_at,
           other.call_started_at IS NOT NULL AS calling
      FROM schedule_runs me
      JOIN workflows mine ON mine.id = me.workflow_id
      JOIN schedule_runs other
        ON other.request->>'workflowId' = me.request->>'workflowId'
       AND other.request->'parameterValues' IS NOT DISTINCT FROM me.request->'parameterValues'
       AND other.request->>'timeWindowStart' IS NOT DISTINCT FROM me.request->>'timeWindowStart'
       AND other.request->>'timeWindowEnd' IS NOT DISTINCT FROM me.request->>'timeWindowEnd'
       AND other.request->>'timeWindowTimeZone'
           IS NOT DISTINCT FROM me.request->>'timeWindowTimeZone'
       AND other.id <> me.id
      JOIN workflows theirs ON theirs.id = other.workflow_id
     WHERE me.id = :run_id AND theirs.instance_id = mine.instance_id
       AND other.status = 'dispatching' AND other.amc_execution_id IS NULL
    """
)

# The unique constraint on amc_execution_id refuses an execution another run already has.
RESERVE_EXECUTION = text(
    """
    UPDATE schedule_runs AS r SET amc_execution_id = :execution_id
     WHERE r.id = :run_id AND r.fencing_token = :token AND r.worker_id = :worker_id
       AND r.status = 'dispatching' AND r.amc_execution_id IS NULL
    RETURNING r.id
    """
)

START_CALL = text(
    """
    UPDATE schedule_runs AS r SET call_started_at = now()
     WHERE r.id = :run_id AND r.fencing_token = :token AND r.worker_id = :worker_id
       AND r.status = 'dispatching' AND r.amc_execution_id IS NULL
    RETURNING r.id
    """
)


@dataclass(frozen=True)
class Fence:
    """The run being recovered, as every write for it quotes it: ours only while it is."""

    worker_id: str
    run_id: uuid.UUID
    token: int

    @property
    def params(self) -> dict[str, object]:
        return {"worker_id": self.worker_id, "run_id": self.run_id, "token": self.token}


def start_call(conn: Connection, fence: Fence) -> bool:
    """Mark the run's call under way before it is sent again; False when the run is no longer
    ours, or already has an execution (an earlier recovery attributed one)."""
    return conn.execute(START_CALL, fence.params).first() is not None


def claimants(conn: Connection, run_id: uuid.UUID) -> list[Claimant]:
    """The other runs that may have started the executions this run's recovery finds."""
    return [
        Claimant(row.run_id, row.dispatch_started_at, row.calling)
        for row in conn.execute(SELECT_CLAIMANTS, {"run_id": run_id})
    ]


def decide_recovery(
    conn: Connection, fence: Fence, found: Sequence[FoundExecution], listed_since: datetime
) -> Decision | None:
    """Decide what run ``run_id`` adopts, given the executions ``found`` for its request, and
    write the decision: an adopted execution is attributed to the run at once, a resubmission
    marks the run's call as under way. None when the run is no longer ours (claim lost)."""
    run_id = fence.run_id
    conn.execute(LOCK_REQUEST, {"run_id": run_id})
    run = conn.execute(SELECT_RECOVERING_RUN, fence.params).first()
    if run is None:
        return None
    if run.amc_execution_id is not None:  # attributed by an earlier recovery that went no further
        return Adopt(run.amc_execution_id)
    ids = [f.execution_id for f in found]
    attributed = set(conn.execute(SELECT_ATTRIBUTED, {"execution_ids": ids}).scalars())
    decision = decide(
        run_id,
        run.started_at,
        found,
        attributed,
        claimants(conn, run_id),
        listed_since=listed_since,
    )
    if isinstance(decision, Adopt):
        params = fence.params | {"execution_id": decision.execution_id}
        if conn.execute(RESERVE_EXECUTION, params).first() is None:
            return None
    elif isinstance(decision, Resubmit) and not start_call(conn, fence):
        return None
    return decision
