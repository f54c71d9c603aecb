"""The REST API's read path with 100,000 schedules: page latency, and what one worker sustains.

    python bench/bench_api.py                                  # the full run (1-2 minutes)
    python bench/bench_api.py --schedules 10000 --duration 10  # a quick one
    python bench/bench_api.py --database-url postgresql://u:p@host/postgres   # your server
    python bench/bench_api.py --explain --statements --profile /tmp/api-profile   # why

Setup: bench_daemon's embedded PostgreSQL (fsync off), or a throwaway database on the server
--database-url names (an admin URL: the bench creates and drops its own database there).
--schedules N schedules (default 100,000) go in with one INSERT ... SELECT FROM
generate_series: names 'bench <n>' (unique among live schedules), 5 workflows, cron and
interval specs in 3 zones, 90% enabled, 4% paused, 6% failing (consecutive_failures > 0); a
third of them, and every failing one, with 6 runs (succeeded, failed, skipped), so that the
listing's last_run_status lateral join finds rows. Then VACUUM ANALYZE, a read token
(scheduler_daemon.tokens.create_token) and one real `scheduler-daemon serve` subprocess: one
uvicorn worker on 127.0.0.1, logging a JSON line per request as it does in production.

(a) latency     sequential requests of each kind over one keep-alive connection (--requests
                of each, default 200, but no more than 6 s of a slow kind once it has 20),
                p50/p99: the list page (GET /api/v1/schedules?limit=50, sorted by name), a
                filtered one (?enabled=true&sort=next_run_at), a deep page (the 'next' cursor
                after walking half the table 500 rows at a time), get-one (GET
                /schedules/{name}, random names), a schedule's runs, /runs and /stats.
(console)       (a) for the web console's pages, logged in as a browser is: the schedules
                list whole and as the partial htmx fetches while someone types, filtered,
                searched, a schedule's page, the form's preview and the daemons page.
(b) throughput  a separate load-generating process (this script with --load-generator:
                httpx, one client and connection per thread, --clients threads) sends the read
                MIX for --duration seconds after a 3 s warm-up: requests/s by completion time,
                errors, p50/p99 per kind under load, CPU ms per request of the server, of
                PostgreSQL and of the load generator (which shares the machine's cores), the
                server's ceiling were a core its own (1000 / its CPU ms per request), and the
                connections the server's pool opened per request.

Targets: list page p99 <= 50 ms (the API's and the console's); >= 500 read requests/s from
one worker on a 2-core machine.
Nothing asserts on timing: each figure is printed beside its target with PASS or MISS, with
the machine's core count and its other load.

--explain prints EXPLAIN (ANALYZE, BUFFERS) of the statements a list page, a filtered page, a
deep page and /stats run (captured from the product's own calls), and in-process timings of
the parts of a list request (token check, the listing, response validation and JSON).
--statements loads pg_stat_statements (embedded server only) and prints the statements per
request of the throughput run. --profile DIR runs py-spy on the server during the throughput
run (raw folded stacks of the thread holding the GIL in DIR/server.txt) and prints where
the server's Python time went: by part of a request and by library.
--server-env KEY=VALUE sets an environment variable of the server (e.g.
SCHEDULER_LOG_LEVEL=warning: what the per-request log line costs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
import psycopg
from bench_daemon import (
    Daemon,
    Postgres,
    Report,
    check_alive,
    cpu_seconds,
    cpu_spent,
    machine_busy_seconds,
    one,
    percentile,
    report_logs,
    top_statements,
)
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import make_url

from scheduler_daemon import management, tokens
from scheduler_daemon.api.access import Access, Database
from scheduler_daemon.api.schemas import Page, Schedule
from scheduler_daemon.db.databases import drop_database
from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.provision import create_template

SCHEDULES = 100_000
WORKFLOWS = 5
RUNS_EACH = 6
WARMUP = 3.0
LIST_P99_MS = 50.0
READS_PER_SECOND = 500.0
TOKEN_VARIABLE = "BENCH_API_TOKEN"  # noqa: S105 (the name of the variable that carries it)
API = "/api/v1"
BANNER = "scheduler-daemon console on "  # what ``serve`` prints (not a log line) as it starts

Conn = psycopg.Connection[tuple[Any, ...]]

# What each kind of request asks: {n} is any schedule's number, {m} one with runs, {deep} the
# deep page's cursor.
PATHS: dict[str, str] = {
    "list": f"{API}/schedules?limit=50",
    "list filtered": f"{API}/schedules?limit=50&enabled=true&sort=next_run_at",
    "list deep": f"{API}/schedules?limit=50&cursor={{deep}}",
    "get one": f"{API}/schedules/bench%20{{n}}",
    "schedule runs": f"{API}/schedules/bench%20{{m}}/runs?limit=20",
    "runs": f"{API}/runs?limit=50",
    "stats": f"{API}/stats",
}
# The throughput run's read mix, (kind, weight): people list, page, open schedules and look at
# runs; a dashboard polls /stats now and then.
MIX: tuple[tuple[str, int], ...] = (
    ("list", 12),
    ("list filtered", 8),
    ("list deep", 8),
    ("get one", 35),
    ("schedule runs", 15),
    ("runs", 20),
    ("stats", 2),
)
# The console's pages (HTML, a browser's session): the schedules list as people use it, a
# schedule's page, the form's live preview and the daemons page.
CONSOLE_PATHS: dict[str, str] = {
    "console list": "/",
    "console list filtered": "/?state=enabled&sort=next_run_at",
    "console search": "/?q=bench%20{n}",
    "console list partial": "/?q=bench",
    "console schedule page": "/schedules/bench%20{m}",
    "console preview": "/preview?spec=0+9+*+*+1-5&timezone=America/New_York",
    "console daemons": "/daemons",
}
# (a) takes at least this many samples of a kind, then stops at --requests or after
# LATENCY_BUDGET seconds, so that a slow kind does not stretch the run.
MIN_SAMPLES = 20
LATENCY_BUDGET = 6.0


# --- the database ----------------------------------------------------------------------------


@dataclass
class Target:
    """The bench's database and, for the embedded server, the server."""

    url: str
    name: str
    admin_url: str
    pg: Postgres | None

    def backend_pids(self, conn: Conn) -> list[int]:
        """The server's processes when it is ours, else our database's backends (local only:
        a remote server's processes are not this machine's to measure)."""
        if self.pg is not None:
            return self.pg.backend_pids()
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,)
        ).fetchall()
        return [row[0] for row in rows]


@contextlib.contextmanager
def database(root: Path, admin_url: str | None, *, statements: bool) -> Iterator[Target]:
    name = f"bench_api_{uuid.uuid4().hex[:8]}"
    if admin_url is None:
        pg = Postgres(root, statements=statements)
        try:
            yield Target(pg.new_database(name), name, pg.admin_url, pg)
        finally:
            pg.drop_database(name)
            pg.close()
        return
    with psycopg.connect(admin_url, autocommit=True) as conn:
        version = one(conn, "SHOW server_version")
    shown = make_url(admin_url).render_as_string(hide_password=True)
    print(f"PostgreSQL {version} at {shown}", flush=True)
    try:
        yield Target(create_template(admin_url, name), name, admin_url, None)
    finally:
        drop_database(admin_url, name, missing_ok=True)


def seed(conn: Conn, schedules: int) -> None:
    """The catalog, ``schedules`` schedules and their run history, in three statements."""
    workflows = [
        row[0]
        for row in conn.execute(
            """
            WITH a AS (INSERT INTO amc_accounts (account_id, marketplace_id, region, name)
                       VALUES ('ENTITYBENCHAPI', 'ATVPDKIKX0DER', 'NA', 'bench api account')
                       RETURNING id),
                 i AS (INSERT INTO amc_instances (instance_id, account_id, name)
                       SELECT 'amcbenchapi1', id, 'bench api instance' FROM a RETURNING id)
            INSERT INTO workflows (name, instance_id, amc_workflow_id, sql_query)
            SELECT 'bench api workflow ' || k, i.id, 'wf-bench-api-' || k, 'SELECT ' || k
              FROM i, generate_series(1, %s) AS k
            RETURNING id
            """,
            (WORKFLOWS,),
        ).fetchall()
    ]
    started = time.monotonic()
    # n mod 5 = 0: an interval spec; mod 10 = 0: disabled; mod 25 = 1: paused; mod 17 = 0:
    # failing; mod 3 = 0 or failing: has run history (its last run shortly before now).
    conn.execute(
        """
        INSERT INTO workflow_schedules
               (workflow_id, name, cron_expression, interval_seconds, timezone, enabled,
                parameters, next_run_at, last_run_at, paused_at, pause_reason,
                consecutive_failures, last_error, created_at, updated_at)
        SELECT (CAST(%(workflows)s AS uuid[]))[1 + mod(n, %(w)s)],
               'bench ' || n,
               CASE WHEN mod(n, 5) <> 0 THEN
                    (ARRAY['0 9 * * *', '*/15 * * * *', '0 */6 * * *', '30 2 * * MON-FRI',
                           '0 0 1 * *'])[1 + mod(n / 5, 5)] END,
               CASE WHEN mod(n, 5) = 0 THEN 3600 * (1 + mod(n, 24)) END,
               (ARRAY['UTC', 'America/New_York', 'Europe/London'])[1 + mod(n, 3)],
               mod(n, 10) <> 0,
               jsonb_build_object('lookback_days', 1 + mod(n, 30)),
               CASE WHEN mod(n, 10) <> 0 THEN now() + mod(n, 86400) * interval '1 second' END,
               CASE WHEN mod(n, 3) = 0 OR mod(n, 17) = 0
                    THEN date_trunc('hour', now()) - interval '6 hours'
                         - mod(n, 3600) * interval '1 second' END,
               CASE WHEN mod(n, 25) = 1 THEN now() - interval '1 day' END,
               CASE WHEN mod(n, 25) = 1 THEN 'bench: paused by an operator' END,
               CASE WHEN mod(n, 17) = 0 THEN 1 + mod(n, 5) ELSE 0 END,
               CASE WHEN mod(n, 17) = 0 THEN 'AMC: the query timed out' END,
               now() - n * interval '1 second', now()
          FROM generate_series(1, %(n)s) AS n
        """,
        {"workflows": workflows, "w": WORKFLOWS, "n": schedules},
    )
    inserted = time.monotonic() - started
    conn.execute(
        """
        INSERT INTO schedule_runs
               (schedule_id, workflow_id, scheduled_for, trigger, status, skip_reason,
                worker_id, attempts, claimed_at, started_at, finished_at, error_message,
                created_at)
        SELECT s.id, s.workflow_id, r.slot, 'scheduled', r.status,
               CASE WHEN r.status = 'skipped' THEN 'misfire' END,
               CASE WHEN r.status <> 'skipped' THEN 'bench-worker' END,
               CASE WHEN r.status <> 'skipped' THEN 1 ELSE 0 END,
               CASE WHEN r.status <> 'skipped' THEN r.slot + interval '1 second' END,
               CASE WHEN r.status <> 'skipped' THEN r.slot + interval '2 seconds' END,
               CASE WHEN r.status <> 'skipped'
                    THEN r.slot + (60 + mod(s.n, 600)) * interval '1 second' END,
               CASE WHEN r.status = 'failed' THEN 'AMC: the query timed out' END,
               r.slot
          FROM (SELECT id, workflow_id, consecutive_failures,
                       CAST(split_part(name, ' ', 2) AS integer) AS n
                  FROM workflow_schedules
                 WHERE starts_with(name, 'bench ')) s
         CROSS JOIN generate_series(1, %(runs)s) AS k
         CROSS JOIN LATERAL (
               SELECT date_trunc('hour', now()) - k * interval '6 hours'
                      - mod(s.n, 3600) * interval '1 second' AS slot,
                      CASE WHEN k = 1 AND s.consecutive_failures > 0 THEN 'failed'
                           WHEN mod(s.n + k, 11) = 0 THEN 'failed'
                           WHEN mod(s.n + k, 13) = 0 THEN 'skipped'
                           ELSE 'succeeded' END AS status) r
         WHERE mod(s.n, 3) = 0 OR s.consecutive_failures > 0
        """,
        {"runs": RUNS_EACH},
    )
    runs = one(conn, "SELECT count(*) FROM schedule_runs")
    conn.execute("VACUUM ANALYZE")
    print(
        f"  {schedules:,} schedules in {inserted:.1f} s (one INSERT ... generate_series, audit "
        f"trigger included); {runs:,} runs; VACUUM ANALYZE; "
        f"{time.monotonic() - started:.1f} s in all",
        flush=True,
    )


def read_token(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _, secret = tokens.create_token(conn, "bench-reader", "read")
    finally:
        engine.dispose()
    return secret


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server(Daemon):
    """One ``scheduler-daemon serve`` subprocess (one uvicorn worker) on 127.0.0.1, its JSON
    log lines in a file; stopping it and reading its log are the daemon's."""

    def __init__(self, url: str, log_dir: Path, extra_env: dict[str, str]) -> None:
        self.worker_id = "api-server"
        self.log_path = log_dir / "server.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
        env |= {"SCHEDULER_LOG_FORMAT": "json", **extra_env}
        self._log = self.log_path.open("wb")
        command = [
            sys.executable, "-m", "scheduler_daemon", "--database-url", url,
            "serve", "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._profiler = None

    def log_summary(self) -> tuple[Counter[str], int]:
        """The daemon's summary, less the one line ``serve`` prints before logging starts."""
        events, not_json = super().log_summary()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return events, not_json - sum(1 for line in lines if line.startswith(BANNER))

    def wait_ready(self, token: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"the server exited; log tail:\n{self.tail()}")
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(f"{self.base_url}{API}/schedules?limit=1", headers=headers)
                if answer.status_code == 200:
                    return
                raise RuntimeError(f"the server answered {answer.status_code}: {answer.text}")
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


# --- (a) latency -----------------------------------------------------------------------------


def fill(template: str, rng: random.Random, schedules: int, deep: str) -> str:
    """A path of the mix: a random schedule for {n}, one with runs for {m}."""
    with_runs = 3 * rng.randint(1, max(1, schedules // 3))
    return template.format(n=rng.randint(1, schedules), m=with_runs, deep=deep)


def timed(client: httpx.Client, path: str, problems: list[str]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    answer = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200 and len(problems) < 5:
        problems.append(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
    return elapsed, answer


def walk_to_deep_page(client: httpx.Client, schedules: int, problems: list[str]) -> str:
    """The 'next' cursor after walking half the table, 500 rows a page (cursors hold the
    position, not the page size, so a page of 50 can start from it)."""
    pages = max(1, schedules // 2 // 500)
    started = time.perf_counter()
    cursor = None
    for _ in range(pages):
        path = f"{API}/schedules?limit=500" + (f"&cursor={cursor}" if cursor else "")
        _, answer = timed(client, path, problems)
        following: str | None = answer.json().get("next")
        if not following:
            break
        cursor = following
    walked = time.perf_counter() - started
    print(
        f"  walked {pages} pages of 500 to row {pages * 500:,} in {walked:.1f} s "
        f"({walked * 1000 / pages:.1f} ms a 500-row page)",
        flush=True,
    )
    if cursor is None:
        raise RuntimeError("no 'next' cursor: the table has fewer than 500 schedules")
    return cursor


def bench_latency(
    report: Report,
    client: httpx.Client,
    schedules: int,
    requests: int,
    deep: str,
    *,
    section: str = "latency",
    paths: dict[str, str] = PATHS,
) -> None:
    print(
        f"\n({section}): up to {requests} sequential requests of each kind (at least "
        f"{MIN_SAMPLES}, else at most {LATENCY_BUDGET:.0f} s), one keep-alive connection"
    )
    rng = random.Random(1)
    problems: list[str] = []
    for kind, template in paths.items():
        for _ in range(3):  # warm: the connection, Python's caches
            timed(client, fill(template, rng, schedules, deep), problems)
        samples: list[float] = []
        until = time.monotonic() + LATENCY_BUDGET
        while len(samples) < requests and (len(samples) < MIN_SAMPLES or time.monotonic() < until):
            samples.append(timed(client, fill(template, rng, schedules, deep), problems)[0])
        is_list = "list" in kind
        report.figure(
            section, f"{kind}: p50 of {len(samples)}", percentile(samples, 0.5), " ms", digits=1
        )
        report.figure(
            section,
            f"{kind}: p99",
            percentile(samples, 0.99),
            " ms",
            digits=1,
            target=("<=", LIST_P99_MS) if is_list else None,
            key=True,
        )
    for problem in problems:
        report.problem(section, problem)


def bench_pages(report: Report, base_url: str, token: str, schedules: int, requests: int) -> str:
    """(a) and (console); the deep page's cursor, for (b)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        problems: list[str] = []
        deep = walk_to_deep_page(client, schedules, problems)
        for problem in problems:
            report.problem("setup", problem)
        bench_latency(report, client, schedules, requests, deep)
    bench_console(report, base_url, token, schedules, requests)
    return deep


def bench_console(report: Report, base_url: str, token: str, schedules: int, requests: int) -> None:
    """(a) again for the console's pages, as a logged-in browser asks them: the list's
    partial (what htmx fetches as someone types in the search box) and whole pages."""
    with httpx.Client(base_url=base_url, timeout=60) as browser:
        form = browser.get("/login").text
        found = re.search(r'name="csrf_token" value="([^"]+)"', form)
        csrf = found.group(1) if found else ""
        logged_in = browser.post("/login", data={"token": token, "csrf_token": csrf})
        if logged_in.status_code != 303:
            raise RuntimeError(f"the console's login answered {logged_in.status_code}")
        partial = {k: v for k, v in CONSOLE_PATHS.items() if k.endswith("partial")}
        browser.headers.update({"HX-Request": "true", "HX-Target": "listing"})
        bench_latency(report, browser, schedules, requests, "", section="console", paths=partial)
        del browser.headers["HX-Request"], browser.headers["HX-Target"]
        pages = {k: v for k, v in CONSOLE_PATHS.items() if k not in partial}
        bench_latency(report, browser, schedules, requests, "", section="console", paths=pages)


# --- (b) throughput --------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    latency_ms: dict[str, list[float]]


def load_generator(config: dict[str, Any]) -> None:
    """The separate load-generating process: ``clients`` threads, each with its own httpx
    client (one keep-alive connection), send the mix until the end. Prints ``measuring`` when
    the warm-up ends and ``done`` at the end (the parent measures CPU between the two), then
    one JSON line: what completed between them."""
    token = os.environ[TOKEN_VARIABLE]
    mix = [(kind, config["paths"][kind]) for kind, _ in config["mix"]]
    weights = [weight for _, weight in config["mix"]]
    began = time.perf_counter()
    measure_from = began + config["warmup"]
    until = measure_from + config["duration"]
    done: list[tuple[str, float, float]] = []  # kind, completed at, ms
    errors: Counter[str] = Counter()

    def drive(seed: int) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=config["base_url"], headers=headers, timeout=60) as client:
            while (started := time.perf_counter()) < until:
                kind, template = rng.choices(mix, weights)[0]
                path = fill(template, rng, config["schedules"], config["deep"])
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError as exc:
                    status, reason = 0, type(exc).__name__
                else:
                    reason = str(status)
                finished = time.perf_counter()
                if measure_from <= finished <= until:
                    done.append((kind, finished, (finished - started) * 1000))
                    if status != 200:
                        errors[f"{kind}: {reason}"] += 1

    threads = [
        threading.Thread(target=drive, args=(seed,), daemon=True)
        for seed in range(config["clients"])
    ]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    print("measuring", flush=True)
    time.sleep(max(0.0, until - time.perf_counter()))
    print("done", flush=True)
    for thread in threads:
        thread.join(60)
    latency: dict[str, list[float]] = defaultdict(list)
    for kind, _, ms in done:
        latency[kind].append(ms)
    result = LoadResult(len(done), config["duration"], dict(errors), dict(latency))
    print(json.dumps(result.__dict__), flush=True)


class Profiler:
    """py-spy on the server's process for ``seconds``: raw folded stacks of the thread holding
    the GIL (what bounds one worker), sampled without pausing it."""

    def __init__(self, directory: Path, pid: int, seconds: float) -> None:
        py_spy = shutil.which("py-spy", path=Path(sys.executable).parent) or "py-spy"
        self.output = directory / "server.txt"
        self.process = subprocess.Popen(
            [py_spy, "record", "--format", "raw", "--gil", "--nonblocking", "--rate", "200",
             "--duration", str(round(seconds)), "--pid", str(pid), "-o", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def summary(self) -> None:
        self.process.wait(60)
        if not self.output.exists():
            print("  py-spy wrote nothing (is it allowed to attach? try as root)")
            return
        profile_summary(self.output)


# Shares of the samples in which the server held the GIL (its Python work: one worker runs
# one thread at a time): (what, patterns that must all match frames of the stack). A frame is
# py-spy's "function (file:line)", files shortened to the package.
READER = r"^reader \((scheduler_daemon/api/)?access\.py"
PROFILE_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the event loop's thread (HTTP, middleware, routing, JSON)", (r"^Server\.run \(uvicorn",)),
    ("the threadpool's threads (token, endpoint, validation)", (r"^WorkerThread\.run \(",)),
    ("the token check (reader: checkout, SELECT, reset)", (READER,)),
    ("  of which SQLAlchemy execute", (READER, r"^Connection\.execute \(")),
    ("the endpoint functions (in the threadpool)", (r"^_run_sync_endpoint \(",)),
    ("  of which SQLAlchemy execute", (r"^_run_sync_endpoint \(", r"^Connection\.execute \(")),
    ("  of which rows to objects (schedule_object...)", (r"^(schedule|run)_object \(",)),
    ("  of which next fire times (timing)", (r"\((scheduler_daemon/)?timing/",)),
    ("dependencies as the loop runs them (solve_dependencies)", (r"^solve_dependencies \(",)),
    ("pool checkout and return (reset: ROLLBACK)", (r"\(sqlalchemy/pool/",)),
    ("  of which opening connections (overflow churn)", (r"^Pool\._create_connection \(",)),
    ("response validation + JSON (serialize_response)", (r"^serialize_response \(",)),
    ("the request log line (structlog)", (r"\(structlog/",)),
    (
        "HTTP parsing and writing (uvicorn's protocol, h11)",
        (r"^(H11Protocol|HttpToolsProtocol)\.|^RequestResponseCycle\.send|\(h11/",),
    ),
    ("handing work to the threadpool (from the loop)", (r"^AsyncIOBackend\.run_sync_in_worker",)),
)

# Self time (the innermost frame) by where its code lives: (what, a pattern of the file).
PROFILE_LEAVES: tuple[tuple[str, str], ...] = (
    ("psycopg (the driver)", r"^psycopg"),
    ("SQLAlchemy", r"^sqlalchemy/"),
    ("pydantic", r"^pydantic"),
    ("FastAPI + Starlette", r"^(fastapi|starlette)/"),
    (
        "thread hand-offs (anyio, queue, threading)",
        r"^(anyio/|queue\.py|threading\.py|concurrent/)",
    ),
    ("asyncio event loop", r"^(asyncio/|selectors\.py)"),
    ("uvicorn + h11", r"^(uvicorn|h11)/"),
    ("logging (structlog, orjson)", r"^(structlog|orjson)"),
    ("scheduler_daemon", r"^(scheduler_daemon/|[a-z_]+\.py$|routes/)"),
)


def profile_summary(path: Path) -> None:
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        folded, _, samples = line.rpartition(" ")
        if folded and samples.isdigit():
            stacks.append((folded.split(";"), int(samples)))
    total = sum(count for _, count in stacks)
    if not total:
        print("  py-spy: no samples")
        return
    print(f"  py-spy: {total:,} samples of the server holding the GIL (stacks in {path})")
    for label, patterns in PROFILE_PARTS:
        regexes = [re.compile(pattern) for pattern in patterns]
        hit = sum(
            count
            for frames, count in stacks
            if all(any(regex.search(frame) for frame in frames) for regex in regexes)
        )
        print(f"    {label:<58} {hit * 100 / total:5.1f}%")
    groups: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        leaf = frames[-1]
        leaves[leaf] += count
        where = leaf[leaf.rfind("(") + 1 :].rsplit(":", 1)[0]
        group = next((g for g, p in PROFILE_LEAVES if re.search(p, where)), "other (stdlib...)")
        groups[group] += count
    print("  self time by where the code lives:")
    for group, count in groups.most_common():
        print(f"    {group:<58} {count * 100 / total:5.1f}%")
    print("  hottest frames (self time):")
    for frame, count in leaves.most_common(12):
        print(f"    {count * 100 / total:5.1f}%  {frame[:100]}")


def bench_throughput(
    report: Report,
    target: Target,
    server: Server,
    token: str,
    *,
    schedules: int,
    deep: str,
    clients: int,
    duration: float,
    profile: Path | None,
) -> None:
    section = "throughput"
    shown_mix = ", ".join(f"{kind} {weight}" for kind, weight in MIX)
    print(
        f"\n(b) throughput: one uvicorn worker, {clients} client threads in a separate process, "
        f"{duration:.0f} s after {WARMUP:.0f} s warm-up; mix (weights): {shown_mix}",
        flush=True,
    )
    config: dict[str, Any] = {
        "base_url": server.base_url,
        "mix": MIX,
        "paths": PATHS,
        "schedules": schedules,
        "deep": deep,
        "clients": clients,
        "warmup": WARMUP,
        "duration": duration,
    }
    env = {**os.environ, TOKEN_VARIABLE: token}
    statements = target.pg is not None and target.pg.statements
    with psycopg.connect(target.url, autocommit=True) as conn:
        generator = subprocess.Popen(
            [sys.executable, __file__, "--load-generator", json.dumps(config)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert generator.stdout is not None
        me = psutil.Process()
        profiler: Profiler | None = None

        def snapshot() -> tuple[dict[int, float], dict[int, float], float, float, float]:
            return (
                cpu_seconds([server.process.pid, generator.pid]),
                cpu_seconds(target.backend_pids(conn)),
                machine_busy_seconds(),
                sum(me.cpu_times()[:2]),
                time.monotonic(),
            )

        sessions = "SELECT sessions FROM pg_stat_database WHERE datname = %s"
        expect(generator.stdout, "measuring")
        before = snapshot()
        sessions_before = one(conn, sessions, (target.name,))
        if statements:  # what the measured seconds ran, without the warm-up's
            conn.execute("SELECT pg_stat_statements_reset()")
        if profile is not None:
            profiler = Profiler(profile, server.process.pid, duration)
        expect(generator.stdout, "done")
        after = snapshot()
        opened = one(conn, sessions, (target.name,)) - sessions_before
        result = LoadResult(**json.loads(generator.stdout.readline() or "{}"))
        generator.wait(60)
    check_alive([server])

    rate = result.requests / result.seconds
    report.figure(section, "read requests/s, one worker", rate, "/s", digits=0,
                  target=(">=", READS_PER_SECOND))  # fmt: skip
    report.count(section, "errors (non-200 or transport)", sum(result.errors.values()), must_be=0)
    for error, count in sorted(result.errors.items()):
        report.problem(section, f"{count} x {error}")
    for kind, _ in MIX:
        samples = result.latency_ms.get(kind, [])
        if samples:
            report.note(
                section,
                f"{kind:<14} {len(samples) / result.seconds:6.0f}/s  under load p50 "
                f"{percentile(samples, 0.5):6.1f} ms  p99 {percentile(samples, 0.99):7.1f} ms",
            )
    cpu_figures(
        report,
        section,
        before=before,
        after=after,
        server=server,
        generator=generator,
        requests=result.requests,
    )
    report.figure(
        section,
        "connections opened per request",
        opened / max(1, result.requests),
        digits=2,
        key=True,
    )
    if statements and result.requests:
        with psycopg.connect(target.url, autocommit=True) as conn:
            calls = one(
                conn,
                "SELECT sum(calls) FROM pg_stat_statements s JOIN pg_database d"
                " ON d.oid = s.dbid WHERE d.datname = %s",
                (target.name,),
            )
            print(f"  statements per request: {float(calls or 0) / result.requests:.2f}")
            for line in top_statements(conn, target.name, result.requests, 14, by_time=True):
                print(f"    {line.replace('/slot', '/req')}")
    if profiler is not None:
        profiler.summary()


def expect(stream: IO[str], word: str) -> None:
    line = stream.readline().strip()
    if line != word:
        raise RuntimeError(f"the load generator said {line!r}, not {word!r}")


def cpu_figures(
    report: Report,
    section: str,
    *,
    before: tuple[dict[int, float], dict[int, float], float, float, float],
    after: tuple[dict[int, float], dict[int, float], float, float, float],
    server: Server,
    generator: subprocess.Popen[str],
    requests: int,
) -> None:
    procs_0, pg_0, busy_0, mine_0, wall_0 = before
    procs_1, pg_1, busy_1, mine_1, wall_1 = after
    wall = wall_1 - wall_0
    server_cpu = procs_1.get(server.process.pid, 0.0) - procs_0.get(server.process.pid, 0.0)
    load_cpu = procs_1.get(generator.pid, 0.0) - procs_0.get(generator.pid, 0.0)
    pg_cpu = cpu_spent(pg_0, pg_1)
    others = max(0.0, busy_1 - busy_0 - server_cpu - load_cpu - pg_cpu - (mine_1 - mine_0))
    per = max(1, requests)
    report.figure(section, "server CPU, share of one core", server_cpu * 100 / wall, " %",
                  digits=0, key=True)  # fmt: skip
    report.figure(section, "server CPU ms per request", server_cpu * 1000 / per, " ms", key=True)
    report.figure(
        section,
        "ceiling with a core to itself (1000/ms)",
        per / server_cpu if server_cpu else None,
        "/s",
        digits=0,
        key=True,
    )
    report.figure(section, "PostgreSQL CPU ms per request", pg_cpu * 1000 / per, " ms", key=True)
    report.figure(section, "load generator CPU ms per request", load_cpu * 1000 / per, " ms")
    report.note(
        section,
        f"CPU meanwhile of {wall * (os.cpu_count() or 1):.1f} s available: server "
        f"{server_cpu:.1f} s, PostgreSQL {pg_cpu:.1f} s, load generator {load_cpu:.1f} s, "
        f"other processes {others:.1f} s (load average {os.getloadavg()[0]:.1f})",
    )


# --- --explain -------------------------------------------------------------------------------


@contextlib.contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) the engine sends meanwhile."""
    statements: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        statements.append((args[2], args[3]))  # conn, cursor, statement, parameters, ...

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def explain(url: str, token: str, deep: str) -> None:
    """EXPLAIN ANALYZE of what a list page, a filtered page, a deep page and /stats run, and
    the parts of a list request timed in process."""
    from scheduler_daemon.api import cursors

    print("\n--explain: the statements, as the product runs them")
    engine = make_engine(url)
    try:
        position = cursors.decode(deep, list)
        assert position is not None
        sort, key, row_id = position
        assert sort == "name"
        calls: list[tuple[str, Callable[[Connection], object]]] = [
            (
                "list page (sort=name)",
                lambda c: management.list_schedules(c, order="name", limit=51),
            ),
            (
                "filtered page (enabled, sort=next_run_at)",
                lambda c: management.list_schedules(c, enabled=True, order="next_run_at", limit=51),
            ),
            (
                "deep page (sort=name, after half the table)",
                lambda c: management.list_schedules(
                    c, order="name", after=(str(key), uuid.UUID(row_id)), limit=51
                ),
            ),
            ("/stats (overview)", management.overview),
        ]  # fmt: skip
        with engine.connect() as conn:
            for label, call in calls:
                with captured(engine) as statements:
                    call(conn)
                for statement, parameters in statements:
                    plan = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                    ).scalars()
                    print(f"\n  {label}:")
                    for line in plan:
                        print(f"    {line}")
            conn.rollback()
        in_process(engine, token)
    finally:
        engine.dispose()


def in_process(engine: Engine, token: str, count: int = 300) -> None:
    """The parts of a list page's work, each timed alone in this process (no HTTP, no
    threads): the token check, the listing (SQL + rows to dicts), the response validation and
    JSON as FastAPI's serialize_response does them."""
    from pydantic import TypeAdapter

    db = Database(engine)
    access = Access(token, write=False)
    adapter: TypeAdapter[Page[Schedule]] = TypeAdapter(Page[Schedule])

    def listing() -> dict[str, Any]:
        with db.reading(access) as conn:
            rows = management.list_schedules(conn, order="name", limit=51)
        return {"items": rows[:50], "next": "x"}

    page = listing()
    parts: list[tuple[str, Callable[[], object]]] = [
        ("list page with its token check (checkout, 2 SELECTs, rows, reset)", listing),
        ("list page: response validation (50 Schedule models)",
         lambda: adapter.validate_python(page)),
        ("list page: validation + JSON (serialize_json)",
         lambda: adapter.dump_json(adapter.validate_python(page))),
    ]  # fmt: skip
    print(f"\n  in process, median of {count}:")
    for label, call in parts:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
        print(f"    {label:<70} {percentile(samples, 0.5):6.2f} ms")


# --- main ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--schedules", type=int, default=SCHEDULES, help="default: 100,000")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of the throughput run (default 20)"
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="sequential requests per kind in (a)"
    )
    parser.add_argument(
        "--clients", type=int, default=16, help="load generator threads in (b) (default 16)"
    )
    parser.add_argument(
        "--database-url",
        metavar="ADMIN_URL",
        help="a PostgreSQL server to create the bench's database on (default: an embedded one)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE and in-process timings"
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="pg_stat_statements per request of the throughput run (embedded server only)",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy the server during the throughput run"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable of the server, repeatable",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server log)")
    parser.add_argument("--load-generator", metavar="CONFIG", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.load_generator:
        load_generator(json.loads(args.load_generator))
        return 0
    if args.statements and args.database_url:
        parser.error("--statements needs the embedded server (it preloads pg_stat_statements)")
    if args.profile is not None:
        if not shutil.which("py-spy", path=Path(sys.executable).parent) and not shutil.which(
            "py-spy"
        ):
            parser.error("--profile needs py-spy, which is not installed: pip install py-spy")
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()
    extra_env = dict(item.split("=", 1) for item in args.server_env)

    report = Report()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench_api_"))
    root.chmod(0o755)  # the embedded server may run as its own system user
    print(
        f"work dir {root}; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; "
        f"{args.schedules:,} schedules",
        flush=True,
    )
    report.figure("machine", "CPU cores", float(os.cpu_count() or 0), digits=0, key=True)
    try:
        with database(root, args.database_url, statements=args.statements) as target:
            print("\nsetup", flush=True)
            with psycopg.connect(target.url, autocommit=True) as conn:
                seed(conn, args.schedules)
            token = read_token(target.url)
            server = Server(target.url, root, extra_env)
            try:
                server.wait_ready(token)
                print(f"  scheduler-daemon serve (pid {server.process.pid}) on {server.base_url}")
                deep = bench_pages(report, server.base_url, token, args.schedules, args.requests)
                bench_throughput(
                    report,
                    target,
                    server,
                    token,
                    schedules=args.schedules,
                    deep=deep,
                    clients=args.clients,
                    duration=args.duration,
                    profile=args.profile,
                )
            finally:
                code = server.stop()
                # uvicorn shuts down gracefully on SIGTERM, then raises it again on itself.
                if code not in (0, None, -signal.SIGTERM):
                    report.problem("server", f"exited {code} on SIGTERM")
                report_logs(report, "server", [server])
            if args.explain:
                explain(target.url, token, deep)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report.table()
    kept = f"; work dir kept: {root}" if args.keep else ""
    print(f"\ntotal {time.monotonic() - started:.0f} s{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
