"""A company's life after its first sync, as an operator runs it: revoked, its partition
retired from the schedules and sensors while its rows stay, then purged for good with
`qbo-pipeline realms purge`, which asks first; and reconnected, synced again."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from qbo_pipeline.commands.demo_run import connect_through_oauth
from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.ticks import schedule_tick, sensor_tick

pytestmark = pytest.mark.slow


def cli(company, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args],
        env={**clean_env(), **company.env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def apply(result: dg.SensorResult, instance: dg.DagsterInstance) -> None:
    """What the daemon does with a sensor's partition requests."""
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def test_a_revoked_company_stops_syncing_keeps_its_rows_and_is_purged_on_confirmation(
    connect, warehouse_url: str, tmp_path: Path
) -> None:
    company = connect(customers=12, invoices=20, warehouse_url=warehouse_url)
    realm = company.realm_id
    with dg.instance_for_test() as instance:
        apply(sensor_tick("realm_partitions_sensor", instance), instance)
        [run] = sync_realms([realm], instance=instance)
        assert run.success, run.error

        refused = cli(company, "realms", "purge", "--realm", realm, "--yes")
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            f"qbo-pipeline: realm {realm} is still connected (active); revoke it first: "
            f"`qbo-pipeline auth revoke --realm {realm}`"
        )

        revoked = cli(company, "auth", "revoke", "--realm", realm)
        assert revoked.returncode == 0, revoked.stderr
        retire = sensor_tick("realm_partitions_sensor", instance)
        assert retire.run_requests == []
        [delete] = retire.dynamic_partitions_requests
        assert isinstance(delete, dg.DeleteDynamicPartitionsRequest)
        assert list(delete.partition_keys) == [realm]
        apply(retire, instance)
        assert instance.get_dynamic_partitions(realm_partitions.name) == []
        tick = schedule_tick("qbo_incremental_schedule", instance, datetime.now(UTC))
        assert isinstance(tick, dg.SkipReason)

        with company.runtime.warehouse() as warehouse:
            kept = warehouse.realm_rows(realm)
        assert kept["invoices"] == 20 and kept["customers"] == 12 and kept["_sync_state"] > 0

        declined = cli(company, "realms", "purge", "--realm", realm, stdin="12345\n")
        assert declined.returncode == 1
        assert f"Type the realm id ({realm}) to confirm" in declined.stderr
        assert "nothing deleted" in declined.stderr
        with company.runtime.warehouse() as warehouse:
            assert warehouse.realm_rows(realm) == kept

        purged = cli(company, "realms", "purge", "--realm", realm, stdin=f"{realm}\n")
        assert purged.returncode == 0, purged.stderr
        total = sum(kept.values())
        assert purged.stdout.strip().startswith(
            f"purged realm {realm}: {total:,} rows in {len(kept)} tables, "
        )
        with company.runtime.warehouse() as warehouse:
            assert warehouse.realm_rows(realm) == {}
        assert company.runtime.store.find(realm) is None
        assert company.runtime.store.events(realm_id=realm)  # the audit trail stays
        again = cli(company, "realms", "purge", "--realm", realm)
        assert again.returncode == 0 and "nothing is stored" in again.stderr

        # Reconnected, the company gets its partition and a first sync again.
        assert connect_through_oauth(company.runtime) == realm
        back = sensor_tick("realm_partitions_sensor", instance)
        assert [r.partition_key for r in back.run_requests] == [realm]
        assert back.run_requests[0].run_key != f"first-sync-{realm}"


def test_purge_refuses_a_bad_realm_id_in_one_line(connect) -> None:
    company = connect(customers=2, invoices=2)
    completed = cli(company, "realms", "purge", "--realm", "../etc")
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("qbo-pipeline: --realm must be the company id")
