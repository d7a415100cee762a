"""The generated company: deterministic, realistic and adding up to the cent."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

from qbo_pipeline.emulator import query
from qbo_pipeline.emulator.amounts import cents, recompute_invoice
from qbo_pipeline.emulator.company import Company
from qbo_pipeline.emulator.generator import ANCHOR, CompanyGenerator
from qbo_pipeline.quickbooks.timestamps import PACIFIC, parse_instant


@pytest.fixture(scope="module")
def company() -> Company:
    return Company.generated("1", seed=7, customers=200, invoices=600)


def _all(company: Company, entity: str) -> list[dict]:
    return list(company.tables[entity].all())


def _money(value) -> Decimal:
    return Decimal(str(value))


def test_same_seed_same_bytes_other_seed_other_data() -> None:
    def dump(seed: int) -> str:
        company = Company.generated("1", seed=seed, customers=30, invoices=80)
        return json.dumps([_all(company, "Customer"), _all(company, "Invoice")])

    assert dump(7) == dump(7)
    assert dump(7) != dump(8)


def test_rebuilt_entities_match_their_index(company: Company) -> None:
    """Bulk generation (with held customer cards) and lazy rebuilds must agree."""
    for table in company.tables.values():
        for entity_id, row in table.rows.items():
            assert query.project(table.schema, table.get(entity_id)) == row
    assert company.get("Invoice", "17") == CompanyGenerator(7, 200, 600).invoice(17)
    assert company.get("Customer", "0") is None


def test_invoices_add_up_exactly(company: Company) -> None:
    kinds = Counter()
    for invoice in _all(company, "Invoice"):
        sales = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
        subtotal = sum((_money(line["Amount"]) for line in sales), Decimal(0))
        for line in sales:
            detail = line["SalesItemLineDetail"]
            assert _money(line["Amount"]) == (_money(detail["Qty"]) * _money(detail["UnitPrice"]))
            assert [line["LineNum"] for line in sales] == list(range(1, len(sales) + 1))
        discount = sum(
            (
                _money(line["Amount"])
                for line in invoice["Line"]
                if line["DetailType"] == "DiscountLineDetail"
            ),
            Decimal(0),
        )
        tax = _money(invoice["TxnTaxDetail"]["TotalTax"])
        assert _money(invoice["TotalAmt"]) == subtotal - discount + tax
        for line in invoice["Line"]:
            if line["DetailType"] == "SubTotalLineDetail":
                assert _money(line["Amount"]) == subtotal and "Id" not in line
        balance = _money(invoice["Balance"])
        kinds[
            "open"
            if balance == _money(invoice["TotalAmt"])
            else "paid"
            if balance == 0
            else "partial"
        ] += 1
        if balance != _money(invoice["TotalAmt"]):
            assert invoice["LinkedTxn"][0]["TxnType"] == "Payment"
        if invoice["CurrencyRef"]["value"] != "USD":
            home = _money(invoice["TotalAmt"]) * _money(invoice["ExchangeRate"])
            assert _money(invoice["HomeTotalAmt"]) == cents(home)
    assert min(kinds.values()) > 20, kinds


def test_customers_look_like_qbo_and_balances_match_invoices(company: Company) -> None:
    """A customer's balance is its open invoices less its unapplied credit memos."""
    customers = {c["Id"]: c for c in _all(company, "Customer")}
    invoices = _all(company, "Invoice")
    open_by_customer = Counter()
    for memo in _all(company, "CreditMemo"):
        open_by_customer[memo["CustomerRef"]["value"]] -= _money(memo["RemainingCredit"])
    for invoice in invoices:
        open_by_customer[invoice["CustomerRef"]["value"]] += _money(invoice["Balance"])
        customer = customers[invoice["CustomerRef"]["value"]]
        assert invoice["CurrencyRef"] == customer["CurrencyRef"]
        assert invoice["CustomerRef"]["name"] == customer["DisplayName"]
    for customer in customers.values():
        assert _money(customer["Balance"]) == open_by_customer[customer["Id"]]
        assert customer["domain"] == "QBO" and customer["sparse"] is False
        assert isinstance(customer["SyncToken"], str)
    jobs = [c for c in customers.values() if c["Job"]]
    assert 8 <= len(jobs) <= 40
    for job in jobs:
        parent = customers[job["ParentRef"]["value"]]
        assert not parent["Job"]
        assert job["FullyQualifiedName"] == f"{parent['DisplayName']}:{job['DisplayName']}"
        assert job["CurrencyRef"] == parent["CurrencyRef"]
    for parent in customers.values():
        children = [j for j in jobs if j["ParentRef"]["value"] == parent["Id"]]
        expected = _money(parent["Balance"]) + sum(
            (_money(j["Balance"]) for j in children), Decimal(0)
        )
        if not parent["Job"]:
            assert _money(parent["BalanceWithJobs"]) == expected
    inactive = [c for c in customers.values() if not c["Active"]]
    assert 8 <= len(inactive) <= 40
    assert all(_money(c["Balance"]) == 0 for c in inactive)
    names = [c["DisplayName"] for c in customers.values()]
    assert len(set(names)) == len(names)
    assert {"Café Müller GmbH", "Zoë Łukasz", "東京デザイン"} <= set(names)
    currencies = Counter(c["CurrencyRef"]["value"] for c in customers.values())
    assert set(currencies) == {"USD", "CAD", "EUR", "GBP"} and currencies["USD"] > 100


def test_stamps_are_pacific_and_span_both_offsets(company: Company) -> None:
    offsets = Counter()
    for entity in _all(company, "Customer") + _all(company, "Invoice"):
        for stamp in entity["MetaData"].values():
            instant = parse_instant(stamp)
            assert "." not in stamp
            assert stamp.endswith(instant.astimezone(PACIFIC).strftime("%z")[:3] + ":00")
            assert instant <= ANCHOR
            offsets[stamp[-6:]] += 1
        created, updated = (
            parse_instant(entity["MetaData"][k]) for k in ("CreateTime", "LastUpdatedTime")
        )
        assert created <= updated
    assert set(offsets) == {"-07:00", "-08:00"}


def test_large_company_is_indexed_without_keeping_bodies() -> None:
    company = Company.generated("1", seed=1, customers=2000, invoices=4000)
    counts = company.counts()
    assert (counts["Customer"], counts["Invoice"]) == (2000, 4000)
    assert (counts["Vendor"], counts["Employee"]) == (100, 10)  # they grow with the company
    kept = {name for name, table in company.tables.items() if table.bodies}
    assert kept == {"CompanyInfo", "Preferences"}  # one row each, kept as served


def test_every_list_row_an_invoice_or_customer_names_exists(company: Company) -> None:
    def exists(entity: str, entity_id: str) -> bool:
        return company.get(entity, entity_id) is not None

    missing = []
    for customer in _all(company, "Customer"):
        code = customer.get("DefaultTaxCodeRef", {}).get("value")
        if code and not exists("TaxCode", code):
            missing.append(("TaxCode", code))
    for invoice in _all(company, "Invoice"):
        term = invoice["SalesTermRef"]["value"]
        if not exists("Term", term):
            missing.append(("Term", term))
        tax = invoice["TxnTaxDetail"]
        for line in tax["TaxLine"]:
            rate = company.get("TaxRate", line["TaxLineDetail"]["TaxRateRef"]["value"])
            assert rate is not None and _money(rate["RateValue"]) == _money(
                line["TaxLineDetail"]["TaxPercent"]
            )
            code = company.get("TaxCode", tax["TxnTaxCodeRef"]["value"])
            listed = code["SalesTaxRateList"]["TaxRateDetail"]
            assert rate["Id"] in {detail["TaxRateRef"]["value"] for detail in listed}
        for line in invoice["Line"]:
            detail = line.get(line["DetailType"], {})
            item = detail.get("ItemRef", {}).get("value")
            if item and company.get("Item", item)["Name"] != detail["ItemRef"]["name"]:
                missing.append(("Item", item))
            account = detail.get("DiscountAccountRef", {}).get("value")
            if account and not exists("Account", account):
                missing.append(("Account", account))
    for item in _all(company, "Item"):
        for ref in ("IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef"):
            if ref in item and not exists("Account", item[ref]["value"]):
                missing.append(("Account", item[ref]["value"]))
    for rate in _all(company, "TaxRate"):
        if not exists("TaxAgency", rate["AgencyRef"]["value"]):
            missing.append(("TaxAgency", rate["AgencyRef"]["value"]))
    for vendor in _all(company, "Vendor"):
        if not exists("Term", vendor["TermRef"]["value"]):
            missing.append(("Term", vendor["TermRef"]["value"]))
    assert not missing, sorted(set(missing))


def test_display_names_are_unique_across_customers_vendors_and_employees(
    company: Company,
) -> None:
    names = Counter(
        row["DisplayName"]
        for entity in ("Customer", "Vendor", "Employee")
        for row in _all(company, entity)
    )
    assert [name for name, count in names.items() if count > 1] == []


def test_recompute_handles_percent_and_amount_discounts() -> None:
    invoice = {
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"Qty": 2, "UnitPrice": 150, "TaxCodeRef": {"value": "TAX"}},
            },
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": 200,
                "SalesItemLineDetail": {"TaxCodeRef": {"value": "NON"}},
            },
            {"Amount": 0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
            {
                "DetailType": "DiscountLineDetail",
                "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
            },
            {
                "Amount": 5,
                "DetailType": "DiscountLineDetail",
                "DiscountLineDetail": {"PercentBased": False},
            },
        ],
        "TxnTaxDetail": {"TaxLine": [{"TaxLineDetail": {"PercentBased": True, "TaxPercent": 8}}]},
    }
    recompute_invoice(invoice, paid=Decimal("100"))
    assert invoice["Line"][0]["Amount"] == 300.0
    assert invoice["Line"][2]["Amount"] == 500.0
    assert invoice["Line"][3]["Amount"] == 50.0
    assert invoice["TxnTaxDetail"]["TotalTax"] == 24.0
    assert invoice["TotalAmt"] == 469.0  # 500 - 50 - 5 + 24
    assert invoice["Balance"] == 369.0
