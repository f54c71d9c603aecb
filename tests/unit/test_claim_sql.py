"""The claim protocol's statement file: well formed, every statement used, and every status it
names one the enums know, with each planner workaround equal to what it stands for."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest
from sqlalchemy import TextClause

from scheduler_daemon.db import queries
from scheduler_daemon.db.statements import StatementFileError, parse_statements
from scheduler_daemon.domain import ExecutionStatus, RunStatus

SOURCE = files("scheduler_daemon.db").joinpath("claim.sql").read_text()
STATUSES = {str(s) for s in RunStatus} | {str(s) for s in ExecutionStatus}


def _values(listing: str) -> set[str]:
    return set(re.findall(r"'(\w+)'", listing))


def test_every_statement_in_the_file_is_run_by_the_claim_protocol() -> None:
    loaded = {
        name.lower() for name, value in vars(queries).items() if isinstance(value, TextClause)
    }
    assert loaded == set(parse_statements(SOURCE))


def test_every_status_the_statements_name_is_a_known_status() -> None:
    named: set[str] = set()
    for match in re.finditer(r"status\s+(?:NOT\s+)?IN\s*\(([^)]*)\)", SOURCE):
        named |= _values(match.group(1))
    for match in re.finditer(r"status\s*=\s*'(\w+)'", SOURCE):
        named.add(match.group(1))
    assert named
    assert named <= STATUSES, named - STATUSES


def test_each_not_in_other_statuses_test_means_what_its_note_says() -> None:
    """A write tests "status NOT IN (every other status)" for the planner's sake; the note
    above it says which statuses it means. Adding a status to an enum must extend the list."""
    pattern = re.compile(
        r"-- that is: status (?:IN \((?P<many>[^)]*)\)|= '(?P<one>\w+)')\n"
        r"\s*AND (?P<alias>\w)\.status NOT IN \((?P<others>[^)]*)\)"
    )
    checked = 0
    for match in pattern.finditer(SOURCE):
        meant = _values(match["many"]) if match["many"] else {match["one"]}
        others = _values(match["others"])
        every = {str(s) for s in (ExecutionStatus if match["alias"] == "e" else RunStatus)}
        assert meant | others == every, match.group(0)
        assert not meant & others, match.group(0)
        checked += 1
    assert checked == len(re.findall(r"status NOT IN", SOURCE))
    assert checked >= 5


def test_comment_lines_and_indentation_are_not_sent() -> None:
    statements = parse_statements(
        "-- header\n\n-- name: one\n-- its note\nSELECT 1\n    -- inside\n    FROM t;\n"
    )
    assert statements == {"one": "SELECT 1\nFROM t"}


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("-- name: one\nSELECT 1\n-- name: two\nSELECT 2;\n", "'one' must end with ';'"),
        ("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n", "named twice"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_statement(source: str, problem: str) -> None:
    with pytest.raises(StatementFileError, match=problem):
        parse_statements(source, "claim.sql")


def _between(statement: str, start: str, end: str) -> str:
    text = parse_statements(SOURCE)[statement]
    return text[text.index(start) : text.index(end, text.index(start)) + len(end)]


def test_both_outcome_paths_count_failures_and_auto_pause_alike() -> None:
    """A failure reported by the dispatch and one reported by the status sync move the
    schedule's failure count and auto-pause it by one rule, written out in each statement."""
    start, end = "consecutive_failures = CASE", "ELSE s.pause_reason END"
    assert _between("record_outcomes", start, end) == _between("record_statuses", start, end)


def test_schedule_claims_and_manual_runs_are_abandoned_by_one_rule() -> None:
    """The reaper judges an abandoned schedule claim and an abandoned manual run alike."""
    start, end = "AND (", ":gone AS text[])))"
    schedules = _between("select_stale_locks", start, end)
    manual = _between("reap_manual_runs", start, end)
    as_schedule = (
        manual.replace("r2.worker_id", "s.locked_by")
        .replace("r2.claimed_at", "s.locked_at")
        .replace("r2.id", "s.id")
    )
    assert as_schedule == schedules
