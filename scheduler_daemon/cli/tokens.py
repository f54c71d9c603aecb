"""``tokens``: the API's bearer tokens, made, listed and revoked from the shell."""

from __future__ import annotations

from typing import Any

import click

from scheduler_daemon import tokens
from scheduler_daemon.cli.common import CliState, transaction
from scheduler_daemon.cli.output import echo_json, echo_rows, json_option
from scheduler_daemon.domain import TokenRole

TOKEN_COLUMNS = ("id", "name", "role", "created_by", "created_at", "last_used_at", "revoked_at")


@click.group("tokens")
def tokens_group() -> None:
    """Bearer tokens for the API: create (the secret is shown once), list, revoke."""


@tokens_group.command("create")
@click.option("--name", required=True, help="A name no other token has (who or what uses it).")
@click.option(
    "--role",
    required=True,
    type=click.Choice([str(role) for role in TokenRole]),
    help="read: only reads; write: also changes.",
)
@json_option
@click.pass_obj
def create_command(state: CliState, /, name: str, role: str, as_json: bool) -> None:
    """Create a token and print its secret, the only time it is shown."""
    with transaction(state) as (conn, _):
        created, secret = tokens.create_token(conn, name, role)
    if as_json:
        echo_json(created | {"secret": secret})
        return
    click.echo(f"created token {_named(created)} with role {created['role']}:")
    click.echo(secret)
    click.echo("Keep it now: it is stored only as a hash and cannot be shown again.")


@tokens_group.command("list")
@json_option
@click.pass_obj
def list_command(state: CliState, /, as_json: bool) -> None:
    """Every token, revoked ones too, by name (never a secret)."""
    with transaction(state) as (conn, _):
        rows = tokens.list_tokens(conn)
    echo_rows(rows, TOKEN_COLUMNS, as_json)


@tokens_group.command("revoke")
@click.argument("reference", metavar="TOKEN")
@json_option
@click.pass_obj
def revoke_command(state: CliState, /, reference: str, as_json: bool) -> None:
    """Revoke a token (its name, id or the start of its id): the API refuses it from now on."""
    with transaction(state) as (conn, _):
        token_id = tokens.revoke_token(conn, reference)
        revoked = tokens.show_token(conn, token_id)
    if as_json:
        echo_json(revoked)
    else:
        click.echo(f"revoked token {_named(revoked)}")


def _named(token: dict[str, Any]) -> str:
    return f"{token['name']!r} ({str(token['id'])[:8]})"
