"""End-to-end figures for the daemon against its own embedded PostgreSQL.

    python bench/bench_daemon.py                 # the full run (about 5 minutes)
    python bench/bench_daemon.py --quick         # a smaller run (about 2-3 minutes)
    python bench/bench_daemon.py --only a --burst 4:1000:8 --statements   # one experiment

(a) burst     10,000 schedules due at one slot, 1 daemon and 4 daemons (subprocesses, batch
              size 500, default concurrency; 4 daemons 3 times, judged by the median; a full
              run also tries the ALTERNATIVES): seconds
              from the slot until every run succeeded, slots per second, duplicates, missing,
              CPU per slot of the daemons and of PostgreSQL, transactions per slot.
(b) idle tick in-process Scheduler.tick() with 1,000 and 1,000,000 schedules, none due; the
              two sizes tick alternately so that load from elsewhere weighs on both alike.
(c) lateness  one daemon with default settings; first slots every 0.5 s over 150 s (30 s in
              --quick); started_at minus scheduled_for, p50/p99/max.
(d) peak RSS  one daemon with 1,000,000 schedules in the table, 2,000 of them due at once;
              VmHWM from /proc after it handled them.

Nothing here asserts on timing: each figure is printed beside its target with PASS or MISS.
A daemon that crashes, duplicates a slot or misses one is reported under "problems" (those
are bugs). --statements loads pg_stat_statements and prints the costliest statements per slot
(a) and the most frequent per idle tick (b). --profile DIR attaches py-spy to each daemon
(on-CPU samples, raw folded stacks in DIR). The machine's other load is printed beside the
burst figures: on a shared 2-core machine it moves them by tens of percent.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from scheduler_daemon.db.databases import drop_database, with_database
from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.provision import EmbeddedServer, clone_database, create_template

BURST_SCHEDULES = 10_000
BIG_TABLE = 1_000_000
RSS_DUE = 2_000
POLL_EVERY = 0.1
# Set by --profile: py-spy attaches to each daemon and writes its samples there.
PROFILE_DIR: Path | None = None
# Extra burst settings tried in a full run (daemons:batch-size:concurrency).
ALTERNATIVES = ("4:500:4", "2:500:4")

Conn = psycopg.Connection[tuple[Any, ...]]


# --- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    metric: str
    value: str
    target: str = ""
    verdict: str = ""
    key: bool = False  # shown again in the summary table


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def figure(
        self,
        section: str,
        metric: str,
        value: float | None,
        unit: str = "",
        *,
        target: tuple[str, float] | None = None,
        digits: int = 3,
        key: bool = False,
    ) -> None:
        """Record and print one figure; ``target`` is (">=" or "<=", bound). Figures with a
        target, and those marked ``key``, are repeated in the summary table."""
        shown = "n/a" if value is None else f"{value:,.{digits}f}{unit}"
        goal, verdict = "", ""
        if target is not None:
            op, bound = target
            goal = f"{op} {bound:,g}{unit}"
            ok = value is not None and (value >= bound if op == ">=" else value <= bound)
            verdict = "PASS" if ok else "MISS"
        self.rows.append(Row(section, metric, shown, goal, verdict, key or target is not None))
        print(f"  {metric:<44} {shown:>16}  {goal:>14}  {verdict}", flush=True)

    def count(self, section: str, metric: str, value: int | None, *, must_be: int | None) -> None:
        shown = "n/a" if value is None else f"{value:,}"
        goal = "" if must_be is None else f"= {must_be}"
        verdict = "" if must_be is None else ("PASS" if value == must_be else "MISS")
        self.rows.append(Row(section, metric, shown, goal, verdict, must_be is not None))
        print(f"  {metric:<44} {shown:>16}  {goal:>14}  {verdict}", flush=True)

    def note(self, section: str, message: str) -> None:
        print(f"  note: {message}", flush=True)
        self.rows.append(Row(section, "note", message))

    def problem(self, section: str, message: str) -> None:
        print(f"  PROBLEM: {message}", flush=True)
        self.problems.append(f"[{section}] {message}")

    def table(self) -> None:
        print("\n=== summary ===")
        print(f"{'section':<22} {'metric':<40} {'value':>14}  {'target':>12}  verdict")
        for row in self.rows:
            if row.key:
                print(
                    f"{row.section:<22} {row.metric[:40]:<40} {row.value:>14}  {row.target:>12}  "
                    f"{row.verdict}"
                )
        if self.problems:
            print("\nproblems:")
            for problem in self.problems:
                print(f"  - {problem}")
        else:
            print("\nproblems: none (no crashes, duplicates or missing slots seen)")


# --- the embedded server ---------------------------------------------------------------------


class Postgres:
    """The tests' embedded PostgreSQL (scheduler_daemon/db/provision.py) with a template to
    clone from: migrated, with one workflow, and pg_stat_statements when ``statements``."""

    TEMPLATE = "bench_template"

    def __init__(self, root: Path, *, statements: bool = False) -> None:
        self.statements = statements
        self._server = EmbeddedServer(
            root / "pgdata", preload=("pg_stat_statements",) if statements else ()
        )
        self.admin_url = self._server.admin_url
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute("SHOW max_connections").fetchone()
            version = conn.execute("SHOW server_version").fetchone()
        print(
            f"embedded PostgreSQL {version[0] if version else '?'}, "
            f"max_connections={row[0] if row else '?'}",
            flush=True,
        )
        self._make_template()

    def _make_template(self) -> None:
        url = create_template(self.admin_url, self.TEMPLATE)
        with psycopg.connect(url, autocommit=True) as conn:
            if self.statements:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
                conn.execute("SELECT pg_reload_conf()")
            conn.execute(
                """
                WITH a AS (INSERT INTO amc_accounts (account_id, marketplace_id, region, name)
                           VALUES ('ENTITYBENCH', 'ATVPDKIKX0DER', 'NA', 'bench account')
                           RETURNING id),
                     i AS (INSERT INTO amc_instances (instance_id, account_id, name)
                           SELECT 'amcbench001', id, 'bench instance' FROM a RETURNING id)
                INSERT INTO workflows (name, instance_id, amc_workflow_id, sql_query)
                SELECT 'bench workflow', id, 'wf-bench', 'SELECT 1' FROM i
                """
            )

    def new_database(self, name: str) -> str:
        """A fresh, migrated database with one workflow; returns its URL."""
        return clone_database(self.admin_url, self.TEMPLATE, name)

    def drop_database(self, name: str) -> None:
        drop_database(self.admin_url, name, missing_ok=True)

    def close(self) -> None:
        self._server.close()

    def backend_pids(self) -> list[int]:
        """The server's processes: the postmaster and every backend and helper."""
        pid = self._server.pid
        if pid is None:
            return []
        try:
            postmaster = psutil.Process(pid)
            return [pid, *(child.pid for child in postmaster.children(recursive=True))]
        except psutil.Error:
            return []


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds so far of each process that still exists."""
    seconds: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            seconds[pid] = times.user + times.system
    return seconds


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy since boot."""
    times = psutil.cpu_times()
    return float(sum(times)) - times.idle - getattr(times, "iowait", 0.0)


def commits(conn: Conn, database: str) -> int:
    value = one(conn, "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,))
    return int(value or 0)


def top_statements(
    conn: Conn, database: str, per: int, limit: int = 10, *, by_time: bool = False
) -> list[str]:
    """The most frequent (or, ``by_time``, the costliest) statements run on ``database``
    (pg_stat_statements), per slot."""
    order = "s.total_exec_time" if by_time else "s.calls"
    rows = conn.execute(
        """
        SELECT s.calls, s.mean_exec_time, s.total_exec_time, s.plans, s.total_plan_time,
               regexp_replace(s.query, '\\s+', ' ', 'g')
          FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = %s
         ORDER BY {order} DESC
         LIMIT %s
        """.replace("{order}", order),
        (database, limit),
    ).fetchall()
    return [
        f"{calls / per:6.2f}/slot  mean {mean:6.3f} ms  total {total / 1000:6.2f} s  "
        f"planned {plans}x, {plan_time / 1000:5.2f} s  {query[:60]}"
        for calls, mean, total, plans, plan_time, query in rows
    ]


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots (a process new since ``before`` counts whole;
    one gone by ``after`` is lost, which the pools' long-lived connections make rare)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def workflow_id(conn: Conn) -> uuid.UUID:
    row = conn.execute("SELECT id FROM workflows LIMIT 1").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def insert_far_future(conn: Conn, count: int, first: int = 1) -> float:
    """``count`` enabled cron schedules, none due for a month; returns seconds taken."""
    start = time.monotonic()
    conn.execute(
        """
        INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled, next_run_at)
        SELECT %(wf)s, 'idle ' || n || ' ' || gen_random_uuid(), '0 9 * * *', true,
               now() + interval '30 days' + n * interval '1 second'
          FROM generate_series(%(first)s::integer, %(last)s::integer) AS n
        """,
        {"wf": workflow_id(conn), "first": first, "last": first + count - 1},
    )
    conn.execute("ANALYZE workflow_schedules")
    return time.monotonic() - start


# --- daemon subprocesses ---------------------------------------------------------------------


class DaemonCrashedError(RuntimeError):
    pass


class Daemon:
    """One ``scheduler-daemon run`` subprocess logging JSON lines to a file."""

    def __init__(self, url: str, worker_id: str, log_dir: Path, args: Sequence[str]) -> None:
        self.worker_id = worker_id
        self.log_path = log_dir / f"{worker_id}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
        self._log = self.log_path.open("wb")
        command = [
            sys.executable, "-m", "scheduler_daemon", "--database-url", url, "run",
            "--executor", "noop", "--log-format", "json", "--worker-id", worker_id, *args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._profiler: subprocess.Popen[bytes] | None = None
        if PROFILE_DIR is not None:
            py_spy = shutil.which("py-spy", path=Path(sys.executable).parent) or "py-spy"
            output = PROFILE_DIR / f"{worker_id}.txt"
            self._profiler = subprocess.Popen(
                [py_spy, "record", "--format", "raw", "--nonblocking", "--rate", "250",
                 "--pid", str(self.process.pid), "-o", output],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def memory_kb(self) -> dict[str, int]:
        """VmHWM (peak resident) and VmRSS (resident now) in kB, from /proc."""
        values: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    values[key] = int(rest.split()[0])
        return values

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait(10)
        finally:
            self._log.close()
            if self._profiler is not None:  # it writes its file once the daemon has gone
                self._profiler.wait(30)

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def log_summary(self) -> tuple[Counter[str], int]:
        """Counts of warning/error events by name, and lines that are not JSON (tracebacks)."""
        events: Counter[str] = Counter()
        not_json = 0
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                not_json += 1
                continue
            if isinstance(event, dict) and event.get("level") in ("warning", "error", "critical"):
                events[f"{event.get('level')}:{event.get('event')}"] += 1
        return events, not_json


@contextlib.contextmanager
def daemons(
    url: str, count: int, label: str, log_dir: Path, args: Sequence[str]
) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    try:
        for i in range(count):
            started.append(Daemon(url, f"bench-{label}-{i}", log_dir, args))
        yield started
    finally:
        for daemon in started:
            daemon.stop()


def check_alive(procs: Sequence[Daemon]) -> None:
    for daemon in procs:
        if not daemon.alive:
            raise DaemonCrashedError(
                f"daemon {daemon.worker_id} exited with code {daemon.process.returncode}; "
                f"log tail:\n{daemon.tail()}"
            )


def wait_for(
    what: str,
    condition: Callable[[], bool],
    timeout: float,
    procs: Sequence[Daemon] = (),
    every: float = POLL_EVERY,
) -> bool:
    """Poll ``condition`` until true (True) or ``timeout`` (False); raise if a daemon died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        check_alive(procs)
        time.sleep(every)
    print(f"  timed out after {timeout:.0f}s waiting for {what}", flush=True)
    return False


def wait_registered(conn: Conn, procs: Sequence[Daemon], timeout: float = 60.0) -> None:
    ids = [d.worker_id for d in procs]

    def registered() -> bool:
        row = conn.execute(
            "SELECT count(*) FROM scheduler_workers WHERE worker_id = ANY(%s)"
            " AND stopped_at IS NULL",
            (ids,),
        ).fetchone()
        return row is not None and row[0] == len(ids)

    if not wait_for("the daemons to register", registered, timeout, procs):
        raise DaemonCrashedError(f"daemons {ids} did not register within {timeout:.0f}s")


@contextlib.contextmanager
def work_dir(prefix: str, *, keep: bool, statements: bool) -> Iterator[tuple[Path, Path, Postgres]]:
    """A work directory (removed at the end unless ``keep``), its logs directory and an
    embedded PostgreSQL in it, stopped at the end."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # the embedded server may run as its own system user
    log_dir = root / "logs"
    log_dir.mkdir()
    pg: Postgres | None = None
    try:
        pg = Postgres(root, statements=statements)
        yield root, log_dir, pg
    finally:
        if pg is not None:
            pg.close()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def report_logs(report: Report, section: str, procs: Sequence[Daemon]) -> None:
    total: Counter[str] = Counter()
    not_json = 0
    for daemon in procs:
        events, bad = daemon.log_summary()
        total.update(events)
        not_json += bad
    if total:
        shown = ", ".join(f"{name} x{n}" for name, n in total.most_common())
        report.note(section, f"daemon warnings/errors in logs: {shown}")
        if any(name.startswith(("error:", "critical:")) for name in total):
            report.problem(section, f"daemon logged errors: {shown}")
    if not_json:
        report.problem(section, f"{not_json} non-JSON log lines (tracebacks?) in daemon logs")


def one(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- (a) burst -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BurstConfig:
    daemons: int
    batch_size: int = 500
    concurrency: int | None = None  # None: the daemon's default
    target: bool = False  # the >= 5,000 slots/s target applies to this one

    @property
    def label(self) -> str:
        conc = "default" if self.concurrency is None else str(self.concurrency)
        return f"{self.daemons}d b{self.batch_size} c{conc}"

    def args(self) -> list[str]:
        args = ["--batch-size", str(self.batch_size)]
        if self.concurrency is not None:
            args += ["--concurrency", str(self.concurrency)]
        return args


def parse_burst_config(raw: str) -> BurstConfig:
    """``DAEMONS:BATCH[:CONCURRENCY]``, e.g. ``4:1000:8``."""
    parts = raw.split(":")
    if not 2 <= len(parts) <= 3:
        raise argparse.ArgumentTypeError("expected DAEMONS:BATCH[:CONCURRENCY]")
    concurrency = int(parts[2]) if len(parts) == 3 else None
    return BurstConfig(int(parts[0]), int(parts[1]), concurrency)


class CpuMeter:
    """CPU spent by the daemons, by PostgreSQL and by everything else between start and stop."""

    def __init__(self, pg: Postgres, procs: Sequence[Daemon]) -> None:
        self._pg = pg
        self._daemon_pids = [d.process.pid for d in procs]
        self._me = psutil.Process()
        self.daemons = self.postgres = self.others = self.capacity = 0.0

    def _snapshot(self) -> tuple[dict[int, float], dict[int, float], float, float, float]:
        return (
            cpu_seconds(self._daemon_pids),
            cpu_seconds(self._pg.backend_pids()),
            machine_busy_seconds(),
            sum(self._me.cpu_times()[:2]),
            time.monotonic(),
        )

    def start(self) -> None:
        self._before = self._snapshot()

    def stop(self) -> None:
        daemons_0, postgres_0, busy_0, mine_0, wall_0 = self._before
        daemons_1, postgres_1, busy_1, mine_1, wall_1 = self._snapshot()
        self.daemons = cpu_spent(daemons_0, daemons_1)
        self.postgres = cpu_spent(postgres_0, postgres_1)
        self.others = max(0.0, busy_1 - busy_0 - self.daemons - self.postgres - (mine_1 - mine_0))
        self.capacity = (wall_1 - wall_0) * (os.cpu_count() or 1)

    def report(self, report: Report, section: str, slots: int) -> None:
        report.figure(
            section, "daemon CPU ms per slot (all daemons)", self.daemons * 1000 / slots, key=True
        )
        report.figure(section, "PostgreSQL CPU ms per slot", self.postgres * 1000 / slots, key=True)
        report.note(
            section,
            f"CPU used by other processes on the machine meanwhile: {self.others:.1f} s of "
            f"{self.capacity:.1f} s available (load average {os.getloadavg()[0]:.1f})",
        )


def insert_burst(report: Report, section: str, conn: Conn) -> datetime:
    """Insert the burst's schedules, all due at one slot ~3 s ahead (DB clock); return it."""
    slot: datetime = one(conn, "SELECT date_trunc('second', now()) + interval '3 seconds'")
    insert_started = time.monotonic()
    conn.execute(
        """
        INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled, next_run_at)
        SELECT %(wf)s, 'burst ' || n || ' ' || gen_random_uuid(), '0 9 * * *', true, %(slot)s
          FROM generate_series(1, %(n)s) AS n
        """,
        {"wf": workflow_id(conn), "slot": slot, "n": BURST_SCHEDULES},
    )
    insert_seconds = time.monotonic() - insert_started
    lead = (slot - one(conn, "SELECT now()")).total_seconds()
    print(f"  inserted in {insert_seconds:.2f}s; slot is {lead:.2f}s away", flush=True)
    if lead < 0:
        report.note(section, f"the insert ended {-lead:.2f}s after the slot")
    return slot


def bench_burst(
    report: Report,
    pg: Postgres,
    log_dir: Path,
    config: BurstConfig,
    *,
    index: int,
    timeout: float,
    run: str = "",
) -> float | None:
    """One burst; returns its slots per second (None if it did not finish)."""
    section = f"burst {config.label}{run}"
    rate: float | None = None
    print(f"\n(a) burst: {BURST_SCHEDULES:,} schedules, {section}", flush=True)
    name = f"bench_burst_{index}"
    url = pg.new_database(name)
    try:
        with (
            psycopg.connect(url, autocommit=True) as conn,
            daemons(url, config.daemons, f"burst{index}", log_dir, config.args()) as procs,
        ):
            wait_registered(conn, procs)
            time.sleep(1.0)  # let the first ticks settle into their sleep
            meter = CpuMeter(pg, procs)
            meter.start()
            commits_before = commits(conn, name)
            slot = insert_burst(report, section, conn)
            done_at: list[datetime] = []

            def all_succeeded() -> bool:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'succeeded'), now() FROM schedule_runs"
                ).fetchone()
                assert row is not None
                if row[0] >= BURST_SCHEDULES:
                    done_at.append(row[1])
                    return True
                return False

            finished = wait_for("every run to succeed", all_succeeded, timeout, procs)
            meter.stop()
            check_alive(procs)
            rate = burst_figures(
                report,
                section,
                conn,
                slot=slot,
                done_at=done_at[0] if finished else None,
                config=config,
            )
            meter.report(report, section, BURST_SCHEDULES)
        # After the daemons stopped, so that their statistics have been flushed.
        with psycopg.connect(url, autocommit=True) as conn:
            report.figure(
                section,
                "committed transactions per slot",
                (commits(conn, name) - commits_before) / BURST_SCHEDULES,
                digits=2,
            )
            if pg.statements:
                for line in top_statements(conn, name, BURST_SCHEDULES, 14, by_time=True):
                    print(f"    {line}")
        report_logs(report, section, procs)
        for daemon in procs:
            if daemon.process.returncode not in (0, None):
                report.problem(
                    section, f"{daemon.worker_id} exited {daemon.process.returncode} on SIGTERM"
                )
    except DaemonCrashedError as exc:
        report.problem(section, f"daemon crashed: {exc}")
    finally:
        pg.drop_database(name)
    return rate


def bench_bursts(
    report: Report, pg: Postgres, log_dir: Path, configs: Sequence[BurstConfig], repeat: int
) -> None:
    """Each setting once; the target setting ``repeat`` times, judged by the median (a shared
    machine's other load moves a single run by tens of percent)."""
    index = 0
    for config in configs:
        runs = repeat if config.target else 1
        each = dataclasses.replace(config, target=False) if runs > 1 else config
        rates = []
        for n in range(runs):
            run = f" run {n + 1}/{runs}" if runs > 1 else ""
            rates.append(
                bench_burst(report, pg, log_dir, each, index=index, timeout=120.0, run=run)
            )
            index += 1
        if runs > 1:
            finished = [rate for rate in rates if rate is not None]
            report.figure(
                f"burst {config.label}",
                f"slots per second, median of {runs} runs",
                statistics.median(finished) if len(finished) == runs else None,
                "/s",
                target=(">=", 5000.0),
                digits=0,
            )


def burst_figures(
    report: Report,
    section: str,
    conn: Conn,
    *,
    slot: datetime,
    done_at: datetime | None,
    config: BurstConfig,
) -> float | None:
    stats = conn.execute(
        """
        SELECT count(*) FILTER (WHERE status = 'succeeded'),
               count(DISTINCT (schedule_id, scheduled_for))
                   FILTER (WHERE trigger = 'scheduled' AND scheduled_for = %(slot)s),
               count(*) FILTER (WHERE trigger = 'scheduled')
                   - count(DISTINCT (schedule_id, scheduled_for))
                         FILTER (WHERE trigger = 'scheduled'),
               extract(epoch FROM max(finished_at) - %(slot)s),
               extract(epoch FROM min(claimed_at) - %(slot)s),
               count(*) FILTER (WHERE status <> 'succeeded')
          FROM schedule_runs
        """,
        {"slot": slot},
    ).fetchone()
    assert stats is not None
    succeeded, distinct_slots, duplicates, last_finish, first_claim, other = stats
    seconds = None if done_at is None else (done_at - slot).total_seconds()
    report.figure(section, "seconds slot -> all succeeded (poll)", seconds, " s", key=True)
    report.figure(section, "seconds slot -> last finished_at", _float(last_finish), " s")
    report.figure(section, "seconds slot -> first claimed_at", _float(first_claim), " s")
    rate = None
    if seconds and seconds > 0:
        rate = BURST_SCHEDULES / seconds
    target = (">=", 5000.0) if config.target else None
    report.figure(section, "slots per second (poll)", rate, "/s", target=target, digits=0, key=True)
    if last_finish:
        report.figure(
            section,
            "slots per second (last finished_at)",
            BURST_SCHEDULES / float(last_finish),
            "/s",
            digits=0,
        )
    report.count(section, "succeeded runs", succeeded, must_be=None)
    report.count(section, "duplicates", duplicates, must_be=0)
    report.count(section, "missing slots", BURST_SCHEDULES - distinct_slots, must_be=0)
    if duplicates:
        report.problem(section, f"{duplicates} duplicate (schedule_id, scheduled_for) runs")
    if distinct_slots != BURST_SCHEDULES:
        report.problem(section, f"{BURST_SCHEDULES - distinct_slots} slots never got a run")
    if other:
        statuses = conn.execute(
            "SELECT status, coalesce(skip_reason, ''), count(*) FROM schedule_runs"
            " WHERE status <> 'succeeded' GROUP BY 1, 2 ORDER BY 3 DESC"
        ).fetchall()
        shown = ", ".join(f"{s}{'/' + r if r else ''}: {n}" for s, r, n in statuses)
        report.note(section, f"runs not succeeded: {shown}")
    if config.daemons > 1:
        shares = conn.execute(
            "SELECT worker_id, count(*), extract(epoch FROM max(finished_at) - %(slot)s)"
            "  FROM schedule_runs GROUP BY 1 ORDER BY 1",
            {"slot": slot},
        ).fetchall()
        report.note(
            section,
            "runs per daemon (its last finished at): "
            + ", ".join(f"{w}={n} ({float(done or 0):.2f}s)" for w, n, done in shares),
        )
    return rate


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- (b) idle tick ---------------------------------------------------------------------------


def bench_idle_tick(report: Report, pg: Postgres, ticks: int) -> str:
    """Returns the name of the database left with 1,000,000 idle schedules, for (d).

    Two databases, 1,000 and 1,000,000 schedules, one in-process Scheduler on each; their
    ticks alternate, so that whatever else the machine does weighs on both alike.
    """
    from scheduler_daemon.cli.run import open_scheduler
    from scheduler_daemon.clock import SystemClock
    from scheduler_daemon.config import LogFormat, Settings
    from scheduler_daemon.executors import NoopExecutor
    from scheduler_daemon.log import configure_logging

    section = "idle tick"
    print(f"\n(b) idle tick: {ticks} ticks each at 1,000 and 1,000,000 schedules", flush=True)
    configure_logging(LogFormat.JSON, "warning", stream=sys.stderr)
    sizes = {1000: "bench_small", BIG_TABLE: "bench_big"}
    engines = {size: make_engine(pg.new_database(name)) for size, name in sizes.items()}
    stack = contextlib.ExitStack()
    try:
        schedulers = {}
        for size, name in sizes.items():
            with psycopg.connect(with_database(pg.admin_url, name), autocommit=True) as conn:
                took = insert_far_future(conn, size)  # one INSERT ... generate_series, ANALYZE
            print(f"  inserted {size:,} schedules + ANALYZE in {took:.1f}s", flush=True)
            schedulers[size] = stack.enter_context(
                open_scheduler(
                    engines[size],
                    Settings(worker_id=f"bench-idle-{size}"),
                    NoopExecutor(),
                    SystemClock(),
                )
            )
            schedulers[size].start()
        for _ in range(20):  # warm the pools, the plans and the caches
            for scheduler in schedulers.values():
                scheduler.tick()
        if pg.statements:
            big_url = with_database(pg.admin_url, sizes[BIG_TABLE])
            with psycopg.connect(big_url, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for _ in range(ticks):
            for size, scheduler in schedulers.items():
                started = time.perf_counter()
                result = scheduler.tick()
                times[size].append((time.perf_counter() - started) * 1000)
                if result.claimed or result.manual or result.reaped:
                    report.problem(section, f"an idle tick at {size:,} schedules did work")
        for size in sizes:
            label = f"{size:,} schedules"
            report.figure(
                section, f"{label}: mean ms/tick", statistics.fmean(times[size]), " ms", key=True
            )
            report.figure(
                section, f"{label}: median ms/tick", statistics.median(times[size]), " ms"
            )
            report.figure(section, f"{label}: p99 ms/tick", percentile(times[size], 0.99), " ms")
        small, big = times[1000], times[BIG_TABLE]
        report.figure(
            section,
            "ratio mean 1M / 1k",
            statistics.fmean(big) / statistics.fmean(small),
            "x",
            target=("<=", 2.0),
            digits=2,
        )
        report.figure(
            section,
            "ratio median 1M / 1k",
            statistics.median(big) / statistics.median(small),
            "x",
            digits=2,
        )
        report.figure(
            section,
            "1M schedules: heartbeat ms (median)",
            _heartbeat_ms(schedulers[BIG_TABLE]),
            " ms",
        )
        if pg.statements:
            with psycopg.connect(big_url, autocommit=True) as conn:
                print("    statements per idle tick at 1M schedules (with 20 heartbeats):")
                for line in top_statements(conn, sizes[BIG_TABLE], ticks, limit=16):
                    print(f"    {line.replace('/slot', '/tick')}")
        for scheduler in schedulers.values():
            scheduler.stop(5.0)
    finally:
        stack.close()
        for engine in engines.values():
            engine.dispose()
        pg.drop_database(sizes[1000])
    return sizes[BIG_TABLE]


def _heartbeat_ms(scheduler: Any) -> float:
    """The median of 20 heartbeats (one every heartbeat_interval in the daemon), in ms."""
    heartbeat = []
    for _ in range(20):
        started = time.perf_counter()
        scheduler._heartbeat()
        heartbeat.append((time.perf_counter() - started) * 1000)
    return statistics.median(heartbeat)


# --- (c) lateness ----------------------------------------------------------------------------


def bench_lateness(
    report: Report, pg: Postgres, log_dir: Path, schedules: int, spacing: float
) -> None:
    section = "lateness"
    span = schedules * spacing
    print(
        f"\n(c) lateness: 1 daemon, default settings, {schedules} first slots every "
        f"{spacing} s over {span:.0f} s",
        flush=True,
    )
    name = "bench_lateness"
    url = pg.new_database(name)
    try:
        with (
            psycopg.connect(url, autocommit=True) as conn,
            daemons(url, 1, "lateness", log_dir, []) as procs,
        ):
            wait_registered(conn, procs)
            time.sleep(1.0)
            rows = conn.execute(
                """
                INSERT INTO workflow_schedules
                       (workflow_id, name, cron_expression, enabled, next_run_at)
                SELECT %(wf)s, 'late ' || k || ' ' || gen_random_uuid(), '* * * * *', true,
                       now() + interval '2 seconds' + k * %(spacing)s * interval '1 second'
                  FROM generate_series(0, %(n)s::integer - 1) AS k
                RETURNING id, next_run_at
                """,
                {"wf": workflow_id(conn), "spacing": spacing, "n": schedules},
            ).fetchall()
            first_slot = {schedule_id: slot for schedule_id, slot in rows}

            def all_started() -> bool:
                started = one(
                    conn,
                    "SELECT count(*) FROM schedule_runs r JOIN workflow_schedules s"
                    " ON s.id = r.schedule_id AND s.name LIKE 'late %%'"
                    " WHERE r.started_at IS NOT NULL AND r.scheduled_for <= %s",
                    (max(first_slot.values()),),
                )
                return bool(started and started >= len(first_slot))

            progress_deadline = time.monotonic() + span + 2
            while time.monotonic() < progress_deadline:  # bounded: the span of the slots
                check_alive(procs)
                time.sleep(1.0)
            wait_for("every first slot to start", all_started, 60.0, procs)
            check_alive(procs)
            runs = conn.execute(
                "SELECT schedule_id, scheduled_for, extract(epoch FROM started_at - scheduled_for),"
                " extract(epoch FROM claimed_at - scheduled_for), status"
                " FROM schedule_runs WHERE trigger = 'scheduled'"
            ).fetchall()
            duplicates = one(
                conn,
                "SELECT count(*) - count(DISTINCT (schedule_id, scheduled_for))"
                " FROM schedule_runs WHERE trigger = 'scheduled'",
            )
        lateness_figures(report, section, first_slot, runs, duplicates)
        report_logs(report, section, procs)
    except DaemonCrashedError as exc:
        report.problem(section, f"daemon crashed: {exc}")
    finally:
        pg.drop_database(name)


def lateness_figures(
    report: Report,
    section: str,
    first_slot: dict[uuid.UUID, datetime],
    runs: Sequence[Any],
    duplicates: int,
) -> None:
    late: list[float] = []
    claim_late: list[float] = []
    later_slots: list[float] = []
    skipped = 0
    for schedule_id, scheduled_for, started, claimed, status in runs:
        if first_slot.get(schedule_id) == scheduled_for:
            if started is None:
                skipped += status == "skipped"
                continue
            late.append(float(started))
            claim_late.append(float(claimed))
        elif started is not None:
            later_slots.append(float(started))
    report.count(section, "first slots measured", len(late), must_be=len(first_slot))
    if late:
        report.figure(
            section, "lateness p50 (started_at - slot)", percentile(late, 0.5), " s", key=True
        )
        report.figure(
            section,
            "lateness p99 (started_at - slot)",
            percentile(late, 0.99),
            " s",
            target=("<=", 1.0),
        )
        report.figure(section, "lateness max (started_at - slot)", max(late), " s", key=True)
        report.figure(
            section, "claim lateness p99 (claimed_at - slot)", percentile(claim_late, 0.99), " s"
        )
        early = sum(1 for value in late if value < 0)
        if early:
            report.problem(section, f"{early} runs started before their slot")
    if later_slots:
        report.figure(
            section,
            f"minute-boundary slots ({len(later_slots)}): p99",
            percentile(later_slots, 0.99),
            " s",
        )
    if skipped:
        report.note(section, f"{skipped} first slots were skipped instead of run")
    report.count(section, "duplicates", duplicates, must_be=0)
    if duplicates:
        report.problem(section, f"{duplicates} duplicate scheduled runs")
    if len(late) != len(first_slot):
        report.problem(section, f"{len(first_slot) - len(late)} first slots never started")


# --- (d) peak RSS ----------------------------------------------------------------------------


def bench_rss(report: Report, pg: Postgres, log_dir: Path, database: str | None) -> None:
    section = "peak RSS"
    print(f"\n(d) peak RSS: 1 daemon, {BIG_TABLE:,} schedules, {RSS_DUE:,} due at once", flush=True)
    name = database or "bench_rss"
    url = with_database(pg.admin_url, name) if database else pg.new_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            total = one(conn, "SELECT count(*) FROM workflow_schedules")
            if total < BIG_TABLE:
                insert_far_future(conn, BIG_TABLE - total, first=total + 1)
            with daemons(url, 1, "rss", log_dir, []) as procs:
                wait_registered(conn, procs)
                time.sleep(1.0)
                idle = procs[0].memory_kb()
                slot: datetime = one(conn, "SELECT now() + interval '2 seconds'")
                conn.execute(
                    """
                    UPDATE workflow_schedules SET next_run_at = %s
                     WHERE id IN (SELECT id FROM workflow_schedules ORDER BY next_run_at
                                   LIMIT %s)
                    """,
                    (slot, RSS_DUE),
                )

                def handled() -> bool:
                    done = one(
                        conn, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'"
                    )
                    return bool(done and done >= RSS_DUE)

                ok = wait_for(f"{RSS_DUE} runs to succeed", handled, 120.0, procs)
                took = one(
                    conn,
                    "SELECT extract(epoch FROM max(finished_at) - %s) FROM schedule_runs",
                    (slot,),
                )
                time.sleep(2.0)
                check_alive(procs)
                after = procs[0].memory_kb()
            report.figure(
                section,
                "VmRSS idle before the due slots",
                idle.get("VmRSS", 0) / 1024,
                " MB",
                digits=1,
            )
            report.figure(
                section, "VmRSS after handling them", after.get("VmRSS", 0) / 1024, " MB", digits=1
            )
            report.figure(
                section,
                "VmHWM (peak resident)",
                after.get("VmHWM", 0) / 1024 if after else None,
                " MB",
                target=("<=", 150.0),
                digits=1,
            )
            if ok:
                report.figure(
                    section, f"seconds slot -> last of the {RSS_DUE:,} finished", float(took), " s"
                )
            else:
                report.problem(section, f"the {RSS_DUE} due slots did not all succeed in time")
        report_logs(report, section, procs)
    except DaemonCrashedError as exc:
        report.problem(section, f"daemon crashed: {exc}")
    finally:
        pg.drop_database(name)


# --- main ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 3 minutes)")
    parser.add_argument(
        "--only", default="abcd", help="which parts to run, e.g. 'ad' (default: abcd)"
    )
    parser.add_argument(
        "--burst",
        type=parse_burst_config,
        action="append",
        default=None,
        metavar="D:B[:C]",
        help="a burst setting, daemons:batch-size[:concurrency], repeatable; replaces the "
        "standard 1:500 and 4:500 (default concurrency)",
    )
    parser.add_argument(
        "--alt",
        type=parse_burst_config,
        action="append",
        default=None,
        metavar="D:B[:C]",
        help=f"an extra burst setting after the standard ones, repeatable (default in a full "
        f"run: {', '.join(ALTERNATIVES)})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of the 4-daemon burst, judged by their median (default: 3, 1 with --quick)",
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="load pg_stat_statements and print each burst's most frequent statements per slot",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work dir (daemon logs) afterwards"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run each daemon under py-spy (on-CPU samples) and write DIR/<worker>.txt",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    global PROFILE_DIR  # noqa: PLW0603
    if args.profile is not None:
        if not shutil.which("py-spy", path=Path(sys.executable).parent) and not shutil.which(
            "py-spy"
        ):
            parser.error("--profile needs py-spy, which is not installed: pip install py-spy")
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR = args.profile.resolve()

    standard = args.burst or [BurstConfig(1), BurstConfig(4)]
    alternatives = args.alt
    if alternatives is None:
        alternatives = [] if args.quick else [parse_burst_config(a) for a in ALTERNATIVES]
    configs = [
        BurstConfig(c.daemons, c.batch_size, c.concurrency, target=c.daemons == 4) for c in standard
    ] + list(alternatives)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    ticks = 50 if args.quick else 200
    late_count, late_spacing = (60, 0.5) if args.quick else (300, 0.5)

    report = Report()
    started = time.monotonic()
    with work_dir("bench_daemon_", keep=args.keep, statements=args.statements) as (
        root,
        log_dir,
        pg,
    ):
        run = "quick" if args.quick else "full"
        print(f"work dir {root} ({os.cpu_count()} CPUs, {run} run)")
        if "a" in args.only:
            bench_bursts(report, pg, log_dir, configs, args.repeat)
        big: str | None = None
        if "b" in args.only:
            big = bench_idle_tick(report, pg, ticks)
        if "c" in args.only:
            bench_lateness(report, pg, log_dir, late_count, late_spacing)
        if "d" in args.only:
            bench_rss(report, pg, log_dir, big)
    report.table()
    kept = f"; work dir kept: {root}" if args.keep else ""
    print(f"\ntotal {time.monotonic() - started:.0f} s{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
