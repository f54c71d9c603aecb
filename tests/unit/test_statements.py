"""The claim protocol's statements, as text: no database needed."""

from __future__ import annotations

from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
from sqlalchemy import TextClause

from scheduler_daemon.db import queries


def test_every_statement_is_short_enough_for_psycopgs_query_cache() -> None:
    """psycopg re-parses a longer statement's placeholders on every execution; the outcome
    write goes out for every 50 runs."""
    statements = {
        name: value for name, value in vars(queries).items() if isinstance(value, TextClause)
    }
    assert len(statements) > 20
    too_long = {
        name: len(statement.text)
        for name, statement in statements.items()
        if len(statement.text) > MAX_CACHED_STATEMENT_LENGTH
    }
    assert not too_long
