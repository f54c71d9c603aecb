"""Whole databases on a server: made, copied and dropped (the demo's own, the test suite's and
the benchmarks').

``CREATE DATABASE`` cannot run inside a transaction, and a database's name is an identifier,
not a value: these take the server's admin URL, connect with autocommit and quote the name.
"""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` instead of its own."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def ensure_database(admin_url: str, name: str) -> None:
    """Create ``name`` unless it exists; two processes may race here, and the loser's
    CREATE fails harmlessly."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
    with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
        create_database(admin_url, name)


def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """A new database, empty or copied from ``template``; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            # FILE_COPY (PostgreSQL 15+) copies a small template faster than WAL-logging
            # every page.
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}" + strategy).format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(statement)
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str, *, missing_ok: bool = False) -> None:
    """Drop ``name``; WITH (FORCE): a connection still open (a thread given up on at
    shutdown) would block it."""
    if_exists = " IF EXISTS" if missing_ok else ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE" + if_exists + " {} WITH (FORCE)").format(sql.Identifier(name))
        )
