"""The reliability soak: four daemons, thousands of schedules, every fault at once; then one
table of what happened to every slot, read from the database and from the fake AMC's ledger.

    python bench/soak.py                  # 10 minutes
    python bench/soak.py --seconds 1800   # the run published in docs/reliability.md
    python bench/soak.py --seconds 60     # the suite's version (tests/acceptance/test_soak.py)

It starts its own embedded PostgreSQL and a fake AMC on loopback, loads the schedules, starts
four real ``scheduler-daemon run --executor amc`` processes, and for the whole duration, at
random times: kills a daemon with SIGKILL about every 20 s and starts it again; restarts
PostgreSQL about every 2 minutes (fast and immediate shutdown in turn); freezes a daemon with
SIGSTOP for longer than its lease, then lets it go on; pauses, resumes and edits schedules at
the moment they are due; queues manual runs; and has the fake AMC throttle, fail, time out,
lose responses after creating, refuse tokens, and run executions that fail or take long.

Then it stops the faults, lets the daemons settle, and checks. Exit status 0 only when every
figure marked "must" holds (docs/reliability.md says what each means). ``--keep`` keeps the
work directory (daemon logs, the fault journal).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import tenacity
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from scheduler_daemon import catalog, management, references
from scheduler_daemon.amc.fake.server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    FakeAmcServer,
)
from scheduler_daemon.amc.fake.state import Script
from scheduler_daemon.clock import SystemClock
from scheduler_daemon.db.audit import set_actor
from scheduler_daemon.db.engine import is_transient, make_engine
from scheduler_daemon.db.provision import EmbeddedServer, create_template
from scheduler_daemon.db.queries import database_now
from scheduler_daemon.db.schedules import insert_schedule
from scheduler_daemon.management import DEFINITION_DEFAULTS, spec_of_row
from scheduler_daemon.timing import ScheduleSpec
from scheduler_daemon.timing.zones import load_zone

CLOCK = SystemClock()
DAEMONS = 4
# The daemons' settings: short enough that a frozen daemon loses its claims within the
# shortest soak, and that a run left behind shows up well before the end.
POLL = 2.0
HEARTBEAT = 2.0
LEASE = 12.0
FREEZE = LEASE + 4.0
REQUEST_TIMEOUT = 3.0
STATUS_POLL = 1.0
# claim_status_polls backs off to ten times the status poll interval.
STATUS_LAG = 10 * STATUS_POLL
RESTART_DELAY = 1.0  # systemd's RestartSec
SETTLE = 20.0  # after the last fault, before the window closes
WINDOW_MARGIN = 8.0  # slots this close to the end may still be unclaimed: outside the window
FAULT_TAIL = 5.0  # a slot this soon after a fault ended still counts as inside it
INSTANCES = 4
LONG_RUNNING = 25.0
ACTOR = "soak"
ZONES = (
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Europe/Berlin",
    "America/Sao_Paulo",
)
SECRETS = (DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, "Atzr|", "Atza|")
FAULT_KINDS = (
    "sigkill",
    "postgres restart (fast)",
    "postgres restart (immediate)",
    "sigstop past the lease",
    "pause+resume while due",
    "spec edited while due",
    "parameters/overlap edited while due",
    "manual trigger",
    "amc 429",
    "amc 429 without Retry-After",
    "amc 5xx",
    "amc timeout",
    "amc create response lost",
    "amc token endpoint failure",
    "amc access token refused (401)",
    "amc error echoing the token",
)
AMC_FAULTS = tuple(kind for kind in FAULT_KINDS if kind.startswith("amc "))
WORKFLOWS = {"wf-ok": Script(), "wf-fail": Script("FAILED", reason="scripted failure")}
WORKFLOWS["wf-long"] = Script(running_seconds=LONG_RUNNING)
INPUTS = ("slot", "n", "shared", "edit")


def utcnow() -> datetime:
    return CLOCK.now()


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much of everything: the schedule mix and how often each fault comes."""

    seconds: float
    every_10s: int = 16
    every_minute: int = 120
    hourly: int = 1200
    daily: int = 664
    kill_every: float = 20.0
    restart_every: float = 120.0
    freeze_every: float = 200.0
    operator_every: float = 4.0
    trigger_every: float = 2.0
    amc_fault_every: float = 0.7
    seed: int = 16

    @property
    def schedules(self) -> int:
        return self.every_10s + self.every_minute + self.hourly + self.daily

    @property
    def daily_in_window(self) -> int:
        """Daily schedules whose time of day falls inside the soak (the rest are idle)."""
        return max(10, min(self.daily // 2, int(self.seconds // 5)))

    def restarts(self) -> list[tuple[float, str]]:
        """When PostgreSQL restarts (seconds into the soak) and how: short soaks get one of
        each mode, longer ones one about every ``restart_every``, the modes in turn."""
        if self.seconds < 2 * self.restart_every:
            return [(self.seconds * 0.3, "fast"), (self.seconds * 0.7, "immediate")]
        rng = random.Random(self.seed + 1)
        times = []
        at = self.restart_every * rng.uniform(0.5, 1.0)
        while at < self.seconds - 10:
            times.append(at)
            at += self.restart_every * rng.uniform(0.75, 1.25)
        return [(at, ("fast", "immediate")[i % 2]) for i, at in enumerate(times)]

    def freezes(self) -> list[float]:
        if self.seconds < 2 * self.freeze_every:
            return [self.seconds * 0.4]
        count = int(self.seconds // self.freeze_every)
        return [self.freeze_every * (i + 0.5) for i in range(count)]


# --- the journal of what the soak did --------------------------------------------------------


@dataclass
class Kill:
    worker_id: str
    at: datetime
    held: int
    recovered_after: float | None = None


@dataclass
class Freeze:
    worker_id: str
    at: datetime
    held_runs: dict[uuid.UUID, int]
    thawed_at: datetime | None = None
    taken_over: set[uuid.UUID] = field(default_factory=set)
    takeover_after: float | None = None


@dataclass(frozen=True)
class OperatorChange:
    """An operator's change, with the schedule's next slot just before and just after it
    (read in its transaction, under the row's lock)."""

    kind: str  # pause, resume, respec, edit
    schedule_id: uuid.UUID
    at: datetime
    next_before: datetime | None
    next_after: datetime | None
    spec_after: dict[str, Any]


@dataclass
class Journal:
    """Everything the faults did, from several threads."""

    faults: Counter[str] = field(default_factory=Counter)
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    freezes: list[Freeze] = field(default_factory=list)
    changes: list[OperatorChange] = field(default_factory=list)
    # Each manual run carries a marker of its own (its "edit" parameter), so that one whose
    # commit the soak could not confirm (the server restarting) can be looked for.
    manual_runs: list[str] = field(default_factory=list)
    uncertain_manual_runs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str) -> None:
        with self.lock:
            self.faults[kind] += 1

    def window(self, start: datetime, end: datetime) -> None:
        with self.lock:
            self.windows.append((start, end))

    def problem(self, message: str) -> None:
        print(f"  PROBLEM: {message}", flush=True)
        with self.lock:
            self.problems.append(message)

    def to_json(self) -> dict[str, Any]:
        return {
            "faults": dict(self.faults),
            "windows": [[a.isoformat(), b.isoformat()] for a, b in self.windows],
            "kills": [
                [k.worker_id, k.at.isoformat(), k.held, k.recovered_after] for k in self.kills
            ],
            "changes": [[c.kind, str(c.schedule_id), c.at.isoformat()] for c in self.changes],
            "problems": self.problems,
        }


# --- PostgreSQL ------------------------------------------------------------------------------


Conn = psycopg.Connection[tuple[Any, ...]]


class Database:
    """The soak's embedded server and its one database; short connections, so that a
    restart of the server costs the soak's own threads nothing but a retry."""

    NAME = "soak"

    def __init__(self, root: Path) -> None:
        self.server = EmbeddedServer(root / "pgdata")
        self._make_durable()
        self.url = create_template(self.server.admin_url, self.NAME)
        self.engine: Engine = make_engine(self.url)

    def _make_durable(self) -> None:
        """The tests' server trades durability for speed; an immediate shutdown would then
        lose commits already acknowledged (synchronous_commit off), which no coordinator
        survives. The soak's server is set as a production one is."""
        with psycopg.connect(self.server.admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = on")
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("ALTER SYSTEM SET full_page_writes = on")
        self.server.restart()

    @contextlib.contextmanager
    def connect(self) -> Iterator[Conn]:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            yield conn

    def rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()

    def value(self, query: str, params: Any = None) -> Any:
        rows = self.rows(query, params)
        return rows[0][0] if rows else None

    def restart(self, mode: str) -> None:
        self.server.restart(mode)

    def close(self) -> None:
        self.engine.dispose()
        self.server.close()


@contextlib.contextmanager
def outage_tolerated() -> Iterator[None]:
    """Skip one action when the database is away (a restart); any other error is raised."""
    try:
        yield
    except psycopg.OperationalError:
        pass
    except DBAPIError as exc:
        if not is_transient(exc):
            raise


def retrying(action: Callable[[], Any], seconds: float = 30.0) -> Any:
    """``action`` again while the database is away (a restart)."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((psycopg.OperationalError, DBAPIError)),
        stop=tenacity.stop_after_delay(seconds),
        wait=tenacity.wait_fixed(0.2),
        reraise=True,
    )(action)


# --- the fake AMC and the catalog ------------------------------------------------------------


def instance_ids() -> list[str]:
    return [f"amc1soak{i:03d}" for i in range(INSTANCES)]


def start_amc() -> FakeAmcServer:
    # Generous running cap: the soak is about the scheduler, not about AMC's queue.
    amc = FakeAmcServer(
        pending_seconds=0.5, running_seconds=1.5, max_running_per_instance=1000
    ).start()
    amc.state.settings.token_expires_in = 120  # LwA refreshes happen during the soak
    for i, instance in enumerate(instance_ids()):
        account = f"ENTITYSOAK{i:03d}"
        amc.seed(instance, account, "ATVPDKIKX0DER", dict.fromkeys(WORKFLOWS, INPUTS))
    for workflow, script in WORKFLOWS.items():
        amc.script(workflow, script)
    return amc


def seed_catalog(conn: Any) -> dict[tuple[str, str], uuid.UUID]:
    """An account and instance per fake instance, each with the three workflows; their ids
    by (instance, AMC workflow id)."""
    workflows = {}
    for i, instance in enumerate(instance_ids()):
        account = {
            "name": f"soak account {i}",
            "account_id": f"ENTITYSOAK{i:03d}",
            "marketplace_id": "ATVPDKIKX0DER",
            "region": "NA",
        }
        catalog.put(conn, references.Kind.ACCOUNT, account)
        catalog.put(
            conn,
            references.Kind.INSTANCE,
            {"name": f"soak {instance}", "instance_id": instance, "account": account["name"]},
        )
        for amc_id in WORKFLOWS:
            name = f"soak {instance} {amc_id}"
            given = {"name": name, "instance": f"soak {instance}", "amc_workflow_id": amc_id}
            catalog.put(conn, references.Kind.WORKFLOW, given | {"sql_query": "SELECT 1"})
            workflows[(instance, amc_id)] = references.resolve(conn, references.Kind.WORKFLOW, name)
    return workflows


@dataclass(frozen=True)
class Kind:
    """One kind of schedule in the mix."""

    name: str
    count: int
    spec: Callable[[random.Random, int], tuple[str | None, int | None, str]]


def schedule_values(
    plan: Plan, workflows: Mapping[tuple[str, str], uuid.UUID], now: datetime
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schedule of the mix: (its kind, its row). Policies go round; a few every-minute
    pairs share their workflow and parameters (identical requests at every slot)."""
    rng = random.Random(plan.seed)
    kinds = (
        Kind("@every 10s", plan.every_10s, lambda _r, _i: (None, 10, "UTC")),
        Kind("every minute", plan.every_minute, lambda _r, i: ("* * * * *", None, ZONES[i % 6])),
        Kind(
            "hourly", plan.hourly, lambda r, i: (f"{r.randrange(60)} * * * *", None, ZONES[i % 6])
        ),
        Kind("daily", plan.daily, lambda r, i: (daily_cron(r, i, plan, now), None, ZONES[i % 6])),
    )
    instances = instance_ids()
    policies = itertools.cycle(("skip", "run_once", "run_all"))
    number = itertools.count()
    for kind in kinds:
        for i in range(kind.count):
            n = next(number)
            cron, interval, zone = kind.spec(rng, i)
            amc_id = workflow_for(kind.name, i)
            parameters: dict[str, Any] = {"slot": "{slot}", "n": n}
            if kind.name == "every minute" and i < 20:
                parameters = {"shared": f"pair {i // 2}"}  # two schedules, one request
            elif kind.name == "hourly" and i % 4 == 0:
                parameters["time_window"] = {"kind": "previous_hours", "hours": 6}
            values: dict[str, Any] = {
                **DEFINITION_DEFAULTS,
                "workflow_id": workflows[(instances[n % INSTANCES], amc_id)],
                "name": f"soak {kind.name} {i}",
                "cron_expression": cron,
                "interval_seconds": interval,
                "interval_anchor": None,
                "timezone": zone,
                "enabled": True,
                "parameters": parameters,
                "misfire_policy": next(policies),
                # A third misses slots during the faults (the shortest grace the daemons allow
                # at this poll interval), to exercise every misfire policy.
                "misfire_grace_seconds": int(2 * POLL) if n % 3 == 0 else 300,
                "max_catchup_runs": 3,
                "overlap_policy": "allow" if n % 2 else "skip",
            }
            values["next_run_at"] = spec_of_row(values).next_after(now)
            yield kind.name, values


def workflow_for(kind: str, i: int) -> str:
    if kind == "@every 10s":
        return "wf-long" if i % 2 else "wf-ok"  # runs longer than the interval: overlaps
    if kind == "every minute" and i % 10 == 9:
        return "wf-fail"
    if kind == "every minute" and i % 10 == 8:
        return "wf-long"
    return "wf-ok"


def daily_cron(rng: random.Random, i: int, plan: Plan, now: datetime) -> str:
    """A fixed time of day in the schedule's zone: inside the soak for the first
    ``daily_in_window``, anywhere for the rest."""
    if i < plan.daily_in_window:
        at = now + timedelta(seconds=30 + rng.uniform(0, max(1.0, plan.seconds - 30)))
        local = load_zone(ZONES[i % 6]).localize_datetime(at)
        return f"{local.minute} {local.hour} * * *"
    return f"{rng.randrange(60)} {rng.randrange(24)} * * *"


def load_schedules(db: Database, plan: Plan) -> dict[uuid.UUID, str]:
    """The schedules, enabled and due from now; their kinds by id."""
    kinds = {}
    with db.engine.begin() as conn:
        set_actor(conn, ACTOR)
        workflows = seed_catalog(conn)
        now = database_now(conn)
        for kind, values in schedule_values(plan, workflows, now):
            kinds[insert_schedule(conn, values)] = kind
    return kinds


# --- daemon processes ------------------------------------------------------------------------


def daemon_environment(amc: FakeAmcServer) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    return base | {
        "SCHEDULER_ENV_FILE": os.devnull,
        "SCHEDULER_AMC_API_URL": amc.base_url,
        "SCHEDULER_AMC_TOKEN_URL": amc.token_url,
        "SCHEDULER_AMC_CLIENT_ID": DEFAULT_CLIENT_ID,
        "SCHEDULER_AMC_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "SCHEDULER_AMC_REFRESH_TOKEN": DEFAULT_REFRESH_TOKEN,
    }


DAEMON_OPTIONS = (
    "--executor", "amc", "--log-format", "json",
    "--poll-interval", str(POLL), "--heartbeat-interval", str(HEARTBEAT),
    "--lease", str(LEASE), "--status-poll-interval", str(STATUS_POLL),
    "--amc-request-timeout", str(REQUEST_TIMEOUT), "--amc-circuit-cool-down", "5",
    "--shutdown-grace", "10", "--history-retention-days", "0",
    # Failing executions must not auto-pause their schedules: a pause the daemon decides
    # would end their slots at a moment the checker cannot know.
    "--max-consecutive-failures", "1000000",
)  # fmt: skip


class Daemon:
    """One of the four daemons: a ``scheduler-daemon run`` process, started again (a new
    worker id each time, as a new process gets by default) after it is killed."""

    def __init__(self, slot: int, url: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.slot, self._url, self._env, self._log_dir = slot, url, dict(env), log_dir
        self.incarnation = 0
        self.worker_id = ""
        self.frozen = False
        self.down = False  # killed on purpose, to be started again
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.start()

    def start(self) -> None:
        self.incarnation += 1
        self.worker_id = f"soak-d{self.slot}-{self.incarnation}"
        log = self._log_dir / f"{self.worker_id}.log"
        self.logs.append(log)
        command = [
            sys.executable, "-m", "scheduler_daemon", "--database-url", self._url, "run",
            "--worker-id", self.worker_id, *DAEMON_OPTIONS,
        ]  # fmt: skip
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, env=self._env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.frozen:
            self.signal(signal.SIGCONT)
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return -9


@dataclass
class Fleet:
    daemons: list[Daemon]
    lock: threading.Lock = field(default_factory=threading.Lock)
    dead_workers: list[str] = field(default_factory=list)

    def pick(self, rng: random.Random, prefer: Sequence[str] = ()) -> Daemon | None:
        """A running daemon that is not frozen, one of ``prefer`` (worker ids) if any is."""
        candidates = [d for d in self.daemons if not d.frozen and not d.down and d.exited() is None]
        preferred = [d for d in candidates if d.worker_id in prefer]
        pool = preferred or candidates
        return rng.choice(pool) if pool else None


# --- faults ----------------------------------------------------------------------------------


HELD_WORK = """
SELECT w.worker_id,
       (SELECT count(*) FROM workflow_schedules s WHERE s.locked_by = w.worker_id)
     + (SELECT count(*) FROM schedule_runs r
         WHERE r.worker_id = w.worker_id AND r.status IN ('claimed', 'dispatching'))
  FROM unnest(CAST(%s AS text[])) AS w(worker_id)
"""

HELD_RUNS = """
SELECT id, fencing_token FROM schedule_runs
 WHERE worker_id = %s AND status IN ('claimed', 'dispatching')
"""

RUN_OWNERS = """
SELECT id, worker_id, fencing_token FROM schedule_runs WHERE id = ANY(CAST(%s AS uuid[]))
"""

DUE_SOON = """
SELECT id, next_run_at FROM workflow_schedules
 WHERE enabled AND paused_at IS NULL AND deleted_at IS NULL
   AND next_run_at BETWEEN now() + interval '0.3 seconds' - make_interval(secs => %(overdue)s)
                       AND now() + make_interval(secs => %(within)s)
   AND NOT (id = ANY(CAST(%(paused)s AS uuid[])))
   AND (NOT %(minutely)s OR cron_expression IN ('* * * * *', '*/2 * * * *'))
 ORDER BY random() LIMIT 1
"""

SPEC = """
SELECT cron_expression, interval_seconds, interval_anchor, timezone
  FROM workflow_schedules WHERE id = :id
"""


class Faults:
    """The fault threads, each on its own cadence until ``stop`` is set."""

    def __init__(
        self,
        plan: Plan,
        db: Database,
        amc: FakeAmcServer,
        fleet: Fleet,
        *,
        kinds: Mapping[uuid.UUID, str],
        journal: Journal,
    ) -> None:
        self.plan, self.db, self.amc, self.fleet = plan, db, amc, fleet
        self.kinds = kinds
        self.journal = journal
        self.stop = threading.Event()
        self.started = time.monotonic()
        self._rng = random.Random(plan.seed + 2)
        self._rng_lock = threading.Lock()
        self._paused: dict[uuid.UUID, float] = {}
        self._threads: list[threading.Thread] = []

    def rng(self) -> random.Random:
        with self._rng_lock:
            return random.Random(self._rng.random())

    def start(self) -> None:
        loops: dict[str, Callable[[], None]] = {
            "kill": self._kills,
            "restart": self._restarts,
            "freeze": self._freezes,
            "operator": self._operator,
            "respec": self._respecs,
            "trigger": self._triggers,
            "amc": self._amc_faults,
        }
        for name, loop in loops.items():
            thread = threading.Thread(target=self._guarded, args=(name, loop), name=name)
            thread.start()
            self._threads.append(thread)

    def finish(self) -> None:
        """Stop every fault and undo what is still undone: pauses resumed, faults cleared."""
        self.stop.set()
        for thread in self._threads:
            thread.join()
        self.amc.faults.clear()
        for schedule_id in list(self._paused):
            retrying(functools.partial(self._change, "resume", schedule_id))
        self._paused.clear()

    def _guarded(self, name: str, loop: Callable[[], None]) -> None:
        try:
            loop()
        except Exception as exc:  # a broken fault thread makes the soak's result void
            self.journal.problem(f"fault thread {name} failed: {type(exc).__name__}: {exc}")
            raise

    def _wait(self, mean: float) -> bool:
        """Wait about ``mean`` seconds (±25%); False once the soak is over."""
        return not self.stop.wait(mean * self.rng().uniform(0.75, 1.25))

    def _wait_until(self, offset: float) -> bool:
        return not self.stop.wait(max(0.0, self.started + offset - time.monotonic()))

    # --- kill -9 -----------------------------------------------------------------------

    def _busy_workers(self) -> list[str]:
        ids = [d.worker_id for d in self.fleet.daemons]
        rows = retrying(lambda: self.db.rows(HELD_WORK, (ids,)), 5)
        return [worker for worker, held in rows if held]

    def _victim(self, slow: float, mark: Callable[[Daemon], None]) -> Daemon | None:
        """A daemon with claims in hand if there is one: creates are made ``slow`` for a
        moment first, so that it is likely to be caught mid-call. ``mark`` takes it out of
        the other faults' choice."""
        self.amc.faults.slow(slow, endpoint="create", times=6)
        time.sleep(slow / 2)
        busy: list[str] = []
        with contextlib.suppress(psycopg.OperationalError):
            busy = self._busy_workers()
        with self.fleet.lock:
            victim = self.fleet.pick(self.rng(), busy)
            if victim is not None:
                mark(victim)
            return victim

    def _kills(self) -> None:
        while self._wait(self.plan.kill_every):
            victim = self._victim(1.0, lambda d: setattr(d, "down", True))
            if victim is not None:
                self._kill(victim)

    def _kill(self, victim: Daemon) -> None:
        worker = victim.worker_id
        held = 0
        with contextlib.suppress(psycopg.OperationalError):
            held = dict(self.db.rows(HELD_WORK, ([worker],))).get(worker, 0)
        at = utcnow()
        victim.kill()
        self.journal.count("sigkill")
        self.fleet.dead_workers.append(worker)
        kill = Kill(worker, at, held)
        self.journal.kills.append(kill)
        restart = threading.Timer(RESTART_DELAY, self._restart, (victim,))
        restart.start()
        kill.recovered_after = self._taken_over(worker, at)
        restart.join()
        self.journal.window(at, at + timedelta(seconds=max(kill.recovered_after or 0, 2.0)))

    def _restart(self, daemon: Daemon) -> None:
        with self.fleet.lock:
            daemon.start()
            daemon.down = False

    def _taken_over(self, worker: str, since: datetime) -> float | None:
        """Seconds from ``since`` until ``worker`` held nothing (None: not within 60 s)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                if not dict(self.db.rows(HELD_WORK, ([worker],))).get(worker, 0):
                    return (utcnow() - since).total_seconds()
            time.sleep(0.1)
        return None

    # --- PostgreSQL restarts -----------------------------------------------------------

    def _restarts(self) -> None:
        for offset, mode in self.plan.restarts():
            if not self._wait_until(offset):
                return
            start = utcnow()
            self.db.restart(mode)
            self.journal.window(start, utcnow())
            self.journal.count(f"postgres restart ({mode})")

    # --- SIGSTOP past the lease --------------------------------------------------------

    def _freezes(self) -> None:
        for offset in self.plan.freezes():
            if not self._wait_until(offset):
                return
            victim = self._victim(2.0, lambda d: setattr(d, "frozen", True))
            if victim is None:
                continue
            try:
                self._freeze(victim)
            finally:
                victim.frozen = False

    def _freeze(self, victim: Daemon) -> None:
        worker = victim.worker_id
        held = dict(retrying(lambda: self.db.rows(HELD_RUNS, (worker,)), 5))
        freeze = Freeze(worker, utcnow(), held)
        victim.signal(signal.SIGSTOP)
        self.journal.count("sigstop past the lease")
        self.journal.freezes.append(freeze)
        try:
            freeze.takeover_after = self._runs_taken_over(freeze, FREEZE)
            self.stop.wait(max(0.0, FREEZE - (utcnow() - freeze.at).total_seconds()))
            owners = retrying(lambda: self.db.rows(RUN_OWNERS, (list(held),)), 10)
            freeze.taken_over = {
                run for run, owner, token in owners if (owner, token) != (worker, held[run])
            }
        finally:
            victim.signal(signal.SIGCONT)
            freeze.thawed_at = utcnow()
            self.journal.window(freeze.at, freeze.thawed_at)

    def _runs_taken_over(self, freeze: Freeze, limit: float) -> float | None:
        """Seconds until every run the frozen daemon held had another owner."""
        deadline = time.monotonic() + limit
        while freeze.held_runs and time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                owners = self.db.rows(RUN_OWNERS, (list(freeze.held_runs),))
                if all(owner != freeze.worker_id for _, owner, _ in owners):
                    return (utcnow() - freeze.at).total_seconds()
            time.sleep(0.2)
        return None

    # --- operators ---------------------------------------------------------------------

    def _operator(self) -> None:
        actions = itertools.cycle(("pause", "edit"))
        while self._wait(self.plan.operator_every):
            self._resume_due()
            with outage_tolerated():
                self._change_when_due(next(actions), within=11.0)
        self._resume_due(everything=True)

    def _respecs(self) -> None:
        """Every-minute schedules get their new spec at a minute's turn: waits of up to a
        minute, hence a thread of their own. The first comes at the first turn, and one that
        a restart stopped is made again at once (on a schedule still due then), so that the
        shortest soak has one."""
        overdue = 0.0
        while not self.stop.is_set():
            changed = False
            with outage_tolerated():
                changed = self._change_when_due("respec", within=65.0, overdue=overdue)
            overdue = 0.0 if changed else 10.0
            if not self._wait(self.plan.operator_every * 3 if changed else 1.0):
                break

    def _resume_due(self, *, everything: bool = False) -> None:
        for schedule_id, until in list(self._paused.items()):
            if everything or time.monotonic() >= until:
                with outage_tolerated():
                    self._change("resume", schedule_id)
                    del self._paused[schedule_id]

    def _change_when_due(self, action: str, within: float, overdue: float = 0.0) -> bool:
        """Wait for a schedule's next slot, and change it the moment it is due (a new spec
        only for every-minute ones: it alternates with every two minutes); ``overdue``: it
        may also be one already due that long and not claimed yet. Whether it was changed."""
        minutely = action == "respec"
        paused = list(self._paused)
        query = {"paused": paused, "minutely": minutely, "within": within, "overdue": overdue}
        rows = self.db.rows(DUE_SOON, query)
        if not rows or rows[0][0] in self._paused:
            return False
        schedule_id, next_run_at = rows[0]
        wait = (next_run_at - utcnow()).total_seconds() + self.rng().uniform(0, 0.2)
        if self.stop.wait(max(0.0, wait)):
            return False
        self._change(action, schedule_id)
        if action == "pause":
            self._paused[schedule_id] = time.monotonic() + self.rng().uniform(3, 12)
        return True

    def _change(self, action: str, schedule_id: uuid.UUID) -> None:
        with self.db.engine.begin() as conn:
            set_actor(conn, ACTOR)
            now = database_now(conn)
            before = management.get_schedule(conn, schedule_id, lock=True)
            if action == "pause":
                management.pause(conn, schedule_id, now, None, "soak: paused while due")
            elif action == "resume":
                management.resume(conn, schedule_id, now)
            elif action == "respec":
                cron = "*/2 * * * *" if before["spec"] == "* * * * *" else "* * * * *"
                management.update_schedule(conn, schedule_id, now, expression=cron)
            else:
                self._edit(conn, schedule_id, now, before)
            after = management.get_schedule(conn, schedule_id)
            spec = conn.execute(text(SPEC), {"id": schedule_id}).mappings().one()
        change = OperatorChange(
            action, schedule_id, now, before["next_run_at"], after["next_run_at"], dict(spec)
        )
        with self.journal.lock:
            self.journal.changes.append(change)
        self.journal.count(
            {
                "pause": "pause+resume while due",
                "resume": "pause+resume while due",
                "respec": "spec edited while due",
            }.get(action, "parameters/overlap edited while due")
        )

    def _edit(
        self, conn: Any, schedule_id: uuid.UUID, now: datetime, row: Mapping[str, Any]
    ) -> None:
        parameters = dict(row["parameters"])
        parameters["edit"] = str(int(parameters.get("edit", "0")) + 1)
        overlap = "skip" if row["overlap_policy"] == "allow" else "allow"
        management.update_schedule(
            conn, schedule_id, now, parameters=parameters, overlap_policy=overlap
        )

    def _triggers(self) -> None:
        ids = list(self.kinds)
        while self._wait(self.plan.trigger_every):
            schedule_id = self.rng().choice(ids)
            marker = f"manual {uuid.uuid4().hex}"
            try:
                with self.db.engine.begin() as conn:
                    set_actor(conn, ACTOR)
                    now = database_now(conn)
                    management.trigger(conn, schedule_id, now, None, {"edit": marker})
            except DBAPIError as exc:
                if not is_transient(exc):
                    raise
                self.journal.uncertain_manual_runs.append(marker)  # committed, or not
                continue
            self.journal.manual_runs.append(marker)
            self.journal.count("manual trigger")

    # --- AMC -------------------------------------------------------------------------------

    def _amc_faults(self) -> None:
        kinds = list(AMC_FAULTS)
        order: list[str] = []
        while self._wait(self.plan.amc_fault_every):
            if not order:  # every kind in each round, in a random order
                order = self.rng().sample(kinds, len(kinds))
            kind = order.pop()
            self._amc_fault(kind, self.rng())
            self.journal.count(kind)

    def _amc_fault(self, kind: str, rng: random.Random) -> None:
        faults = self.amc.faults
        endpoint = rng.choice(("create", "create", "get", "list"))
        if kind == "amc 429":
            faults.throttle(retry_after=rng.choice((0.2, 1, 2)), endpoint=endpoint)
        elif kind == "amc 429 without Retry-After":
            faults.throttle(retry_after=None, endpoint=endpoint)
        elif kind == "amc 5xx":
            faults.server_error(rng.choice((500, 502, 503, 504)), endpoint=endpoint)
        elif kind == "amc timeout":
            faults.slow(REQUEST_TIMEOUT + 2, endpoint=rng.choice(("create", "get")))
        elif kind == "amc create response lost":
            faults.lose_response(endpoint="create")
        elif kind == "amc token endpoint failure":
            faults.server_error(rng.choice((500, 503)), endpoint="token", times=2)
            self.amc.state.expire_access_tokens()  # so that somebody asks for a new one
        elif kind == "amc access token refused (401)":
            faults.expired_token(endpoint=endpoint)
        else:  # an error whose body quotes the request's token: it must be scrubbed
            body = {"code": "500", "details": "upstream said: {authorization}"}
            faults.add("status", status=500, body=body, endpoint="get")


# --- the soak --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the checker reads, besides the database."""

    plan: Plan
    window_start: datetime
    window_end: datetime
    checked_at: datetime
    initial: dict[uuid.UUID, dict[str, Any]]
    kinds: dict[uuid.UUID, str]
    journal: Journal
    executions: list[dict[str, Any]]
    issued_tokens: list[str]
    logs: list[Path]
    exit_codes: dict[str, int]
    unexpected_exits: list[str]


INITIAL = """
SELECT id, cron_expression, interval_seconds, interval_anchor, timezone, next_run_at,
       misfire_policy
  FROM workflow_schedules WHERE deleted_at IS NULL
"""


def soak(plan: Plan, work: Path) -> Report:
    print(f"soak: {plan.seconds:.0f} s, {plan.schedules:,} schedules, {DAEMONS} daemons; "
          f"work directory {work}", flush=True)  # fmt: skip
    db = Database(work)
    amc = start_amc()
    journal = Journal()
    daemons: list[Daemon] = []
    try:
        kinds = load_schedules(db, plan)
        initial = {row[0]: row_spec(row) for row in db.rows(INITIAL)}
        window_start = utcnow()
        log_dir = work / "logs"
        log_dir.mkdir()
        env = daemon_environment(amc)
        daemons = [Daemon(i, db.url, env, log_dir) for i in range(DAEMONS)]
        wait_for_workers(db)
        journal.window(window_start, utcnow())  # the first slots wait for the daemons
        fleet = Fleet(daemons)
        faults = Faults(plan, db, amc, fleet, kinds=kinds, journal=journal)
        faults.start()
        unexpected = watch(plan, fleet, faults, journal)
        faults.finish()
        print("faults stopped; settling", flush=True)
        window_end = utcnow() + timedelta(seconds=SETTLE - WINDOW_MARGIN)
        time.sleep(SETTLE)
        wait_for_quiet(db, window_end)
        checked_at = utcnow()
        outcome = Outcome(
            plan=plan,
            window_start=window_start,
            window_end=window_end,
            checked_at=checked_at,
            initial=initial,
            kinds=kinds,
            journal=journal,
            executions=ledger(amc),
            issued_tokens=list(amc.state.issued_tokens),
            logs=[log for d in daemons for log in d.logs],
            exit_codes={},
            unexpected_exits=unexpected,
        )
        report = Report()
        check_liveness(report, db, outcome, fleet.dead_workers)  # while the daemons still run
        outcome.exit_codes = {d.worker_id: d.terminate() for d in daemons}
        daemons = []
        outcome.executions = ledger(amc)  # with the calls of the daemons' last moments
        check(report, db, outcome)
        (work / "journal.json").write_text(json.dumps(journal.to_json(), indent=1))
        report.print()
        return report
    finally:
        for daemon in daemons:
            daemon.terminate(10)
        amc.stop()
        db.close()


def watch(plan: Plan, fleet: Fleet, faults: Faults, journal: Journal) -> list[str]:
    """Wait out the soak, printing progress; a daemon that exits by itself is a problem
    (restarted, as systemd would)."""
    unexpected: list[str] = []
    deadline = time.monotonic() + plan.seconds
    next_print = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        with fleet.lock:
            for daemon in fleet.daemons:
                code = daemon.exited()
                if code is not None and not daemon.down:
                    unexpected.append(f"{daemon.worker_id} exited by itself with code {code}")
                    print(f"  {unexpected[-1]}; started again", flush=True)
                    fleet.dead_workers.append(daemon.worker_id)
                    daemon.start()
        if time.monotonic() >= next_print:
            next_print += 30
            elapsed = plan.seconds - (deadline - time.monotonic())
            shown = ", ".join(f"{k} {n}" for k, n in sorted(journal.faults.items()))
            print(f"  {elapsed:5.0f} s: {shown}", flush=True)
    return unexpected


def wait_for_workers(db: Database, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while db.value("SELECT count(*) FROM live_workers") < DAEMONS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the daemons did not start within {limit:g} s")
        time.sleep(0.2)


UNSETTLED = """
SELECT count(*) FROM schedule_runs
 WHERE status IN ('pending', 'claimed', 'dispatching') AND scheduled_for <= %s
"""


def wait_for_quiet(db: Database, window_end: datetime, limit: float = 60.0) -> None:
    """Until no run of the window is still being sent (at most ``limit`` seconds more)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not retrying(lambda: db.value(UNSETTLED, (window_end,))):
            return
        time.sleep(0.5)


def ledger(amc: FakeAmcServer) -> list[dict[str, Any]]:
    """Every execution the fake AMC ever created, with the request fields it can tell apart."""
    with amc.state.lock:
        amc.state.advance()
        return [
            {
                "id": e.execution_id,
                "key": request_key(
                    e.instance_id,
                    e.workflow_id,
                    e.fields.get("parameterValues", {}),
                    e.fields.get("timeWindowStartOriginal"),
                    e.fields.get("timeWindowEndOriginal"),
                ),
                "status": e.status,
                "updated_at": e.updated_at,
            }
            for e in amc.state.executions.values()
        ]


def request_key(
    instance: str, workflow: str, values: Mapping[str, Any], start: Any, end: Any
) -> tuple[Any, ...]:
    return (instance, workflow, tuple(sorted((k, str(v)) for k, v in values.items())), start, end)


def row_spec(row: Sequence[Any]) -> dict[str, Any]:
    _, cron, interval, anchor, zone, next_run_at, misfire = row
    return {
        "cron_expression": cron,
        "interval_seconds": interval,
        "interval_anchor": anchor,
        "timezone": zone,
        "next_run_at": next_run_at,
        "misfire_policy": misfire,
    }


# --- the report ------------------------------------------------------------------------------


SECTIONS = ("window", "faults", "slots", "AMC", "liveness", "lateness", "recovery", "fencing")


@dataclass
class Line:
    section: str
    figure: str
    value: str
    must: str = ""
    ok: bool | None = None


@dataclass
class Report:
    lines: list[Line] = field(default_factory=list)

    def add(
        self, section: str, figure: str, value: object, must: str = "", ok: bool | None = None
    ) -> None:
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        self.lines.append(Line(section, figure, shown, must, ok))

    def must_equal(self, section: str, figure: str, value: int, expected: int) -> None:
        self.add(section, figure, value, f"= {expected:,}", value == expected)

    @property
    def holds(self) -> bool:
        return all(line.ok is not False for line in self.lines)

    def print(self) -> None:
        """One table, section by section, as docs/reliability.md shows it."""
        order = {name: i for i, name in enumerate(SECTIONS)}
        lines = sorted(self.lines, key=lambda line: order.get(line.section, len(order)))
        width = max(len(line.figure) for line in lines)
        value_width = max(len(line.value) for line in lines if len(line.value) <= 40)
        print(f"\n{'':<10} {'figure':<{width}}  {'value':<{value_width}}  {'must':<6} verdict")
        section = ""
        for line in lines:
            shown = line.section if line.section != section else ""
            section = line.section
            verdict = {None: "", True: "PASS", False: "FAIL"}[line.ok]
            print(
                f"{shown:<10} {line.figure:<{width}}  {line.value:<{value_width}}  "
                f"{line.must:<6} {verdict}".rstrip()
            )
        print("\nevery must holds" if self.holds else "\nSOME MUST FAILED", flush=True)


def percentiles(values: Sequence[float]) -> str:
    if not values:
        return "n/a (no slots)"
    ordered = sorted(values)

    def rank(fraction: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]

    return f"{rank(0.5):.2f} / {rank(0.99):.2f} / {ordered[-1]:.2f} s ({len(ordered):,} runs)"


# --- the checker: slots ----------------------------------------------------------------------


SCHEDULED_ROWS = """
SELECT schedule_id, scheduled_for, status, skip_reason, missed_slots,
       extract(epoch FROM coalesce(started_at, claimed_at) - scheduled_for)
  FROM schedule_runs WHERE trigger = 'scheduled'
"""


@dataclass
class Segment:
    """Slots of ``spec`` from ``start`` (a slot), up to ``end`` (excluded; None: the
    window's end, included)."""

    spec: ScheduleSpec
    start: datetime
    end: datetime | None = None


def spec_of(row: Mapping[str, Any]) -> ScheduleSpec:
    return spec_of_row(
        {
            "cron_expression": row["cron_expression"],
            "interval_seconds": row["interval_seconds"],
            "interval_anchor": row["interval_anchor"],
            "timezone": row["timezone"],
        }
    )


def slots(segment: Segment, window_end: datetime) -> Iterator[datetime]:
    slot = segment.start
    while slot <= window_end and (segment.end is None or slot < segment.end):
        yield slot
        slot = segment.spec.next_after(slot)


def segments(
    initial: Mapping[str, Any], changes: Sequence[OperatorChange], dropped: Counter[str]
) -> list[Segment]:
    """The stretches of a schedule's life in which its slots are due: from its first slot,
    cut by each pause (until its resume) and each new spec. A slot that was due but not yet
    claimed when an operator paused or respecified the schedule is dropped by design
    (semantics.md: the slots of a pause are not replayed; a new spec starts from now): counted
    in ``dropped``, never expected."""
    current = Segment(spec_of(initial), initial["next_run_at"])
    done: list[Segment] = []
    pause: OperatorChange | None = None
    for change in sorted(changes, key=lambda c: c.at):
        if change.kind == "pause":
            pause = change
            continue
        if change.kind == "edit":
            continue
        # The slots stop where they stood when the pause (or the new spec) came: a claim
        # while paused would have moved next_run_at, and must not be taken as expected.
        cut = pause if change.kind == "resume" and pause is not None else change
        assert cut.next_before is not None
        current.end = cut.next_before
        done.append(current)
        gap = Segment(current.spec, cut.next_before)
        dropped["due before the change, unclaimed"] += sum(1 for _ in slots(gap, cut.at))
        current = Segment(spec_of(change.spec_after), change.next_after or change.at)
        pause = None
    if pause is not None:  # never resumed: nothing is due after it
        assert pause.next_before is not None
        current.end = pause.next_before
    done.append(current)
    return done


@dataclass
class Coverage:
    due: Counter[str] = field(default_factory=Counter)
    once: int = 0
    missing: list[str] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def cover(
    outcome: Outcome,
    schedule_id: uuid.UUID,
    rows: Sequence[tuple[Any, ...]],
    changes: Sequence[OperatorChange],
    coverage: Coverage,
) -> None:
    """Count the rows standing for each due slot of one schedule: a run or skipped row for its
    own slot, a misfire row for ``missed_slots`` slots from its own."""
    initial = outcome.initial[schedule_id]
    stretches = segments(initial, changes, coverage.dropped)
    due: dict[datetime, int] = {}
    spec_at: dict[datetime, ScheduleSpec] = {}
    for stretch in stretches:
        for slot in slots(stretch, outcome.window_end):
            due[slot] = 0
            spec_at[slot] = stretch.spec
    for _, scheduled_for, status, reason, missed, _ in rows:
        covered = [scheduled_for]
        if status == "skipped" and reason == "misfire" and scheduled_for in spec_at:
            covered = list(
                itertools.islice(misfire_span(spec_at[scheduled_for], scheduled_for), missed or 1)
            )
        for slot in covered:
            if slot > outcome.window_end:
                continue
            if slot not in due:
                coverage.stray.append(f"{schedule_id} {slot.isoformat()} ({status})")
                continue
            due[slot] += 1
    policy = initial["misfire_policy"]
    for slot, count in due.items():
        coverage.due[policy] += 1
        if count == 1:
            coverage.once += 1
        elif count == 0:
            coverage.missing.append(f"{schedule_id} {slot.isoformat()}")
        else:
            coverage.twice.append(f"{schedule_id} {slot.isoformat()} x{count}")


def misfire_span(spec: ScheduleSpec, first: datetime) -> Iterator[datetime]:
    slot = first
    while True:
        yield slot
        slot = spec.next_after(slot)


def check_slots(report: Report, db: Database, outcome: Outcome) -> list[tuple[float, datetime]]:
    """The exactly-once figures; returns (lateness, slot) of every run of a slot."""
    rows_by_schedule: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    for row in db.rows(SCHEDULED_ROWS):
        rows_by_schedule[row[0]].append(row)
    changes: dict[uuid.UUID, list[OperatorChange]] = defaultdict(list)
    for change in outcome.journal.changes:
        changes[change.schedule_id].append(change)
    coverage = Coverage()
    for schedule_id in outcome.initial:
        cover(outcome, schedule_id, rows_by_schedule[schedule_id], changes[schedule_id], coverage)
    total = sum(coverage.due.values())
    by_policy = ", ".join(f"{policy} {n:,}" for policy, n in sorted(coverage.due.items()))
    section = "slots"
    report.add(section, "slots due in the window", f"{total:,} ({by_policy})")
    report.must_equal(section, "slots with exactly one row", coverage.once, total)
    report.must_equal(section, "slots with no row", len(coverage.missing), 0)
    report.must_equal(section, "slots with two or more rows", len(coverage.twice), 0)
    report.must_equal(section, "rows for no due slot", len(coverage.stray), 0)
    for name, examples in (
        ("missing", coverage.missing),
        ("duplicated", coverage.twice),
        ("stray", coverage.stray),
    ):
        for example in examples[:5]:
            print(f"  {name}: {example}")
    report.add(
        section,
        "due slots dropped by a pause/new spec (by design, no row)",
        coverage.dropped["due before the change, unclaimed"],
    )
    skipped = Counter(
        (row[3], row[4] or 1)
        for rows in rows_by_schedule.values()
        for row in rows
        if row[2] == "skipped" and row[1] <= outcome.window_end
    )
    reasons: Counter[str] = Counter()
    covered: Counter[str] = Counter()
    for (reason, missed), n in skipped.items():
        reasons[reason] += n
        covered[reason] += n * missed
    shown = ", ".join(
        f"{reason} {reasons[reason]:,} rows ({covered[reason]:,} slots)"
        for reason in sorted(reasons)
    )
    report.add(section, "skipped rows, by reason", shown or "none")
    return [
        (row[5], row[1])
        for rows in rows_by_schedule.values()
        for row in rows
        if row[1] <= outcome.window_end and row[5] is not None and row[3] != "misfire"
    ]


# --- the checker: AMC ------------------------------------------------------------------------


RUN_REQUESTS = """
SELECT r.id, r.status, r.amc_execution_id, r.request, i.instance_id, r.trigger
  FROM schedule_runs r
  JOIN workflows w ON w.id = r.workflow_id
  JOIN amc_instances i ON i.id = w.instance_id
 WHERE r.status <> 'skipped'
"""

DOUBLE_ATTRIBUTIONS = """
SELECT count(*) FROM (SELECT amc_execution_id FROM schedule_runs
                       WHERE amc_execution_id IS NOT NULL
                       GROUP BY 1 HAVING count(*) > 1) AS twice
"""


def run_key(instance: str, body: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if body is None:
        return None
    return request_key(
        instance,
        str(body.get("workflowId")),
        body.get("parameterValues") or {},
        body.get("timeWindowStart"),
        body.get("timeWindowEnd"),
    )


def check_amc(report: Report, db: Database, outcome: Outcome) -> None:
    section = "AMC"
    executions = {e["id"]: e for e in outcome.executions}
    runs = db.rows(RUN_REQUESTS)
    by_key: dict[Any, list[tuple[Any, ...]]] = defaultdict(list)
    foreign = 0
    for run in runs:
        run_id, _, execution_id, body, instance, _ = run
        key = run_key(instance, body)
        by_key[key].append(run)
        if execution_id is not None:
            held = executions.get(execution_id)
            if held is None or held["key"] != key:
                foreign += 1
                if foreign <= 5:
                    shown = "nothing" if held is None else held["key"]
                    print(f"  run {run_id} {key} holds {execution_id}, which AMC has for {shown}")
    created: Counter[Any] = Counter(e["key"] for e in outcome.executions)
    attributed = {r[2] for r in runs if r[2] is not None}
    orphans = Counter(e["key"] for e in outcome.executions if e["id"] not in attributed)
    most = max(
        (math.ceil(n / max(1, len(by_key.get(key, [])))) for key, n in created.items()),
        default=0,
    )
    report.add(section, "AMC executions created (the fake's ledger)", len(executions))
    report.add(section, "AMC creates per run (max)", most, "<= 1", most <= 1)
    report.must_equal(
        section,
        "executions no run holds (a 2nd create, or a run lost it)",
        sum(orphans.values()),
        0,
    )
    for key, n in list(orphans.items())[:5]:
        print(f"  {n} execution(s) of {key} held by no run; runs: {by_key.get(key)}")
    report.must_equal(
        section, "executions attributed to two runs", db.value(DOUBLE_ATTRIBUTIONS), 0
    )
    report.must_equal(section, "runs holding an execution not of their request", foreign, 0)
    sent = [r for r in runs if r[1] in ("dispatched", "succeeded")]
    report.must_equal(
        section,
        "dispatched/succeeded runs without an execution",
        sum(1 for r in sent if r[2] is None),
        0,
    )
    statuses = Counter(r[1] for r in runs)
    report.add(
        section, "runs by status", ", ".join(f"{s} {n:,}" for s, n in statuses.most_common())
    )
    check_manual_runs(report, db, outcome.journal)


MANUAL_MARKERS = """
SELECT parameters_override->>'edit' FROM schedule_runs WHERE trigger = 'manual'
"""


def check_manual_runs(report: Report, db: Database, journal: Journal) -> None:
    """One row for every manual run queued; none for a trigger the soak did not make; one
    or none for a trigger whose commit it could not confirm."""
    rows = Counter(marker for (marker,) in db.rows(MANUAL_MARKERS))
    known = journal.manual_runs
    uncertain = set(journal.uncertain_manual_runs)
    wrong = sum(rows[marker] != 1 for marker in known)
    wrong += sum(n for marker, n in rows.items() if marker not in uncertain and marker not in known)
    wrong += sum(rows[marker] > 1 for marker in uncertain)
    shown = f"{len(known):,} (+{len(uncertain)} whose commit a restart left unknown)"
    report.add("AMC", "manual runs queued", shown)
    report.must_equal("AMC", "manual runs without exactly their one row", wrong, 0)


# --- the checker: liveness, lateness, recovery, logs ----------------------------------------


UNFINISHED_LATE = """
SELECT count(*) FROM schedule_runs
 WHERE status IN ('pending', 'claimed', 'dispatching')
   AND coalesce(claimed_at, created_at) < now() - make_interval(secs => %s)
"""

DISPATCHED = """
SELECT amc_execution_id FROM schedule_runs
 WHERE status = 'dispatched' AND amc_execution_id IS NOT NULL
"""

DEAD_LOCKS = """
SELECT (SELECT count(*) FROM workflow_schedules s
         WHERE s.locked_by IS NOT NULL
           AND (s.locked_by = ANY(CAST(%(dead)s AS text[]))
                OR s.locked_by IN (SELECT worker_id FROM worker_status WHERE state <> 'live'))),
       (SELECT count(*) FROM schedule_runs r
         WHERE r.status IN ('claimed', 'dispatching')
           AND (r.worker_id = ANY(CAST(%(dead)s AS text[]))
                OR r.worker_id IN (SELECT worker_id FROM worker_status WHERE state <> 'live')))
"""


def check_liveness(report: Report, db: Database, outcome: Outcome, dead: Sequence[str]) -> None:
    """While the daemons still run: nothing left behind, nothing held by the dead."""
    section = "liveness"
    limit = LEASE + POLL
    late = retrying(lambda: db.value(UNFINISHED_LATE, (limit,)))
    report.must_equal(section, f"runs unfinished past lease + poll ({limit:g} s)", late, 0)
    executions = {e["id"]: e for e in outcome.executions}
    stale = 0
    for (execution_id,) in retrying(lambda: db.rows(DISPATCHED)):
        held = executions.get(execution_id)
        if held and held["status"] not in ("PENDING", "RUNNING"):
            ended = (outcome.checked_at - held["updated_at"]).total_seconds()
            stale += ended > limit + STATUS_LAG
    report.must_equal(
        section, f"dispatched runs whose execution ended > {limit + STATUS_LAG:g} s ago", stale, 0
    )
    locks, runs = retrying(lambda: db.rows(DEAD_LOCKS, {"dead": list(dead)}))[0]
    report.must_equal(section, "schedule locks held by dead workers at the end", locks, 0)
    report.must_equal(section, "runs held by dead workers at the end", runs, 0)


def in_fault(slot: datetime, windows: Sequence[tuple[datetime, datetime]]) -> bool:
    tail = timedelta(seconds=FAULT_TAIL)
    return any(start <= slot <= end + tail for start, end in windows)


def check_lateness(
    report: Report, outcome: Outcome, lateness: Sequence[tuple[float, datetime]]
) -> None:
    windows = outcome.journal.windows
    inside = [float(late) for late, slot in lateness if in_fault(slot, windows)]
    outside = [float(late) for late, slot in lateness if not in_fault(slot, windows)]
    report.add("lateness", "p50 / p99 / max outside fault windows", percentiles(outside))
    report.add("lateness", "p50 / p99 / max within fault windows", percentiles(inside))


def check_recovery(report: Report, outcome: Outcome) -> None:
    section = "recovery"
    kills = outcome.journal.kills
    holding = [k for k in kills if k.held]
    times = [k.recovered_after for k in holding if k.recovered_after is not None]
    report.add(
        section,
        "SIGKILLs (victim held claims)",
        f"{len(kills)} ({len(holding)})",
    )
    if times:
        report.add(
            section,
            "s from SIGKILL until its claims were taken over",
            f"median {statistics.median(times):.2f}, max {max(times):.2f} "
            f"[{', '.join(f'{t:.1f}' for t in times)}]",
        )
    report.must_equal(
        section, "kills whose claims were never taken over", len(holding) - len(times), 0
    )


def log_events(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(line)
            if isinstance(event, dict):
                yield event


def check_fencing(report: Report, outcome: Outcome) -> None:
    """After its thaw, a frozen daemon's writes for the runs others took over touch nothing:
    each is fenced (claim.lost) and none is recorded as its own (run.finished)."""
    section = "fencing"
    lost = touched = taken = 0
    for freeze in outcome.journal.freezes:
        taken += len(freeze.taken_over)
        log = next(p for p in outcome.logs if p.stem == freeze.worker_id)
        thawed = freeze.thawed_at or freeze.at
        for event in log_events(log):
            stamp = event.get("timestamp")
            if not isinstance(stamp, str) or datetime.fromisoformat(stamp) < thawed:
                continue
            run = event.get("run_id")
            if event.get("event") == "claim.lost":
                lost += 1
            elif (
                event.get("event") == "run.finished"
                # The status sync is no claim's write: any daemon records what AMC says.
                and event.get("via") != "status_sync"
                and run
                and uuid.UUID(run) in freeze.taken_over
            ):
                touched += 1
    shown = ", ".join(
        f"{f.takeover_after:.1f} s" if f.takeover_after is not None else "held nothing"
        for f in outcome.journal.freezes
    )
    report.add(
        section, f"SIGSTOPs of {FREEZE:g} s (lease {LEASE:g} s): takeover after", shown or "none"
    )
    report.add(section, "runs taken over from the frozen daemon", taken)
    report.add(section, "its late writes refused (claim.lost)", lost)
    report.must_equal(section, "rows its late writes touched", touched, 0)


def check_logs(report: Report, outcome: Outcome) -> None:
    section = "logs"
    secrets = [*SECRETS, *outcome.issued_tokens]
    leaking = 0
    errors: Counter[str] = Counter()
    for path in outcome.logs:
        for line in path.read_text(errors="replace").splitlines():
            leaking += any(secret in line for secret in secrets)
        for event in log_events(path):
            if event.get("level") in ("error", "critical"):
                errors[str(event.get("event"))] += 1
    report.must_equal(section, "log lines containing a secret", leaking, 0)
    report.add(
        section,
        "error events logged",
        ", ".join(f"{name} {n}" for name, n in errors.most_common()) or "none",
    )
    bad_exits = {w: c for w, c in outcome.exit_codes.items() if c != 0}
    report.must_equal(section, "daemons not exiting 0 on SIGTERM", len(bad_exits), 0)
    # A daemon that starts while the database restarts exits 2 (a database condition at
    # start is one line and exit 2, as for every command); systemd starts it again.
    report.add(
        section,
        "daemons that exited by themselves (started again)",
        "; ".join(outcome.unexpected_exits) or "none",
    )


def check_faults(report: Report, outcome: Outcome) -> None:
    journal = outcome.journal
    for kind in FAULT_KINDS:
        report.add("faults", kind, journal.faults[kind])
    absent = [kind for kind in FAULT_KINDS if not journal.faults[kind]]
    report.add(
        "faults", "fault kinds never injected", ", ".join(absent) or "none", "none", not absent
    )
    report.must_equal("faults", "problems in the soak itself", len(journal.problems), 0)


def check(report: Report, db: Database, outcome: Outcome) -> None:
    seconds = (outcome.window_end - outcome.window_start).total_seconds()
    report.add(
        "window",
        "slots from / to (UTC)",
        f"{outcome.window_start:%H:%M:%S} / {outcome.window_end:%H:%M:%S} ({seconds:.0f} s)",
    )
    mix = Counter(outcome.kinds.values())
    report.add(
        "window",
        "schedules",
        f"{len(outcome.kinds):,} ({', '.join(f'{k} {n:,}' for k, n in mix.items())})",
    )
    check_faults(report, outcome)
    lateness = check_slots(report, db, outcome)
    check_amc(report, db, outcome)
    check_lateness(report, outcome, lateness)
    check_recovery(report, outcome)
    check_fencing(report, outcome)
    check_logs(report, outcome)


# --- command line ----------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the faults go on")
    parser.add_argument("--seed", type=int, default=16, help="the random mix and fault times")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    plan = Plan(seconds=args.seconds, seed=args.seed)
    work = Path(tempfile.mkdtemp(prefix="scheduler-daemon-soak-"))
    try:
        report = soak(plan, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if report.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
