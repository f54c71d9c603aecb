-- The claim protocol: every statement a daemon runs, whole, in the order of the tick.
--
-- Each statement is named by its "-- name:" line; the comment lines after it are its note.
-- Comment lines and indentation are not sent to the server. Parameters are :name.
--
-- Two clocks meet here and are never mixed in one predicate: slot times (next_run_at,
-- scheduled_for) are compared with the tick's :now; lease and heartbeat times (locked_at,
-- claimed_at, heartbeat_at) only with the database's now().
--
-- Fencing: a claim increments workflow_schedules.fencing_token and copies the new value into
-- the run rows it creates. Every later write for those runs quotes the token, so a worker
-- whose claim was reaped touches zero rows.
--
-- Three planner notes recur below. They keep every write O(its batch) whatever the table
-- statistics say (tests/integration/test_query_plans.py holds them to it):
--
-- [other statuses] A write keyed by id tests status as "NOT IN (every other status)", not
--   "IN (...)" or "=". The partial indexes on status (unfinished runs, executions being
--   polled) hold a handful of rows between bursts, and their statistics say so; during a
--   burst they hold thousands. A test the planner could match to them made each 50-run write
--   scan every unfinished run: 100 ms instead of 1 ms. "Not any other status" implies no
--   index predicate, so these writes go through the primary key. The CHECK constraint on the
--   column makes the two tests equal.
-- [not distinct] "locked_by IS NOT DISTINCT FROM :worker_id", not "=", for the same reason: a
--   plain "=" implies the predicate of the index of locked schedules (locked_by IS NOT NULL),
--   whose statistics say few are locked. The worker id is never null.
-- [any ids] Batch writes join their rows to unnest(:ids, ...) and also say
--   "id = ANY(:ids)". The join alone leaves the planner free to hash the batch against a
--   scan of the whole table, which it does when a table grew since it was last analyzed (a
--   new database's first burst): every write then reads every row ever made. "= ANY" on the
--   primary key rules that out.


-- name: select_due
-- Lock up to :batch_size due schedules, oldest slot first, skipping rows another daemon is
-- claiming right now. has_unfinished_run feeds the overlap policy.
SELECT s.id, s.workflow_id, s.cron_expression, s.interval_seconds, s.interval_anchor,
       s.timezone, s.next_run_at, s.last_run_at, s.misfire_policy, s.misfire_grace_seconds,
       s.max_catchup_runs, s.overlap_policy,
       EXISTS (
           SELECT 1 FROM schedule_runs r
            WHERE r.schedule_id = s.id
              AND r.status IN ('claimed', 'dispatching', 'dispatched')
       ) AS has_unfinished_run
  FROM workflow_schedules s
 WHERE s.enabled AND s.deleted_at IS NULL AND s.paused_at IS NULL AND s.locked_by IS NULL
   AND s.next_run_at <= :now
 ORDER BY s.next_run_at
 LIMIT :batch_size
   FOR UPDATE OF s SKIP LOCKED;


-- name: claim
-- Claim schedules optimistically: a row whose last_run_at moved, or that another worker
-- locked, is not won. Each won row's fencing token goes up by one. [any ids]
UPDATE workflow_schedules AS s
   SET locked_by = CASE WHEN v.take_lock THEN :worker_id END,
       locked_at = CASE WHEN v.take_lock THEN now() END,
       last_run_at = v.last_run_at,
       next_run_at = v.next_run_at,
       fencing_token = s.fencing_token + 1,
       updated_at = now()
  FROM unnest(CAST(:ids AS uuid[]), CAST(:old_last AS timestamptz[]),
              CAST(:new_last AS timestamptz[]), CAST(:new_next AS timestamptz[]),
              CAST(:take_lock AS boolean[]))
       AS v(id, old_last_run_at, last_run_at, next_run_at, take_lock)
 WHERE s.id = v.id AND s.id = ANY(CAST(:ids AS uuid[]))
   AND s.last_run_at IS NOT DISTINCT FROM v.old_last_run_at
   AND s.locked_by IS NULL
RETURNING s.id, s.fencing_token;


-- name: insert_runs
-- The run rows of won claims, claimed or skipped, under the claim's token. A slot that
-- already has a row is refused by the unique constraint and simply not returned. The new
-- runs come back with their context (workflow, instance, account), so the claim's
-- transaction needs no other read. [any ids]
WITH r AS (
    INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger, status,
                               skip_reason, missed_slots, error_message, fencing_token,
                               worker_id, claimed_at, finished_at)
    SELECT v.schedule_id, v.workflow_id, v.scheduled_for, 'scheduled', v.status,
           v.skip_reason, v.missed_slots, v.message, v.token,
           :worker_id, now(), CASE WHEN v.status = 'skipped' THEN now() END
      FROM unnest(CAST(:schedule_ids AS uuid[]), CAST(:workflow_ids AS uuid[]),
                  CAST(:slots AS timestamptz[]), CAST(:statuses AS text[]),
                  CAST(:skip_reasons AS text[]), CAST(:missed AS integer[]),
                  CAST(:messages AS text[]), CAST(:tokens AS bigint[]))
           AS v(schedule_id, workflow_id, scheduled_for, status, skip_reason, missed_slots,
                message, token)
    ON CONFLICT (schedule_id, scheduled_for) WHERE trigger = 'scheduled' DO NOTHING
    RETURNING id, schedule_id, workflow_id, scheduled_for, trigger, status, fencing_token,
              correlation_id, parameters_override
)
SELECT r.*,
       w.id AS workflow_id, w.name AS workflow_name, w.amc_workflow_id,
       w.parameters AS workflow_parameters, s.parameters AS schedule_parameters, s.timezone,
       i.instance_id AS amc_instance_id, a.account_id AS amc_entity_id, a.marketplace_id,
       a.region
  FROM r
  JOIN workflow_schedules s ON s.id = r.schedule_id
  LEFT JOIN workflows w ON w.id = r.workflow_id
  LEFT JOIN amc_instances i ON i.id = w.instance_id
  LEFT JOIN amc_accounts a ON a.id = i.account_id
 WHERE s.id = ANY(CAST(:schedule_ids AS uuid[]));


-- name: release_locks
-- Release the locks of claims with nothing left to dispatch (every run skipped), fenced by
-- owner and token. [any ids] [not distinct]
UPDATE workflow_schedules AS s
   SET locked_by = NULL, locked_at = NULL, updated_at = now()
  FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[])) AS v(id, token)
 WHERE s.id = v.id AND s.id = ANY(CAST(:ids AS uuid[]))
   AND s.locked_by IS NOT DISTINCT FROM :worker_id AND s.fencing_token = v.token;


-- name: claim_pending_manual
-- Manual runs are claimed on their own row: they never touch the schedule's slot state.
UPDATE schedule_runs AS r
   SET status = 'claimed', worker_id = :worker_id, claimed_at = now(),
       fencing_token = COALESCE(r.fencing_token, 0) + 1
 WHERE r.id IN (
           SELECT id FROM schedule_runs
            WHERE status = 'pending' AND scheduled_for <= :now
            ORDER BY scheduled_for
            LIMIT :batch_size
              FOR UPDATE SKIP LOCKED)
RETURNING r.id, r.schedule_id, r.workflow_id, r.scheduled_for, r.trigger, r.status,
          r.fencing_token, r.correlation_id, r.parameters_override;


-- name: insert_manual_run
-- A manual run of a schedule that is not deleted, pending until a daemon claims it.
INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger, status,
                           parameters_override)
SELECT s.id, s.workflow_id, :scheduled_for, 'manual', 'pending', CAST(:overrides AS jsonb)
  FROM workflow_schedules s
 WHERE s.id = :schedule_id AND s.deleted_at IS NULL
RETURNING id;


-- name: mark_dispatching
-- Mark runs as being sent, each with the request it will send (stored before it is sent:
-- recovery compares requests). started_at is when the run first began dispatching (a
-- recovery marking it again keeps it): an execution created before it, less a skew margin,
-- cannot be this run's. call_started_at is set while a call is under way; a recovery clears
-- it, and sets it again only to submit. The stored request comes back only for a run marked
-- before (a recovery looks for it): a burst's fresh runs do not send their bodies back.
-- A run missing from the result was lost to another worker. [any ids] [other statuses]
UPDATE schedule_runs AS r
   SET status = 'dispatching', started_at = COALESCE(r.started_at, now()),
       call_started_at = CASE WHEN r.status = 'claimed' THEN now() END,
       request = COALESCE(r.request, v.request), attempts = r.attempts + 1
  FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[]), CAST(:requests AS jsonb[]))
       AS v(id, token, request)
 WHERE r.id = v.id AND r.id = ANY(CAST(:ids AS uuid[]))
   AND r.fencing_token = v.token AND r.worker_id = :worker_id
   -- that is: status IN ('claimed', 'dispatching')
   AND r.status NOT IN ('pending', 'dispatched', 'succeeded', 'failed', 'skipped',
                        'cancelled', 'unresolved')
RETURNING r.id, r.started_at, r.attempts,
          CASE WHEN r.attempts > 1 THEN r.request END AS request;


-- name: record_outcomes
-- One statement records a batch of dispatch outcomes: the runs (fenced by token), their
-- lineage rows in workflow_executions, then, for scheduled runs, their schedules' failure
-- counts, auto-pause and lock release (fenced by owner and token). Each schedule appears at
-- most once per batch.
--
-- Failure accounting (the same in record_statuses): a failure adds one and, at
-- :max_failures, pauses the schedule with the reason, unless it is paused already (an
-- operator's or a quarantine's reason is kept); a success resets it; "dispatched" (the
-- outcome comes later, with the status sync) leaves it. "paused" says whether this
-- statement paused the schedule: such a pause carries this transaction's now(); an earlier
-- one another. [any ids] [other statuses] [not distinct]
WITH outcome AS (
    -- A run that started an execution gets its lineage row; "dispatched" means AMC
    -- accepted it and the execution is pending.
    SELECT v.*,
           CASE WHEN v.amc_execution_id IS NOT NULL THEN gen_random_uuid() END
               AS lineage_id,
           CASE WHEN v.status = 'dispatched' THEN 'pending' ELSE v.status END
               AS execution_status
      FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[]),
                  CAST(:statuses AS text[]), CAST(:execution_ids AS text[]),
                  CAST(:errors AS text[]), CAST(:releases AS boolean[]))
           AS v(run_id, token, status, amc_execution_id, error_message, release)
), run AS (
    UPDATE schedule_runs AS r
       SET status = o.status,
           finished_at = CASE WHEN o.status IN ('succeeded', 'failed', 'unresolved')
                              THEN now() END,
           call_started_at = NULL,
           -- an execution a recovery already attributed to the run stays its own
           amc_execution_id = COALESCE(o.amc_execution_id, r.amc_execution_id),
           error_message = o.error_message,
           execution_id = COALESCE(o.lineage_id, r.execution_id)
      FROM outcome o
     WHERE r.id = o.run_id AND r.id = ANY(CAST(:ids AS uuid[]))
       AND r.fencing_token = o.token AND r.worker_id = :worker_id
       -- that is: status = 'dispatching'
       AND r.status NOT IN ('pending', 'claimed', 'dispatched', 'succeeded', 'failed',
                            'skipped', 'cancelled', 'unresolved')
    RETURNING r.id, r.schedule_id, r.workflow_id, r.trigger, o.token, o.status,
              o.error_message, o.release, r.request, o.lineage_id, o.amc_execution_id,
              o.execution_status
), lineage AS (
    -- One workflow_executions row per execution started, linked both ways.
    -- Its first status check is one interval (:first_check seconds) away: an execution
    -- takes minutes, and the checks would take the instance's slots from the creates.
    INSERT INTO workflow_executions (id, workflow_id, amc_execution_id, status, trigger,
                                     schedule_run_id, request, submitted_at, finished_at,
                                     next_poll_at)
    SELECT run.lineage_id, run.workflow_id, run.amc_execution_id, run.execution_status,
           run.trigger, run.id, run.request, now(),
           CASE WHEN run.execution_status IN ('succeeded', 'failed') THEN now() END,
           now() + make_interval(secs => :first_check)
      FROM run WHERE run.lineage_id IS NOT NULL
    RETURNING id
), schedule AS (
    UPDATE workflow_schedules AS s
       SET consecutive_failures = CASE WHEN run.status = 'failed'
                                       THEN s.consecutive_failures + 1
                                       WHEN run.status = 'succeeded' THEN 0
                                       ELSE s.consecutive_failures END,
           last_error = CASE WHEN run.status = 'failed' THEN run.error_message
                             ELSE s.last_error END,
           paused_at = CASE WHEN run.status = 'failed' AND s.paused_at IS NULL
                                 AND s.consecutive_failures + 1 >= :max_failures
                            THEN now() ELSE s.paused_at END,
           pause_reason = CASE WHEN run.status = 'failed' AND s.paused_at IS NULL
                                    AND s.consecutive_failures + 1 >= :max_failures
                               THEN 'auto-paused after ' || (s.consecutive_failures + 1)
                                    || ' consecutive failures; last error: '
                                    || COALESCE(run.error_message, 'unknown')
                               ELSE s.pause_reason END,
           locked_by = CASE WHEN run.release THEN NULL ELSE s.locked_by END,
           locked_at = CASE WHEN run.release THEN NULL ELSE s.locked_at END,
           updated_at = now()
      FROM run
     WHERE run.trigger = 'scheduled' AND s.id = run.schedule_id
       AND s.locked_by IS NOT DISTINCT FROM :worker_id AND s.fencing_token = run.token
    RETURNING s.id, s.paused_at IS NOT DISTINCT FROM now() AS paused, s.pause_reason
)
SELECT run.id AS run_id, run.trigger, schedule.id IS NOT NULL AS schedule_updated,
       COALESCE(schedule.paused, false) AS paused, schedule.pause_reason,
       (SELECT count(*) FROM lineage) AS executions_recorded
  FROM run LEFT JOIN schedule ON schedule.id = run.schedule_id;


-- name: claim_status_checks
-- One AMC instance's executions due for a status check, so that one thread makes them one
-- after the other under one of the instance's slots: the instance of the check due first,
-- with its checks due within :lookahead seconds, oldest first, up to :batch_size. Each is
-- pushed to its next check: one step after its due time (so a check made a little early
-- does not add checks), never before now (so one made late does not bunch the next ones);
-- the step backs off to ten times the interval. past_deadline: stop asking, record
-- "unknown". status, raw_status: as last recorded, to write only what changed.
-- next_due_in: seconds until the first check left unclaimed falls due (NULL: none);
-- next_check_in: until this one's next check.
WITH first AS (
    SELECT e.workflow_id
      FROM workflow_executions e
     WHERE e.status IN ('pending', 'running')
       AND COALESCE(e.next_poll_at, e.submitted_at) <= now()
     ORDER BY COALESCE(e.next_poll_at, e.submitted_at)
     LIMIT 1
       FOR UPDATE SKIP LOCKED
), due AS (
    SELECT e.id, COALESCE(e.next_poll_at, e.submitted_at) AS due_at
      FROM workflow_executions e
      JOIN workflows w ON w.id = e.workflow_id
     WHERE w.instance_id = (SELECT f.instance_id FROM first JOIN workflows f
                                                 ON f.id = first.workflow_id)
       AND e.status IN ('pending', 'running')
       AND COALESCE(e.next_poll_at, e.submitted_at)
           <= now() + make_interval(secs => :lookahead)
     ORDER BY COALESCE(e.next_poll_at, e.submitted_at)
     LIMIT :batch_size
       FOR UPDATE OF e SKIP LOCKED
), later AS (
    -- When the first check this batch leaves falls due (another instance's, or this one's
    -- past the batch): due already, another thread should start; later, the thread waits.
    SELECT COALESCE(e.next_poll_at, e.submitted_at) AS due_at
      FROM workflow_executions e
     WHERE e.status IN ('pending', 'running') AND e.id NOT IN (SELECT id FROM due)
     ORDER BY COALESCE(e.next_poll_at, e.submitted_at)
     LIMIT 1
)
UPDATE workflow_executions AS e
   SET next_poll_at = GREATEST(due.due_at, now()) + make_interval(
           secs => :interval * LEAST(1 + e.poll_count / 5, 10)),
       poll_count = e.poll_count + 1
  FROM due, workflows w, amc_instances i, amc_accounts a
 WHERE e.id = due.id AND w.id = e.workflow_id
   AND i.id = w.instance_id AND a.id = i.account_id
RETURNING e.id, e.amc_execution_id, e.status, e.raw_status,
          i.instance_id AS amc_instance_id, a.account_id AS amc_entity_id,
          a.marketplace_id,
          e.submitted_at < now() - make_interval(secs => :deadline) AS past_deadline,
          CAST(EXTRACT(EPOCH FROM (SELECT due_at FROM later) - now()) AS float8)
              AS next_due_in,
          CAST(EXTRACT(EPOCH FROM e.next_poll_at - now()) AS float8) AS next_check_in;


-- name: next_status_check_in
-- Seconds until the next status check falls due (by the database's clock), if any.
SELECT EXTRACT(EPOCH FROM min(COALESCE(e.next_poll_at, e.submitted_at)) - now())
  FROM workflow_executions e
 WHERE e.status IN ('pending', 'running');


-- name: record_statuses
-- Records what AMC said of executions; a final status also finishes the run and, for
-- scheduled runs, moves the schedule's failure count (auto-pause) as record_outcomes does.
-- [any ids] [other statuses]
WITH seen AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]),
                         CAST(:raw AS text[]), CAST(:reasons AS text[]))
             AS v(id, status, raw_status, reason)
), execution AS (
    UPDATE workflow_executions AS e
       SET status = seen.status, raw_status = seen.raw_status,
           error_message = COALESCE(seen.reason, e.error_message),
           finished_at = CASE WHEN seen.status IN ('succeeded', 'failed', 'cancelled',
                                                    'unknown')
                              THEN now() END,
           updated_at = now()
      FROM seen
     WHERE e.id = seen.id AND e.id = ANY(CAST(:ids AS uuid[]))
       -- that is: status IN ('pending', 'running')
       AND e.status NOT IN ('succeeded', 'failed', 'cancelled', 'unknown')
    RETURNING e.id, e.schedule_run_id, e.status, e.error_message
), run AS (
    UPDATE schedule_runs AS r
       SET status = CASE WHEN execution.status = 'unknown' THEN 'failed'
                         ELSE execution.status END,
           finished_at = now(),
           error_message = execution.error_message
      FROM execution
     WHERE r.id = execution.schedule_run_id
       -- that is: status = 'dispatched'
       AND r.status NOT IN ('pending', 'claimed', 'dispatching', 'succeeded', 'failed',
                            'skipped', 'cancelled', 'unresolved')
       AND execution.status IN ('succeeded', 'failed', 'cancelled', 'unknown')
    RETURNING r.id, r.schedule_id, r.scheduled_for, r.correlation_id, r.trigger, r.status,
              r.error_message
), schedule AS (
    UPDATE workflow_schedules AS s
       SET consecutive_failures = CASE WHEN run.status = 'failed'
                                       THEN s.consecutive_failures + 1
                                       WHEN run.status = 'succeeded' THEN 0
                                       ELSE s.consecutive_failures END,
           last_error = CASE WHEN run.status = 'failed' THEN run.error_message
                             ELSE s.last_error END,
           paused_at = CASE WHEN run.status = 'failed' AND s.paused_at IS NULL
                                 AND s.consecutive_failures + 1 >= :max_failures
                            THEN now() ELSE s.paused_at END,
           pause_reason = CASE WHEN run.status = 'failed' AND s.paused_at IS NULL
                                    AND s.consecutive_failures + 1 >= :max_failures
                               THEN 'auto-paused after ' || (s.consecutive_failures + 1)
                                    || ' consecutive failures; last error: '
                                    || COALESCE(run.error_message, 'unknown')
                               ELSE s.pause_reason END,
           updated_at = now()
      FROM run
     WHERE run.trigger = 'scheduled' AND s.id = run.schedule_id
       AND run.status IN ('succeeded', 'failed')
    -- the run whose status was applied, when a batch holds several of one schedule
    RETURNING run.id AS run_id, s.pause_reason,
              s.paused_at IS NOT DISTINCT FROM now() AS paused
)
SELECT run.id AS run_id, run.schedule_id, run.scheduled_for, run.correlation_id,
       run.trigger, run.status, run.error_message,
       COALESCE(schedule.paused, false) AS paused,
       CASE WHEN schedule.paused THEN schedule.pause_reason END AS pause_reason
  FROM run LEFT JOIN schedule ON schedule.run_id = run.id;


-- name: database_now
SELECT now();


-- name: heartbeat
-- This worker is alive; stopped_at is cleared (a worker id reused after a stop).
INSERT INTO scheduler_workers (worker_id, hostname, pid, version, clock_skew_seconds,
                               session_pid)
VALUES (:worker_id, :hostname, :pid, :version, :skew, :session_pid)
ON CONFLICT (worker_id) DO UPDATE
   SET heartbeat_at = now(), clock_skew_seconds = EXCLUDED.clock_skew_seconds,
       session_pid = EXCLUDED.session_pid, stopped_at = NULL;


-- name: renew_locks
-- Extend the lease of the schedule claims this process is still working on. [not distinct]
UPDATE workflow_schedules AS s SET locked_at = now()
 WHERE s.locked_by IS NOT DISTINCT FROM :worker_id AND s.id = ANY(CAST(:ids AS uuid[]));


-- name: renew_manual_runs
-- Extend the lease of the manual runs this process is still working on. [other statuses]
UPDATE schedule_runs AS r SET claimed_at = now()
 WHERE r.worker_id = :worker_id AND r.id = ANY(CAST(:ids AS uuid[]))
   -- that is: status IN ('claimed', 'dispatching')
   AND r.status NOT IN ('pending', 'dispatched', 'succeeded', 'failed', 'skipped',
                        'cancelled', 'unresolved');


-- name: mark_stopped
-- A clean stop: the other workers' reapers may take what is left at once.
UPDATE scheduler_workers SET stopped_at = now(), heartbeat_at = now()
 WHERE worker_id = :worker_id;


-- name: select_sessions_gone
-- Other workers, not yet dead by their heartbeat, that registered a session lock which is
-- free now (pg_locks is read once); none while the server itself is new (after a restart
-- every lock went at once).
SELECT w.worker_id FROM scheduler_workers w
 WHERE w.session_pid IS NOT NULL AND w.stopped_at IS NULL AND w.worker_id <> :worker_id
   AND w.heartbeat_at >= now() - make_interval(secs => :dead_after)
   AND scheduler_worker_lock_key(w.worker_id) NOT IN (SELECT scheduler_held_advisory_keys())
   AND pg_postmaster_start_time() < now() - make_interval(secs => :settle);


-- name: select_stale_locks
-- Schedule claims their owner gave up: under our own worker id but not among the claims
-- this process holds (:held: a predecessor with our id died holding them, or we gave them
-- up), older than the lease, or held by a worker that is unknown, stopped, silent for
-- longer than :dead_after, or among :gone (its session ended: select_sessions_gone).
-- reap_manual_runs asks the same of manual runs.
SELECT s.id, s.locked_by, s.fencing_token
  FROM workflow_schedules s
  LEFT JOIN scheduler_workers w ON w.worker_id = s.locked_by
 WHERE s.locked_by IS NOT NULL
   AND (   (s.locked_by = :worker_id AND NOT s.id = ANY(CAST(:held AS uuid[])))
        OR s.locked_at < now() - make_interval(secs => :lease)
        OR w.worker_id IS NULL OR w.stopped_at IS NOT NULL
        OR w.heartbeat_at < now() - make_interval(secs => :dead_after)
        OR w.worker_id = ANY(CAST(:gone AS text[])))
 LIMIT :batch_size
   FOR UPDATE OF s SKIP LOCKED;


-- name: take_over_locks
-- The stale claims become ours, each with a fresh fencing token. [any ids]
UPDATE workflow_schedules AS s
   SET locked_by = :worker_id, locked_at = now(), fencing_token = s.fencing_token + 1
  FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[])) AS v(id, token)
 WHERE s.id = v.id AND s.id = ANY(CAST(:ids AS uuid[])) AND s.fencing_token = v.token
RETURNING s.id, s.fencing_token;


-- name: take_over_runs
-- The unfinished runs the taken-over claims carried move to the new token: ours to finish.
UPDATE schedule_runs AS r
   SET fencing_token = v.new_token, worker_id = :worker_id, call_started_at = NULL
  FROM unnest(CAST(:ids AS uuid[]), CAST(:old_tokens AS bigint[]),
              CAST(:new_tokens AS bigint[])) AS v(schedule_id, old_token, new_token)
 WHERE r.schedule_id = v.schedule_id AND r.fencing_token = v.old_token
   AND r.trigger = 'scheduled' AND r.status IN ('claimed', 'dispatching')
RETURNING r.id, r.schedule_id, r.workflow_id, r.scheduled_for, r.trigger, r.status,
          r.fencing_token, r.correlation_id, r.parameters_override;


-- name: reap_manual_runs
-- Take over manual runs whose owner gave them up (as select_stale_locks judges schedule
-- claims), each with a fresh fencing token.
UPDATE schedule_runs AS r
   SET fencing_token = r.fencing_token + 1, worker_id = :worker_id, call_started_at = NULL
 WHERE r.id IN (
           SELECT r2.id FROM schedule_runs r2
             LEFT JOIN scheduler_workers w ON w.worker_id = r2.worker_id
            WHERE r2.trigger = 'manual' AND r2.status IN ('claimed', 'dispatching')
              AND (   (r2.worker_id = :worker_id AND NOT r2.id = ANY(CAST(:held AS uuid[])))
                   OR r2.claimed_at < now() - make_interval(secs => :lease)
                   OR w.worker_id IS NULL OR w.stopped_at IS NOT NULL
                   OR w.heartbeat_at < now() - make_interval(secs => :dead_after)
                   OR w.worker_id = ANY(CAST(:gone AS text[])))
            LIMIT :batch_size
              FOR UPDATE OF r2 SKIP LOCKED)
RETURNING r.id, r.schedule_id, r.workflow_id, r.scheduled_for, r.trigger, r.status,
          r.fencing_token, r.correlation_id, r.parameters_override;


-- name: select_needing_next_run
-- Enabled schedules without a next slot (an invariant the tick repairs).
SELECT s.id, s.cron_expression, s.interval_seconds, s.interval_anchor, s.timezone
  FROM workflow_schedules s
 WHERE s.enabled AND s.deleted_at IS NULL AND s.next_run_at IS NULL
 LIMIT :batch_size
   FOR UPDATE SKIP LOCKED;


-- name: select_expired_pauses
-- Schedules whose pause ends by :now (paused with an "until").
SELECT s.id, s.cron_expression, s.interval_seconds, s.interval_anchor, s.timezone
  FROM workflow_schedules s
 WHERE s.paused_until <= :now AND s.deleted_at IS NULL
 LIMIT :batch_size
   FOR UPDATE SKIP LOCKED;


-- name: set_next_runs
-- Give schedules their next slot; :resume also ends their pause and forgets the failures
-- that caused it. [any ids]
UPDATE workflow_schedules AS s
   SET next_run_at = v.next_run_at, updated_at = now(),
       paused_at = CASE WHEN :resume THEN NULL ELSE s.paused_at END,
       paused_until = CASE WHEN :resume THEN NULL ELSE s.paused_until END,
       pause_reason = CASE WHEN :resume THEN NULL ELSE s.pause_reason END,
       consecutive_failures = CASE WHEN :resume THEN 0 ELSE s.consecutive_failures END
  FROM unnest(CAST(:ids AS uuid[]), CAST(:next AS timestamptz[])) AS v(id, next_run_at)
 WHERE s.id = v.id AND s.id = ANY(CAST(:ids AS uuid[]));


-- name: quarantine
-- Disable a schedule that cannot be scheduled, with the reason; nothing when it was
-- disabled already (another worker got there first).
UPDATE workflow_schedules
   SET enabled = false, paused_at = now(), paused_until = NULL,
       pause_reason = 'quarantined: ' || :reason, locked_by = NULL, locked_at = NULL,
       updated_at = now()
 WHERE id = :schedule_id AND enabled
RETURNING workflow_id, next_run_at;


-- name: insert_quarantined_run
-- The run row a quarantined schedule leaves at the slot it would have had.
INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger, status,
                           skip_reason, error_message, worker_id, finished_at)
VALUES (:schedule_id, :workflow_id, :slot, 'scheduled', 'skipped', 'quarantined', :reason,
        :worker_id, now())
ON CONFLICT (schedule_id, scheduled_for) WHERE trigger = 'scheduled' DO NOTHING;


-- name: next_wakeup
-- The earliest slot time at which a schedule, manual run or pause becomes due; and whether
-- other workers hold schedules' claims (should one die, they are ours to take).
SELECT LEAST(
           (SELECT min(s.next_run_at) FROM workflow_schedules s
             WHERE s.enabled AND s.deleted_at IS NULL AND s.paused_at IS NULL
               AND s.locked_by IS NULL),
           (SELECT min(scheduled_for) FROM schedule_runs WHERE status = 'pending'),
           (SELECT min(paused_until) FROM workflow_schedules WHERE paused_until IS NOT NULL)
       ) AS wake_at,
       EXISTS (SELECT 1 FROM workflow_schedules
                WHERE locked_by IS NOT NULL AND locked_by <> :worker_id) AS others_hold_claims;


-- name: count_due_backlog
-- Schedules due and unclaimed at :now, counted up to :cap.
SELECT count(*) FROM (
           SELECT 1 FROM workflow_schedules s
            WHERE s.enabled AND s.deleted_at IS NULL AND s.paused_at IS NULL
              AND s.locked_by IS NULL AND s.next_run_at <= :now
            LIMIT :cap) AS due;


-- name: count_overdue_status_checks
-- Unfinished executions whose status check is more than :seconds overdue, up to :cap.
SELECT count(*) FROM (
           SELECT 1 FROM workflow_executions
            WHERE status IN ('pending', 'running')
              AND COALESCE(next_poll_at, submitted_at) < now() - make_interval(secs => :seconds)
            LIMIT :cap) AS overdue;


-- name: count_paused
SELECT count(*) FROM workflow_schedules WHERE paused_at IS NOT NULL AND deleted_at IS NULL;


-- name: select_run_context
-- Runs with their context (as insert_runs returns them), for runs claimed otherwise.
SELECT r.id, r.schedule_id, r.workflow_id, r.scheduled_for, r.trigger, r.status,
       r.fencing_token, r.correlation_id, r.parameters_override,
       w.id AS workflow_id, w.name AS workflow_name, w.amc_workflow_id,
       w.parameters AS workflow_parameters, s.parameters AS schedule_parameters, s.timezone,
       i.instance_id AS amc_instance_id, a.account_id AS amc_entity_id, a.marketplace_id,
       a.region
  FROM schedule_runs r
  JOIN workflow_schedules s ON s.id = r.schedule_id
  LEFT JOIN workflows w ON w.id = r.workflow_id
  LEFT JOIN amc_instances i ON i.id = w.instance_id
  LEFT JOIN amc_accounts a ON a.id = i.account_id
 WHERE r.id = ANY(CAST(:run_ids AS uuid[]));
