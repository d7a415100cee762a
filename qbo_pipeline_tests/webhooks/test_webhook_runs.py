"""From a webhook to the warehouse: qbo_webhook_sensor turns pending events into one run
per realm, the run reads only the Ids they name, and marks them processed once committed."""

from __future__ import annotations

import dagster as dg
import httpx
import pytest

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.definitions import defs
from qbo_pipeline.defs.assets import SYNC_OP, table_key
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals
from qbo_pipeline_tests.ticks import sensor_tick
from qbo_pipeline_tests.webhooks.deliveries import Change, cloudevents, deliver

SENSOR = "qbo_webhook_sensor"


def requests_made(receiving) -> dict:
    stats = httpx.get(f"{receiving.company.emulator.base_url}/_emulator/stats").json()
    return stats["realms"].get(receiving.realm_id, {"requests": 0, "cdc_calls": 0})


def run(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Launch a sensor's run request in this process, as the daemon would launch it."""
    job = defs.resolve_job_def("qbo_sync")
    return job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        run_config=request.run_config,
        asset_selection=request.asset_selection,
        tags={**request.tags, "dagster/run_key": request.run_key},
        raise_on_error=False,
    )


def materialized(outcome: dg.ExecuteInProcessResult, table: str) -> list[dg.AssetMaterialization]:
    """The run's materialisations of one table (every table comes from the one sync step)."""
    return [
        m
        for m in outcome.asset_materializations_for_node(SYNC_OP)
        if m.asset_key == table_key(table)
    ]


def change_company(company) -> list[Change]:
    """An update, a create and a delete through the accounting API, as another app would."""
    customer = company.entities("Customer")[2]
    invoice = company.entities("Invoice")[4]
    updated = company.api(
        "POST",
        "customer",
        json={"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True,
              "DisplayName": "Renamed by a webhook test"},
    )  # fmt: skip
    created = company.api(
        "POST",
        "invoice",
        json={"CustomerRef": {"value": customer["Id"]},
              "Line": [{"Amount": 40.0, "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]},
    )  # fmt: skip
    deleted = company.api(
        "POST",
        "invoice?operation=delete",
        json={"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]},
    )
    for answer in (updated, created, deleted):
        assert answer.status_code == 200, answer.text
    return [
        Change("Customer", customer["Id"], "updated"),
        Change("Invoice", created.json()["Invoice"]["Id"], "created"),
        Change("Invoice", invoice["Id"], "deleted"),
    ]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_webhook_run_reads_only_the_changed_ids_and_marks_the_events_processed(
    receiving_factory, store, request
):
    options = {"customers": 20, "invoices": 30}
    if store == "postgres":
        options["database_url"] = request.getfixturevalue("postgres_url")
    receiving = receiving_factory(**options)
    company = receiving.company
    with dg.instance_for_test() as instance:
        [first] = sync_realms([receiving.realm_id], instance=instance)
        assert first.success, first.error
        changes = change_company(company)
        assert deliver(receiving.url, cloudevents(receiving.realm_id, changes)).status_code == 200

        before = requests_made(receiving)
        result = sensor_tick(SENSOR, instance)
        [request_] = result.run_requests
        assert request_.partition_key == receiving.realm_id
        assert {key.to_user_string() for key in request_.asset_selection} == {
            "qbo/customers",
            "qbo/invoices",
            "qbo/invoice_lines",
        }
        outcome = run(instance, request_)
        assert outcome.success
        after = requests_made(receiving)

        # One query per entity: the three Ids, nothing scanned, no CDC.
        assert after["requests"] - before["requests"] == 2
        assert after["cdc_calls"] == before["cdc_calls"]
        with company.runtime.warehouse() as warehouse:
            assert_warehouse_equals(warehouse, receiving.realm_id, company.entities)
            [(deleted_at,)] = warehouse.query(
                "SELECT deleted_at FROM qbo.invoices WHERE realm_id = $1 AND id = $2",
                [receiving.realm_id, changes[2].entity_id],
            )
        assert deleted_at is not None
        invoices = materialized(outcome, "invoices")
        assert {m.metadata["mode"].value for m in invoices if "mode" in m.metadata} == {"webhook"}
        assert receiving.counts() == {"processed": 3}
        assert isinstance(sensor_tick(SENSOR, instance), dg.SkipReason)


def test_a_burst_for_one_realm_is_one_run_and_a_realm_with_a_run_under_way_waits(receiving):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(realm_partitions.name, [receiving.realm_id])
        for number in range(1, 11):
            body = cloudevents(receiving.realm_id, [Change("Customer", str(number), "updated")])
            deliver(receiving.url, body)
        [request_] = sensor_tick(SENSOR, instance).run_requests
        assert list(request_.asset_selection) == [dg.AssetKey(["qbo", "customers"])]

        under_way = instance.create_run_for_job(  # a scheduled sync, say, still running
            defs.resolve_job_def("qbo_sync"),
            tags={"dagster/partition": receiving.realm_id},
            status=dg.DagsterRunStatus.STARTED,
        )
        waiting = sensor_tick(SENSOR, instance)
        assert isinstance(waiting, dg.SkipReason)
        assert "a run is under way" in waiting.skip_message
        instance.report_run_failed(under_way)
        assert len(sensor_tick(SENSOR, instance).run_requests) == 1


def test_a_failed_run_leaves_its_events_pending_and_the_next_tick_tries_again(
    receiving, monkeypatch
):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(realm_partitions.name, [receiving.realm_id])
        deliver(
            receiving.url, cloudevents(receiving.realm_id, [Change("Customer", "2", "updated")])
        )
        [first] = sensor_tick(SENSOR, instance).run_requests
        monkeypatch.setenv("QBO_WAREHOUSE_URL", "ftp://not-a-warehouse")
        assert not run(instance, first).success
        assert receiving.counts() == {"pending": 1}

        monkeypatch.delenv("QBO_WAREHOUSE_URL")
        [second] = sensor_tick(SENSOR, instance).run_requests
        assert second.run_key != first.run_key  # a run key is never launched twice
        assert run(instance, second).success
        assert receiving.counts() == {"processed": 1}


def test_past_the_by_id_limit_the_run_syncs_the_entity_incrementally(receiving):
    with dg.instance_for_test() as instance:
        [first] = sync_realms([receiving.realm_id], instance=instance)
        assert first.success, first.error
        changes = [Change("Customer", str(number), "updated") for number in range(1, 6)]
        deliver(receiving.url, cloudevents(receiving.realm_id, changes))
        [request_] = sensor_tick(SENSOR, instance).run_requests
        config = request_.run_config["ops"][SYNC_OP]["config"]
        request_ = request_.with_replaced_attrs(
            run_config={"ops": {SYNC_OP: {"config": {**config, "by_id_limit": 4}}}}
        )
        outcome = run(instance, request_)
        assert outcome.success
        [customers] = materialized(outcome, "customers")
        assert customers.metadata["mode"].value == "incremental"
        assert customers.metadata["webhook_events"].value == 5
        assert receiving.counts() == {"processed": 5}
