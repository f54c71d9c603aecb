"""Whole databases on a server: made afresh and dropped again (the demo's own).

``CREATE DATABASE`` cannot run inside a transaction, and a database's name is an identifier,
not a value: these take the server's admin URL, connect with autocommit and quote the name.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

# WITH (FORCE): a connection still open (a thread given up on at shutdown) would block it.
DROP_DATABASE = sql.SQL("DROP DATABASE IF EXISTS {name} WITH (FORCE)")

CREATE_DATABASE = sql.SQL("CREATE DATABASE {name}")


def recreate_database(admin_url: str, name: str) -> None:
    """An empty database ``name``, whatever was there before."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(DROP_DATABASE.format(name=sql.Identifier(name)))
        conn.execute(CREATE_DATABASE.format(name=sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(DROP_DATABASE.format(name=sql.Identifier(name)))
