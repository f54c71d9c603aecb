"""How fast the test harness makes a fresh database: clone the migrated template 200 times.

    python bench/bench_test_databases.py [--count N]

Uses scheduler_daemon/db/provision.py as the test fixtures do: the same server
(SCHEDULER_TEST_DATABASE_URL, else testcontainers when Docker answers, else embedded), the same
template, one clone and one drop per test. Prints the seconds per clone+drop and what 200
database tests spend on databases alone.
"""

from __future__ import annotations

import argparse
import time
import uuid

import psycopg
from sqlalchemy.engine import make_url

from scheduler_daemon.db.databases import drop_database
from scheduler_daemon.db.provision import clone_database, create_template, session_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()

    started = time.perf_counter()
    with session_server() as admin:
        template = f"sd_template_{uuid.uuid4().hex[:8]}"
        create_template(admin, template)
        setup = time.perf_counter() - started
        with psycopg.connect(admin, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        shown = make_url(admin).render_as_string(hide_password=True)
        print(f"PostgreSQL {version[0] if version else '?'} at {shown}")

        clones = time.perf_counter()
        for _ in range(args.count):
            name = f"sd_test_{uuid.uuid4().hex[:12]}"
            clone_database(admin, template, name)
            drop_database(admin, name)
        elapsed = time.perf_counter() - clones
        drop_database(admin, template)

    per_clone = elapsed / args.count
    print(f"server start + template migration: {setup:.2f} s (once per test session)")
    print(f"clone + drop: {per_clone * 1000:.1f} ms each, {args.count} in {elapsed:.2f} s")
    print(f"200 database tests spend {per_clone * 200:.1f} s on fresh databases (target < 60 s)")


if __name__ == "__main__":
    main()
