"""The name lists a bookkeeper's questions join to, and the company's own settings: every
one synced from the emulator into both warehouses, typed, joinable with the invoices,
inactive rows included; and those CDC cannot track read in full once a day, not at every
run."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from qbo_pipeline.quickbooks.catalog import ENTITIES, ITEM, NAME_LISTS, TAX_RATE
from qbo_pipeline.sync.engine import NOT_DUE, SyncOptions, share_run_changes, sync_entity

HOURLY = SyncOptions()


def sync_everything(company, options: SyncOptions = HOURLY) -> dict:
    """One run's worth: the shared CDC call, then every entity of the catalog."""
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        shared = share_run_changes(client, wh, list(ENTITIES), options)
        return {
            entity.name: sync_entity(client, wh, entity, options, shared=shared)
            for entity in ENTITIES
        }


def stored(company, table: str, columns: str) -> dict:
    with company.runtime.warehouse() as wh:
        rows = wh.query(
            f"SELECT id, {columns} FROM qbo.{table} WHERE realm_id = $1", [company.realm_id]
        )
    return {row[0]: row[1:] for row in rows}


def test_every_name_list_lands_typed_whole_and_joinable(connect, warehouse_url):
    company = connect(warehouse_url=warehouse_url, customers=120, invoices=90)
    results = sync_everything(company)

    for entity in NAME_LISTS:
        in_qbo = company.entities(entity.name)
        assert results[entity.name].rows == len(in_qbo) > 0, entity.name
        active = "active" if entity.hides_inactive else "true"
        assert stored(company, entity.table, f"sync_token, {active}") == {
            row["Id"]: (int(row["SyncToken"]), row.get("Active", True)) for row in in_qbo
        }, entity.name
    vendors = company.entities("Vendor")
    assert any(not vendor["Active"] for vendor in vendors)  # inactive ones included

    with company.runtime.warehouse() as wh:
        # Each reference an invoice or list row makes resolves to a row of its list.
        unresolved = wh.query(
            "SELECT 'item', l.item_id FROM qbo.invoice_lines l LEFT JOIN qbo.items i "
            "ON i.realm_id = l.realm_id AND i.id = l.item_id "
            "WHERE l.item_id IS NOT NULL AND i.id IS NULL "
            "UNION ALL SELECT 'term', v.sales_term_id FROM qbo.invoices v LEFT JOIN qbo.terms t "
            "ON t.realm_id = v.realm_id AND t.id = v.sales_term_id WHERE t.id IS NULL "
            "UNION ALL SELECT 'account', i.income_account_id FROM qbo.items i "
            "LEFT JOIN qbo.accounts a ON a.realm_id = i.realm_id "
            "AND a.id = i.income_account_id WHERE a.id IS NULL "
            "UNION ALL SELECT 'agency', r.agency_id FROM qbo.tax_rates r "
            "LEFT JOIN qbo.tax_agencies g ON g.realm_id = r.realm_id AND g.id = r.agency_id "
            "WHERE g.id IS NULL"
        )
        assert unresolved == []
        [pump] = wh.query(
            "SELECT i.type, i.unit_price, i.track_qty_on_hand, a.name, a.classification "
            "FROM qbo.items i JOIN qbo.accounts a ON a.realm_id = i.realm_id "
            "AND a.id = i.asset_account_id WHERE i.name = 'Pump'"
        )
        assert pump == ("Inventory", Decimal(150), True, "Inventory Asset", "Asset")
        rates = dict(wh.query("SELECT rate_value, name FROM qbo.tax_rates"))
        assert sorted(rates) == [Decimal(5), Decimal(8), Decimal("8.25"), Decimal("9.5")]


def test_what_cdc_cannot_track_is_read_in_full_once_a_day_and_the_rest_through_cdc(
    connect,
):
    company = connect(customers=40, invoices=60)
    sync_everything(company)
    rate = company.entities("TaxRate")[0]
    item = company.entities("Item")[0]
    for entity, row in (("taxrate", rate), ("item", item)):
        changed = company.api(
            "POST",
            entity,
            json={"Id": row["Id"], "SyncToken": row["SyncToken"], "sparse": True, "Active": False},
        )
        assert changed.status_code == 200, changed.text
    company.reset_stats()

    hourly = sync_everything(company)

    # One call for the run: CDC brought the item; the tax lists were not due.
    assert company.stats()["requests"] == 1
    assert hourly[ITEM.name].rows == 1
    untracked = [entity.name for entity in ENTITIES if not entity.cdc]
    assert untracked == [
        "TimeActivity",
        "TaxAgency",
        "TaxCode",
        "TaxRate",
        "CompanyInfo",
        "Preferences",
    ]
    assert {name: (hourly[name].mode, hourly[name].requests) for name in untracked} == {
        name: (NOT_DUE, 0) for name in untracked
    }
    assert stored(company, "items", "active")[item["Id"]] == (False,)
    assert stored(company, "tax_rates", "active")[rate["Id"]] == (True,)  # not read yet

    company.reset_stats()
    due = sync_everything(company, SyncOptions(untracked_every=timedelta(0)))

    assert {name: due[name].mode for name in untracked} == dict.fromkeys(untracked, "full")
    assert company.stats()["requests"] == 1 + len(untracked)  # CDC, and a page each
    assert stored(company, "tax_rates", "active")[rate["Id"]] == (False,)
    assert due[TAX_RATE.name].cursor > hourly[TAX_RATE.name].cursor


def test_the_company_and_its_preferences_are_one_row_each(connect, warehouse_url):
    company = connect(warehouse_url=warehouse_url, customers=30, invoices=40)
    sync_everything(company)
    [info] = company.entities("CompanyInfo")
    assert stored(company, "company_info", "company_name, legal_name, city") == {
        "1": (info["CompanyName"], info["LegalName"], info["CompanyAddr"]["City"])
    }
    assert stored(company, "preferences", "home_currency, multi_currency_enabled") == {
        "1": ("USD", True)  # the generated company bills customers abroad
    }
    served = company.api("GET", f"companyinfo/{company.realm_id}")
    assert served.json()["CompanyInfo"] == info  # the same row, by query and by id


def test_a_run_a_day_after_the_last_read_reads_again(connect):
    """The last read's cursor is QBO's clock after its run began, so the run a day later
    finds it a little under a day old: it must read all the same, not a day after."""
    company = connect(customers=10, invoices=10)
    sync_everything(company)
    untracked = [entity.name for entity in ENTITIES if not entity.cdc]

    def cursors_back(span: str) -> None:
        with company.runtime.warehouse() as wh:
            wh.query(
                f"UPDATE qbo._sync_state SET cursor = cursor - INTERVAL '{span}' "
                "WHERE realm_id = $1 AND entity IN (SELECT unnest($2::VARCHAR[]))",
                [company.realm_id, untracked],
            )

    cursors_back("23 hours")
    assert {sync_everything(company)[name].mode for name in untracked} == {NOT_DUE}
    cursors_back("58 minutes")  # 23 h 58 min since the last read
    results = sync_everything(company)
    assert {name: results[name].mode for name in untracked} == dict.fromkeys(untracked, "full")


def test_the_company_and_tax_codes_cannot_be_created_through_the_api(connect):
    company = connect(customers=5, invoices=5)
    for entity, body in (("companyinfo", {"CompanyName": "Another"}), ("taxcode", {"Name": "X"})):
        answer = company.api("POST", entity, json=body)
        assert answer.status_code == 400, answer.text
        assert "Operation Create is not supported" in answer.text
    assert len(company.entities("CompanyInfo")) == 1
