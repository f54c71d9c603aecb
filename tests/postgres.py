"""The test suite's PostgreSQL: one server per session, a fresh database per test.

The harness lives in ``scheduler_daemon.db.provision`` and ``db.databases``, which the
benchmarks use too (they import nothing from tests/); this module is the suite's name for it.
"""

from __future__ import annotations

from scheduler_daemon.db.databases import create_database, drop_database, with_database
from scheduler_daemon.db.provision import (
    TEST_URL_VARIABLE,
    EmbeddedServer,
    clone_database,
    create_template,
    embedded_server,
    session_server,
)

__all__ = [
    "TEST_URL_VARIABLE",
    "EmbeddedServer",
    "clone_database",
    "create_database",
    "create_template",
    "drop_database",
    "embedded_server",
    "session_server",
    "with_database",
]
