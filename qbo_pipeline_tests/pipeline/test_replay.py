"""Real sandbox customers, invoices and name lists, served by the emulator, land where
analysts look."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

from qbo_pipeline.quickbooks.catalog import (
    COMPANY_INFO,
    CUSTOMER,
    INVOICE,
    NAME_LISTS,
    PREFERENCES,
    TRANSACTIONS,
)
from qbo_pipeline.sync.engine import sync_entity
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals
from qbo_pipeline_tests.sandbox import sandbox_stream


def test_sandbox_replay_lands_every_value_where_an_analyst_expects_it(connect, fixtures_dir):
    company = connect(data=fixtures_dir / "qbo_sandbox_records.jsonl")
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, wh, entity)
        assert_warehouse_equals(wh, company.realm_id, company.entities)

        invoice = wh.query(
            "SELECT doc_number, customer_id, customer_name, txn_date, due_date, total_amt, "
            "balance, total_tax, currency, email_status, bill_email, updated_at "
            "FROM qbo.invoices WHERE id = '119'"
        )
        assert invoice == [
            (
                "1035",
                "17",
                "Mark Cho",
                date(2023, 2, 18),
                date(2023, 3, 20),
                Decimal("314.28"),
                Decimal("314.28"),
                Decimal("23.28"),
                "USD",
                "NotSet",
                "Mark@Cho.com",
                datetime(2023, 2, 18, 20, 57, 24, tzinfo=UTC),
            )
        ]
        lines = wh.query(
            "SELECT line_index, line_id, detail_type, item_id, item_name, description, qty, "
            "unit_price, amount, tax_code FROM qbo.invoice_lines WHERE invoice_id = '119' "
            "ORDER BY line_index"
        )
        normalised = [
            tuple(v.normalize() if isinstance(v, Decimal) else v for v in row) for row in lines
        ]
        assert normalised == [
            (0, "1", "SalesItemLineDetail", "5", "Rock Fountain", "Rock Fountain",
             Decimal("1"), Decimal("275"), Decimal("275"), "TAX"),
            (1, "2", "SalesItemLineDetail", "17", "Sprinkler Pipes", "Sprinkler Pipes",
             Decimal("4"), Decimal("4"), Decimal("16"), "TAX"),
            (2, None, "SubTotalLineDetail", None, None, None, None, None, Decimal("291"), None),
        ]  # fmt: skip

        expected = {c["Id"]: c for c in sandbox_stream(fixtures_dir, "customers")}
        stored = wh.query(
            "SELECT id, display_name, active, balance, currency, created_at, raw "
            "FROM qbo.customers ORDER BY id"
        )
        assert [row[0] for row in stored] == sorted(expected)
        for id_, name, active, balance, currency, created_at, raw in stored:
            source = expected[id_]
            assert name == source["DisplayName"]
            assert active == source["Active"]
            assert balance == Decimal(str(source["Balance"]))
            assert currency == source["CurrencyRef"]["value"]
            assert created_at == datetime.fromisoformat(source["MetaData"]["CreateTime"])
            assert (json.loads(raw) if isinstance(raw, str) else raw) == source


def test_sandbox_name_lists_replay_into_their_tables(connect, fixtures_dir):
    company = connect(data=fixtures_dir / "qbo_sandbox_records.jsonl")
    recorded = {entity: sandbox_stream(fixtures_dir, entity.table) for entity in NAME_LISTS}
    assert sum(len(rows) for rows in recorded.values()) == 29  # README: 5+5+2+5+2+2+3+5
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        for entity in NAME_LISTS:
            sync_entity(client, wh, entity)
            stored = wh.query(f"SELECT id, raw FROM qbo.{entity.table} ORDER BY id")
            as_recorded = {row["Id"]: row for row in recorded[entity]}
            assert {id_: _json(raw) for id_, raw in stored} == as_recorded, entity.name
        assert wh.query(
            "SELECT name, rate_value, agency_id, active FROM qbo.tax_rates WHERE id = '3'"
        ) == [("California", Decimal(8), "2", True)]
        assert wh.query(
            "SELECT name, type, income_account_id, taxable FROM qbo.items WHERE id = '3'"
        ) == [("Concrete", "Service", "48", True)]
        for entity in (COMPANY_INFO, PREFERENCES):
            sync_entity(client, wh, entity)
        assert wh.query("SELECT company_name, city, region FROM qbo.company_info") == [
            ("Craig's Design and Landscaping Services", "San Pablo", "CA")
        ]
        assert wh.query("SELECT home_currency, multi_currency_enabled FROM qbo.preferences") == [
            ("USD", False)
        ]
        assert wh.query("SELECT display_name FROM qbo.tax_agencies ORDER BY id") == [
            ("Arizona Dept. of Revenue",),
            ("Board of Equalization",),
        ]


def _json(raw):
    return json.loads(raw) if isinstance(raw, str) else raw


def test_sandbox_transactions_replay_with_their_lines_and_links(connect, fixtures_dir):
    """The sandbox's real payloads of every transaction it holds: payments that pay
    invoices, bills and their payments, journal entries, deposits, expenses, time."""
    company = connect(data=fixtures_dir / "qbo_sandbox_records.jsonl")
    recorded = {
        entity: rows
        for entity in TRANSACTIONS
        if (rows := sandbox_stream(fixtures_dir, entity.table))
    }
    assert len(recorded) == 12  # all but transfers, vendor credits and budgets
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        for entity in recorded:
            result = sync_entity(client, wh, entity)
            stored = wh.query(f"SELECT id, raw FROM qbo.{entity.table} ORDER BY id")
            assert {id_: _json(raw) for id_, raw in stored} == {
                row["Id"]: row for row in recorded[entity]
            }, entity.name
            if entity.lines is not None:
                lines = sum(len(row.get("Line", [])) for row in recorded[entity])
                assert result.lines == lines, entity.name
        # Payment 98 paid invoice 42 in full (81.00), and was deposited by deposit 121.
        assert wh.query(
            "SELECT line_index, linked_type, linked_id FROM qbo.linked_transactions "
            "WHERE parent_type = 'Payment' AND parent_id = '98' ORDER BY line_index NULLS FIRST"
        ) == [(None, "Deposit", "121"), (0, "Invoice", "42")]
        assert wh.query("SELECT amount FROM qbo.payment_lines WHERE payment_id = '98'") == [
            (Decimal(81),)
        ]
        # A journal entry's typed lines balance, and name their accounts.
        assert wh.query(
            "SELECT posting_type, account_id, account_name, amount FROM qbo.journal_entry_lines "
            "WHERE journal_entry_id = '6' ORDER BY line_index"
        ) == [
            ("Debit", "38", "Truck:Original Cost", Decimal(13495)),
            ("Credit", "34", "Opening Balance Equity", Decimal(13495)),
        ]
        # A bill's expense line, typed from AccountBasedExpenseLineDetail.
        assert wh.query(
            "SELECT detail_type, account_id, billable_status, tax_code, amount "
            "FROM qbo.bill_lines WHERE bill_id = '24'"
        ) == [("AccountBasedExpenseLineDetail", "17", "NotBillable", "NON", Decimal(900))]
        assert wh.query(
            "SELECT employee_id, customer_id, item_id, hours, minutes FROM qbo.time_activities "
            "WHERE id = '1'"
        ) == [("55", "17", "2", 4, 45)]
