"""The generated transactions agree with each other and with the lists, as a real
company's books do: payments are what left the invoices' balances, bill payments what
left the bills', journal entries balance, and every reference resolves."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from qbo_pipeline.emulator.amounts import recompute_invoice
from qbo_pipeline.emulator.company import Company
from qbo_pipeline.quickbooks.catalog import TRANSACTIONS
from qbo_pipeline_tests.emulator.conftest import Connection


@pytest.fixture(scope="module")
def company() -> Company:
    return Company.generated("1", seed=11, customers=150, invoices=500)


def _all(company: Company, entity: str) -> list[dict[str, Any]]:
    return list(company.tables[entity].all())


def _money(value: Any) -> Decimal:
    return Decimal(str(value))


def test_every_transaction_entity_has_rows(company: Company) -> None:
    counts = company.counts()
    empty = [entity.name for entity in TRANSACTIONS if counts[entity.name] == 0]
    assert not empty


def test_payments_are_what_left_the_invoices_balances(company: Company) -> None:
    invoices = {invoice["Id"]: invoice for invoice in _all(company, "Invoice")}
    paid_by_payments: Counter[str] = Counter()
    for payment in _all(company, "Payment"):
        assert _money(payment["TotalAmt"]) == sum(
            _money(line["Amount"]) for line in payment["Line"]
        )
        for line in payment["Line"]:
            [link] = line["LinkedTxn"]
            assert link["TxnType"] == "Invoice"
            invoice = invoices[link["TxnId"]]
            assert payment["CustomerRef"] == invoice["CustomerRef"]
            assert payment["CurrencyRef"] == invoice["CurrencyRef"]
            assert payment["TxnDate"] >= invoice["TxnDate"]
            assert {"TxnId": payment["Id"], "TxnType": "Payment"} in invoice["LinkedTxn"]
            paid_by_payments[invoice["Id"]] += _money(line["Amount"])
    for invoice in invoices.values():
        paid = _money(invoice["TotalAmt"]) - _money(invoice["Balance"])
        assert paid_by_payments[invoice["Id"]] == paid, invoice["Id"]
    assert len(paid_by_payments) > 100


def test_bill_payments_match_the_bills_they_pay(company: Company) -> None:
    bills = {bill["Id"]: bill for bill in _all(company, "Bill")}
    paid: Counter[str] = Counter()
    for payment in _all(company, "BillPayment"):
        for line in payment["Line"]:
            [link] = line["LinkedTxn"]
            assert link["TxnType"] == "Bill"
            bill = bills[link["TxnId"]]
            assert payment["VendorRef"] == bill["VendorRef"]
            assert payment["TxnDate"] >= bill["TxnDate"]
            paid[bill["Id"]] += _money(line["Amount"])
    states = Counter()
    for bill in bills.values():
        total = _money(bill["TotalAmt"])
        assert total == sum(_money(line["Amount"]) for line in bill["Line"])
        assert _money(bill["Balance"]) == total - paid[bill["Id"]]
        states["open" if not paid[bill["Id"]] else "paid" if not bill["Balance"] else "part"] += 1
    assert min(states.values()) > 3, states


def test_vendor_balances_are_open_bills_less_open_credits(company: Company) -> None:
    owed: Counter[str] = Counter()
    for bill in _all(company, "Bill"):
        owed[bill["VendorRef"]["value"]] += _money(bill["Balance"])
    for credit in _all(company, "VendorCredit"):
        owed[credit["VendorRef"]["value"]] -= _money(credit["Balance"])
    for vendor in _all(company, "Vendor"):
        assert _money(vendor["Balance"]) == owed[vendor["Id"]], vendor["Id"]


def test_journal_entries_balance(company: Company) -> None:
    entries = _all(company, "JournalEntry")
    for entry in entries:
        sides: Counter[str] = Counter()
        for line in entry["Line"]:
            sides[line["JournalEntryLineDetail"]["PostingType"]] += _money(line["Amount"])
        assert sides["Debit"] == sides["Credit"] == _money(entry["TotalAmt"]), entry["Id"]


def test_sales_forms_add_up_with_their_tax_lines(company: Company) -> None:
    for entity in ("SalesReceipt", "CreditMemo", "RefundReceipt", "Estimate"):
        for form in _all(company, entity):
            again = {key: value for key, value in form.items()}
            recompute_invoice(again)
            assert again["TotalAmt"] == form["TotalAmt"]
            tax = form["TxnTaxDetail"]
            assert _money(tax["TotalTax"]) == sum(_money(line["Amount"]) for line in tax["TaxLine"])


def _references(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(entity, Id) of every reference a transaction makes, its lines' included."""
    found = []
    keys = {
        "CustomerRef": "Customer",
        "VendorRef": "Vendor",
        "EmployeeRef": "Employee",
        "ItemRef": "Item",
        "AccountRef": "Account",
        "APAccountRef": "Account",
        "ARAccountRef": "Account",
        "DepositToAccountRef": "Account",
        "FromAccountRef": "Account",
        "ToAccountRef": "Account",
        "BankAccountRef": "Account",
        "CCAccountRef": "Account",
        "DiscountAccountRef": "Account",
        "ClassRef": "Class",
        "DepartmentRef": "Department",
        "PaymentMethodRef": "PaymentMethod",
        "SalesTermRef": "Term",
        "TaxRateRef": "TaxRate",
        "TxnTaxCodeRef": "TaxCode",
    }

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in keys and isinstance(value, dict):
                    found.append((keys[key], value["value"]))
                elif key == "EntityRef" and "type" not in value:
                    continue  # typed by its sibling Entity.Type, walked below
                elif key == "Entity" and isinstance(value, dict):
                    found.append((value["Type"], value["EntityRef"]["value"]))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body)
    if "EntityRef" in body:
        found.append((body["EntityRef"]["type"], body["EntityRef"]["value"]))
    return found


def test_every_reference_a_transaction_makes_exists(company: Company) -> None:
    missing = set()
    checked = 0
    for entity in TRANSACTIONS:
        for body in _all(company, entity.name):
            for target, target_id in _references(body):
                checked += 1
                if company.get(target, target_id) is None:
                    missing.add((entity.name, target, target_id))
    assert not missing, sorted(missing)[:10]
    assert checked > 2000


def test_reports_answer_in_qbos_shape_and_refuse_what_they_cannot(qbo: Connection) -> None:
    params = {"start_date": "2025-01-01", "end_date": "2025-12-31"}
    pnl = qbo.api("GET", "reports/ProfitAndLoss", params=params)
    assert pnl.status_code == 200, pnl.text
    body = pnl.json()
    assert body["Header"]["ReportName"] == "ProfitAndLoss"
    assert (body["Header"]["StartPeriod"], body["Header"]["EndPeriod"]) == tuple(params.values())
    groups = [row["group"] for row in body["Rows"]["Row"]]
    assert groups[0] == "Income" and groups[-1] == "NetIncome"
    income = body["Rows"]["Row"][0]
    data = income["Rows"]["Row"]
    assert all(row["type"] == "Data" and row["ColData"][0]["id"] for row in data)
    total = sum(Decimal(row["ColData"][1]["value"]) for row in data)
    assert Decimal(income["Summary"]["ColData"][1]["value"]) == total > 0

    sheet = qbo.api("GET", "reports/BalanceSheet", params={"end_date": "2025-06-30"}).json()
    assets, liabilities_and_equity = sheet["Rows"]["Row"]
    assert assets["Summary"]["ColData"][1] == liabilities_and_equity["Summary"]["ColData"][1]

    aging = qbo.api("GET", "reports/AgedReceivables", params={"report_date": "2025-06-30"})
    titles = [column["ColTitle"] for column in aging.json()["Columns"]["Column"]]
    assert titles == ["", "Current", "1 - 30", "31 - 60", "61 - 90", "91 and over", "Total"]

    for path, query, named in (
        ("reports/CashFlow", {}, "CashFlow"),
        ("reports/ProfitAndLoss", {"end_date": "2025-13-01"}, "end_date"),
        ("reports/ProfitAndLoss", {"accounting_method": "Cash"}, "accrual"),
        ("reports/ProfitAndLoss", {"start_date": "2025-02-01", "end_date": "2025-01-01"}, "after"),
    ):
        refused = qbo.api("GET", path, params=query)
        assert refused.status_code == 400, refused.text
        [error] = refused.json()["Fault"]["Error"]
        assert named in error["Detail"] and "\n" not in error["Detail"]
