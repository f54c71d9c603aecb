"""The catalog (accounts, instances, workflows) without SQL, unique names, and references:
a name, an AMC id, an id or the start of one, wherever an id goes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from scheduler_daemon import catalog, demo, management, sync
from scheduler_daemon.amc.fake.server import FakeAmcServer
from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.migrate import downgrade_to, upgrade_to_head
from scheduler_daemon.db.tables import workflow_schedules
from scheduler_daemon.errors import FieldError, InputError
from scheduler_daemon.references import Kind, resolve
from tests.helpers import Rows

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)

CATALOG = """\
[[accounts]]
name = "Acme US"
account_id = "ENTITY1ACME0001"

[[instances]]
name = "acme-us"
instance_id = "amc1acme0a1"
account = "ENTITY1ACME0001"

[[workflows]]
name = "sales daily"
instance = "acme-us"
amc_workflow_id = "sales-daily"

[[schedules]]
key = "sales"
name = "Sales"
workflow = "sales daily"
cron = "0 9 * * *"
"""


def _ids(engine: Engine, *ids: str) -> list[uuid.UUID]:
    """Schedules with the given ids (to make prefixes collide)."""
    rows = Rows(engine)
    workflow = rows.workflow()
    return [rows.schedule(workflow, id=uuid.UUID(i)) for i in ids]


def test_a_reference_is_a_name_an_id_or_an_unambiguous_id_prefix(engine: Engine) -> None:
    one, two = _ids(
        engine, "abcdef01-1000-4000-8000-000000000001", "abcdef01-2000-4000-8000-000000000002"
    )
    with engine.begin() as conn:
        name = conn.execute(
            text("SELECT name FROM workflow_schedules WHERE id = :id"), {"id": one}
        ).scalar_one()
        assert resolve(conn, Kind.SCHEDULE, name) == one
        assert resolve(conn, Kind.SCHEDULE, str(two)) == two
        assert resolve(conn, Kind.SCHEDULE, str(two).upper()) == two
        assert resolve(conn, Kind.SCHEDULE, "abcdef01-1") == one
        with pytest.raises(FieldError) as ambiguous:
            resolve(conn, Kind.SCHEDULE, "abcdef01")
        assert ambiguous.value.field == "schedule"
        assert str(one) in ambiguous.value.message
        assert str(two) in ambiguous.value.message
        # Fewer than 8 hex digits is not an id prefix: only a name could match.
        with pytest.raises(FieldError, match="no schedule is named 'abcdef0'"):
            resolve(conn, Kind.SCHEDULE, "abcdef0")


def test_a_deleted_schedule_frees_its_name_and_is_not_found(engine: Engine, rows: Rows) -> None:
    first = rows.schedule(name="nightly")
    with engine.begin() as conn:
        management.delete(conn, "nightly", hard=False)
        with pytest.raises(FieldError, match="no schedule is named 'nightly'"):
            resolve(conn, Kind.SCHEDULE, "nightly")
    second = rows.schedule(name="nightly")
    with engine.begin() as conn:
        assert resolve(conn, Kind.SCHEDULE, "nightly") == second != first


def test_the_catalog_is_managed_by_name_and_refuses_to_delete_what_is_used(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        catalog.create(conn, Kind.ACCOUNT, {"name": "Acme", "account_id": "ENTITY1ACME0001"})
        catalog.create(
            conn,
            Kind.INSTANCE,
            {"name": "acme-us", "instance_id": "amc1acme0a1", "account": "Acme"},
        )
        workflow = catalog.create(
            conn,
            Kind.WORKFLOW,
            {
                "name": "sales",
                "instance": "amc1acme0a1",
                "amc_workflow_id": "sales-daily",
                "parameters": {"region": "NA"},
            },
        )
        management.create_schedule(
            conn, NOW, workflow="sales", name="daily", expression="0 9 * * *"
        )
    with engine.begin() as conn:
        catalog.update(conn, Kind.WORKFLOW, "sales", {"amc_workflow_id": "sales-v2"})
        shown = catalog.show(conn, Kind.WORKFLOW, str(workflow)[:8])
        assert (shown["amc_workflow_id"], shown["parameters"], shown["schedules"]) == (
            "sales-v2",
            {"region": "NA"},
            1,
        )
        assert catalog.show(conn, Kind.INSTANCE, "acme-us")["account_name"] == "Acme"
    for kind, reference, user in (
        (Kind.WORKFLOW, "sales", "'daily'"),
        (Kind.INSTANCE, "acme-us", "'sales'"),
        (Kind.ACCOUNT, "Acme", "'acme-us'"),
    ):
        with engine.begin() as conn, pytest.raises(InputError, match=f"still used by 1 .*{user}"):
            catalog.delete(conn, kind, reference)
    with engine.begin() as conn:
        management.delete(conn, "daily", hard=True)
        catalog.delete(conn, Kind.WORKFLOW, "sales")
        catalog.delete(conn, Kind.INSTANCE, "acme-us")
        catalog.delete(conn, Kind.ACCOUNT, "Acme")
        assert catalog.list_rows(conn, Kind.ACCOUNT) == []


@pytest.mark.parametrize(
    ("given", "field", "fragment"),
    [
        ({"name": " ", "account_id": "ENTITY1"}, "name", "not a non-empty string"),
        ({"name": "a", "account_id": "1234"}, "account_id", "not an AMC account"),
        ({"name": "Taken", "account_id": "ENTITY2"}, "name", "another account already has"),
    ],
)
def test_bad_catalog_input_names_the_field_and_changes_nothing(
    engine: Engine, given: dict[str, str], field: str, fragment: str
) -> None:
    with engine.begin() as conn:
        catalog.create(conn, Kind.ACCOUNT, {"name": "Taken", "account_id": "ENTITY1"})
    with engine.begin() as conn, pytest.raises(FieldError) as error:
        catalog.create(conn, Kind.ACCOUNT, given)
    assert (error.value.field, fragment in error.value.message) == (field, True)
    with engine.begin() as conn:
        assert [row["name"] for row in catalog.list_rows(conn, Kind.ACCOUNT)] == ["Taken"]


def test_a_sync_file_declares_the_catalog_and_a_dry_run_changes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        planned = sync.sync(conn, CATALOG, NOW, dry_run=True)
    assert [(kind, name, action) for kind, name, action, _ in planned.catalog] == [
        (Kind.ACCOUNT, "Acme US", "create"),
        (Kind.INSTANCE, "acme-us", "create"),
        (Kind.WORKFLOW, "sales daily", "create"),
    ]
    assert [entry.key for entry in planned.create] == ["sales"]
    with engine.begin() as conn:
        assert catalog.list_rows(conn, Kind.WORKFLOW) == []
        sync.sync(conn, CATALOG, NOW)
    changed = CATALOG.replace('amc_workflow_id = "sales-daily"', 'amc_workflow_id = "v2"')
    with engine.begin() as conn:
        again = sync.sync(conn, changed, NOW)
        assert [action for _, _, action, _ in again.catalog] == ["unchanged", "unchanged", "update"]
        assert again.catalog[2][3] == {"amc_workflow_id": ("sales-daily", "v2")}
        assert catalog.show(conn, Kind.WORKFLOW, "sales daily")["amc_workflow_id"] == "v2"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (('instance = "acme-us"', 'instance = "acme-eu"'), "file:12: instance: no instance is"),
        (('account_id = "ENTITY1ACME0001"', 'account_id = "acme"'), "file:3: account_id: "),
        (('name = "Sales"', 'name = "Sales"\ncolour = "red"'), "file:18: unknown key(s)"),
        (
            (
                "[[instances]]",
                '[[accounts]]\nname = "Acme US"\naccount_id = "ENTITY2"\n\n[[instances]]',
            ),
            "file:6: name: 'Acme US' is already declared at line 2",
        ),
    ],
)
def test_a_bad_catalog_entry_names_its_line_and_key_and_nothing_is_written(
    engine: Engine, change: tuple[str, str], where: str
) -> None:
    with engine.begin() as conn, pytest.raises(InputError) as error:
        sync.sync(conn, CATALOG.replace(*change), NOW)
    assert str(error.value).startswith(where), error.value
    with engine.begin() as conn:
        assert catalog.list_rows(conn, Kind.ACCOUNT) == []


def test_schedule_names_are_unique_in_a_file_and_in_the_database(
    engine: Engine, rows: Rows
) -> None:
    twice = CATALOG + '\n[[schedules]]\nkey = "other"\nname = "Sales"\nworkflow = "sales daily"\n'
    twice += 'cron = "0 10 * * *"\n'
    with (
        engine.begin() as conn,
        pytest.raises(InputError, match="file:23: name: 'Sales' is already used at line 17"),
    ):
        sync.sync(conn, twice, NOW)
    rows.schedule(name="Sales")  # not managed by the file
    with (
        engine.begin() as conn,
        pytest.raises(InputError, match="another schedule already has the name 'Sales'"),
    ):
        sync.sync(conn, CATALOG, NOW)
    with engine.begin() as conn:
        assert "sales daily" not in {row["name"] for row in catalog.list_rows(conn, Kind.WORKFLOW)}
    workflow = rows.workflow()
    with engine.begin() as conn, pytest.raises(FieldError, match="already has the name 'Sales'"):
        management.create_schedule(
            conn, NOW, workflow=workflow, name="Sales", expression="0 9 * * *"
        )


def test_the_demo_will_not_run_anyone_elses_schedules(engine: Engine, rows: Rows) -> None:
    rows.schedule(name="mine", enabled=True, next_run_at=NOW)
    with FakeAmcServer() as amc, pytest.raises(InputError, match="'mine'"):
        demo.seed(engine, amc, NOW)
    with engine.connect() as conn:
        names = conn.execute(workflow_schedules.select()).mappings().all()
    assert [row["name"] for row in names] == ["mine"]


def test_upgrading_to_unique_names_lists_duplicates_and_changes_nothing(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade_to_head(engine)
        downgrade_to(engine, "0008")
        rows = Rows(engine)
        first = rows.workflow(name="sales")
        second = rows.workflow(name="sales")
        nameless = rows.account(name=None, account_id="ENTITY9")
        with pytest.raises(InputError) as error:
            upgrade_to_head(engine)
        assert f"workflows named 'sales': {first}, {second}" in str(error.value)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0008"
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE workflows SET name = 'sales 2' WHERE id = :id"), {"id": second}
            )
        upgrade_to_head(engine)
        with engine.connect() as conn:
            assert resolve(conn, Kind.ACCOUNT, "ENTITY9") == nameless
            name = conn.execute(
                text("SELECT name FROM amc_accounts WHERE id = :id"), {"id": nameless}
            ).scalar()
        assert name == "ENTITY9"  # an unnamed account is named by its AMC id
    finally:
        engine.dispose()
