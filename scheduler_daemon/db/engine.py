"""Engines and the translation of "cannot connect" into one clear error."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from psycopg.types.array import ListBinaryDumper
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from scheduler_daemon.config import mask_url, to_sqlalchemy_url
from scheduler_daemon.errors import DatabaseUnavailableError, InputError


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    max_overflow: int | None = None,
    connect_timeout: int = 10,
    generic_plans: bool = False,
    custom_plans: bool = False,
) -> Engine:
    """``generic_plans``: prepare every statement on first use and plan it once per connection
    (for the dispatch threads' writes only: see ``_plan_once``). ``custom_plans``: plan every
    execution for its values (the listings': see ``_plan_each_time``)."""
    sa_url = to_sqlalchemy_url(url) if isinstance(url, str) else url
    engine = create_engine(
        sa_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        # No ping per checkout (a round trip each): a dead connection fails its statement,
        # SQLAlchemy invalidates the pool, and the caller's retry gets a fresh one.
        pool_pre_ping=False,
        # The most recently used connection first: its prepared statements are the warm ones.
        pool_use_lifo=True,
        connect_args={"connect_timeout": connect_timeout, "application_name": "scheduler-daemon"},
    )
    event.listen(engine, "connect", _adapt_for_batches)
    event.listen(engine, "handle_error", _refuse_nul)
    if generic_plans:
        event.listen(engine, "connect", _plan_once)
    if custom_plans:
        event.listen(engine, "connect", _plan_each_time)
    return engine


def libpq_url(target: Engine | URL | str) -> str:
    """The URL (an engine's, or one given) as psycopg itself takes it, without SQLAlchemy's
    +driver suffix (for connections outside the pool)."""
    url = target.url if isinstance(target, Engine) else make_url(target)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _plan_once(dbapi_connection: Any, _: Any) -> None:
    """Prepare each statement at its first execution and keep one generic plan for it.

    By default psycopg prepares a statement at its sixth execution on a connection, and
    PostgreSQL then plans five more executions before it settles on a generic plan. A burst
    spreads its writes over a dozen connections per daemon, each running a statement a few
    times: nearly every outcome write was parsed and planned afresh, a fifth of the database's
    CPU. Only for statements keyed by primary key, whose plan does not depend on the values:
    ``tests/integration/test_query_plans.py`` checks their generic plans."""
    dbapi_connection.prepare_threshold = 0
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    dbapi_connection.commit()


def _plan_each_time(dbapi_connection: Any, _: Any) -> None:
    """Never settle on a generic plan. The operators' listings take optional filters and
    keyset positions as "parameter IS NULL OR ..." clauses: planned for the values given they
    read one index page (about 1 ms at 100,000 schedules); a generic plan, which PostgreSQL
    may adopt after a prepared statement's fifth run on a connection, scans everything
    (1.5 s). A long-lived API process runs each of them thousands of times per connection."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    dbapi_connection.commit()


def _refuse_nul(context: ExceptionContext) -> None:
    """A NUL character, which PostgreSQL's text and jsonb cannot hold, in a value a statement
    was given is the input's mistake (InputError, as for any other bad value: 422 in the API),
    not a failure of the database's. Every face's strings reach it here: names, references,
    filters, parameters, from JSON (\\u0000), TOML or Python alike."""
    cause = context.original_exception
    if isinstance(cause, psycopg.errors.UntranslatableCharacter):
        nul = "\\u0000" in str(cause)  # a JSON document with \u0000 (the server's refusal)
    else:  # a string with one: psycopg refuses it before sending it
        nul = isinstance(cause, psycopg.DataError) and "NUL (0x00)" in str(cause)
    if nul:
        raise InputError(
            "a text value holds a NUL character (\\u0000), which the database cannot store"
        ) from None


def _adapt_for_batches(dbapi_connection: Any, _: Any) -> None:
    """The claim protocol sends each batch as arrays (``unnest``): psycopg's default text
    dumper formats every element in Python, 3 µs a timestamp, where binary takes 0.2 µs.
    Each claimed run reads two JSON parameter documents: orjson parses them 5 times faster."""
    dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)
    set_json_loads(orjson.loads, dbapi_connection)


def is_transient(exc: BaseException) -> bool:
    """A database error worth retrying: the connection, not the statement, failed
    (server gone, restarting, shutting down, network cut)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def describe_error(exc: BaseException) -> str:
    """The driver's first line about a database error: enough for one log line, no SQL."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


# SQLSTATEs of the database's condition, not of a statement's mistake. Classes: the connection
# (08), authorization (28), resources: disk full, too many connections (53), an operator's
# intervention: shutdown, cancel (57), the system (58).
_CONDITION_CLASSES = frozenset({"08", "28", "53", "57", "58"})
_CONDITION_STATES = frozenset(
    {
        "25006",  # read_only_sql_transaction: a standby, or a read-only database or role
        "42501",  # insufficient_privilege: the role may not do this
    }
)


def database_condition(exc: BaseException) -> str | None:
    """The driver's first line about an error that is the database's condition (gone,
    read-only, a role without the privilege, out of space, shutting down); None for any other
    error, a statement's mistake, whose traceback is worth keeping."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(cause, psycopg.Error):
        return None
    sqlstate = cause.sqlstate
    if sqlstate is None:
        # No server answer to classify: the connection itself failed (refused, cut, closed).
        condition = isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError)
    else:
        condition = sqlstate in _CONDITION_STATES or sqlstate[:2] in _CONDITION_CLASSES
    return describe_error(exc) if condition else None


def shown_url(target: Engine | URL | str) -> str:
    """The URL as an operator writes it (no SQLAlchemy +driver suffix), password masked."""
    return mask_url(libpq_url(target))


def check_connection(engine: Engine) -> None:
    """Raise DatabaseUnavailableError unless the database answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise DatabaseUnavailableError(shown_url(engine), describe_error(exc)) from None
