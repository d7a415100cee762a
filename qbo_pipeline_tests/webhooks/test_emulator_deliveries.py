"""The emulator's own signed deliveries, through the service's receiver, into the warehouse:
a merge and a void (the verbs nothing else produces) end as deleted_at on the right rows."""

from __future__ import annotations

import time

import dagster as dg
import httpx

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.definitions import defs
from qbo_pipeline_tests.ticks import sensor_tick
from qbo_pipeline_tests.webhooks.deliveries import VERIFIER
from qbo_pipeline_tests.webhooks.test_webhook_runs import run


def send_webhooks_to(receiving) -> str:
    base = receiving.company.emulator.base_url
    settings = {"url": receiving.url, "verifier": VERIFIER, "batch_seconds": 0.05,
                "retry_scale": 0.001}  # fmt: skip
    httpx.post(f"{base}/_emulator/webhooks", json=settings, timeout=10).raise_for_status()
    return base


def delivered(base: str, deadline: float = 30.0) -> dict:
    """The emulator's record once every gathered change has been acknowledged."""
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        httpx.post(f"{base}/_emulator/webhooks/flush", timeout=10)
        record = httpx.get(f"{base}/_emulator/webhooks", timeout=10).json()
        if record["totals"]["pending_events"] == 0 and record["totals"]["delivered"]:
            return record
        time.sleep(0.1)
    raise AssertionError(f"deliveries still pending after {deadline} s: {record['totals']}")


def stored(receiving, table: str, entity_id: str) -> tuple:
    with receiving.company.runtime.warehouse() as warehouse:
        [row] = warehouse.query(
            f"SELECT deleted_reason, sync_token, raw FROM qbo.{table} "
            "WHERE realm_id = $1 AND id = $2",
            [receiving.realm_id, entity_id],
        )
    return row


def test_a_merge_and_a_void_sent_by_the_emulator_mark_the_rows_deleted(receiving):
    company = receiving.company
    base = send_webhooks_to(receiving)
    with dg.instance_for_test() as instance:
        [first] = sync_realms([receiving.realm_id], instance=instance)
        assert first.success, first.error
        active = [c["Id"] for c in company.entities("Customer") if c.get("Active", True)]
        into, merged_away = active[1], active[6]
        merge = httpx.post(
            f"{base}/_emulator/companies/{receiving.realm_id}/merge",
            json={"entity": "Customer", "from": merged_away, "into": into},
        )
        assert merge.status_code == 200, merge.text
        voided = company.entities("Invoice")[3]
        void = company.api("POST", "invoice?operation=void",
                           json={"Id": voided["Id"], "SyncToken": voided["SyncToken"]})  # fmt: skip
        assert void.status_code == 200, void.text
        record = delivered(base)
        assert all(
            attempt["status"] == 200
            for delivery in record["deliveries"]
            for attempt in delivery["attempts"][-1:]
        )

        [request] = sensor_tick("qbo_webhook_sensor", instance).run_requests
        assert run(instance, request).success

        # The next scheduled sync re-reads the same versions: the marks stay, and QBO's
        # counts (voided invoices included, as QBO counts them) still agree.
        checked = defs.resolve_job_def("qbo_sync").execute_in_process(
            instance=instance, partition_key=receiving.realm_id, raise_on_error=False
        )
        assert checked.success
        evaluations = checked.get_asset_check_evaluations()
        assert evaluations and all(e.passed for e in evaluations), [
            e.description for e in evaluations if not e.passed
        ]

    after = {c["Id"]: c for c in company.entities("Customer")}
    reason, sync_token, _ = stored(receiving, "customers", merged_away)
    assert reason == "merged"
    assert sync_token == int(after[merged_away]["SyncToken"])  # read before it was marked
    assert stored(receiving, "customers", into)[0] is None
    reason, sync_token, raw = stored(receiving, "invoices", voided["Id"])
    assert reason == "voided"
    assert sync_token == int(voided["SyncToken"]) + 1
    assert "Voided" in str(raw)
    assert receiving.counts().get("pending", 0) == 0
