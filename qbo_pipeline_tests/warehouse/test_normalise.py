"""Typing in the database with plain dicts: types, Pacific stamps to UTC, line details, errors.

Run through a DuckDB file, since the SQL the catalog generates is the normaliser.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE, Column, ColumnType, Entity
from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse
from qbo_pipeline.warehouse.errors import UnfitValue

_STORE: list[DuckDBWarehouse] = []


@pytest.fixture(autouse=True)
def _store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _STORE[:] = [DuckDBWarehouse(tmp_path / "normalise.duckdb")]
    yield
    _STORE[0].close()


def _rows(entity: Entity, realm_id: str, raws: list, table: str | None = None) -> list[dict]:
    warehouse = DuckDBWarehouse(_STORE[0].path, entities=(entity, INVOICE))
    warehouse.upsert(entity, realm_id, raws)
    bookkeeping = "synced_at, deleted_at, deleted_reason"
    sql = f"SELECT * EXCLUDE ({bookkeeping}) FROM qbo.{entity.table} ORDER BY id"
    if table is not None:
        sql = f"SELECT * FROM qbo.{table} ORDER BY invoice_id, line_index"
    cursor = warehouse.query(sql)
    names = [row[0] for row in warehouse.query(f"DESCRIBE {sql}")]
    warehouse.close()
    return [dict(zip(names, row, strict=True)) for row in cursor]


def entity_row(entity: Entity, realm_id: str, raw: dict) -> dict:
    (row,) = _rows(entity, realm_id, [raw])
    return row


def line_rows(entity: Entity, realm_id: str, raw: dict) -> list[dict]:
    if entity.lines is None:
        return []
    return _rows(entity, realm_id, [raw], entity.lines.table)


def normalise_batch(entity: Entity, realm_id: str, raws: list) -> object:
    class Batch:
        rows = _rows(entity, realm_id, raws)
        lines = _rows(entity, realm_id, [], entity.lines.table) if entity.lines else []

    return Batch


def _invoice(**fields: object) -> dict:
    invoice: dict = {
        "Id": "1042",
        "SyncToken": "3",
        "MetaData": {
            "CreateTime": "2025-02-03T10:02:11-08:00",
            "LastUpdatedTime": "2025-07-05T14:20:47-07:00",
        },
        "DocNumber": "1042",
        "TxnDate": "2025-02-03",
        "CustomerRef": {"value": "58", "name": "Harbor Kitchen Supply"},
        "TotalAmt": 471.6,
        "TxnTaxDetail": {"TotalTax": 21.6},
        "Line": [
            {
                "Id": "1",
                "LineNum": 1,
                "Amount": 300.0,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "11", "name": "Pump"},
                    "UnitPrice": 150,
                    "Qty": 2,
                    "ServiceDate": "2025-02-02",
                },
            },
            {"Amount": 500.0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
            {
                "Amount": 50.0,
                "DetailType": "DiscountLineDetail",
                "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
            },
        ],
    }
    invoice.update(fields)
    return invoice


def test_entity_row_converts_every_type() -> None:
    row = entity_row(INVOICE, "realm-1", _invoice())

    assert row["realm_id"] == "realm-1"
    assert row["id"] == "1042"
    assert row["sync_token"] == 3  # sent as a string
    assert row["doc_number"] == "1042"
    assert row["customer_id"] == "58"
    assert row["customer_name"] == "Harbor Kitchen Supply"
    assert row["txn_date"] == date(2025, 2, 3)
    assert row["total_amt"] == Decimal("471.6")
    assert row["total_amt"] == Decimal("471.60000000")  # exact: no float artefacts
    assert row["total_tax"] == Decimal("21.6")
    assert row["due_date"] is None  # missing values are None
    assert row["exchange_rate"] is None
    assert set(row) == {"realm_id", *(c.name for c in INVOICE.columns), "raw"}
    assert row["raw"] is not None


def test_pacific_stamps_become_utc_on_both_sides_of_dst() -> None:
    row = entity_row(INVOICE, "r", _invoice())

    # -08:00 in February (PST), -07:00 in July (PDT).
    assert row["created_at"] == datetime(2025, 2, 3, 18, 2, 11, tzinfo=UTC)
    assert row["updated_at"] == datetime(2025, 7, 5, 21, 20, 47, tzinfo=UTC)
    assert row["created_at"].utcoffset().total_seconds() == 0


def test_offsetless_stamp_is_read_as_pacific() -> None:
    raw = _invoice(MetaData={"CreateTime": "2025-01-15T09:00:00"})

    assert entity_row(INVOICE, "r", raw)["created_at"] == datetime(2025, 1, 15, 17, tzinfo=UTC)


def test_raw_is_the_entity_unchanged_with_keys_in_order() -> None:
    raw = _invoice(PrivateNote="café ✓")
    row = entity_row(INVOICE, "r", raw)

    assert json.loads(row["raw"]) == raw
    assert list(json.loads(row["raw"])) == list(raw)
    assert "café ✓" in row["raw"]


def test_customer_booleans_and_nested_fields() -> None:
    raw = {
        "Id": "17",
        "SyncToken": "0",
        "DisplayName": "Mark Cho",
        "Active": True,
        "Job": False,
        "Balance": 314.28,
        "PrimaryEmailAddr": {"Address": "Mark@Cho.com"},
        "BillAddr": {"City": "Menlo Park"},
    }
    row = entity_row(CUSTOMER, "r", raw)

    assert row["active"] is True
    assert row["is_job"] is False
    assert row["taxable"] is None
    assert row["balance"] == Decimal("314.28")
    assert row["email"] == "Mark@Cho.com"
    assert row["bill_city"] == "Menlo Park"
    assert row["phone"] is None  # PrimaryPhone absent


def test_every_line_becomes_a_row_keyed_by_position() -> None:
    rows = line_rows(INVOICE, "r", _invoice())

    assert [r["line_index"] for r in rows] == [0, 1, 2]
    assert {r["invoice_id"] for r in rows} == {"1042"}
    assert [r["detail_type"] for r in rows] == [
        "SalesItemLineDetail",
        "SubTotalLineDetail",
        "DiscountLineDetail",
    ]
    item, subtotal, discount = rows
    assert item["line_id"] == "1"
    assert item["line_num"] == 1
    assert item["item_id"] == "11"
    assert item["item_name"] == "Pump"
    assert item["qty"] == Decimal(2)
    assert item["unit_price"] == Decimal(150)
    assert item["service_date"] == date(2025, 2, 2)
    assert subtotal["line_id"] is None
    assert subtotal["amount"] == Decimal(500)
    assert subtotal["item_id"] is None
    # DETAIL resolves to the discount line's own detail object.
    assert discount["discount_percent"] == Decimal(10)
    assert discount["discount_percent_based"] is True
    assert discount["qty"] is None
    assert json.loads(discount["raw"]) == _invoice()["Line"][2]


def test_entity_without_lines_has_no_line_rows() -> None:
    assert line_rows(CUSTOMER, "r", {"Id": "1"}) == []
    assert line_rows(INVOICE, "r", {"Id": "2"}) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"MetaData": {"LastUpdatedTime": "yesterday"}}, "MetaData.LastUpdatedTime"),
        ({"SyncToken": "three"}, "SyncToken"),
        ({"TotalAmt": "lots"}, "TotalAmt"),
        ({"TxnDate": "2025-13-45"}, "TxnDate"),
    ],
)
def test_bad_values_name_entity_id_and_field(change: dict, field: str) -> None:
    with pytest.raises(UnfitValue, match=rf"Invoice '1042'.*{field}"):
        entity_row(INVOICE, "r", _invoice(**change))


def test_bad_line_value_names_the_line() -> None:
    raw = _invoice()
    raw["Line"][2]["DiscountLineDetail"]["DiscountPercent"] = "ten"
    with pytest.raises(UnfitValue, match=r"Invoice '1042' Line\[2\].*DiscountPercent"):
        line_rows(INVOICE, "r", raw)


def test_missing_id_and_non_objects_are_rejected() -> None:
    with pytest.raises(UnfitValue, match="Invoice record has no usable Id"):
        entity_row(INVOICE, "r", {"SyncToken": "0"})
    with pytest.raises(UnfitValue, match="Customer record is a list"):
        entity_row(CUSTOMER, "r", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(UnfitValue, match=r"Line\[0\] is a VARCHAR, not a JSON object"):
        line_rows(INVOICE, "r", _invoice(Line=["oops", {"Amount": "x"}]))


def test_batch_keeps_the_highest_sync_token_of_each_id() -> None:
    old = _invoice(SyncToken="4", DocNumber="old")
    new = _invoice(SyncToken="5", DocNumber="new", Line=[])
    other = _invoice(Id="7")

    batch = normalise_batch(INVOICE, "r", [new, other, old])

    assert sorted((r["id"], r["doc_number"]) for r in batch.rows) == [
        ("1042", "new"),
        ("7", "1042"),
    ]
    assert {line["invoice_id"] for line in batch.lines} == {"7"}


def test_a_catalog_column_added_later_is_extracted() -> None:
    grown = replace(
        CUSTOMER, columns=(*CUSTOMER.columns, Column("notes", ColumnType.TEXT, ("Notes",)))
    )
    assert entity_row(grown, "r", {"Id": "1", "Notes": "Net 30"})["notes"] == "Net 30"
