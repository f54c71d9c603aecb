"""The API's bearer tokens: the secret is shown once and stored nowhere, only its hash; a
token lets in a request until it is revoked, as what its role allows."""

from __future__ import annotations

import getpass
import hashlib
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from scheduler_daemon import tokens
from scheduler_daemon.cli import main
from scheduler_daemon.domain import TokenRole
from scheduler_daemon.errors import FieldError, UniqueFieldError

USER = getpass.getuser()


def cli(
    database_url: str, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int | str | None, str, str]:
    """``scheduler-daemon ARGS`` in this process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as done:
        main(["--database-url", database_url, *args])
    out, err = capsys.readouterr()
    return done.value.code, out, err


def stored(engine: Engine, table: str) -> str:
    """Every value of every row of ``table``, as text."""
    with engine.connect() as conn:
        return " ".join(conn.execute(text(f"SELECT t::text FROM {table} t")).scalars())


def test_create_shows_the_secret_once_and_stores_only_its_hash(
    database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(database_url, capsys, "tokens", "create", "--name", "ci", "--role", "read")
    assert (code, err) == (0, "")
    [secret] = [line for line in out.splitlines() if line.startswith(tokens.PREFIX)]
    assert "cannot be shown again" in out
    assert len(secret) > 40

    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored(engine, "api_tokens") + stored(engine, "audit_log")
    assert digest in stored(engine, "api_tokens")
    assert digest not in stored(engine, "audit_log")

    for args in (("tokens", "list"), ("tokens", "list", "--json")):
        code, listed, _ = cli(database_url, capsys, *args)
        assert code == 0
        assert secret not in listed
        assert digest not in listed
        assert "hash" not in listed.lower()
    [row] = json.loads(cli(database_url, capsys, "tokens", "list", "--json")[1])
    assert (row["name"], row["role"], row["created_by"], row["revoked_at"]) == (
        "ci",
        "read",
        f"cli:{USER}",
        None,
    )

    with engine.connect() as conn:
        found = tokens.authenticate(conn, secret)
    assert found is not None
    assert (found.id, found.name, found.role) == (uuid.UUID(row["id"]), "ci", TokenRole.READ)


def test_the_audit_trail_records_a_token_without_its_hash(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(database_url, capsys, "tokens", "create", "--name", "ci", "--role", "write")
    cli(database_url, capsys, "tokens", "revoke", "ci")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT actor, action, before, after FROM audit_log WHERE entity = 'token'")
        ).all()
    assert [(actor, action) for actor, action, _, _ in rows] == [
        (f"cli:{USER}", "create"),
        (f"cli:{USER}", "revoke"),
    ]
    (_, _, _, created), (_, _, before, revoked) = rows
    assert created == {
        "name": "ci",
        "role": "write",
        "created_by": f"cli:{USER}",
        "revoked_at": None,
    }
    assert (before, set(revoked)) == ({"revoked_at": None}, {"revoked_at"})


def test_a_token_lets_in_what_its_role_allows_until_it_is_revoked(engine: Engine) -> None:
    with engine.begin() as conn:
        reader, read_secret = tokens.create_token(conn, "dashboard", TokenRole.READ)
        _, write_secret = tokens.create_token(conn, "deploy", "write")
    with engine.connect() as conn:
        read = tokens.authenticate(conn, read_secret)
        write = tokens.authenticate(conn, write_secret)
        assert read is not None
        assert write is not None
        assert (read.permits(TokenRole.READ), read.permits(TokenRole.WRITE)) == (True, False)
        assert (write.permits(TokenRole.READ), write.permits(TokenRole.WRITE)) == (True, True)
        for wrong in (read_secret[:-1], read_secret + "x", "", "Bearer " + read_secret, "sdt_"):
            assert tokens.authenticate(conn, wrong) is None, wrong

    with engine.begin() as conn:  # by the start of its id, as any reference
        assert tokens.revoke_token(conn, str(reader["id"])[:8]) == reader["id"]
    with engine.connect() as conn:
        assert tokens.authenticate(conn, read_secret) is None
        assert tokens.authenticate(conn, write_secret) is not None
        [first] = [t for t in tokens.list_tokens(conn) if t["name"] == "dashboard"]
    with engine.begin() as conn:  # again: fine, and it stays revoked since the first time
        tokens.revoke_token(conn, "dashboard")
    with engine.connect() as conn:
        [again] = [t for t in tokens.list_tokens(conn) if t["name"] == "dashboard"]
    assert again["revoked_at"] == first["revoked_at"] is not None


def test_use_is_recorded_at_most_once_a_minute(engine: Engine) -> None:
    with engine.begin() as conn:
        created, _ = tokens.create_token(conn, "busy", TokenRole.READ)

    def last_used() -> object:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT last_used_at FROM api_tokens WHERE id = :id"), {"id": created["id"]}
            ).scalar_one()

    with engine.begin() as conn:
        tokens.record_use(conn, created["id"])
    first = last_used()
    assert first is not None
    with engine.begin() as conn:
        tokens.record_use(conn, created["id"])
    assert last_used() == first
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE api_tokens SET last_used_at = now() - interval '61 seconds'"),
        )
    with engine.begin() as conn:
        tokens.record_use(conn, created["id"])
    assert last_used() != first
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT action FROM audit_log WHERE entity = 'token'")).all()
    assert actions == [("create",)]  # using a token is not a change of it


def test_a_taken_name_is_one_line_exit_2(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(database_url, capsys, "tokens", "create", "--name", "ci", "--role", "read")[0] == 0
    code, out, err = cli(
        database_url, capsys, "tokens", "create", "--name", "ci", "--role", "write"
    )
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "scheduler-daemon: error: --name: another token already has the name 'ci'"
    ]
    code, _, err = cli(database_url, capsys, "tokens", "revoke", "nobody")
    assert code == 2
    assert err.splitlines() == ["scheduler-daemon: error: token: no token is named 'nobody'"]


@pytest.mark.parametrize(
    ("name", "role", "field", "fragment"),
    [
        (" ", "read", "name", "' ' is not a non-empty string"),
        ("ci", "admin", "role", "'admin' is not a role: read or write"),
        ("ci", None, "role", "None is not a role"),
    ],
)
def test_bad_input_names_the_field_and_the_value(
    engine: Engine, name: str, role: Any, field: str, fragment: str
) -> None:
    with engine.begin() as conn, pytest.raises(FieldError) as error:
        tokens.create_token(conn, name, role)
    assert (error.value.field, fragment in error.value.message) == (field, True)
    with engine.begin() as conn:
        tokens.create_token(conn, "ci", "read")
        with pytest.raises(UniqueFieldError, match="another token already has the name 'ci'"):
            tokens.create_token(conn, " ci ", "write")
