"""The Dagster side for real: definitions load, qbo_sync materialises a realm partition
against the emulator, failures are clear, and the sensor registers new connections."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.definitions import defs
from qbo_pipeline.defs.assets import GROUP
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.quickbooks.catalog import ENTITIES
from qbo_pipeline.quickbooks.reports import REPORTS
from qbo_pipeline.warehouse.derived import VIEWS
from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse
from qbo_pipeline.warehouse.schema import tables
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals
from qbo_pipeline_tests.ticks import sensor_tick

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_with_an_asset_per_warehouse_table_and_the_job():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    synced = {f"qbo/{table.name}" for table in tables(ENTITIES) if table.name[0] != "_"}
    reports = {f"qbo/reports/{report.table_name}" for report in REPORTS}
    # dbt's models, and the tables they read that no asset writes (views, report tables)
    models = {key for key in keys if key.startswith("analytics/")}
    read_only = {f"qbo/{view.name}" for view in VIEWS} | {"qbo/reports", "qbo/report_lines"}
    assert keys - models == synced | reports | read_only
    assert {"analytics/stg_qbo__invoices", "analytics/general_ledger"} <= models
    assert not any(graph.get(dg.AssetKey.from_user_string(k)).is_materializable for k in read_only)
    assert {"qbo/customers", "qbo/invoice_lines", "qbo/accounts", "qbo/tax_rates"} <= keys
    job = defs.resolve_job_def("qbo_sync")
    assert job.partitions_def == realm_partitions
    assert {
        key.to_user_string() for key in job.asset_layer.asset_graph.get_all_asset_keys()
    } >= synced
    for key in map(dg.AssetKey.from_user_string, synced | reports):
        node = graph.get(key)
        assert node.kinds == {"quickbooks", "duckdb"}  # the resource's warehouse, by default
        table = "report_lines" if key.to_user_string() in reports else key.path[-1]
        assert node.metadata["dagster/table_name"] == f"qbo.{table}"
        policy = defs.resolve_assets_def(key).op.retry_policy
        # Retried runs of many realms that failed together must not all return together.
        assert policy is not None and policy.jitter is not None


def test_each_assets_column_schema_is_its_warehouse_table_with_descriptions(tmp_path):
    graph = defs.resolve_asset_graph()
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as warehouse:
        warehouse.ensure_schema()
        stored = warehouse.query(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'qbo' AND NOT starts_with(table_name, '_')"
        )
    in_warehouse: dict[str, list[tuple[str, str]]] = {}
    for table, column, comment in stored:
        in_warehouse.setdefault(table, []).append((column, comment))
    shown = {
        graph.get(key).metadata["dagster/table_name"].removeprefix("qbo."): [
            (column.name, column.description)
            for column in graph.get(key).metadata["dagster/column_schema"].columns
        ]
        for key in graph.get_all_asset_keys()
        if key.path[0] == "qbo" and graph.get(key).is_materializable
    }
    assert shown == {table: in_warehouse[table] for table in shown}
    assert set(in_warehouse) - set(shown) == {  # no asset of their own
        "reports",  # the report assets' answers, as QBO gave them
        *(view.name for view in VIEWS),  # read out of the tables' raw JSON
    }
    assert dict(shown["invoices"])["balance"].startswith("What is still unpaid")


def row_counts(instance: dg.DagsterInstance, realm_id: str) -> dict[str, int]:
    """Each asset's `dagster/row_count` in its latest materialisation (of the realm), by
    the table the asset is."""
    counts = {}
    synced = dg.AssetSelection.groups(GROUP).resolve(defs.resolve_asset_graph())
    for key in synced:
        event = instance.get_latest_materialization_event(key)
        assert event is not None, key
        assert event.dagster_event.partition == realm_id
        counts[key.path[-1]] = event.asset_materialization.metadata["dagster/row_count"].value
    return counts


def test_qbo_sync_materialises_the_realm_partition(connect):
    company = connect(customers=150, invoices=260)
    # What QuickBooks holds, by the emulator's own count: every element of a
    # transaction's Line array is a row of its lines table, sub-total lines included.
    in_qbo = {}
    for entity in ENTITIES:
        rows = company.entities(entity.name)
        in_qbo[entity.table] = len(rows)
        if entity.lines is not None:
            field = entity.lines.field
            in_qbo[entity.lines.table] = sum(len(row.get(field, [])) for row in rows)
    assert in_qbo["customers"] == 150 and in_qbo["invoices"] == 260
    assert in_qbo["invoice_lines"] == company.summary()["Invoice"]["line_count"]

    with dg.instance_for_test() as instance:
        [first] = sync_realms([company.realm_id], instance=instance)
        assert first.success, first.error
        after_first = row_counts(instance, company.realm_id)
        # A second run loads nothing new: the count is the table's, not the run's.
        [second] = sync_realms([company.realm_id], instance=instance)
        assert second.success, second.error
        after_second = row_counts(instance, company.realm_id)
    assert after_first == in_qbo
    assert after_second == in_qbo
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def test_a_revoked_grant_fails_the_run_at_once_with_a_reconnect_hint(connect):
    company = connect(customers=10, invoices=10)
    company.runtime.store.mark_needs_reauth(company.realm_id, "invalid_grant")
    with dg.instance_for_test() as instance:
        [run] = sync_realms([company.realm_id], instance=instance)
        attempts = [
            e
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
        ]
    assert not run.success
    assert "reconnect" in run.error.lower()
    assert company.realm_id in run.error
    assert len(attempts) == 1  # the one sync step, once: no retries


def test_sensor_adds_new_connections_as_partitions_and_requests_their_first_sync(connect):
    company = connect(customers=5, invoices=5)
    with dg.instance_for_test() as instance:
        result = sensor_tick("realm_partitions_sensor", instance)
        assert [r.partition_key for r in result.run_requests] == [company.realm_id]
        assert result.dynamic_partitions_requests[0].partition_keys == [company.realm_id]
        instance.add_dynamic_partitions(realm_partitions.name, [company.realm_id])
        again = sensor_tick("realm_partitions_sensor", instance)
        assert again.run_requests == []


def test_sensor_ticks_leave_no_connection_pool_behind(connect, postgres_url):
    """The daemon evaluates both sensors every minute for weeks: a pool (worker threads,
    connections) left by each tick would pile up until the daemon dies."""
    connect(customers=5, invoices=5, database_url=postgres_url)

    def pool_threads() -> int:
        return sum(t.name.startswith("QBO_DATABASE_URL") for t in threading.enumerate())

    before = pool_threads()  # the test's own connection to the store has a pool
    with dg.instance_for_test() as instance:
        for _ in range(5):
            sensor_tick("realm_partitions_sensor", instance)
            sensor_tick("token_health_sensor", instance)
    assert pool_threads() == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["dg", "check", "defs"],
        ["dagster", "definitions", "validate", "-w", "workspace.yaml"],
    ],
)
def test_dagster_command_line_validates_the_definitions(command, tmp_path):
    binary = Path(sys.executable).parent / command[0]
    completed = subprocess.run(
        [str(binary), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": f"{binary.parent}:/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_sensor_skips_with_the_reason_when_the_vault_cannot_be_read(tmp_path, monkeypatch):
    for name in ("QBO_TOKEN_KEY", "QBO_TOKEN_KEYS", "QBO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QBO_STATE_DIR", str(tmp_path))
    with dg.instance_for_test() as instance:
        result = sensor_tick("realm_partitions_sensor", instance)
    assert isinstance(result, dg.SkipReason)
    assert "QBO_TOKEN_KEY is not set" in result.skip_message


def test_an_entity_that_fails_leaves_the_others_written_and_named(connect, fixtures_dir, tmp_path):
    """Entities sync side by side in the one step: an invoice whose tax total is not a number
    fails the run with a line naming it, while the customers are written and materialised."""
    records = [json.loads(line) for line in (fixtures_dir / "qbo_sandbox_records.jsonl").open()]
    invoice = next(r["data"] for r in records if r["stream"] == "invoices")
    invoice.setdefault("TxnTaxDetail", {})["TotalTax"] = "twelve"
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    company = connect(data=data)
    customers = len(company.entities("Customer"))
    with dg.instance_for_test() as instance:
        [run] = sync_realms([company.realm_id], instance=instance)
        written = instance.get_latest_materialization_event(dg.AssetKey(["qbo", "customers"]))
        invoices = instance.get_latest_materialization_event(dg.AssetKey(["qbo", "invoices"]))
    assert not run.success
    assert "twelve" in run.error and "TotalTax" in run.error
    assert written is not None and written.dagster_event.partition == company.realm_id
    assert invoices is None
    with company.runtime.warehouse() as wh:
        assert wh.count("customers", company.realm_id) == customers
        assert wh.count("invoices", company.realm_id) == 0
