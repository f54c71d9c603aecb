"""The AMC path end to end: a morning burst over many instances against AMC's own limit, status
polling at scale, and the noop burst beside the starting commit's.

    python bench/bench_amc.py                        # everything (about 10 minutes)
    python bench/bench_amc.py --only a               # the morning burst alone
    python bench/bench_amc.py --only n --baseline /tmp/amc-baseline   # noop, side by side

(a) morning burst  the fake AMC over real HTTP (each call LATENCY ± JITTER, at most CAP
                   requests in flight per instance, 429 beyond), INSTANCES instances, SCHEDULES
                   schedules due at one slot, unevenly spread (BIG_INSTANCES of them hold a
                   third), 4 ``scheduler-daemon run --executor amc`` daemons. Figures: the
                   makespan (slot → last create answered) against the physical bound, the
                   busiest instance's count × L / C; 429s from our own concurrency; each
                   instance's first-submission lateness (p99); how long an instance with runs
                   waiting had nothing in flight, and its idle slot-seconds; CPU per run.
(b) status polling POLL_EXECUTIONS executions running on the fake, all due for a check at the
                   start (as after an outage) and finishing at random over the window
                   (--poll-seconds), 4 daemons checking them every minute: AMC requests per
                   minute and PostgreSQL statements per check, each against its budget; how long
                   the first round takes and the backlog after it; how late a final status is
                   recorded after the fake finished the execution, against one poll interval.
(n) noop burst     bench_daemon.py's 4-daemon burst (10,000 slots, median of runs), run
                   alternately from this tree and from --baseline (a git worktree of the
                   starting commit), in one invocation.

Nothing here asserts on timing: each figure is printed beside its target with PASS or MISS.
The machine's other load is printed beside each part (CpuMeter).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from bench_daemon import (
    Conn,
    CpuMeter,
    Daemon,
    DaemonCrashedError,
    Postgres,
    Report,
    check_alive,
    one,
    percentile,
    report_logs,
    top_statements,
    wait_for,
    wait_registered,
    work_dir,
)

from scheduler_daemon.amc.fake.server import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_MARKETPLACE_ID,
    DEFAULT_REFRESH_TOKEN,
    FakeAmcServer,
    LoggedRequest,
)
from scheduler_daemon.amc.fake.state import Script

INSTANCES = 60
SCHEDULES = 5_000
BIG_INSTANCES = 3  # hold a third of the schedules between them
LATENCY = 0.2
JITTER = 0.05
CAP = 10  # AMC_API.md §8: 10 executions in parallel per instance
DAEMONS = 4
WORKFLOW = "wf-morning"
POLL_EXECUTIONS = 10_000
POLL_INTERVAL = 60.0  # the default --status-poll-interval, in simulated seconds


# --- the daemons against the fake ------------------------------------------------------------


class AmcDaemon(Daemon):
    """bench_daemon's Daemon, running ``--executor amc`` against the fake AMC."""

    def __init__(
        self, url: str, worker_id: str, log_dir: Path, args: Sequence[str], amc: FakeAmcServer
    ) -> None:
        self.worker_id = worker_id
        self.log_path = log_dir / f"{worker_id}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
        env |= {
            "SCHEDULER_ENV_FILE": "/dev/null",
            "SCHEDULER_AMC_API_URL": amc.base_url,
            "SCHEDULER_AMC_TOKEN_URL": amc.token_url,
            "SCHEDULER_AMC_CLIENT_ID": DEFAULT_CLIENT_ID,
            "SCHEDULER_AMC_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "SCHEDULER_AMC_REFRESH_TOKEN": DEFAULT_REFRESH_TOKEN,
        }
        self._log = self.log_path.open("wb")
        command = [
            sys.executable, "-m", "scheduler_daemon", "--database-url", url, "run",
            "--executor", "amc", "--log-format", "json", "--worker-id", worker_id, *args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._profiler = None


class amc_daemons:  # noqa: N801 - used as a context manager, like bench_daemon.daemons
    def __init__(
        self, url: str, label: str, log_dir: Path, args: Sequence[str], amc: FakeAmcServer
    ) -> None:
        self._args = (url, label, log_dir, args, amc)
        self.procs: list[Daemon] = []

    def __enter__(self) -> list[Daemon]:
        url, label, log_dir, args, amc = self._args
        for i in range(DAEMONS):
            self.procs.append(AmcDaemon(url, f"amc-{label}-{i}", log_dir, args, amc))
        return self.procs

    def __exit__(self, *_: object) -> None:
        for daemon in self.procs:
            daemon.stop()


def seed_instances(conn: Conn, amc: FakeAmcServer, count: int) -> list[tuple[str, Any]]:
    """``count`` instances of one account, in our database and in the fake, each with one
    workflow; returns (AMC instance id, our workflow id) for each."""
    account = one(
        conn,
        "INSERT INTO amc_accounts (account_id, marketplace_id, region, name)"
        " VALUES (%s, %s, 'NA', 'morning account') RETURNING id",
        (DEFAULT_ACCOUNT_ID, DEFAULT_MARKETPLACE_ID),
    )
    seeded = []
    for n in range(count):
        instance_id = f"amcm{n:07d}"
        amc.seed(instance_id, DEFAULT_ACCOUNT_ID, DEFAULT_MARKETPLACE_ID, {WORKFLOW: ()})
        workflow = one(
            conn,
            """
            WITH i AS (INSERT INTO amc_instances (instance_id, account_id, name)
                       VALUES (%(instance)s, %(account)s, %(instance)s) RETURNING id)
            INSERT INTO workflows (name, instance_id, amc_workflow_id)
            SELECT 'morning ' || %(instance)s, id, %(workflow)s FROM i RETURNING id
            """,
            {"instance": instance_id, "account": account, "workflow": WORKFLOW},
        )
        seeded.append((instance_id, workflow))
    return seeded


def uneven_counts(total: int, instances: int, big: int) -> list[int]:
    """A third of ``total`` on the first ``big`` instances, the rest spread over the others."""
    heavy, light = total // 3, total - total // 3
    counts = [heavy // big + (i < heavy % big) for i in range(big)]
    rest = instances - big
    counts += [light // rest + (i < light % rest) for i in range(rest)]
    return counts


class Clocks:
    """Maps the database's clock onto this process's monotonic one (the fake logs in it)."""

    def __init__(self, conn: Conn) -> None:
        before = time.monotonic()
        self._db: datetime = one(conn, "SELECT now()")
        self._mono = (before + time.monotonic()) / 2

    def mono(self, moment: datetime) -> float:
        return self._mono + (moment - self._db).total_seconds()


# --- (a) morning burst ------------------------------------------------------------------------


@dataclass(frozen=True)
class BurstSettings:
    concurrency: int | None
    batch_size: int = 500

    @property
    def label(self) -> str:
        conc = "default" if self.concurrency is None else str(self.concurrency)
        return f"{DAEMONS}d c{conc} b{self.batch_size}"

    def args(self) -> list[str]:
        args = ["--batch-size", str(self.batch_size), "--status-poll-interval", "3600"]
        if self.concurrency is not None:
            args += ["--concurrency", str(self.concurrency)]
        return args


def bench_morning(
    report: Report, pg: Postgres, log_dir: Path, settings: BurstSettings, index: int
) -> None:
    section = f"morning {settings.label}"
    counts = uneven_counts(SCHEDULES, INSTANCES, BIG_INSTANCES)
    print(
        f"\n(a) morning burst: {SCHEDULES:,} schedules on {INSTANCES} instances "
        f"(busiest {counts[0]}, quietest {counts[-1]}), {section}, fake AMC {LATENCY * 1000:.0f} "
        f"± {JITTER * 1000:.0f} ms per call, {CAP} in flight per instance",
        flush=True,
    )
    name = f"bench_morning_{index}"
    url = pg.new_database(name)
    amc = FakeAmcServer(
        latency=LATENCY,
        jitter=JITTER,
        max_in_flight=CAP,
        pending_seconds=3600,
        running_seconds=3600,
        max_running_per_instance=SCHEDULES,
    )
    try:
        with (
            amc,
            psycopg.connect(url, autocommit=True) as conn,
            amc_daemons(url, f"m{index}", log_dir, settings.args(), amc) as procs,
        ):
            seeded = seed_instances(conn, amc, INSTANCES)
            wait_registered(conn, procs)
            time.sleep(1.0)
            meter = CpuMeter(pg, procs)
            meter.start()
            slot = insert_morning(conn, seeded, counts)
            clocks = Clocks(conn)

            def all_sent() -> bool:
                sent = one(
                    conn,
                    "SELECT count(*) FROM schedule_runs"
                    " WHERE status NOT IN ('pending', 'claimed', 'dispatching')",
                )
                return bool(sent >= SCHEDULES)

            finished = wait_for("every run to be sent", all_sent, 300.0, procs, every=0.25)
            meter.stop()
            check_alive(procs)
            morning_figures(
                report,
                section,
                conn,
                amc=amc,
                slot=clocks.mono(slot),
                seeded=seeded,
                counts=counts,
            )
            if not finished:
                report.problem(section, "not every run was sent within 300 s")
            meter.report(report, section, SCHEDULES)
        report_logs(report, section, procs)
    except DaemonCrashedError as exc:
        report.problem(section, f"daemon crashed: {exc}")
    finally:
        pg.drop_database(name)


def insert_morning(
    conn: Conn, seeded: Sequence[tuple[str, Any]], counts: Sequence[int]
) -> datetime:
    slot: datetime = one(conn, "SELECT date_trunc('second', now()) + interval '4 seconds'")
    conn.execute(
        """
        INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled, next_run_at)
        SELECT w.id, 'morning ' || w.n || ' ' || k, '0 9 * * *', true, %(slot)s
          FROM unnest(%(workflows)s::uuid[], %(counts)s::integer[]) WITH ORDINALITY
                   AS w(id, per, n),
               generate_series(1, w.per) AS k
         -- Schedules are made one by one over months, not an instance at a time: the rows'
         -- order (which the claim follows among slots that tie) says nothing of instances.
         ORDER BY random()
        """,
        {"slot": slot, "workflows": [w for _, w in seeded], "counts": list(counts)},
    )
    lead = (slot - one(conn, "SELECT now()")).total_seconds()
    print(f"  inserted; slot is {lead:.2f}s away", flush=True)
    return slot


def morning_figures(
    report: Report,
    section: str,
    conn: Conn,
    *,
    amc: FakeAmcServer,
    slot: float,
    seeded: Sequence[tuple[str, Any]],
    counts: Sequence[int],
) -> None:
    creates = [r for r in amc.requests(endpoint="create") if r.finished is not None]
    accepted = [r for r in creates if r.status == 200]
    statuses = conn.execute(
        "SELECT status, count(*) FROM schedule_runs GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    dispatched = {str(status): int(n) for status, n in statuses}.get("dispatched", 0)
    report.count(section, "runs dispatched", dispatched, must_be=SCHEDULES)
    report.count(section, "executions created", len(accepted), must_be=SCHEDULES)
    if not accepted:
        report.problem(section, "no create was accepted")
        return
    latency = statistics.fmean(r.finished - r.started for r in accepted if r.finished)
    busiest = max(counts)
    bound = busiest * latency / CAP
    even = SCHEDULES * latency / (INSTANCES * CAP)
    makespan = max(r.finished for r in accepted if r.finished) - slot
    report.figure(section, "mean create latency L (as the fake saw it)", latency * 1000, " ms")
    report.figure(section, "bound: busiest count x L / C", bound, " s", key=True)
    report.figure(section, "N x L / (I x C) if evenly spread", even, " s")
    report.figure(section, "makespan: slot -> last create answered", makespan, " s", key=True)
    report.figure(section, "makespan / bound", makespan / bound, "x", target=("<=", 1.2), digits=2)
    report.count(section, "429s from our own concurrency", amc.throttled(), must_be=0)
    by_instance: dict[str, list[LoggedRequest]] = defaultdict(list)
    for request in accepted:
        by_instance[request.instance_id or ""].append(request)
    firsts = [min(r.started for r in by_instance[i]) - slot for i, _ in seeded if by_instance[i]]
    report.figure(
        section,
        "first submission per instance: p99 lateness",
        percentile(firsts, 0.99),
        " s",
        target=("<=", 1.0),
    )
    report.figure(section, "first submission per instance: max", max(firsts), " s")
    idle, gaps, busy_use = [], [], []
    for (instance_id, _), count in zip(seeded, counts, strict=True):
        mine = by_instance[instance_id]
        if not mine:
            continue
        slot_seconds, gap, use = starvation(mine, slot)
        idle.append(slot_seconds)
        gaps.append(gap)
        if count == busiest:
            busy_use.append(use)
    report.figure(
        section,
        "longest stretch an instance with runs waiting had 0 in flight",
        max(gaps),
        " s",
        target=("<=", 1.0),
    )
    report.figure(
        section,
        "busiest instances: slots used while runs waited",
        min(busy_use) * 100,
        " %",
        target=(">=", 90.0),
        digits=1,
    )
    report.figure(section, "max idle slot-seconds of an instance with runs waiting", max(idle), "")
    report.figure(section, "median idle slot-seconds", statistics.median(idle), "")
    peak = peak_in_flight(accepted)
    report.figure(section, "peak creates in flight, all instances", peak, "", digits=0)


def starvation(requests: Sequence[LoggedRequest], slot: float) -> tuple[float, float, float]:
    """Over the time the instance had runs waiting (the slot to its last create's start): its
    idle slot-seconds (CAP minus in flight, integrated), its longest stretch with nothing in
    flight, and the share of its slots in use."""
    end = max(r.started for r in requests)
    events = sorted(
        [(r.started, +1) for r in requests] + [(r.finished or r.started, -1) for r in requests]
    )
    in_flight, at, idle, used, gap, empty_since = 0, slot, 0.0, 0.0, 0.0, slot
    for event_at, change in events:
        moment = max(event_at, slot)
        if moment > end:
            break
        idle += (CAP - min(CAP, in_flight)) * (moment - at)
        used += min(CAP, in_flight) * (moment - at)
        if in_flight == 0 and change > 0:
            gap = max(gap, moment - empty_since)
        in_flight += change
        if in_flight == 0:
            empty_since = moment
        at = moment
    span = end - slot
    return idle, gap, (used / (CAP * span)) if span > 0 else 1.0


def peak_in_flight(requests: Sequence[LoggedRequest]) -> int:
    events = sorted(
        [(r.started, 1) for r in requests] + [(r.finished or 0.0, -1) for r in requests]
    )
    level = peak = 0
    for _, change in events:
        level += change
        peak = max(peak, level)
    return peak


# --- (b) status polling ----------------------------------------------------------------------


def backoff_polls_per_hour(interval: float) -> int:
    """Status checks one execution gets in its first hour (claim_status_polls' back-off:
    the n-th wait is interval x min(1 + n // 5, 10), the first one interval after submission)."""
    at, count = interval, 0
    while at <= 3600:
        count += 1
        at += interval * min(1 + count // 5, 10)
    return count


def seed_executions(
    conn: Conn, amc: FakeAmcServer, seeded: Sequence[tuple[str, Any]], duration: float
) -> dict[str, datetime]:
    """POLL_EXECUTIONS executions running on the fake, spread over the instances, each
    finishing at a random moment of the next ``duration`` seconds, and their runs and
    executions in our database, submitted over the last minute (so their checks fall due
    evenly); returns each one's finish time on the fake."""
    rng = random.Random(17)
    ids: list[str] = []
    finish: dict[str, datetime] = {}
    instance_of: list[int] = []
    with amc.state.lock:
        for n in range(POLL_EXECUTIONS):
            index = n % len(seeded)
            payload = amc.state.create_execution(seeded[index][0], {"workflowId": WORKFLOW})
            execution = amc.state.executions[payload["workflowExecutionId"]]
            seconds = rng.uniform(0.1, duration)
            execution.script = Script(running_seconds=seconds)
            ids.append(execution.execution_id)
            instance_of.append(index)
            finish[execution.execution_id] = execution.created_at + timedelta(seconds=seconds)
        amc.state.advance()
    conn.execute(
        """
        WITH v AS (
            SELECT amc_id, w.id AS workflow_id, k
              FROM unnest(%(ids)s::text[], %(workflows)s::uuid[]) WITH ORDINALITY
                       AS x(amc_id, workflow, k)
              JOIN workflows w ON w.id = x.workflow
        ), s AS (
            INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled,
                                            next_run_at)
            SELECT workflow_id, 'poll ' || k, '0 9 * * *', false, now() + interval '1 day'
              FROM v RETURNING id, workflow_id, name
        ), r AS (
            INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger,
                                       status, worker_id, amc_execution_id)
            SELECT s.id, s.workflow_id, now() - interval '1 minute', 'scheduled',
                   'dispatched', 'seed', v.amc_id
              FROM s JOIN v ON s.name = 'poll ' || v.k
            RETURNING id, workflow_id, amc_execution_id
        ), e AS (
            INSERT INTO workflow_executions (workflow_id, amc_execution_id, status, trigger,
                                             schedule_run_id, submitted_at)
            SELECT workflow_id, amc_execution_id, 'running', 'scheduled', id,
                   now() - random() * interval '1 minute'
              FROM r RETURNING id, schedule_run_id
        )
        UPDATE schedule_runs SET execution_id = e.id
          FROM e WHERE schedule_runs.id = e.schedule_run_id
        """,
        {"ids": ids, "workflows": [seeded[i][1] for i in instance_of]},
    )
    return finish


def bench_polling(report: Report, pg: Postgres, log_dir: Path, duration: float) -> None:
    section = "status polling"
    per_hour = backoff_polls_per_hour(POLL_INTERVAL)
    print(
        f"\n(b) status polling: {POLL_EXECUTIONS:,} executions running on {INSTANCES} instances, "
        f"checked every {POLL_INTERVAL:.0f} s (the default), {DAEMONS} daemons, for "
        f"{duration:.0f} s: the hour's first minutes, before any back-off (its heaviest)",
        flush=True,
    )
    name = "bench_polling"
    url = pg.new_database(name)
    amc = FakeAmcServer(
        latency=LATENCY, jitter=JITTER, max_in_flight=CAP, pending_seconds=0,
        max_running_per_instance=POLL_EXECUTIONS,
    )  # fmt: skip
    args = ["--status-poll-interval", str(POLL_INTERVAL), "--concurrency", "32"]
    try:
        with (
            amc,
            psycopg.connect(url, autocommit=True) as conn,
            amc_daemons(url, "p", log_dir, args, amc) as procs,
        ):
            seeded = seed_instances(conn, amc, INSTANCES)
            finish = seed_executions(conn, amc, seeded, duration)
            wait_registered(conn, procs)
            if pg.statements:
                conn.execute("SELECT pg_stat_statements_reset()")
            meter = CpuMeter(pg, procs)
            meter.start()
            started = time.monotonic()
            overdue: list[tuple[float, int]] = []  # (seconds into the window, checks)
            while time.monotonic() - started < duration:  # bounded: the window itself
                check_alive(procs)
                overdue.append((time.monotonic() - started, one(conn, OVERDUE)))
                time.sleep(1.0)
            meter.stop()
            statements = None
            if pg.statements:
                statements = one(
                    conn,
                    "SELECT sum(s.calls) FROM pg_stat_statements s JOIN pg_database d"
                    " ON d.oid = s.dbid WHERE d.datname = %s",
                    (name,),
                )
            polling_figures(report, section, conn, amc, finish, started, statements)
            backlog_figures(report, section, overdue)
            if statements is not None:
                checks = max(1, len(amc.requests(endpoint="get")))
                print("  the most frequent statements, per status check:")
                for line in top_statements(conn, name, checks, 8):
                    print("   ", line.replace("/slot", "/check"))
            report.figure(
                section,
                f"a whole hour by the back-off: checks per execution ({per_hour})",
                POLL_EXECUTIONS * per_hour / 60,
                "/min on average",
                digits=0,
            )
            meter.report(report, section, max(1, len(amc.requests(endpoint="get"))))
        report_logs(report, section, procs)
    except DaemonCrashedError as exc:
        report.problem(section, f"daemon crashed: {exc}")
    finally:
        pg.drop_database(name)


# Checks due more than OVERDUE_BY seconds ago and not yet claimed: a backlog.
OVERDUE_BY = 10
OVERDUE = f"""
    SELECT count(*) FROM workflow_executions
     WHERE status IN ('pending', 'running')
       AND COALESCE(next_poll_at, submitted_at) < now() - interval '{OVERDUE_BY} seconds'
"""


def backlog_figures(report: Report, section: str, overdue: Sequence[tuple[float, int]]) -> None:
    """Keeping up: the window starts with every check due at once (as after an outage); once
    that first round is made, no check should wait long."""
    cleared = next((at for at, count in overdue if count == 0), None)
    if cleared is None:
        report.problem(section, f"the first round of checks was never done ({overdue[-1][1]} left)")
        return
    report.figure(section, f"the first round ({POLL_EXECUTIONS:,} checks due at once) made in",
                  cleared, " s")  # fmt: skip
    after = [count for at, count in overdue if at > cleared]
    report.figure(
        section,
        f"checks over {OVERDUE_BY} s overdue after it, at most",
        max(after, default=0),
        "",
        target=("<=", POLL_EXECUTIONS / 100),
        digits=0,
    )


def polling_figures(  # noqa: PLR0917 - the window's facts
    report: Report,
    section: str,
    conn: Conn,
    amc: FakeAmcServer,
    finish: dict[str, datetime],
    started: float,
    statements: int | None,
) -> None:
    gets = [r for r in amc.requests(endpoint="get") if r.started >= started]
    minutes = (time.monotonic() - started) / 60
    report.figure(
        section,
        "AMC status checks per minute",
        len(gets) / minutes,
        "/min",
        target=("<=", POLL_EXECUTIONS * 60 / POLL_INTERVAL),
        digits=0,
    )
    report.count(section, "429s from our own concurrency", amc.throttled(), must_be=0)
    if statements is not None and gets:
        # A final status is written at once, one statement per run finished (here every
        # execution finishes within minutes; in production after 15 minutes or more).
        finished = one(
            conn,
            "SELECT count(*) FROM workflow_executions WHERE finished_at IS NOT NULL",
        )
        report.figure(
            section, "PostgreSQL statements per status check (all)", statements / len(gets), ""
        )
        report.figure(
            section,
            "PostgreSQL statements per status check, besides one per run finished",
            (statements - finished) / len(gets),
            "",
            target=("<=", 0.25),
        )
    rows = conn.execute(
        "SELECT amc_execution_id, finished_at FROM workflow_executions"
        " WHERE finished_at IS NOT NULL"
    ).fetchall()
    lags = [(done - finish[amc_id]).total_seconds() for amc_id, done in rows if amc_id in finish]
    now = one(conn, "SELECT now()")
    owed = sum(1 for moment in finish.values() if moment < now - timedelta(seconds=POLL_INTERVAL))
    report.count(section, "finished over a poll interval ago, recorded", len(lags), must_be=None)
    report.count(section, "finished over a poll interval ago, in all", owed, must_be=None)
    if lags:
        report.figure(
            section, "final status recorded after the fake's: p50", percentile(lags, 0.5), " s"
        )
        report.figure(
            section,
            "final status recorded after the fake's: p99",
            percentile(lags, 0.99),
            " s",
            target=("<=", POLL_INTERVAL),
        )
        report.figure(section, "final status recorded after the fake's: max", max(lags), " s")


# --- (n) the noop burst, beside the starting commit ------------------------------------------

_RATE = re.compile(r"slots per second \(poll\)\s+([\d,]+)/s")
_OTHERS = re.compile(r"CPU used by other processes on the machine meanwhile: (.*)")


def bench_noop(report: Report, baseline: Path | None, runs: int) -> None:
    section = "noop burst"
    here = Path(__file__).resolve().parent.parent
    trees = [("this tree", here)] + ([("starting commit", baseline)] if baseline else [])
    print(
        f"\n(n) noop burst: bench_daemon.py --only a --burst 4:500, {runs} runs each, "
        f"alternating: {', '.join(f'{label} ({tree})' for label, tree in trees)}",
        flush=True,
    )
    rates: dict[str, list[float]] = {label: [] for label, _ in trees}
    for n in range(runs):
        for label, tree in trees:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
            env["PYTHONPATH"] = str(tree)
            done = subprocess.run(
                [sys.executable, str(tree / "bench" / "bench_daemon.py"), "--only", "a",
                 "--burst", "4:500", "--repeat", "1"],
                cwd=tree, env=env, capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            found = _RATE.search(done.stdout)
            others = _OTHERS.search(done.stdout)
            if found is None:
                report.problem(section, f"{label}: no burst figure; {done.stdout[-500:]}")
                continue
            rate = float(found[1].replace(",", ""))
            rates[label].append(rate)
            print(
                f"  run {n + 1}, {label}: {rate:,.0f} slots/s "
                f"(others' CPU meanwhile: {others[1] if others else '?'})",
                flush=True,
            )
    for label, values in rates.items():
        report.figure(
            section,
            f"{label}: slots/s, median of {len(values)}",
            statistics.median(values) if values else None,
            "/s",
            target=(">=", 5000.0),
            digits=0,
        )


# --- main -------------------------------------------------------------------------------------


def parse_concurrency(raw: str) -> int | None:
    return None if raw == "default" else int(raw)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", default="abn", help="which parts to run (default: abn)")
    parser.add_argument(
        "--concurrency",
        type=parse_concurrency,
        action="append",
        default=None,
        help="each daemon's --concurrency in the morning burst, repeatable (default: 32)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=180.0,
        help="how long the status polling part runs (default: 180)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a tree of the starting commit (git worktree add --detach /tmp/x <commit>) for (n)",
    )
    parser.add_argument("--noop-runs", type=int, default=3, help="noop bursts per tree (3)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (daemon logs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report = Report()
    started = time.monotonic()
    with work_dir("bench_amc_", keep=args.keep, statements="b" in args.only) as (
        root,
        log_dir,
        pg,
    ):
        print(f"work dir {root} ({os.cpu_count()} CPUs)")
        if "a" in args.only:
            for index, concurrency in enumerate(args.concurrency or [32]):
                bench_morning(report, pg, log_dir, BurstSettings(concurrency), index)
        if "b" in args.only:
            bench_polling(report, pg, log_dir, args.poll_seconds)
    if "n" in args.only:
        bench_noop(report, args.baseline, args.noop_runs)
    report.table()
    kept = f"; work dir kept: {root}" if args.keep else ""
    print(f"\ntotal {time.monotonic() - started:.0f} s{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
