"""Which database errors the daemon waits out, and which it lets crash the tick."""

from __future__ import annotations

import psycopg
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from scheduler_daemon.db.engine import describe_error, is_transient


def test_server_shutdown_and_lost_connections_are_transient() -> None:
    admin_shutdown = psycopg.errors.AdminShutdown(
        "terminating connection due to administrator command"
    )
    assert is_transient(OperationalError("SELECT 1", {}, admin_shutdown))
    assert is_transient(
        OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))
    )


def test_statement_errors_are_not_transient() -> None:
    assert not is_transient(
        IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate"))
    )
    assert not is_transient(
        ProgrammingError("SELECT", {}, psycopg.errors.UndefinedTable("no table"))
    )
    assert not is_transient(ValueError("not a database error"))


def test_errors_are_described_by_the_drivers_first_line() -> None:
    refused = psycopg.OperationalError(
        "connection to server failed: Connection refused\n\tIs the server running?"
    )
    assert (
        describe_error(OperationalError("SELECT 1", {}, refused))
        == "connection to server failed: Connection refused"
    )
    assert describe_error(ValueError("")) == "ValueError"
