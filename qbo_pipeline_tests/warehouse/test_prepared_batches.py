"""Batches prepared ahead of the write, as the sync engine does on its helper thread."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.warehouse import Warehouse, connect_warehouse, encode_batch
from qbo_pipeline.warehouse.base import PreparedBatch
from qbo_pipeline.warehouse.errors import UnfitValue

REALM = "9130356766371234"


def _tables(warehouse: Warehouse) -> list:
    """Everything but synced_at, which records when each row was written."""
    return [
        warehouse.query(
            "SELECT id, sync_token, updated_at, doc_number, customer_id, txn_date, total_amt, "
            "raw, deleted_at FROM qbo.invoices ORDER BY id"
        ),
        warehouse.query("SELECT * FROM qbo.invoice_lines ORDER BY invoice_id, line_index"),
    ]


def _renumbered(invoices: list[dict], batch: int) -> list[dict]:
    copies = copy.deepcopy(invoices)
    for invoice in copies:
        invoice["Id"] = f"{batch}-{invoice['Id']}"
    return copies


def test_batches_prepared_while_others_are_written_land_as_typed_in_the_write(
    warehouse_url: str, tmp_path: Path, invoices: list[dict]
) -> None:
    """Typed on a helper thread while others are written, or typed inside the write's
    transaction (an untyped batch): the same rows and lines are stored."""
    batches = [_renumbered(invoices, n) for n in range(6)]
    plain = connect_warehouse(warehouse_url, default_path=tmp_path / "unused.duckdb")
    with plain:
        for batch in batches:
            plain.upsert(INVOICE, REALM, PreparedBatch(INVOICE, encode_batch(INVOICE, batch)))
        expected = _tables(plain)
        plain.query("DELETE FROM qbo.invoice_lines")
        plain.query("DELETE FROM qbo.invoices")

        prepared: list[PreparedBatch] = []
        ready = threading.Semaphore(0)

        def prepare_all() -> None:
            for batch in batches:
                prepared.append(plain.prepare(INVOICE, encode_batch(INVOICE, batch)))
                ready.release()

        helper = threading.Thread(target=prepare_all)
        helper.start()
        written = 0
        for index in range(len(batches)):
            ready.acquire()
            written += plain.upsert(INVOICE, REALM, prepared[index]).rows_written
        helper.join()

        assert written == 5 * len(batches)
        assert _tables(plain) == expected


def test_a_batch_prepared_by_another_warehouse_still_loads(
    warehouse: Warehouse, tmp_path: Path, invoices: list[dict]
) -> None:
    """A batch carrying only its texts (no typed form) is typed inside the write."""
    untyped = PreparedBatch(INVOICE, encode_batch(INVOICE, invoices))

    result = warehouse.upsert(INVOICE, REALM, untyped)

    assert (result.rows_written, result.lines_written) == (5, 21)
    assert warehouse.count("invoice_lines", REALM) == 21


def test_a_batch_prepared_for_one_entity_cannot_load_another(
    warehouse: Warehouse, customers: list[dict]
) -> None:
    batch = warehouse.prepare(CUSTOMER, encode_batch(CUSTOMER, customers))

    with pytest.raises(ValueError, match="prepared for Customer cannot load Invoice"):
        warehouse.upsert(INVOICE, REALM, batch)
    assert warehouse.count("invoices") == 0


def test_a_value_that_does_not_type_is_named_when_the_batch_is_prepared(
    warehouse: Warehouse, invoices: list[dict]
) -> None:
    broken = copy.deepcopy(invoices)
    broken[2]["TotalAmt"] = "twelve"
    texts = encode_batch(INVOICE, broken)

    with pytest.raises(UnfitValue, match=r"TotalAmt .* = 'twelve' is not a valid decimal"):
        warehouse.upsert(INVOICE, REALM, warehouse.prepare(INVOICE, texts))
    assert warehouse.count("invoices") == 0
