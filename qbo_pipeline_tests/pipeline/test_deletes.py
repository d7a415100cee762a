"""Deletes: invoices deleted in QBO are marked deleted_at through CDC, or through a full
reconciliation when the last sync is older than CDC reaches; deactivated customers become
active = false."""

from __future__ import annotations

import httpx

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.sync.engine import SyncOptions, sync_entity
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals

OPTIONS = SyncOptions(page_size=50)


def sync_both(company) -> dict:
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        return {e.name: sync_entity(client, wh, e, OPTIONS) for e in (CUSTOMER, INVOICE)}


def delete_invoices(company, count: int) -> list[str]:
    deleted = []
    for invoice in company.entities("Invoice")[3 : 3 + count]:
        response = company.api(
            "POST",
            "invoice?operation=delete",
            json={"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]},
        )
        assert response.status_code == 200, response.text
        deleted.append(invoice["Id"])
    return deleted


def deleted_in_warehouse(company) -> set[str]:
    with company.runtime.warehouse() as wh:
        rows = wh.query(
            f"SELECT id FROM qbo.invoices WHERE realm_id = '{company.realm_id}' "
            "AND deleted_at IS NOT NULL"
        )
    return {row[0] for row in rows}


def test_deleted_invoices_are_marked_through_cdc(connect, warehouse_url):
    company = connect(warehouse_url=warehouse_url, customers=60, invoices=150)
    sync_both(company)
    gone = delete_invoices(company, 4)
    customer = company.entities("Customer")[7]
    deactivated = company.api(
        "POST",
        "customer",
        json={"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True,
              "Active": False},
    )  # fmt: skip
    assert deactivated.status_code == 200, deactivated.text
    company.reset_stats()

    results = sync_both(company)

    assert company.stats()["cdc_calls"] >= 1
    assert results["Invoice"].mode == "incremental"
    assert results["Invoice"].deleted == 4
    assert deleted_in_warehouse(company) == set(gone)
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
        active = wh.query(f"SELECT active FROM qbo.customers WHERE id = '{customer['Id']}'")
    assert active == [(False,)]
    assert sync_both(company)["Invoice"].deleted == 0  # marked once


def test_a_sync_older_than_cdc_reaches_falls_back_to_reconciliation(connect):
    company = connect(customers=40, invoices=120)
    sync_both(company)
    gone = delete_invoices(company, 3)
    with company.runtime.warehouse() as wh:  # the last sync, 31 days ago
        wh.query("UPDATE qbo._sync_state SET cursor = cursor - INTERVAL 31 DAY")
    company.reset_stats()

    results = sync_both(company)

    assert results["Invoice"].mode == "full"
    assert results["Invoice"].deleted == 3
    assert deleted_in_warehouse(company) == set(gone)
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
    assert company.stats()["cdc_calls"] == 0  # CDC reaches 30 days back: not asked


def test_when_qbo_says_the_cursor_is_beyond_cdc_the_sync_reads_in_full(connect):
    """QBO's clock, not ours, decides what CDC reaches: a month on in QBO, CDC refuses the
    cursor, and the sync reads in full instead of failing."""
    company = connect(customers=40, invoices=120)
    sync_both(company)
    gone = delete_invoices(company, 3)
    company.advance_qbo_clock(31 * 86400)
    company.reset_stats()

    results = sync_both(company)

    assert [results[name].mode for name in ("Customer", "Invoice")] == ["incremental", "full"]
    assert results["Invoice"].deleted == 3
    assert deleted_in_warehouse(company) == set(gone)
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
    assert company.stats()["cdc_calls"] == 2  # one refusal per entity


def test_deletes_hidden_by_a_bulk_change_are_still_found(connect):
    """CDC answers at most 1000 objects and cannot page within one second: a bulk update
    of over 1000 invoices hides deletions made with it; counting reveals it."""
    company = connect(customers=300, invoices=2500)
    sync_both(company)
    mutated = httpx.post(
        f"{company.emulator.base_url}/_emulator/companies/{company.realm_id}/mutate",
        json={"updates": 2300, "deletes": 4, "seed": 5},
    ).json()
    gone = {d["id"] for d in mutated["deleted"] if d["entity"] == "Invoice"}
    assert len(gone) == 4
    progress: list[int] = []

    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        sync_entity(client, wh, CUSTOMER, OPTIONS)
        company.reset_stats()
        result = sync_entity(
            client, wh, INVOICE, OPTIONS, on_batch=lambda rows, lines: progress.append(rows)
        )

    assert result.deleted == 4
    assert deleted_in_warehouse(company) == gone
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
    # The counts differed, so the changed rows were followed by a full read: one result,
    # and one stream of progress, covers both reads (the second once went unreported).
    changed = {u["id"] for u in mutated["updated"] if u["entity"] == "Invoice"} - gone
    assert result.mode == "full"
    # CDC's one answer (1000 of the bulk second's rows), the changed rows by query, then all.
    assert result.fetched == 1000 + len(changed) + 2500 - len(gone)
    assert progress and progress[-1] == result.rows
    stats = company.stats()
    assert stats["cdc_calls"] == 1  # a full answer within one second is not asked again
    assert result.requests == stats["requests"]


def test_a_bulk_change_without_deletes_costs_one_count_not_a_full_read(connect):
    company = connect(customers=300, invoices=2500)
    sync_both(company)
    httpx.post(
        f"{company.emulator.base_url}/_emulator/companies/{company.realm_id}/mutate",
        json={"updates": 2300, "seed": 6},
    ).raise_for_status()

    company.reset_stats()

    result = sync_both(company)["Invoice"]

    assert result.mode == "incremental"
    # CDC's one answer, then the changed invoices by query: not all 2,500 again.
    assert result.fetched == 1000 + result.rows < 2500
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
    # One COUNT decides that no deletion hid in the bulk change; the other tells the
    # reader how many pages the bulk change's rows fill.
    assert company.stats()["count_queries"] == 2
