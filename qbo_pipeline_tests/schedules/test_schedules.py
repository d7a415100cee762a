"""The schedules' ticks against a real instance and a connected company: one run per realm
with a key of its own, busy realms left for later, the crons from the environment."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.definitions import defs
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.schedules import (
    build_incremental_schedule,
    overdue_at,
    reconcile_cron,
    sync_cron,
)
from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.quickbooks.catalog import ENTITIES
from qbo_pipeline_tests.schedules.runs import api_requests, check_results
from qbo_pipeline_tests.schedules.test_checks import oldest
from qbo_pipeline_tests.ticks import schedule_tick

ROOT = Path(__file__).resolve().parents[2]
INCREMENTAL = "qbo_incremental_schedule"
RECONCILIATION = "qbo_reconciliation_schedule"
TEN_O_CLOCK = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_both_schedules_run_by_default_in_utc_on_their_default_crons():
    incremental = defs.resolve_schedule_def(INCREMENTAL)
    reconciliation = defs.resolve_schedule_def(RECONCILIATION)
    assert (incremental.cron_schedule, reconciliation.cron_schedule) == ("0 * * * *", "30 3 * * *")
    for schedule in (incremental, reconciliation):
        assert schedule.job_name == "qbo_sync"
        assert schedule.execution_timezone == "UTC"
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def under_way(instance: dg.DagsterInstance, realm_id: str) -> dg.DagsterRun:
    """A qbo_sync run of the realm still running (a long full read, say)."""
    return instance.create_run_for_job(
        defs.resolve_job_def("qbo_sync"),
        tags={"dagster/partition": realm_id},
        status=dg.DagsterRunStatus.STARTED,
    )


def test_a_tick_requests_one_run_per_realm_under_a_key_of_its_own_time(connect):
    company = connect(customers=5, invoices=5)
    realm = company.realm_id
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(realm_partitions.name, [realm])
        first = schedule_tick(INCREMENTAL, instance, TEN_O_CLOCK)
        again = schedule_tick(INCREMENTAL, instance, TEN_O_CLOCK)  # the same tick, re-evaluated
        next_hour = schedule_tick(INCREMENTAL, instance, TEN_O_CLOCK + timedelta(hours=1))
    [request_] = first
    assert request_.partition_key == realm
    assert request_.run_key == f"incremental-{realm}-2026-11-30T10:00Z"
    assert request_.run_config == {}  # incremental: the assets' defaults
    assert [r.run_key for r in again] == [request_.run_key]  # never a second run
    assert [r.run_key for r in next_hour] == [f"incremental-{realm}-2026-11-30T11:00Z"]


def test_an_hourly_run_of_an_unchanged_company_costs_one_call(connect):
    """Every call counts against the customer's monthly Intuit allowance: an hourly run
    asks CDC once for all its entities, and leaves the COUNT check to the nightly
    reconciliation."""
    company = connect(customers=30, invoices=40)
    realm = company.realm_id
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(realm_partitions.name, [realm])
        [first] = sync_realms([realm], instance=instance)
        assert first.success, first.error
        before = api_requests(company)
        [request_] = schedule_tick(INCREMENTAL, instance, TEN_O_CLOCK)
        job = defs.resolve_job_def("qbo_sync").get_subset(
            asset_selection=set(request_.asset_selection),
            asset_check_selection=set(request_.asset_check_keys),
        )
        result = job.execute_in_process(
            instance=instance,
            partition_key=request_.partition_key,
            tags={"dagster/run_key": request_.run_key},
        )
        assert result.success
        checks = check_results(instance, result.run_id)
    assert api_requests(company) - before == 1
    assert {key.split(":")[1] for key in checks} == {"lines_have_their_parent",
                                                      "realms_synced_recently"}  # fmt: skip
    assert all(check.passed for check in checks.values())


def test_a_realm_with_a_run_under_way_or_no_active_connection_is_skipped_with_the_reason(
    connect,
):
    company = connect(customers=5, invoices=5)
    realm = company.realm_id
    with dg.instance_for_test() as instance:
        skipped = schedule_tick(INCREMENTAL, instance, TEN_O_CLOCK)
        assert isinstance(skipped, dg.SkipReason)
        assert f"{realm} (its partition is not added yet" in skipped.skip_message

        instance.add_dynamic_partitions(realm_partitions.name, [realm])
        running = under_way(instance, realm)
        busy = schedule_tick(INCREMENTAL, instance, TEN_O_CLOCK)
        assert isinstance(busy, dg.SkipReason)
        assert busy.skip_message == (
            f"no realm to sync: {realm} (a qbo_sync run is queued or running)"
        )
        instance.report_run_failed(running)
        assert len(schedule_tick(INCREMENTAL, instance, TEN_O_CLOCK)) == 1

        company.runtime.store.mark_needs_reauth(realm, "invalid_grant")
        waiting = schedule_tick(INCREMENTAL, instance, TEN_O_CLOCK)
    assert isinstance(waiting, dg.SkipReason)
    assert f"{realm} (its connection is needs_reauth; reconnect it)" in waiting.skip_message


def test_the_nightly_reconciliation_counts_reads_in_full_only_what_differs_and_queues(connect):
    company = connect(customers=5, invoices=6)
    realm = company.realm_id
    with dg.instance_for_test() as instance:
        [first] = sync_realms([realm], instance=instance)
        assert first.success, first.error
        with company.runtime.warehouse() as warehouse:  # a row lost from the warehouse
            lost = oldest(warehouse, "invoices", realm)
            warehouse.query(
                "DELETE FROM qbo.invoices WHERE realm_id = $1 AND id = $2", [realm, lost]
            )
        running = under_way(instance, realm)
        night = datetime(2026, 11, 30, 3, 30, tzinfo=UTC)
        [request_] = schedule_tick(RECONCILIATION, instance, night)
        assert request_.run_key == f"reconcile-{realm}-2026-11-30T03:30Z"
        assert [r.run_key for r in schedule_tick(RECONCILIATION, instance, night)] == [
            request_.run_key
        ]
        instance.report_run_failed(running)

        # Launched as the daemon would, with the schedule's run config.
        result = defs.resolve_job_def("qbo_sync").execute_in_process(
            instance=instance,
            partition_key=request_.partition_key,
            run_config=request_.run_config,
            tags={"dagster/run_key": request_.run_key},
        )
        assert result.success
        materialized = [e.materialization for e in result.get_asset_materialization_events()]
        modes = {
            m.asset_key.path[-1]: m.metadata["mode"].value
            for m in materialized
            if "mode" in m.metadata
        }
        checks = check_results(instance, result.run_id)
        with company.runtime.warehouse() as warehouse:
            restored = warehouse.query(
                "SELECT id FROM qbo.invoices WHERE realm_id = $1 AND id = $2", [realm, lost]
            )
    # Customers counted equal and stayed incremental; the invoices' difference was read;
    # the lists CDC cannot track were due for their full read, as every night.
    expected = {entity.table: "incremental" if entity.cdc else "full" for entity in ENTITIES}
    assert modes == expected | {"invoices": "full"}
    assert restored == [(lost,)]
    assert all(check.passed for check in checks.values())


def test_the_crons_come_from_the_environment_and_a_bad_one_is_named():
    assert sync_cron({"QBO_SYNC_CRON": " */15 * * * * "}) == "*/15 * * * *"
    assert sync_cron({"QBO_SYNC_CRON": ""}) == "0 * * * *"
    assert reconcile_cron({"QBO_RECONCILE_CRON": "0 2 * * *"}) == "0 2 * * *"
    assert build_incremental_schedule("*/15 * * * *").cron_schedule == "*/15 * * * *"
    with pytest.raises(ConfigurationError) as raised:
        sync_cron({"QBO_SYNC_CRON": "every hour"})
    assert str(raised.value) == (
        "QBO_SYNC_CRON='every hour' is not a five-field cron schedule (minute hour day month "
        "weekday, e.g. '0 * * * *'); correct it, or unset it for '0 * * * *'"
    )


def load_definitions(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """The definitions loaded as `dagster dev` loads them, in a process of their own."""
    code = (
        "from qbo_pipeline.definitions import defs\n"
        "print(defs.resolve_schedule_def('qbo_incremental_schedule').cron_schedule)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path), **env},
    )


def test_the_definitions_honour_QBO_SYNC_CRON_and_refuse_a_bad_one_in_one_line(tmp_path):
    honoured = load_definitions({"QBO_SYNC_CRON": "*/20 * * * *"}, tmp_path)
    assert honoured.returncode == 0, honoured.stderr
    assert honoured.stdout.strip() == "*/20 * * * *"

    refused = load_definitions({"QBO_SYNC_CRON": "61 * * * *"}, tmp_path)
    assert refused.returncode != 0
    message = (
        "QBO_SYNC_CRON='61 * * * *' is not a five-field cron schedule (minute hour day month "
        "weekday, e.g. '0 * * * *'); correct it, or unset it for '0 * * * *'"
    )
    assert refused.stderr.strip().splitlines()[-1].endswith(message)


def test_a_realm_is_overdue_two_ticks_after_its_last_update_and_a_grace():
    last = datetime(2026, 11, 30, 11, 0, 40, tzinfo=UTC)
    assert overdue_at("0 * * * *", last) == datetime(2026, 11, 30, 13, 15, tzinfo=UTC)
    # A weekday cron is judged by its own ticks: Friday's last run is not overdue by Monday
    # morning's first, only after Monday's second.
    friday = datetime(2026, 11, 27, 17, 5, tzinfo=UTC)
    weekdays = "0 9-17 * * 1-5"
    assert overdue_at(weekdays, friday) == datetime(2026, 11, 30, 10, 15, tzinfo=UTC)


def test_the_reports_schedule_reads_this_month_and_the_last_of_each_realm(connect):
    schedule = defs.resolve_schedule_def("qbo_reports_schedule")
    assert (schedule.cron_schedule, schedule.job_name) == ("15 6 * * *", "qbo_reports")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    company = connect(customers=5, invoices=5)
    realm = company.realm_id
    new_year = datetime(2026, 1, 5, 6, 15, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(realm_partitions.name, [realm])
        requests = schedule_tick("qbo_reports_schedule", instance, new_year)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        (
            dg.MultiPartitionKey({"realm": realm, "month": month}),
            f"reports-{realm}-{month}-2026-01-05T06:15Z",
        )
        for month in ("2025-12-01", "2026-01-01")
    ]
