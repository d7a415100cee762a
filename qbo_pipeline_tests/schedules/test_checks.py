"""The asset checks for real: qbo_sync runs them after its assets against the emulator and a
real warehouse; they pass after a sync, and fail with one line when the warehouse is
broken behind the pipeline's back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import pytest

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.definitions import defs
from qbo_pipeline.defs import checks
from qbo_pipeline.defs.check_keys import FRESHNESS_CHECK, LIVE_ROWS_CHECK, ORPHAN_LINES_CHECK
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.schedules import overdue_at
from qbo_pipeline.quickbooks.catalog import CUSTOMER, ENTITIES, INVOICE
from qbo_pipeline.warehouse.schema import tables
from qbo_pipeline_tests.schedules.runs import api_requests, check_results, run_checks
from qbo_pipeline_tests.ticks import sensor_tick

CUSTOMERS_COUNT = f"qbo/customers:{LIVE_ROWS_CHECK}"
INVOICES_COUNT = f"qbo/invoices:{LIVE_ROWS_CHECK}"
ORPHAN_LINES = f"qbo/invoice_lines:{ORPHAN_LINES_CHECK}"
COUNT_KEYS = [
    dg.AssetCheckKey(dg.AssetKey(["qbo", entity.table]), LIVE_ROWS_CHECK) for entity in ENTITIES
]
CUSTOMER_KEY = dg.AssetKey(["qbo", "customers"])
ORPHAN_KEY = dg.AssetCheckKey(dg.AssetKey(["qbo", "invoice_lines"]), ORPHAN_LINES_CHECK)
ORPHAN_KEYS = [  # one per lines table
    dg.AssetCheckKey(dg.AssetKey(["qbo", entity.lines.table]), ORPHAN_LINES_CHECK)
    for entity in ENTITIES
    if entity.lines is not None
]
FRESHNESS_KEYS = [  # customers first
    dg.AssetCheckKey(dg.AssetKey(["qbo", table.name]), FRESHNESS_CHECK)
    for table in tables(ENTITIES)
    if not table.name.startswith("_")
]


def synced(company, instance: dg.DagsterInstance, **options) -> dict[str, dg.AssetCheckEvaluation]:
    [run] = sync_realms([company.realm_id], instance=instance, **options)
    assert run.success, run.error
    return check_results(instance, run.run_id)


def test_every_table_has_its_checks_and_qbo_sync_runs_them():
    every = {key.to_user_string() for key in defs.resolve_asset_graph().asset_check_keys}
    keys = {key for key in every if key.startswith("qbo/")}  # the rest are dbt's tests
    assert all(key.startswith("analytics/") for key in every - keys)
    assert keys == {
        *(key.to_user_string() for key in COUNT_KEYS + ORPHAN_KEYS + FRESHNESS_KEYS),
    }
    assert {CUSTOMERS_COUNT, INVOICES_COUNT, f"qbo/tax_rates:{LIVE_ROWS_CHECK}"} <= keys
    job = defs.resolve_job_def("qbo_sync")
    assert {key.to_user_string() for key in job.asset_layer.asset_graph.asset_check_keys} == keys


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_after_a_sync_every_check_passes_and_says_so(connect, backend, request, tmp_path):
    url = (
        f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        if backend == "duckdb"
        else request.getfixturevalue("postgres_url")
    )
    company = connect(customers=8, invoices=12, warehouse_url=url)
    with dg.instance_for_test() as instance:
        results = synced(company, instance)
    assert set(results) == {
        key.to_user_string() for key in COUNT_KEYS + ORPHAN_KEYS + FRESHNESS_KEYS
    }
    assert {name: result.passed for name, result in results.items() if not result.passed} == {}
    realm = company.realm_id
    customers = results[CUSTOMERS_COUNT]
    assert customers.partition == realm
    assert customers.metadata["qbo_count"].value == 8
    assert customers.description.startswith(
        f"qbo.customers for realm {realm}: 8 rows (inactive included) created before "
    )
    assert results[INVOICES_COUNT].description.startswith(
        f"qbo.invoices for realm {realm}: 12 live rows created before "
    )
    lines = results[ORPHAN_LINES]
    assert lines.partition == realm
    assert lines.description.startswith(f"qbo.invoice_lines for realm {realm}: each of the ")
    for result in results.values():
        assert "\n" not in result.description


def test_the_count_costs_one_api_call_per_entity_and_ignores_changes_after_the_bound(connect):
    """Counting rows by creation time: rows updated (or created) after the sync's bound
    leave the comparison alone, so a busy company does not fail the check."""
    company = connect(customers=6, invoices=8)
    with dg.instance_for_test() as instance:
        synced(company, instance)
        httpx.post(
            f"{company.emulator.base_url}/_emulator/clock", json={"advance_seconds": 5}
        ).raise_for_status()
        changes = httpx.post(
            f"{company.emulator.base_url}/_emulator/companies/{company.realm_id}/mutate",
            json={"creates": 2, "updates": 4, "seed": 7},
        )
        changes.raise_for_status()
        before = api_requests(company)
        results = run_checks(instance, company.realm_id, COUNT_KEYS)
        assert api_requests(company) - before == len(COUNT_KEYS)  # one per entity
    assert results[CUSTOMERS_COUNT].passed, results[CUSTOMERS_COUNT].description
    assert results[INVOICES_COUNT].passed, results[INVOICES_COUNT].description


def oldest(warehouse, table: str, realm_id: str) -> str:
    """The row a later incremental sync will not read again (it is far before the cursor)."""
    [(entity_id,)] = warehouse.query(
        f"SELECT id FROM qbo.{table} WHERE realm_id = $1 ORDER BY updated_at, id LIMIT 1",
        [realm_id],
    )
    return entity_id


def test_a_row_lost_from_the_warehouse_fails_the_count_until_a_full_refresh(connect):
    company = connect(customers=6, invoices=10)
    realm = company.realm_id
    with dg.instance_for_test() as instance:
        synced(company, instance)
        with company.runtime.warehouse() as warehouse:
            lost = oldest(warehouse, "invoices", realm)
            warehouse.query(
                "DELETE FROM qbo.invoices WHERE realm_id = $1 AND id = $2", [realm, lost]
            )

        incremental = synced(company, instance)  # the next scheduled run sees it
        failed = incremental[INVOICES_COUNT]
        assert not failed.passed
        assert failed.severity == dg.AssetCheckSeverity.ERROR
        assert failed.description.startswith(
            f"qbo.invoices for realm {realm}: 9 live rows, QBO counts 10 created before "
        )
        assert failed.description.endswith("Z; run a full refresh of the realm")
        assert failed.metadata["difference"].value == -1
        # The lost invoice's lines are still stored: orphans, named in the line check.
        orphans = incremental[ORPHAN_LINES]
        assert not orphans.passed
        assert f"name an Invoice missing from qbo.invoices (e.g. {lost})" in orphans.description
        assert orphans.metadata["example_parent_ids"].value == [lost]
        assert incremental[CUSTOMERS_COUNT].passed

        repaired = synced(company, instance, full_refresh=True)
    assert repaired[INVOICES_COUNT].passed, repaired[INVOICES_COUNT].description
    assert repaired[ORPHAN_LINES].passed, repaired[ORPHAN_LINES].description


def test_a_line_without_its_invoice_fails_the_line_check_without_an_api_call(connect):
    company = connect(customers=5, invoices=6)
    realm = company.realm_id
    with dg.instance_for_test() as instance:
        synced(company, instance)
        with company.runtime.warehouse() as warehouse:
            moved = oldest(warehouse, "invoices", realm)
            [(lines,)] = warehouse.query(
                "SELECT count(*) FROM qbo.invoice_lines WHERE realm_id = $1 AND invoice_id = $2",
                [realm, moved],
            )
            warehouse.query(
                "UPDATE qbo.invoice_lines SET invoice_id = 'gone-404' "
                "WHERE realm_id = $1 AND invoice_id = $2",
                [realm, moved],
            )
        before = api_requests(company)
        [result] = run_checks(instance, realm, [ORPHAN_KEY]).values()
        assert api_requests(company) == before
    assert not result.passed
    assert result.description == (
        f"qbo.invoice_lines for realm {realm}: {lines} lines name an Invoice missing from "
        "qbo.invoices (e.g. gone-404); run a full refresh of the realm"
    )
    assert result.metadata["orphan_lines"].value == lines


def test_a_realm_that_stopped_syncing_is_overdue_by_name(connect, monkeypatch):
    company = connect(customers=5, invoices=5)
    realm = company.realm_id
    with dg.instance_for_test() as instance:
        results = synced(company, instance)
        fresh = results[f"qbo/customers:{FRESHNESS_CHECK}"]
        assert fresh.passed, fresh.description
        synced_at = datetime.fromtimestamp(
            instance.get_latest_materialization_event(CUSTOMER_KEY).timestamp, UTC
        )
        assert fresh.metadata["dagster/fresh_until_timestamp"].value == pytest.approx(
            overdue_at("0 * * * *", synced_at).timestamp()
        )

        later = datetime.now(UTC) + timedelta(hours=3)
        monkeypatch.setattr(checks, "_now", lambda: later)
        stale = run_checks(instance, realm, FRESHNESS_KEYS)
    customers = stale[f"qbo/customers:{FRESHNESS_CHECK}"]
    assert not customers.passed
    assert customers.description == (
        f"qbo.customers: realm {realm} last synced 3 h 0 min ago, past two runs of "
        "QBO_SYNC_CRON '0 * * * *'; see those realms' qbo_sync runs"
    )
    assert customers.metadata["overdue_realms"].value == [realm]
    assert not stale[f"qbo/invoice_lines:{FRESHNESS_CHECK}"].passed
    # Tax rates are read in full once a day (CDC cannot track them): not overdue yet.
    rates = stale[f"qbo/tax_rates:{FRESHNESS_CHECK}"]
    assert rates.passed, rates.description
    assert rates.metadata["dagster/fresh_until_timestamp"].value == pytest.approx(
        overdue_at("0 * * * *", synced_at + timedelta(hours=24)).timestamp(), abs=5
    )


def test_a_connected_realm_never_synced_is_overdue_and_a_reconnecting_one_is_not(
    connect, monkeypatch
):
    company = connect(customers=5, invoices=5)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(realm_partitions.name, [company.realm_id])
        [now] = run_checks(instance, company.realm_id, FRESHNESS_KEYS[:1]).values()
        assert now.passed  # just connected: its first sync is not due yet

        monkeypatch.setattr(checks, "_now", lambda: datetime.now(UTC) + timedelta(hours=3))
        [never] = run_checks(instance, company.realm_id, FRESHNESS_KEYS[:1]).values()
        assert not never.passed
        assert never.description.startswith(f"qbo.customers: realm {company.realm_id} never synced")

        company.runtime.store.mark_needs_reauth(company.realm_id, "invalid_grant")
        [waiting] = run_checks(instance, company.realm_id, FRESHNESS_KEYS[:1]).values()
    assert waiting.passed  # token_health_sensor alerts about it; no sync is expected
    assert waiting.metadata["realms_checked"].value == 0


def test_the_freshness_sensor_runs_the_checks_only_when_they_could_have_become_overdue(
    connect,
):
    company = connect(customers=5, invoices=5)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(realm_partitions.name, [company.realm_id])
        request_ = sensor_tick("qbo_freshness_sensor", instance)  # never evaluated yet
        assert isinstance(request_, dg.RunRequest)
        assert set(request_.asset_check_keys) == set(FRESHNESS_KEYS)
        # Launched as the daemon would: the checks alone, in no partition.
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_check_selection=set(request_.asset_check_keys)
        )
        result = job.execute_in_process(instance=instance, tags=request_.tags)
        assert result.success
        assert all(check.passed for check in check_results(instance, result.run_id).values())
        again = sensor_tick("qbo_freshness_sensor", instance)
    assert isinstance(again, dg.SkipReason)
    assert "not yet overdue" in again.skip_message


def test_a_webhook_run_asks_for_the_line_check_only():
    from qbo_pipeline.defs.webhook_sensor import _run_request
    from qbo_pipeline.inbox import PendingWork

    with dg.instance_for_test() as instance:
        request_ = _run_request(
            instance,
            "9130350000000001",
            [
                PendingWork("9130350000000001", CUSTOMER.name, 1, 4),
                PendingWork("9130350000000001", INVOICE.name, 2, 7),
            ],
        )
        customers_only = _run_request(
            instance, "9130350000000001", [PendingWork("9130350000000001", CUSTOMER.name, 1, 4)]
        )
    assert list(request_.asset_check_keys) == [ORPHAN_KEY]
    assert list(customers_only.asset_check_keys) == []
