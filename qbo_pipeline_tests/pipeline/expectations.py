"""What a user checks after a sync: the warehouse holds exactly what QuickBooks holds."""

from __future__ import annotations

from decimal import Decimal

from qbo_pipeline.warehouse.base import Warehouse


def money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def assert_warehouse_equals(warehouse: Warehouse, realm_id: str, emulator_entities) -> None:
    """Same ids, SyncTokens and amounts, and every invoice line, as the source.

    Invoices deleted in QBO stay in the warehouse with deleted_at set; the live ones (and
    their lines) must be exactly the source's.
    """
    customers = emulator_entities("Customer")
    invoices = emulator_entities("Invoice")
    where = f"realm_id = '{realm_id}'"

    stored_customers = {
        row[0]: row[1:]
        for row in warehouse.query(
            f"SELECT id, sync_token, active, balance FROM qbo.customers WHERE {where}"
        )
    }
    assert stored_customers == {
        c["Id"]: (int(c["SyncToken"]), c.get("Active", True), money(c.get("Balance", 0)))
        for c in customers
    }

    stored_invoices = {
        row[0]: row[1:]
        for row in warehouse.query(
            f"SELECT id, sync_token, total_amt, balance, customer_id FROM qbo.invoices "
            f"WHERE {where} AND deleted_at IS NULL"
        )
    }
    assert stored_invoices == {
        i["Id"]: (
            int(i["SyncToken"]),
            money(i["TotalAmt"]),
            money(i.get("Balance", 0)),
            i["CustomerRef"]["value"],
        )
        for i in invoices
    }

    stored_lines = warehouse.query(
        f"SELECT l.invoice_id, l.line_index, l.detail_type, l.amount "
        f"FROM qbo.invoice_lines l JOIN qbo.invoices i "
        f"ON i.realm_id = l.realm_id AND i.id = l.invoice_id "
        f"WHERE l.{where} AND i.deleted_at IS NULL ORDER BY l.invoice_id, l.line_index"
    )
    expected_lines = sorted(
        (i["Id"], index, line["DetailType"], money(line.get("Amount", 0)))
        for i in invoices
        for index, line in enumerate(i.get("Line", []))
    )
    assert [(a, b, c, money(d)) for a, b, c, d in stored_lines] == expected_lines
