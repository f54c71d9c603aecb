"""What the console shows of a schedule's state and warnings, and of a run's outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler_daemon.health import CHECKS, Problem, Report, Severity
from scheduler_daemon.web import views

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def schedule(**values: Any) -> dict[str, Any]:
    return {
        "state": "scheduled",
        "enabled": True,
        "paused_at": None,
        "paused_until": None,
        "pause_reason": None,
        "consecutive_failures": 0,
        "last_error": None,
        "misfire_policy": "skip",
        "misfire_grace_seconds": 300,
        "next_run_at": NOW + timedelta(hours=1),
        "spec": "0 9 * * *",
        "timezone": "UTC",
    } | values


def labels(shown: dict[str, Any]) -> list[str]:
    return [badge.label for badge in views.badges(shown)]


def test_badges_say_why_a_schedule_does_not_run() -> None:
    assert labels(schedule()) == ["enabled"]
    assert labels(schedule(enabled=False, state="disabled")) == ["disabled"]
    paused = schedule(state="paused", paused_at=NOW, pause_reason="late data")
    assert labels(paused) == ["paused"]
    assert views.badges(paused)[0].title == "late data"
    assert labels(schedule(paused_at=NOW, pause_reason="quarantined: bad zone")) == ["quarantined"]
    assert labels(schedule(paused_at=NOW, pause_reason="auto-paused after 5 failures")) == [
        "auto-paused"
    ]
    assert labels(schedule(consecutive_failures=2)) == ["enabled", "failing ×2"]
    assert labels(schedule(state="due")) == ["due"]


def test_warnings_name_what_will_go_wrong() -> None:
    assert views.warnings(schedule(), NOW, live_daemons=1) == []
    alone = views.warnings(schedule(), NOW, live_daemons=0)
    assert "no live daemon: nothing runs it" in alone
    assert any("misfire policy skip" in warning for warning in alone)
    overdue = schedule(next_run_at=NOW - timedelta(hours=1))
    assert any("misfire policy skip" in w for w in views.warnings(overdue, NOW, 1))
    run_all = schedule(next_run_at=NOW - timedelta(hours=1), misfire_policy="run_all")
    assert views.warnings(run_all, NOW, 1) == []
    gap = schedule(spec="30 2 * * *", timezone="America/New_York")
    [warning] = views.warnings(gap, NOW, 1)
    assert "02:30 does not exist" in warning
    assert views.warnings(schedule(enabled=False), NOW, 0) == []


def test_a_runs_outcome_says_why_it_was_skipped_and_how_it_failed() -> None:
    skipped = views.run_outcome({"status": "skipped", "skip_reason": "overlap"})
    assert skipped.label == "skipped: overlap"
    missed = views.run_outcome({"status": "skipped", "skip_reason": "misfire", "missed_slots": 4})
    assert missed.title == "4 slots missed"
    failed = views.run_outcome({"status": "failed", "error": "AMC said no"})
    assert (failed.label, failed.tone, failed.title) == ("failed", "bad", "AMC said no")


def test_lateness_and_duration_of_a_run() -> None:
    run = {
        "scheduled_for": NOW,
        "started_at": NOW + timedelta(seconds=2),
        "finished_at": NOW + timedelta(seconds=62),
    }
    assert views.lateness(run) == 2
    assert views.duration(run) == 60
    assert views.lateness({"scheduled_for": NOW, "started_at": None}) is None


def test_history_values_read_as_an_operator_writes_them() -> None:
    entry = {
        "changes": {
            "enabled": {"before": False, "after": True},
            "parameters": {"before": None, "after": {"lookback_days": 3}},
            "paused_at": {"before": None, "after": "2026-12-07T17:34:01.118674+00:00"},
            "cron_expression": {"before": "0 9 * * *", "after": "0 10 * * *"},
        }
    }
    assert views.changes(entry) == [
        ("enabled", "false", "true"),
        ("parameters", "—", '{"lookback_days": 3}'),
        ("paused at", "—", "2026-12-07 17:34:01 UTC"),
        ("spec", "0 9 * * *", "0 10 * * *"),
    ]


def test_each_health_check_says_what_it_looked_at_when_it_found_nothing() -> None:
    report = Report(
        problems=[Problem("overdue", Severity.WARNING, "3 schedules overdue by over 5 min")],
        facts={"live_workers": 2, "recent_failure_rate": 0.125, "stale_locks": 0},
    )
    verdicts = {name: (severity, message) for name, severity, message in report.verdicts()}
    assert verdicts["workers"] == (Severity.OK, "2 live")
    assert verdicts["overdue"] == (Severity.WARNING, "3 schedules overdue by over 5 min")
    assert verdicts["failures"] == (Severity.OK, "recent failure rate 12.5%")
    assert verdicts["locks"] == (Severity.OK, "0 stale locks")
    assert verdicts["unresolved"] == (Severity.OK, "ok")  # no fact: nothing to say
    assert list(verdicts) == list(CHECKS)
