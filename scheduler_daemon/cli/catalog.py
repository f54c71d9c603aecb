"""``accounts``, ``instances`` and ``workflows``: the catalog schedules point at, managed from
the shell as schedules are (list, show, create, update, delete; names wherever ids go)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from scheduler_daemon import catalog
from scheduler_daemon.cli.common import CliState, transaction
from scheduler_daemon.cli.output import echo_json, echo_record, echo_rows, json_option
from scheduler_daemon.cli.schedules import parse_params
from scheduler_daemon.references import Kind

Reference = str | uuid.UUID


@dataclass(frozen=True)
class Field:
    """One field of a catalog row as the command line sets it."""

    name: str  # the catalog verbs' field name
    option: str
    help: str
    required: bool = False  # by create


@dataclass(frozen=True)
class Noun:
    kind: Kind
    plural: str
    fields: tuple[Field, ...]
    columns: tuple[str, ...]  # of the list's table
    about: str


NOUNS = (
    Noun(
        Kind.ACCOUNT,
        "accounts",
        (
            Field("name", "--name", "A name no other account has.", required=True),
            Field(
                "account_id",
                "--account-id",
                "The AMC entity (advertiser) id, ENTITY….",
                required=True,
            ),
            Field("marketplace_id", "--marketplace-id", "Marketplace, e.g. ATVPDKIKX0DER."),
            Field("region", "--region", "AMC region, e.g. NA, EU, FE."),
        ),
        ("id", "name", "account_id", "marketplace_id", "region", "instances"),
        "AMC accounts (advertisers) that own instances.",
    ),
    Noun(
        Kind.INSTANCE,
        "instances",
        (
            Field("name", "--name", "A name no other instance has.", required=True),
            Field("instance_id", "--instance-id", "AMC's own instance id, e.g. amc1a2b3c4.", True),
            Field("account", "--account", "Its account: name, AMC entity id or id.", True),
        ),
        ("id", "name", "instance_id", "account_name", "workflows"),
        "AMC instances that saved workflows run in.",
    ),
    Noun(
        Kind.WORKFLOW,
        "workflows",
        (
            Field("name", "--name", "A name no other workflow has.", required=True),
            Field("instance", "--instance", "Its instance: name, AMC instance id or id.", True),
            Field("amc_workflow_id", "--amc-workflow-id", "The saved workflow's id in AMC.", True),
            Field("sql_query", "--sql", "Its SQL, for the record (AMC runs the saved one)."),
        ),
        ("id", "name", "instance_name", "amc_workflow_id", "schedules"),
        "Saved AMC workflows that schedules run.",
    ),
)
REFERENCE_HELP = "its name, id or the start of its id (8+ hex digits)"


def _given(noun: Noun, options: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the options set (None: not given); ``--param`` pairs as ``parameters``."""
    given = {field.name: options.get(field.name) for field in noun.fields}
    params = options.get("params")
    if params:
        given["parameters"] = parse_params(params)
    return given


def _with_fields(noun: Noun, *, create: bool) -> Callable[[Any], Any]:
    def decorate(func: Any) -> Any:
        if noun.kind is Kind.WORKFLOW:
            func = click.option(
                "--param",
                "params",
                multiple=True,
                metavar="KEY=VALUE",
                help="Default parameter of every run (repeatable).",
            )(func)
        for field in reversed(noun.fields):
            func = click.option(
                field.option, field.name, required=create and field.required, help=field.help
            )(func)
        return func

    return decorate


def _group(noun: Noun) -> click.Group:
    singular = noun.kind.value
    group = click.Group(noun.plural, help=f"{noun.about} List, show, create, update, delete.")

    @group.command("list")
    @json_option
    @click.pass_obj
    def list_command(state: CliState, /, as_json: bool) -> None:
        with transaction(state) as (conn, _):
            rows = catalog.list_rows(conn, noun.kind)
        echo_rows(rows, noun.columns, as_json)

    list_command.help = f"Every {singular}, by name."

    @group.command("show")
    @click.argument("reference", metavar=singular.upper())
    @json_option
    @click.pass_obj
    def show_command(state: CliState, /, reference: str, as_json: bool) -> None:
        with transaction(state) as (conn, _):
            record = catalog.show(conn, noun.kind, reference)
        echo_record(record, as_json)

    show_command.help = f"One {singular}: {REFERENCE_HELP}."

    @group.command("create")
    @_with_fields(noun, create=True)
    @json_option
    @click.pass_obj
    def create_command(state: CliState, /, as_json: bool, **options: Any) -> None:
        with transaction(state) as (conn, _):
            new_id = catalog.create(conn, noun.kind, _given(noun, options))
            created = catalog.show(conn, noun.kind, new_id)
        _done(as_json, created, f"created {singular} {_named(created)}")

    create_command.help = f"Create a {singular}."

    @group.command("update")
    @click.argument("reference", metavar=singular.upper())
    @_with_fields(noun, create=False)
    @json_option
    @click.pass_obj
    def update_command(state: CliState, /, reference: str, as_json: bool, **options: Any) -> None:
        with transaction(state) as (conn, _):
            target = catalog.update(conn, noun.kind, reference, _given(noun, options))
            updated = catalog.show(conn, noun.kind, target)
        _done(as_json, updated, f"updated {singular} {_named(updated)}")

    update_command.help = f"Change what is given of a {singular} ({REFERENCE_HELP})."

    @group.command("delete")
    @click.argument("reference", metavar=singular.upper())
    @json_option
    @click.pass_obj
    def delete_command(state: CliState, /, reference: str, as_json: bool) -> None:
        with transaction(state) as (conn, _):
            gone = catalog.show(conn, noun.kind, reference)
            catalog.delete(conn, noun.kind, gone["id"])
        _done(
            as_json,
            {"id": gone["id"], "name": gone["name"], "deleted": True, "hard": True},
            f"deleted {singular} {_named(gone)}",
        )

    delete_command.help = f"Delete a {singular} nothing uses any more ({REFERENCE_HELP})."
    return group


def _named(row: Mapping[str, Any]) -> str:
    return f"{row['name']!r} ({str(row['id'])[:8]})"


def _done(as_json: bool, data: Mapping[str, Any], message: str) -> None:
    if as_json:
        echo_json(dict(data))
    else:
        click.echo(message)


accounts_group, instances_group, workflows_group = (_group(noun) for noun in NOUNS)
