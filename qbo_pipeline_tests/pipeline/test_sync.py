"""Syncing a company from the emulator into DuckDB and PostgreSQL warehouses."""

from __future__ import annotations

import httpx
import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.faults import (
    AuthenticationFailed,
    ServiceUnavailable,
    ValidationFault,
)
from qbo_pipeline.sync.engine import SyncOptions, sync_entity
from qbo_pipeline.vault.errors import UnknownRealm
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals, money

# Small pages so a company of a few hundred rows takes several concurrent pages.
PAGES = SyncOptions(page_size=50, batch_rows=120)


def sync_all(company, options=PAGES):
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        return [sync_entity(client, wh, entity, options) for entity in (CUSTOMER, INVOICE)]


def snapshot(company) -> list:
    with company.runtime.warehouse() as wh:
        return [
            wh.query(f"SELECT id, sync_token, raw FROM qbo.{table} ORDER BY id")
            for table in ("customers", "invoices")
        ] + [wh.query("SELECT * FROM qbo.invoice_lines ORDER BY invoice_id, line_index")]


def test_full_sync_holds_exactly_the_company(connect, warehouse_url):
    company = connect(warehouse_url=warehouse_url, customers=230, invoices=410)
    results = sync_all(company)

    assert [r.rows for r in results] == [230, 410]
    # Pages overlap by a few rows at each seam; no row is handed over twice.
    assert [r.fetched for r in results] == [230, 410]
    assert results[1].requests >= 9  # at least 410 rows / 50 per page
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
        summary = company.summary()
        (total,) = wh.query("SELECT sum(total_amt) FROM qbo.invoices")[0]
        assert money(total) == money(summary["Invoice"]["total_amt_sum"])
        (lines,) = wh.query("SELECT count(*) FROM qbo.invoice_lines")[0]
        assert lines == summary["Invoice"]["line_count"]


def test_rerun_changes_nothing(connect, warehouse_url):
    company = connect(warehouse_url=warehouse_url, customers=80, invoices=120)
    sync_all(company)
    before = snapshot(company)
    sync_all(company, SyncOptions(full=True, page_size=50))
    sync_all(company)
    assert snapshot(company) == before


def test_incremental_sync_picks_up_changes_made_in_quickbooks(connect, warehouse_url):
    company = connect(warehouse_url=warehouse_url, customers=120, invoices=200)
    first = sync_all(company)

    customer = company.entities("Customer")[5]
    renamed = company.api(
        "POST",
        "customer",
        json={
            "Id": customer["Id"],
            "SyncToken": customer["SyncToken"],
            "sparse": True,
            "DisplayName": "Renamed Ünïcode Customer",
        },
    )
    assert renamed.status_code == 200, renamed.text
    invoice = next(i for i in company.entities("Invoice") if len(i["Line"]) >= 3)
    shrunk = {**invoice, "Line": invoice["Line"][:1]}
    assert company.api("POST", "invoice", json=shrunk).status_code == 200
    created = company.api(
        "POST",
        "invoice",
        json={
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                {
                    "Amount": 40.0,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": 20},
                }
            ],
        },
    )
    assert created.status_code == 200, created.text

    second = sync_all(company)

    assert all(r.mode == "incremental" for r in second)
    assert sum(r.rows for r in second) < sum(r.rows for r in first) / 10
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
        names = wh.query(f"SELECT display_name FROM qbo.customers WHERE id = '{customer['Id']}'")
        assert names == [("Renamed Ünïcode Customer",)]


def test_expired_access_token_is_refreshed_and_the_rotated_token_kept(connect):
    company = connect(customers=30, invoices=30)
    before = company.runtime.store.decrypt(company.realm_id)
    httpx.post(f"{company.emulator.base_url}/_emulator/tokens/expire").raise_for_status()

    sync_all(company)

    after = company.runtime.store.decrypt(company.realm_id)
    assert after.refresh_token != before.refresh_token
    assert after.access_token != before.access_token
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def inject(company, **fault) -> None:
    httpx.post(f"{company.emulator.base_url}/_emulator/faults", json=fault).raise_for_status()


@pytest.mark.parametrize(("status", "shape"), [(503, "json"), (500, "xml"), (429, "xml")])
def test_transient_emulator_faults_are_retried(connect, status, shape):
    company = connect(customers=40, invoices=60)
    inject(company, status=status, count=2, shape=shape)
    with company.quick_client() as client, company.runtime.warehouse() as wh:
        sync_entity(client, wh, INVOICE, PAGES)
        (count,) = wh.query("SELECT count(*) FROM qbo.invoices")[0]
    assert count == 60


def test_a_persistent_fault_fails_with_a_clear_error_and_loses_nothing(connect):
    company = connect(customers=40, invoices=60)
    sync_all(company)
    inject(company, status=503, count=50, shape="json")
    with (
        company.quick_client() as client,
        company.runtime.warehouse() as wh,
        pytest.raises(ServiceUnavailable, match="HTTP 503") as failure,
    ):
        sync_entity(client, wh, INVOICE, SyncOptions(full=True))
    assert "\n" not in str(failure.value)
    assert failure.value.intuit_tid
    with company.runtime.warehouse() as wh:
        assert wh.count("invoices", company.realm_id) == 60


def test_query_past_maxresults_is_a_validation_fault_naming_the_limit(connect):
    company = connect(customers=5, invoices=5)
    with (
        company.runtime.client(company.realm_id) as client,
        pytest.raises(ValidationFault, match="Max allowed value is 1000") as failure,
    ):
        client.query("SELECT * FROM Customer MAXRESULTS 1001")
    assert failure.value.codes == ("4001",)
    assert "MAXRESULTS 1001" in str(failure.value)


def test_unknown_realm_says_how_to_connect_it(connect):
    company = connect(customers=5, invoices=5)
    with pytest.raises(UnknownRealm, match="auth"), company.runtime.client("4620816365999999999"):
        pass


def test_a_token_rejected_again_after_refresh_fails_with_a_clear_error(connect):
    company = connect(customers=5, invoices=5)

    class Rejected:
        """A token source whose refresh yields another token QBO does not know."""

        refreshes = 0

        def access_token(self) -> str:
            return "not-a-token-qbo-issued"

        def refresh_after_unauthorized(self, rejected: str) -> str:
            Rejected.refreshes += 1
            return "still-not-a-token"

    with (
        QuickBooksClient(
            base_url=company.emulator.api_base_url, realm_id=company.realm_id, tokens=Rejected()
        ) as client,
        pytest.raises(AuthenticationFailed, match="again after a refresh") as failure,
    ):
        client.count(CUSTOMER)
    assert Rejected.refreshes == 1
    assert "qbo-pipeline auth authorize" in str(failure.value)
