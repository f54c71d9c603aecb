"""Health checks for cron, systemd timers and Nagios: is anything actually being scheduled?

Each check reads the database with its own clock (``now()``) only, so a host with a drifting
clock cannot fool it. The most important one is "due but unclaimed": a daemon can heartbeat
happily while claiming nothing, and only the schedules show it.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from scheduler_daemon.db import health as db_health
from scheduler_daemon.db.engine import describe_error
from scheduler_daemon.db.migrate import require_head
from scheduler_daemon.errors import SchemaAheadError, SchemaOutOfDateError


class Severity(enum.IntEnum):
    """Ordered as Nagios exit codes."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Thresholds:
    worker_heartbeat: float = 300.0
    overdue: float = 300.0
    lease: float = 120.0
    failure_rate: float = 0.5
    failure_window: float = 3600.0
    failure_min_runs: int = 5
    allow_paused: bool = False


# Every check, in the order they run; each problem names one.
CHECKS = ("database", "schema", "workers", "overdue", "locks", "paused", "unresolved", "failures")
# What a check that found nothing says it looked at: (fact, wording).
_FACTS_SHOWN = {
    "database": ("schema_revision", "reachable"),
    "schema": ("schema_revision", "at revision {}, the code's"),
    "workers": ("live_workers", "{} live"),
    "overdue": ("overdue_schedules", "{} schedules overdue"),
    "locks": ("stale_locks", "{} stale locks"),
    "paused": ("quarantined_or_auto_paused", "{} quarantined or auto-paused"),
    "unresolved": ("unresolved_runs", "{} unresolved runs"),
    "failures": ("recent_failure_rate", "recent failure rate {:.1%}"),
}


@dataclass(frozen=True)
class Problem:
    check: str
    severity: Severity
    message: str


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return max((p.severity for p in self.problems), default=Severity.OK)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def verdicts(self) -> list[tuple[str, Severity, str]]:
        """Every check with its verdict: (check, severity, message); where it found nothing,
        what it looked at (from the facts)."""
        found = {problem.check: problem for problem in self.problems}
        return [
            (name, found[name].severity, found[name].message)
            if name in found
            else (name, Severity.OK, self._fine(name))
            for name in CHECKS
        ]

    def _fine(self, check: str) -> str:
        if check not in _FACTS_SHOWN:
            return "ok"
        fact, wording = _FACTS_SHOWN[check]
        value = self.facts.get(fact)
        return "ok" if value is None else wording.format(value)

    def as_dict(self) -> dict[str, object]:
        return {
            "healthy": self.healthy,
            "status": self.severity.name.lower(),
            "problems": [asdict(p) | {"severity": p.severity.name.lower()} for p in self.problems],
            "facts": self.facts,
        }


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def check(engine: Engine, thresholds: Thresholds) -> Report:
    report = Report()
    try:
        with engine.connect() as conn:
            try:
                report.facts["schema_revision"] = require_head(conn)
            except SchemaAheadError as exc:
                report.facts["schema_revision"] = exc.current
                report.problems.append(Problem("schema", Severity.CRITICAL, str(exc)))
            except SchemaOutOfDateError as exc:
                report.facts["schema_revision"] = exc.current
                report.problems.append(
                    Problem(
                        "schema",
                        Severity.CRITICAL,
                        f"database schema at {exc.current or 'none'}, code needs {exc.head}: "
                        "run 'scheduler-daemon migrate'",
                    )
                )
                return report
            for run_check in (
                _workers,
                _overdue,
                _stale_locks,
                _paused,
                _unresolved,
                _failure_rate,
            ):
                run_check(conn, thresholds, report)
    except DBAPIError as exc:
        report.problems.append(
            Problem("database", Severity.CRITICAL, f"database unreachable: {describe_error(exc)}")
        )
    return report


def _workers(conn: Connection, t: Thresholds, report: Report) -> None:
    row = db_health.live_workers(conn, t.worker_heartbeat)
    report.facts["live_workers"] = row.live
    dead = db_health.recently_dead(conn)
    # How each recently dead worker was found dead: its session gone (a crash, seen at once)
    # or its heartbeat stale (hung, frozen or cut off).
    report.facts["dead_workers"] = [
        {"worker_id": d.worker_id, "dead_because": d.dead_because, "locks_held": d.locks_held}
        for d in dead
    ]
    if row.live == 0:
        seen = "never" if row.last_seen is None else f"{_duration(row.last_seen)} ago"
        report.problems.append(
            Problem(
                "workers",
                Severity.CRITICAL,
                f"no live worker (newest heartbeat of a running worker: {seen}; "
                f"threshold {_duration(t.worker_heartbeat)})",
            )
        )


def _overdue(conn: Connection, t: Thresholds, report: Report) -> None:
    row = db_health.overdue(conn, t.overdue)
    report.facts["overdue_schedules"] = row.overdue
    if row.overdue:
        report.problems.append(
            Problem(
                "overdue",
                Severity.CRITICAL,
                f"{row.overdue} enabled schedule(s) due but unclaimed for more than "
                f"{_duration(t.overdue)} (worst: {_duration(row.worst)}): "
                "no daemon is scheduling them",
            )
        )


def _stale_locks(conn: Connection, t: Thresholds, report: Report) -> None:
    row = db_health.stale_locks(conn, t.lease)
    report.facts["stale_locks"] = row.stale
    if row.stale:
        report.problems.append(
            Problem(
                "locks",
                Severity.WARNING,
                f"{row.stale} lock(s) older than the {_duration(t.lease)} lease "
                f"(oldest: {_duration(row.oldest)})",
            )
        )


def _paused(conn: Connection, t: Thresholds, report: Report) -> None:
    rows = db_health.daemon_paused(conn)
    report.facts["quarantined_or_auto_paused"] = len(rows)
    if rows and not t.allow_paused:
        names = ", ".join(repr(r.name) for r in rows[:3]) + (" ..." if len(rows) > 3 else "")
        report.problems.append(
            Problem(
                "paused",
                Severity.WARNING,
                f"{len(rows)} schedule(s) quarantined or auto-paused: {names} "
                "(see 'scheduler-daemon schedules list --paused')",
            )
        )


def _unresolved(conn: Connection, t: Thresholds, report: Report) -> None:
    rows = db_health.unresolved_runs(conn)
    report.facts["unresolved_runs"] = len(rows)
    if rows:
        runs = ", ".join(f"{r.id} ({r.name!r})" for r in rows[:3]) + (
            " ..." if len(rows) > 3 else ""
        )
        report.problems.append(
            Problem(
                "unresolved",
                Severity.CRITICAL,
                f"{len(rows)} run(s) unresolved: recovery could not tell whether their slot "
                f"reached AMC: {runs} (see 'scheduler-daemon runs list --status unresolved')",
            )
        )


def _failure_rate(conn: Connection, t: Thresholds, report: Report) -> None:
    row = db_health.recent_failures(conn, t.failure_window)
    rate = row.failed / row.finished if row.finished else 0.0
    report.facts["recent_failure_rate"] = round(rate, 4)
    if row.finished >= t.failure_min_runs and rate > t.failure_rate:
        report.problems.append(
            Problem(
                "failures",
                Severity.WARNING,
                f"{row.failed} of {row.finished} runs failed in the last "
                f"{_duration(t.failure_window)} ({rate:.0%} > {t.failure_rate:.0%})",
            )
        )
