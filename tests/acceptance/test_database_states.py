"""Every command in every database state: it works, or it says what is wrong in one line and
exits 2 (or the code its help documents); never a traceback.

The walk takes every leaf command of the click group, so a command added later is walked too:
``test_every_command_is_walked`` fails until COMMANDS gives its arguments (or EXCLUDED says
why it opens no database). The states an operator meets:

- unreachable: a database URL nobody answers on;
- embedded-unusable: no URL, and a data directory the embedded server cannot live in;
- embedded-fresh: no URL, and the embedded database not created yet. Every command works and
  leaves the schema at the head: the embedded default is the daemon's own to migrate;
- own-empty, own-behind: a database of your own with no schema, or an older one. One line that
  says so and names ``scheduler-daemon migrate``, the only command that changes it;
- own-ahead, embedded-ahead: a schema newer than this code knows (a newer scheduler-daemon
  migrated it). One line saying so from every command, ``migrate`` included: it cannot
  "upgrade" a schema it does not know;
- own-read-only: a database of your own at the head that takes no writes (a standby after a
  failover, a read-only role). A command works as on a fresh embedded database, or its first
  write says so in one line.

The walk calls ``scheduler_daemon.cli.main`` in this process (a subprocess per case would take
minutes); an exception main() lets through fails the test with its traceback
(``test_the_walk_shows_an_uncaught_exception``). The embedded cases share one server, kept
running by this process, each on a database dropped just before: the command creates it and
migrates it, as on first use. A few real processes check what only a process shows.
"""

from __future__ import annotations

import enum
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click
import psycopg
import pytest
from alembic.script import ScriptDirectory
from psycopg import sql
from psycopg.errors import AdminShutdown, InsufficientPrivilege, UndefinedTable
from sqlalchemy.exc import OperationalError, ProgrammingError

from scheduler_daemon.cli import cli, main
from scheduler_daemon.db.databases import with_database
from scheduler_daemon.db.engine import libpq_url, make_engine
from scheduler_daemon.db.migrate import alembic_config, downgrade_to, head_revision, upgrade_to_head
from scheduler_daemon.embedded import EMBEDDED_DATABASE, embedded_database
from tests.acceptance.daemons import free_port
from tests.postgres import clone_database, create_database, drop_database

ERROR = "scheduler-daemon: error: "
# What ``migrate`` and ``run`` print on stderr when they open the embedded database.
ANNOUNCE = "embedded PostgreSQL: data in "
PASSWORD = "hunter2"
NO_SUCH = str(uuid.uuid4())  # nothing has this id, or this name
AHEAD = "9999"  # a revision no version of this code knows
NOT_A_DIRECTORY = "not-a-directory"  # the embedded-unusable state's --data-dir: a file
SYNC_FILE = "<sync file>"  # stands for the path of a valid file that lists no schedules
HEAD = head_revision()
_HEAD_SCRIPT = ScriptDirectory.from_config(alembic_config()).get_revision(HEAD)
assert _HEAD_SCRIPT is not None
assert isinstance(_HEAD_SCRIPT.down_revision, str), "a head with one revision before it"
OLDER: str = _HEAD_SCRIPT.down_revision  # the own-behind state's revision


class State(enum.StrEnum):
    UNREACHABLE = "unreachable"
    EMBEDDED_UNUSABLE = "embedded-unusable"
    EMBEDDED_FRESH = "embedded-fresh"
    OWN_EMPTY = "own-empty"
    OWN_BEHIND = "own-behind"
    OWN_AHEAD = "own-ahead"
    EMBEDDED_AHEAD = "embedded-ahead"
    OWN_READ_ONLY = "own-read-only"


OWN_STATES = (State.OWN_EMPTY, State.OWN_BEHIND, State.OWN_AHEAD, State.OWN_READ_ONLY)
OWN_REVISIONS: Mapping[State, str | None] = {
    State.OWN_EMPTY: None,
    State.OWN_BEHIND: OLDER,
    State.OWN_AHEAD: AHEAD,
    State.OWN_READ_ONLY: HEAD,
}


@dataclass(frozen=True)
class Expect:
    """An outcome: the exit code; with ``error``, exactly one line on stderr, the error,
    showing each fragment; else nothing on stderr. ``stdout``: fragments stdout shows."""

    code: int
    error: tuple[str, ...] = ()
    stdout: tuple[str, ...] = ()


OK = Expect(0)
# The error of a command that works is about its input, never about the database.
NOT_ABOUT_THE_INPUT = ("schema", "migrate", "cannot connect", "newer than", "embedded")


def missing(option: str = "") -> Expect:
    """The command works; its error is about its input: the id given (to ``option``, or as
    its argument) is nobody's."""
    return Expect(2, error=(f"{option}: ", NO_SUCH) if option else (NO_SUCH,))


def health_problem(*fragments: str) -> Expect:
    """``health`` reports what is wrong on stdout and exits 1 (its help: 0 healthy, 1 not)."""
    return Expect(1, stdout=fragments)


@dataclass(frozen=True)
class Case:
    """A command's arguments for the walk, and where it departs from the states' rules.

    ``works``: its outcome on a fresh embedded database, the state where every command works.
    ``documented``: states where it does what its help says instead of the state's rule
    (several outcomes: any of them). ``skip``: states not walked, and why. ``migrates``: the
    command allowed to change a database of your own. ``embedded_to_head``: it leaves a fresh
    embedded database at the head.
    """

    args: tuple[str, ...] = ()
    works: Expect = OK
    documented: Mapping[State, Expect | tuple[Expect, ...]] = field(default_factory=dict)
    skip: Mapping[State, str] = field(default_factory=dict)
    migrates: bool = False
    embedded_to_head: bool = True


# Commands that open no database: nothing to walk.
EXCLUDED: Mapping[tuple[str, ...], str] = {
    ("version",): "prints the package's version; opens no database",
    ("preview",): "computes fire times from its arguments; opens no database",
}

_DEMO = (
    "demo runs on the embedded database in --data-dir whatever the URL (it says so): it never "
    "opens the database of this state"
)
_SHELL_WORKS = Expect(0, stdout=("1",))

COMMANDS: Mapping[tuple[str, ...], tuple[Case, ...]] = {
    ("accounts", "create"): (Case(("--name", "walk", "--account-id", "ENTITYWALK0001")),),
    ("accounts", "delete"): (Case((NO_SUCH,), works=missing()),),
    ("accounts", "list"): (Case(),),
    ("accounts", "show"): (Case((NO_SUCH,), works=missing()),),
    ("accounts", "update"): (Case((NO_SUCH, "--name", "walk"), works=missing()),),
    ("db", "shell"): (
        Case(
            ("--", "-X", "-A", "-t", "-c", "SELECT 1"),
            works=_SHELL_WORKS,
            # psql on whatever the database holds: its schema is not the shell's business.
            documented=dict.fromkeys((*OWN_STATES, State.EMBEDDED_AHEAD), _SHELL_WORKS),
        ),
    ),
    ("db", "status"): (
        Case(
            documented={
                # It shows the schema's revision: a database behind the code is its answer.
                State.OWN_EMPTY: Expect(0, stdout=("current:  none", "scheduler-daemon migrate")),
                State.OWN_BEHIND: Expect(
                    0, stdout=(f"current:  {OLDER}", "scheduler-daemon migrate")
                ),
            }
        ),
    ),
    ("demo",): (
        Case(
            ("--seconds", "1"),
            works=Expect(0, stdout=("demo stopped",)),
            skip=dict.fromkeys((State.UNREACHABLE, *OWN_STATES, State.EMBEDDED_AHEAD), _DEMO),
        ),
    ),
    ("health",): (
        Case(
            # No daemon runs here: a health check that works says so.
            works=health_problem("CRITICAL: no live worker"),
            documented={
                # A database it cannot reach, or an old schema, is a problem it reports.
                State.UNREACHABLE: health_problem(
                    "CRITICAL: cannot connect to the database at postgresql://u:***@127.0.0.1:"
                ),
                State.EMBEDDED_UNUSABLE: health_problem("CRITICAL: ", NOT_A_DIRECTORY),
                State.OWN_EMPTY: health_problem(
                    "CRITICAL: database schema at none", "scheduler-daemon migrate"
                ),
                State.OWN_BEHIND: health_problem(
                    f"CRITICAL: database schema at {OLDER}", "scheduler-daemon migrate"
                ),
                State.OWN_AHEAD: health_problem("CRITICAL: the database is newer than", "9999"),
                # The embedded database is migrated first, which refuses one from the future.
                State.EMBEDDED_AHEAD: Expect(2, error=("9999", "newer than this scheduler-daemon")),
            },
        ),
    ),
    ("instances", "create"): (
        Case(
            ("--name", "walk", "--instance-id", "amcwalk0001", "--account", NO_SUCH),
            works=missing("--account"),
        ),
    ),
    ("instances", "delete"): (Case((NO_SUCH,), works=missing()),),
    ("instances", "list"): (Case(),),
    ("instances", "show"): (Case((NO_SUCH,), works=missing()),),
    ("instances", "update"): (Case((NO_SUCH, "--name", "walk"), works=missing()),),
    ("migrate",): (
        Case(
            migrates=True,
            documented={
                State.OWN_EMPTY: Expect(0, stdout=(f"migrated empty database -> {HEAD}",)),
                State.OWN_BEHIND: Expect(0, stdout=(f"migrated {OLDER} -> {HEAD}",)),
                State.OWN_READ_ONLY: Expect(0, stdout=(f"database already at head ({HEAD})",)),
            },
        ),
        Case(
            ("--check",),
            # It changes nothing (its help), the embedded database included: a fresh one
            # has no schema yet, and it says so.
            works=Expect(1, stdout=("database is at none", "behind")),
            embedded_to_head=False,
            documented={
                State.OWN_EMPTY: Expect(1, stdout=(f"database is at none, head is {HEAD}",)),
                State.OWN_BEHIND: Expect(1, stdout=(f"database is at {OLDER}, head is {HEAD}",)),
                State.OWN_READ_ONLY: Expect(0, stdout=(f"database is at head ({HEAD})",)),
            },
        ),
    ),
    # One tick, then exit: the noop executor, and nothing is due.
    ("run",): (Case(("--once", "--shutdown-grace", "5")),),
    ("runs", "list"): (Case(),),
    # Everything up to listening: the address (TEST-NET-1) is no host's, so where the database
    # is usable it ends there, in one line, instead of serving until stopped.
    ("serve",): (
        Case(("--host", "192.0.2.1", "--port", "8080"), works=Expect(2, error=("cannot listen",))),
    ),
    ("runs", "prune"): (Case(("--older-than", "30")),),
    ("runs", "resolve"): (Case((NO_SUCH, "--no-execution"), works=missing()),),
    ("runs", "show"): (Case((NO_SUCH,), works=missing()),),
    ("schedules", "create"): (
        Case(
            ("--workflow", NO_SUCH, "--name", "walk", "--cron", "0 9 * * *"),
            works=missing("--workflow"),
        ),
    ),
    ("schedules", "delete"): (Case((NO_SUCH,), works=missing()),),
    ("schedules", "disable"): (Case((NO_SUCH,), works=missing()),),
    ("schedules", "enable"): (Case((NO_SUCH,), works=missing()),),
    ("schedules", "list"): (Case(),),
    ("schedules", "pause"): (Case((NO_SUCH,), works=missing()),),
    ("schedules", "resume"): (Case((NO_SUCH,), works=missing()),),
    ("schedules", "show"): (Case((NO_SUCH,), works=missing()),),
    ("schedules", "trigger"): (Case((NO_SUCH,), works=missing()),),
    ("schedules", "update"): (Case((NO_SUCH, "--name", "walk"), works=missing()),),
    ("schedules", "validate"): (Case(works=Expect(0, stdout=("all schedules valid",))),),
    ("sync",): (
        Case((SYNC_FILE,), works=Expect(0, stdout=("= 0 unchanged",))),
        Case((SYNC_FILE, "--dry-run")),
    ),
    ("tokens", "create"): (Case(("--name", "walk", "--role", "read")),),
    ("tokens", "list"): (Case(),),
    ("tokens", "revoke"): (Case((NO_SUCH,), works=missing()),),
    ("workers",): (Case(),),
    ("workflows", "create"): (
        Case(
            ("--name", "walk", "--instance", NO_SUCH, "--amc-workflow-id", "wf-walk"),
            works=missing("--instance"),
        ),
    ),
    ("workflows", "delete"): (Case((NO_SUCH,), works=missing()),),
    ("workflows", "list"): (Case(),),
    ("workflows", "show"): (Case((NO_SUCH,), works=missing()),),
    ("workflows", "update"): (Case((NO_SUCH, "--name", "walk"), works=missing()),),
}

# Each state's rule, for the commands COMMANDS documents no exception for.
NEWER = Expect(2, error=(AHEAD, "newer than this scheduler-daemon"))
STATE_RULES: Mapping[State, Expect] = {
    State.UNREACHABLE: Expect(
        2, error=("cannot connect to the database at postgresql://u:***@127.0.0.1:",)
    ),
    State.EMBEDDED_UNUSABLE: Expect(2, error=(NOT_A_DIRECTORY,)),
    State.OWN_EMPTY: Expect(2, error=("schema is at revision none", "scheduler-daemon migrate")),
    State.OWN_BEHIND: Expect(
        2, error=(f"schema is at revision {OLDER}", "scheduler-daemon migrate")
    ),
    State.OWN_AHEAD: NEWER,
    State.EMBEDDED_AHEAD: NEWER,
}
READ_ONLY = Expect(2, error=("the database did not run the command", "read-only transaction"))

# What fails today, why, and where the fix belongs (none, today).
XFAIL_STATES: Mapping[State, str] = {}
XFAIL: Mapping[tuple[State, str], str] = {}


def leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name)


def case_id(path: tuple[str, ...], case: Case) -> str:
    """The command's path, and the flags of its case when it has several."""
    if len(COMMANDS[path]) == 1:
        return " ".join(path)
    return " ".join((*path, *(arg for arg in case.args if arg.startswith("--"))))


def walk() -> list[object]:
    params: list[object] = []
    for state in State:
        for path in leaf_commands(cli):
            for case in COMMANDS.get(path, ()):
                name = case_id(path, case)
                marks = []
                if state in case.skip:
                    marks.append(pytest.mark.skip(reason=case.skip[state]))
                reason = XFAIL.get((state, name)) or XFAIL_STATES.get(state)
                if reason:
                    marks.append(pytest.mark.xfail(strict=True, reason=reason))
                params.append(pytest.param(state, path, case, id=f"{state}: {name}", marks=marks))
    return params


def expected(state: State, case: Case) -> tuple[Expect, ...]:
    if state in case.documented:
        outcome = case.documented[state]
        return outcome if isinstance(outcome, tuple) else (outcome,)
    if state is State.EMBEDDED_FRESH:
        return (case.works,)
    if state is State.OWN_READ_ONLY:
        return (case.works, READ_ONLY)
    return (STATE_RULES[state],)


def test_every_command_is_walked() -> None:
    leaves = set(leaf_commands(cli))
    unknown = leaves - COMMANDS.keys() - EXCLUDED.keys()
    assert not unknown, (
        f"commands the walk does not know: give their arguments in COMMANDS: {unknown}"
    )
    assert not (COMMANDS.keys() | EXCLUDED.keys()) - leaves, "no such command"
    assert not COMMANDS.keys() & EXCLUDED.keys()
    assert all(COMMANDS.values())


# The CLI, in this process.


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def invoke(argv: list[str], capfd: pytest.CaptureFixture[str]) -> Result:
    """``main(argv)`` in this process, its output captured at the file descriptors (psql's
    too). An exception main() lets through is not caught: the test fails with its traceback."""
    capfd.readouterr()
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        pytest.fail(f"main({argv}) returned instead of exiting")
    out, err = capfd.readouterr()
    return Result(code, out, err)


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` and ``demo`` configure structlog for the whole process: the loggers they use
    would keep this test's captured stream for the rest of the session (structlog caches them
    on first use). The subprocess checks keep the real set-up."""
    monkeypatch.setattr("scheduler_daemon.cli.run.configure_logging", lambda *_, **__: None)
    monkeypatch.setattr("scheduler_daemon.cli.demo.configure_logging", lambda *_, **__: None)


def check(result: Result, expect: Expect, *, about_the_input: bool = False) -> None:
    shown = f"exit {result.code}\n--- stdout\n{result.out}--- stderr\n{result.err}"
    assert "Traceback" not in result.out + result.err, shown
    assert PASSWORD not in result.out + result.err, shown
    assert result.code == expect.code, shown
    lines = [line for line in result.err.splitlines() if not line.startswith(ANNOUNCE)]
    if expect.error:
        assert len(lines) == 1, shown
        assert lines[0].startswith(ERROR), shown
        for fragment in expect.error:
            assert fragment in lines[0], shown
        if about_the_input:
            assert not [word for word in NOT_ABOUT_THE_INPUT if word in lines[0]], shown
    else:
        assert not [line for line in lines if line.strip()], shown
    for fragment in expect.stdout:
        assert fragment in result.out, shown


def check_any(result: Result, outcomes: tuple[Expect, ...], *, about_the_input: bool) -> None:
    """``check`` for one of ``outcomes``; the first one's failure when none holds."""
    failures = []
    for outcome in outcomes:
        try:
            check(result, outcome, about_the_input=about_the_input)
        except AssertionError as exc:
            failures.append(exc)
        else:
            return
    raise failures[0]


# The databases of the states.


def revision(url: str) -> str | None:
    """The database's alembic revision; None when it has none."""
    with psycopg.connect(libpq_url(url)) as conn:
        if conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,):
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])


def exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(libpq_url(admin_url)) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return found.fetchone() is not None


def set_revision(url: str, version: str) -> None:
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (version,))


def migrate(url: str, *, down_to: str | None = None) -> None:
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        if down_to is not None:
            downgrade_to(engine, down_to)
    finally:
        engine.dispose()


@dataclass
class OwnDatabase:
    """A database of your own in one of the own-* states, made again when a command (migrate)
    changed it."""

    admin_url: str
    name: str
    template: str
    state: State

    @property
    def url(self) -> str:
        return with_database(self.admin_url, self.name)

    def arrange(self) -> None:
        wanted = OWN_REVISIONS[self.state]
        if exists(self.admin_url, self.name) and revision(self.url) == wanted:
            return
        drop_database(self.admin_url, self.name, missing_ok=True)
        if wanted is None:
            create_database(self.admin_url, self.name)
            return
        clone_database(self.admin_url, self.template, self.name)
        if self.state is State.OWN_BEHIND:
            migrate(self.url, down_to=OLDER)
        elif self.state is State.OWN_AHEAD:
            set_revision(self.url, AHEAD)
        else:
            with psycopg.connect(libpq_url(self.admin_url), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                        sql.Identifier(self.name)
                    )
                )


@pytest.fixture(scope="module")
def own_databases(pg_server: str, template_database: str) -> Iterator[dict[State, OwnDatabase]]:
    suffix = uuid.uuid4().hex[:8]
    databases = {
        state: OwnDatabase(
            pg_server, f"sd_states_{state.name.lower()}_{suffix}", template_database, state
        )
        for state in OWN_STATES
    }
    try:
        yield databases
    finally:
        for database in databases.values():
            drop_database(pg_server, database.name, missing_ok=True)


@dataclass
class Embedded:
    """The embedded server of one data directory, kept running by this process for the walk:
    the commands' own use of it then costs no start and stop."""

    data_dir: Path
    url: str

    @property
    def admin_url(self) -> str:
        return with_database(self.url, "postgres")

    def arrange(self, state: State) -> None:
        """embedded-fresh: no database yet (each command's first use creates it);
        embedded-ahead: a database at the head, marked with a revision from the future."""
        admin, name = self.admin_url, EMBEDDED_DATABASE
        if state is State.EMBEDDED_AHEAD:
            if exists(admin, name) and revision(self.url) == AHEAD:
                return
            drop_database(admin, name, missing_ok=True)
            create_database(admin, name)
            migrate(self.url)
            set_revision(self.url, AHEAD)
        else:
            drop_database(admin, name, missing_ok=True)

    def revision(self) -> str | None:
        return revision(self.url) if exists(self.admin_url, EMBEDDED_DATABASE) else None


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """Not under pytest's basetemp: a pytest session started meanwhile (another checkout's)
    deletes old basetemps, and would pull a data directory from under its server."""
    root = Path(tempfile.mkdtemp(prefix="scheduler-daemon-states-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def embedded(scratch: Path) -> Iterator[Embedded]:
    data_dir = scratch / "embedded"
    with embedded_database(data_dir) as url:
        server = Embedded(data_dir, url)
        # A throwaway server: durability would cost each fresh database a tenth of a second.
        with psycopg.connect(libpq_url(server.admin_url), autocommit=True) as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
            conn.execute("SELECT pg_reload_conf()")
        yield server


@pytest.fixture(scope="module")
def sync_file(scratch: Path) -> Path:
    path = scratch / "schedules.toml"
    path.write_text("schedules = []\n")
    return path


@pytest.fixture(scope="module")
def unreachable_url() -> str:
    return f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/x"


# The walk.


@pytest.mark.parametrize(("state", "path", "case"), walk())
def test_command_in_database_state(
    state: State,
    path: tuple[str, ...],
    case: Case,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    sync_file: Path,
) -> None:
    args = [str(sync_file) if arg == SYNC_FILE else arg for arg in case.args]
    # A data directory of the test's own in every state: a command that opened the embedded
    # server whatever the URL said must not start one in the user's.
    data_dir = tmp_path / "data"
    database: OwnDatabase | None = None
    embedded: Embedded | None = None
    url_option: list[str] = []
    if state is State.UNREACHABLE:
        url_option = ["--database-url", request.getfixturevalue("unreachable_url")]
    elif state is State.EMBEDDED_UNUSABLE:
        data_dir = tmp_path / NOT_A_DIRECTORY
        data_dir.write_text("")
    elif state in OWN_STATES:
        database = request.getfixturevalue("own_databases")[state]
        database.arrange()
        url_option = ["--database-url", database.url]
    else:
        embedded = request.getfixturevalue("embedded")
        embedded.arrange(state)
        data_dir = embedded.data_dir

    result = invoke(["--data-dir", str(data_dir), *url_option, *path, *args], capfd)
    works = state in (State.EMBEDDED_FRESH, State.OWN_READ_ONLY)
    check_any(result, expected(state, case), about_the_input=works)

    if database is not None:
        after = revision(database.url)
        if case.migrates and state in (State.OWN_EMPTY, State.OWN_BEHIND):
            assert after == HEAD
        else:  # Only migrate changes a database of your own; nothing "upgrades" one ahead.
            assert after == OWN_REVISIONS[state]
    if embedded is not None:
        after = embedded.revision()
        if state is State.EMBEDDED_AHEAD:
            assert after == AHEAD
        else:  # The embedded database migrates itself on first use.
            assert after == (HEAD if case.embedded_to_head else None)


def _raises(exc: Exception) -> Callable[[], None]:
    def callback() -> None:
        raise exc

    return callback


@pytest.mark.parametrize(
    "bug",
    [
        RuntimeError("a bug"),
        # A statement's mistake is a bug too, even from the database.
        ProgrammingError("SELECT * FROM nowhere", {}, UndefinedTable("nowhere")),
    ],
    ids=["runtime error", "undefined table"],
)
def test_the_walk_shows_an_uncaught_exception(
    bug: Exception, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """An exception main() does not translate reaches the test, traceback and all."""
    monkeypatch.setattr(cli.commands["version"], "callback", _raises(bug))
    with pytest.raises(type(bug)):
        invoke(["version"], capfd)


@pytest.mark.parametrize(
    ("condition", "line"),
    [
        (
            OperationalError(
                "SELECT 1",
                {},
                psycopg.OperationalError(
                    "server closed the connection unexpectedly\n\tThis probably means..."
                ),
            ),
            "server closed the connection unexpectedly",
        ),
        (AdminShutdown("terminating connection due to administrator command"), "administrator"),
        (
            ProgrammingError("DELETE FROM runs", {}, InsufficientPrivilege("permission denied")),
            "permission denied",
        ),
    ],
    ids=["connection lost", "server shutting down", "no privilege"],
)
def test_the_database_condition_mid_command_is_one_line(
    condition: Exception,
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """What the walk's states cannot stage in this process: the connection lost, the server
    shutting down, a privilege missing, whichever statement of a command meets it."""
    monkeypatch.setattr(cli.commands["version"], "callback", _raises(condition))
    result = invoke(["version"], capfd)
    check(result, Expect(2, error=("the database did not run the command: ", line)))


# What only a real process shows.


def run_cli(*args: str, timeout: float = 120) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    done = subprocess.run(
        [sys.executable, "-m", "scheduler_daemon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def test_process_on_a_brand_new_data_directory(scratch: Path) -> None:
    """No data directory yet: the first command, one that only reads, starts the server,
    migrates the database and stops the server again; the next one finds it at the head."""
    data_dir = scratch / "brand-new"
    check(run_cli("--data-dir", str(data_dir), "schedules", "validate"), Expect(0))
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
    status = run_cli("--data-dir", str(data_dir), "db", "status")
    check(status, Expect(0, stdout=(f"current:  {HEAD}", "up to date")))


def test_process_run_once_on_an_unreachable_database(unreachable_url: str) -> None:
    """``run`` sets up its logging before it opens the database: still one line."""
    result = run_cli("--database-url", unreachable_url, "run", "--once", "--log-format", "json")
    check(result, STATE_RULES[State.UNREACHABLE])


def test_process_migrate_on_an_embedded_database_ahead(embedded: Embedded) -> None:
    """A second process on the server this one keeps running: ``migrate`` leaves the schema
    it does not know alone, and says so in one line."""
    embedded.arrange(State.EMBEDDED_AHEAD)
    check(run_cli("--data-dir", str(embedded.data_dir), "migrate"), NEWER)
    assert embedded.revision() == AHEAD
