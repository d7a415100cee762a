"""The Dagster side for real: definitions load, qbo_sync materialises a realm partition
against the emulator, failures are clear, and the sensor registers new connections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.definitions import defs
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.sensors import realm_partitions_sensor
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_with_the_three_assets_and_the_job():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
        "customers",
        "invoices",
        "invoice_lines",
    }
    job = defs.resolve_job_def("qbo_sync")
    assert job.partitions_def == realm_partitions


def test_qbo_sync_materialises_the_realm_partition(connect):
    company = connect(customers=150, invoices=260)
    with dg.instance_for_test() as instance:
        [run] = sync_realms([company.realm_id], instance=instance)
        assert run.success, run.error
        materialized = {
            key.to_user_string(): instance.get_latest_materialization_event(key)
            for key in defs.resolve_asset_graph().get_all_asset_keys()
        }
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
        for name, event in materialized.items():
            assert event is not None, name
            assert event.dagster_event.partition == company.realm_id
            metadata = event.asset_materialization.metadata
            assert metadata["dagster/row_count"].value == wh.count(name, company.realm_id)


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
    assert len(attempts) == 2  # customers and invoices once each: no retries


def test_sensor_adds_new_connections_as_partitions_and_requests_their_first_sync(connect):
    company = connect(customers=5, invoices=5)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        result = realm_partitions_sensor(context)
        assert [r.partition_key for r in result.run_requests] == [company.realm_id]
        assert result.dynamic_partitions_requests[0].partition_keys == [company.realm_id]
        instance.add_dynamic_partitions(realm_partitions.name, [company.realm_id])
        again = realm_partitions_sensor(dg.build_sensor_context(instance=instance))
        assert again.run_requests == []


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
        result = realm_partitions_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert "QBO_TOKEN_KEY is not set" in result.skip_message
