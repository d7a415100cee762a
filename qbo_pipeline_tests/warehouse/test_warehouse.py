"""Both warehouses, as an analyst checks them: real sandbox data lands where expected."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE, Column, ColumnType
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.warehouse import Warehouse, connect_warehouse
from qbo_pipeline.warehouse.base import SqlWarehouse
from qbo_pipeline.warehouse.errors import UnfitValue
from qbo_pipeline.warehouse.sql import Dialect

REALM = "9130356766371234"


def _as_dict(value: object) -> dict:
    """JSON columns come back as text from DuckDB and as dicts from PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[return-value]


def _one(warehouse: Warehouse, sql: str, *params: object) -> tuple:
    rows = warehouse.query(sql, params)
    assert len(rows) == 1, rows
    return rows[0]


def _snapshot(warehouse: Warehouse) -> list:
    return [
        warehouse.query("SELECT * FROM qbo.customers ORDER BY realm_id, id"),
        warehouse.query("SELECT * FROM qbo.invoices ORDER BY realm_id, id"),
        warehouse.query(
            "SELECT * FROM qbo.invoice_lines ORDER BY realm_id, invoice_id, line_index"
        ),
        warehouse.query("SELECT * FROM qbo._sync_state ORDER BY realm_id, entity"),
    ]


def test_sandbox_invoice_119_is_where_an_analyst_expects_it(
    warehouse: Warehouse, invoices: list[dict]
) -> None:
    result = warehouse.upsert(INVOICE, REALM, invoices)

    assert result.rows_written == 5
    assert result.lines_written == sum(len(invoice["Line"]) for invoice in invoices)
    row = _one(
        warehouse,
        "SELECT doc_number, customer_id, customer_name, txn_date, due_date, total_amt, "
        "balance, total_tax, currency, updated_at, sync_token, deleted_at "
        "FROM qbo.invoices WHERE realm_id = $1 AND id = $2",
        REALM,
        "119",
    )
    assert row == (
        "1035",
        "17",
        "Mark Cho",
        date(2023, 2, 18),
        date(2023, 3, 20),
        Decimal("314.28"),
        Decimal("314.28"),
        Decimal("23.28"),
        "USD",
        datetime(2023, 2, 18, 20, 57, 24, tzinfo=UTC),  # 12:57:24-08:00
        0,
        None,
    )
    lines = warehouse.query(
        "SELECT line_index, detail_type, item_id, qty, unit_price, amount, line_id "
        "FROM qbo.invoice_lines WHERE realm_id = $1 AND invoice_id = $2 ORDER BY line_index",
        [REALM, "119"],
    )
    assert lines == [
        (0, "SalesItemLineDetail", "5", Decimal(1), Decimal(275), Decimal(275), "1"),
        (1, "SalesItemLineDetail", "17", Decimal(4), Decimal(4), Decimal(16), "2"),
        (2, "SubTotalLineDetail", None, None, None, Decimal(291), None),
    ]


def test_every_invoice_value_matches_the_file(warehouse: Warehouse, invoices: list[dict]) -> None:
    warehouse.upsert(INVOICE, REALM, invoices)

    stored = {
        row[0]: row
        for row in warehouse.query(
            "SELECT id, doc_number, customer_id, txn_date, due_date, total_amt, balance, "
            "total_tax, currency, created_at, updated_at, sync_token, raw FROM qbo.invoices"
        )
    }
    assert sorted(stored) == sorted(invoice["Id"] for invoice in invoices)
    for invoice in invoices:
        row = stored[invoice["Id"]]
        assert row[1:12] == (
            invoice["DocNumber"],
            invoice["CustomerRef"]["value"],
            date.fromisoformat(invoice["TxnDate"]),
            date.fromisoformat(invoice["DueDate"]),
            Decimal(str(invoice["TotalAmt"])),
            Decimal(str(invoice["Balance"])),
            Decimal(str(invoice["TxnTaxDetail"]["TotalTax"])),
            invoice["CurrencyRef"]["value"],
            parse_instant(invoice["MetaData"]["CreateTime"]),
            parse_instant(invoice["MetaData"]["LastUpdatedTime"]),
            int(invoice["SyncToken"]),
        )
        assert _as_dict(row[12]) == invoice

    total = _one(warehouse, "SELECT sum(total_amt) FROM qbo.invoices")[0]
    assert total == sum(Decimal(str(invoice["TotalAmt"])) for invoice in invoices)
    assert total == Decimal("3910.37")  # 314.28 + 2369.52 + 387 + 477.5 + 362.07

    line_total = _one(
        warehouse,
        "SELECT sum(amount) FROM qbo.invoice_lines WHERE detail_type = 'SalesItemLineDetail'",
    )[0]
    assert line_total == sum(
        Decimal(str(line["Amount"]))
        for invoice in invoices
        for line in invoice["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    )
    for invoice in invoices:
        raws = warehouse.query(
            "SELECT raw FROM qbo.invoice_lines WHERE invoice_id = $1 ORDER BY line_index",
            [invoice["Id"]],
        )
        assert [_as_dict(raw) for (raw,) in raws] == invoice["Line"]


def test_customers_match_the_file(warehouse: Warehouse, customers: list[dict]) -> None:
    warehouse.upsert(CUSTOMER, REALM, customers)

    stored = {
        row[0]: row
        for row in warehouse.query(
            "SELECT id, display_name, active, balance, currency, created_at, is_job, "
            "parent_id, email, raw FROM qbo.customers WHERE realm_id = $1",
            [REALM],
        )
    }
    assert len(stored) == len(customers) == 5
    for customer in customers:
        assert stored[customer["Id"]][1:9] == (
            customer["DisplayName"],
            customer["Active"],
            Decimal(str(customer["Balance"])),
            customer["CurrencyRef"]["value"],
            parse_instant(customer["MetaData"]["CreateTime"]),
            customer["Job"],
            customer.get("ParentRef", {}).get("value"),
            customer["PrimaryEmailAddr"]["Address"],
        )
        assert _as_dict(stored[customer["Id"]][9]) == customer
    # By hand: the job "0969 Ocean View Road" belongs to Freeman Sporting Goods (Id 7).
    assert stored["8"][1:9] == (
        "0969 Ocean View Road",
        True,
        Decimal("477.5"),
        "USD",
        datetime(2023, 2, 11, 1, 0, 1, tzinfo=UTC),  # 2023-02-10T17:00:01-08:00
        True,
        "7",
        "Sporting_goods@intuit.com",
    )


# Text a bulk load could mangle: an empty name beside a missing one, line breaks, quotes,
# separators, backslashes, COPY's end-of-data marker alone on a line, and non-ASCII.
AWKWARD_TEXTS = [
    "",
    'He said "fine", then left',
    "Suite 4\nBuilding B\r\nRear",
    "first\n\\.\nlast",
    "\\.",
    "C:\\Users\\ap\\t",
    "tab\there;semi,comma",
    "Café Ünïcødé 東京 🚀",
]


def test_awkward_text_lands_exactly_as_quickbooks_sent_it(
    warehouse: Warehouse, customers: list[dict], invoices: list[dict]
) -> None:
    edited = copy.deepcopy(customers[: len(AWKWARD_TEXTS) - 3])
    edited += [copy.deepcopy(customers[0]) for _ in range(3)]
    for index, (customer, text) in enumerate(zip(edited, AWKWARD_TEXTS, strict=True)):
        customer["Id"] = f"9{index}"
        customer["DisplayName"] = text
    del edited[0]["PrimaryEmailAddr"]
    invoice = copy.deepcopy(invoices[0])
    invoice["Line"][0]["Description"] = AWKWARD_TEXTS[3]
    invoice["Line"][1]["Description"] = ""

    warehouse.upsert(CUSTOMER, REALM, edited)
    warehouse.upsert(INVOICE, REALM, [invoice])

    stored = warehouse.query(
        "SELECT display_name, email, raw FROM qbo.customers WHERE realm_id = $1 ORDER BY id",
        [REALM],
    )
    assert [row[0] for row in stored] == AWKWARD_TEXTS
    assert stored[0][1] is None and stored[1][1] is not None  # missing is NULL, not ""
    assert [_as_dict(row[2]) for row in stored] == edited
    lines = warehouse.query(
        "SELECT description, raw FROM qbo.invoice_lines WHERE realm_id = $1 AND invoice_id = $2 "
        "ORDER BY line_index",
        [REALM, invoice["Id"]],
    )
    assert [row[0] for row in lines[:2]] == [AWKWARD_TEXTS[3], ""]
    assert [_as_dict(row[1]) for row in lines] == invoice["Line"]


def test_replaying_a_batch_changes_nothing(
    warehouse: Warehouse, customers: list[dict], invoices: list[dict]
) -> None:
    warehouse.upsert(CUSTOMER, REALM, customers)
    warehouse.upsert(INVOICE, REALM, invoices, cursor=datetime(2023, 2, 18, 22, tzinfo=UTC))
    before = _snapshot(warehouse)

    again = warehouse.upsert(INVOICE, REALM, invoices)
    assert (again.rows_written, again.lines_written) == (0, 0)
    assert warehouse.upsert(CUSTOMER, REALM, customers).rows_written == 0

    assert _snapshot(warehouse) == before  # synced_at included: nothing was rewritten
    assert warehouse.count("invoices") == 5
    assert warehouse.count("invoice_lines", REALM) == 21


def test_newest_sync_token_wins(warehouse: Warehouse, invoices: list[dict]) -> None:
    original = next(invoice for invoice in invoices if invoice["Id"] == "119")
    newer = copy.deepcopy(original) | {"SyncToken": "1", "Balance": 0, "DocNumber": "1035-B"}
    older = copy.deepcopy(original) | {"SyncToken": "0", "Balance": 99}

    assert warehouse.upsert(INVOICE, REALM, [newer]).rows_written == 1
    assert warehouse.upsert(INVOICE, REALM, [older]).rows_written == 0
    row = _one(warehouse, "SELECT sync_token, balance, doc_number FROM qbo.invoices")
    assert row == (1, Decimal(0), "1035-B")

    newest = copy.deepcopy(newer) | {"SyncToken": "2", "Balance": 10}
    assert warehouse.upsert(INVOICE, REALM, [newest]).rows_written == 1
    assert _one(warehouse, "SELECT sync_token, balance FROM qbo.invoices") == (2, Decimal(10))


def test_two_versions_in_one_batch_keep_the_newest(
    warehouse: Warehouse, invoices: list[dict]
) -> None:
    invoice = invoices[0]
    newer = copy.deepcopy(invoice) | {"SyncToken": "7", "Line": invoice["Line"][:1]}

    result = warehouse.upsert(INVOICE, REALM, [newer, invoice])

    assert (result.rows_written, result.lines_written) == (1, 1)
    assert _one(warehouse, "SELECT sync_token FROM qbo.invoices") == (7,)


def test_lines_follow_their_invoice_when_it_shrinks(
    warehouse: Warehouse, invoices: list[dict]
) -> None:
    invoice = next(invoice for invoice in invoices if invoice["Id"] == "119")
    warehouse.upsert(INVOICE, REALM, invoices)
    assert warehouse.count("invoice_lines") == 21

    shrunk = copy.deepcopy(invoice) | {"SyncToken": "1", "Line": [invoice["Line"][1]]}
    result = warehouse.upsert(INVOICE, REALM, [shrunk])

    assert (result.rows_written, result.lines_written) == (1, 1)
    lines = warehouse.query(
        "SELECT line_index, item_id FROM qbo.invoice_lines WHERE invoice_id = '119'"
    )
    assert lines == [(0, "17")]
    assert warehouse.count("invoice_lines") == 19  # other invoices keep theirs


def test_realms_are_kept_apart(warehouse: Warehouse, customers: list[dict]) -> None:
    warehouse.upsert(CUSTOMER, "4620816365213455", customers)
    warehouse.upsert(CUSTOMER, "4620816365213456", customers[:2])

    assert warehouse.count("customers") == 7
    assert warehouse.count("qbo.customers", "4620816365213456") == 2
    with pytest.raises(ValueError, match="no warehouse table 'bobby_tables'"):
        warehouse.count("bobby_tables")


def test_cursor_only_moves_forward(warehouse: Warehouse, customers: list[dict]) -> None:
    assert warehouse.cursor(REALM, "Customer") is None
    later = parse_instant("2023-02-18T13:16:17-08:00")

    warehouse.upsert(CUSTOMER, REALM, customers, cursor=later)
    assert warehouse.cursor(REALM, "Customer") == later
    assert warehouse.cursor(REALM, "Customer").utcoffset() == timedelta(0)

    warehouse.upsert(CUSTOMER, REALM, [], cursor=later - timedelta(hours=1))
    assert warehouse.cursor(REALM, "Customer") == later
    warehouse.upsert(CUSTOMER, REALM, [], cursor=later + timedelta(seconds=1))
    assert warehouse.cursor(REALM, "Customer") == later + timedelta(seconds=1)
    assert warehouse.cursor("999", "Customer") is None
    assert warehouse.cursor(REALM, "Invoice") is None

    with pytest.raises(ValueError, match="timezone-aware"):
        warehouse.upsert(CUSTOMER, REALM, [], cursor=datetime(2025, 1, 1))


def test_a_bad_record_writes_nothing(warehouse: Warehouse, invoices: list[dict]) -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    warehouse.upsert(INVOICE, REALM, invoices[:1], cursor=start)
    before = _snapshot(warehouse)
    good = copy.deepcopy(invoices[1])
    bad = copy.deepcopy(invoices[2]) | {"MetaData": {"LastUpdatedTime": "not a time"}}

    with pytest.raises(UnfitValue, match=r"Invoice '96'.*LastUpdatedTime"):
        warehouse.upsert(INVOICE, REALM, [good, bad], cursor=start + timedelta(days=60))

    assert _snapshot(warehouse) == before
    assert warehouse.cursor(REALM, "Invoice") == start


def test_a_failure_mid_transaction_rolls_back_rows_and_cursor(
    warehouse: Warehouse, invoices: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    warehouse.upsert(INVOICE, REALM, invoices[:1], cursor=start)
    before = _snapshot(warehouse)

    def fail_after_rows_were_written(*args: object) -> int:
        raise RuntimeError("connection lost while writing lines")

    assert isinstance(warehouse, SqlWarehouse)
    monkeypatch.setattr(warehouse, "_replace_lines", fail_after_rows_were_written)
    with pytest.raises(RuntimeError, match="connection lost"):
        warehouse.upsert(INVOICE, REALM, invoices, cursor=start + timedelta(days=60))
    monkeypatch.undo()

    assert _snapshot(warehouse) == before
    assert warehouse.cursor(REALM, "Invoice") == start
    # And the warehouse is still usable: the same batch now goes through.
    assert warehouse.upsert(INVOICE, REALM, invoices).rows_written == 4


def test_schema_grows_with_the_catalog(
    warehouse_url: str, tmp_path: Path, customers: list[dict]
) -> None:
    default = tmp_path / "unused.duckdb"
    first = connect_warehouse(warehouse_url, default_path=default)
    first.ensure_schema()
    first.upsert(CUSTOMER, REALM, customers)
    first.close()

    notes = Column("print_on_check_name", ColumnType.TEXT, ("PrintOnCheckName",))
    grown = replace(CUSTOMER, columns=(*CUSTOMER.columns, notes))
    second = connect_warehouse(warehouse_url, default_path=default, entities=(grown, INVOICE))
    try:
        second.ensure_schema()
        second.ensure_schema()  # idempotent
        # Filled from the stored raw JSON (test_schema_evolution.py), so a replay of the
        # same SyncTokens finds nothing to rewrite.
        assert second.upsert(grown, REALM, customers).rows_written == 0
        assert second.query("SELECT print_on_check_name FROM qbo.customers WHERE id = '3'") == [
            ("Cool Cars",)
        ]
    finally:
        second.close()


def test_query_takes_dollar_placeholders(warehouse: Warehouse, customers: list[dict]) -> None:
    warehouse.upsert(CUSTOMER, REALM, customers)

    rows = warehouse.query(
        "SELECT id FROM qbo.customers WHERE realm_id = $1 AND balance > $2 ORDER BY id",
        [REALM, Decimal(300)],
    )
    assert rows == [("17",), ("24",), ("8",)]


def _comments(warehouse: Warehouse, table: str) -> dict[str | None, str | None]:
    """Column comments of qbo.<table>, and the table's own under None, as the database
    keeps them (read back through each dialect's catalog)."""
    if warehouse.dialect is Dialect.DUCKDB:
        sql = (
            "SELECT column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'qbo' AND table_name = $1 "
            "UNION ALL SELECT NULL, comment FROM duckdb_tables() "
            "WHERE schema_name = 'qbo' AND table_name = $1"
        )
    else:
        sql = (
            "SELECT column_name, col_description(format('qbo.%I', $1::text)::regclass, "
            "ordinal_position) FROM information_schema.columns "
            "WHERE table_schema = 'qbo' AND table_name = $1 "
            "UNION ALL SELECT NULL, obj_description(format('qbo.%I', $1::text)::regclass)"
        )
    return dict(warehouse.query(sql, [table]))


def test_columns_carry_the_catalogs_descriptions_and_follow_its_edits(
    warehouse_url: str, tmp_path: Path
) -> None:
    default = tmp_path / "unused.duckdb"
    first = connect_warehouse(warehouse_url, default_path=default)
    first.ensure_schema()
    comments = _comments(first, "invoices")
    first.close()
    assert (
        comments["balance"] == next(c for c in INVOICE.columns if c.name == "balance").description
    )
    assert comments["deleted_at"].startswith("When the pipeline found the row deleted")
    assert comments[None] == INVOICE.description
    item = next(c for c in INVOICE.lines.columns if c.name == "item_id")
    assert _comments_of_lines(warehouse_url, default)["item_id"] == item.description

    reworded = tuple(
        replace(c, description="What is unpaid, in the invoice's currency")
        if c.name == "balance"
        else c
        for c in INVOICE.columns
    )
    second = connect_warehouse(
        warehouse_url,
        default_path=default,
        entities=(CUSTOMER, replace(INVOICE, columns=reworded)),
    )
    try:
        second.ensure_schema()
        assert (
            _comments(second, "invoices")["balance"] == "What is unpaid, in the invoice's currency"
        )
    finally:
        second.close()


def _comments_of_lines(warehouse_url: str, default: Path) -> dict[str | None, str | None]:
    opened = connect_warehouse(warehouse_url, default_path=default)
    try:
        return _comments(opened, "invoice_lines")
    finally:
        opened.close()


def test_tables_another_role_owns_keep_their_comments_and_still_load(
    postgres_url: str, customers: list[dict], tmp_path: Path
) -> None:
    """PostgreSQL lets only a table's owner comment on it: a loader role the DBA granted
    the tables to must still sync, and leaves the owner's comments as they are."""
    unused = tmp_path / "unused.duckdb"
    owner = connect_warehouse(postgres_url, default_path=unused)
    owner.ensure_schema()
    owner.close()
    role = f"loader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        database = postgres_url.rpartition("/")[2]
        conn.execute(f'GRANT CREATE ON DATABASE "{database}" TO {role}')
        conn.execute(f"GRANT ALL ON SCHEMA qbo TO {role}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA qbo TO {role}")
        conn.execute("COMMENT ON COLUMN qbo.customers.balance IS 'the DBA''s own words'")
    reworded = tuple(
        replace(c, description="Reworded") if c.name == "balance" else c for c in CUSTOMER.columns
    )
    loader = connect_warehouse(
        postgres_url.replace("qbo@", f"{role}@", 1),
        default_path=unused,
        entities=(replace(CUSTOMER, columns=reworded), INVOICE),
    )
    try:
        loader.ensure_schema()
        assert loader.upsert(CUSTOMER, REALM, customers).rows_written == 5
        assert _comments(loader, "customers")["balance"] == "the DBA's own words"
    finally:
        loader.close()
