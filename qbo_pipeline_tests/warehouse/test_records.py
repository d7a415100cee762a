"""Records typed from the bytes QBO sends, as a sync reads them, and joined into batches."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.warehouse import Records, Warehouse, connect_warehouse
from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse
from qbo_pipeline.warehouse.errors import UnfitValue
from qbo_pipeline.warehouse.records import RecordTyper

REALM = "9130356766371234"


@pytest.fixture
def typer() -> Iterator[RecordTyper]:
    typer = RecordTyper()
    yield typer
    typer.close()


def _body(entity_name: str, rows: list[dict]) -> bytes:
    """A query answer as QBO sends it."""
    return orjson.dumps(
        {
            "QueryResponse": {entity_name: rows, "startPosition": 1, "maxResults": len(rows)},
            "time": "2026-11-30T08:00:00.000-08:00",
        }
    )


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
        invoice["Id"] = f"{batch}{invoice['Id']}"
    return copies


def test_a_page_typed_from_its_bytes_lands_as_the_same_records_do(
    warehouse_url: str, tmp_path: Path, invoices: list[dict], typer: RecordTyper
) -> None:
    """Pages typed from QBO's bytes on other threads, joined while others are written,
    store exactly what the records upserted as dictionaries store."""
    pages = [_renumbered(invoices, n) for n in range(1, 7)]
    warehouse = connect_warehouse(warehouse_url, default_path=tmp_path / "unused.duckdb")
    with warehouse:
        for page in pages:
            warehouse.upsert(INVOICE, REALM, page)
        expected = _tables(warehouse)
        warehouse.query("DELETE FROM qbo.invoice_lines")
        warehouse.query("DELETE FROM qbo.invoices")

        typed: list[Records] = []
        ready = threading.Semaphore(0)

        def type_all() -> None:
            for page in pages:
                typed.append(typer.page(INVOICE, _body("Invoice", page)))
                ready.release()

        helper = threading.Thread(target=type_all)
        helper.start()
        written = 0
        for index in range(0, len(pages), 2):
            ready.acquire()
            ready.acquire()
            batch = Records.joined(INVOICE, typed[index : index + 2])
            written += warehouse.upsert(INVOICE, REALM, batch).rows_written
        helper.join()

        assert written == 5 * len(pages)
        assert _tables(warehouse) == expected


def test_a_page_knows_its_ids_and_first_and_last_stamps(
    invoices: list[dict], typer: RecordTyper
) -> None:
    records = typer.page(INVOICE, _body("Invoice", invoices))

    assert records.ids == [invoice["Id"] for invoice in invoices]
    stamps = [parse_instant(i["MetaData"]["LastUpdatedTime"]) for i in invoices]
    assert (records.first, records.last) == (
        stamps[0].replace(microsecond=0),
        stamps[-1].replace(microsecond=0),
    )
    assert records.lines is not None
    assert records.lines.num_rows == sum(len(invoice["Line"]) for invoice in invoices)


def test_joined_pages_keep_the_newest_version_of_a_record_with_its_lines(
    invoices: list[dict], typer: RecordTyper, warehouse: Warehouse
) -> None:
    newer = copy.deepcopy(invoices[1])
    newer["SyncToken"] = str(int(newer["SyncToken"]) + 1)
    newer["Line"] = newer["Line"][:1]
    older_page = typer.page(INVOICE, _body("Invoice", invoices))
    newer_page = typer.page(INVOICE, _body("Invoice", [newer]))

    # The newer version wins whichever page comes first.
    for parts in ([older_page, newer_page], [newer_page, older_page]):
        batch = Records.joined(INVOICE, parts)
        assert sorted(batch.ids) == sorted(invoice["Id"] for invoice in invoices)
        warehouse.upsert(INVOICE, REALM, batch)

    [(token, lines)] = warehouse.query(
        "SELECT sync_token, json_array_length(raw, '$.Line') FROM qbo.invoices WHERE id = $1"
        if isinstance(warehouse, DuckDBWarehouse)
        else "SELECT sync_token, jsonb_array_length(raw->'Line') FROM qbo.invoices WHERE id = $1",
        [newer["Id"]],
    )
    assert (token, lines) == (int(newer["SyncToken"]), 1)
    assert (
        warehouse.count("invoice_lines", REALM)
        == sum(len(invoice["Line"]) for invoice in invoices if invoice["Id"] != newer["Id"]) + 1
    )


def test_seam_rows_leave_with_their_lines(invoices: list[dict], typer: RecordTyper) -> None:
    records = typer.page(INVOICE, _body("Invoice", invoices))
    dropped = records.ids[:2]

    rest = records.without(dropped)

    assert rest.ids == records.ids[2:]
    assert rest.lines is not None
    assert set(rest.lines.column("invoice_id").to_pylist()) == set(records.ids[2:])


def test_a_batch_typed_for_one_entity_cannot_load_another(
    warehouse: Warehouse, customers: list[dict], typer: RecordTyper
) -> None:
    batch = typer.page(CUSTOMER, _body("Customer", customers))

    with pytest.raises(ValueError, match="typed for Customer cannot load Invoice"):
        warehouse.upsert(INVOICE, REALM, batch)
    assert warehouse.count("invoices") == 0


def test_a_value_that_does_not_type_is_named_when_the_page_is_read(
    invoices: list[dict], typer: RecordTyper
) -> None:
    broken = copy.deepcopy(invoices)
    broken[2]["TotalAmt"] = "twelve"

    with pytest.raises(UnfitValue, match=r"TotalAmt .* = 'twelve' is not a valid decimal"):
        typer.page(INVOICE, _body("Invoice", broken))


@pytest.mark.parametrize("bad_id", [None, "", {"value": "1"}, True])
def test_a_record_without_a_usable_id_is_named(
    invoices: list[dict], typer: RecordTyper, bad_id: object
) -> None:
    broken = copy.deepcopy(invoices)
    broken[3]["Id"] = bad_id

    with pytest.raises(UnfitValue, match="Invoice record has no usable Id"):
        typer.page(INVOICE, _body("Invoice", broken))


def test_a_page_cut_short_is_a_value_error_the_client_retries(
    invoices: list[dict], typer: RecordTyper
) -> None:
    body = _body("Invoice", invoices)

    with pytest.raises(ValueError):
        typer.page(INVOICE, body[: len(body) // 2])


def test_an_empty_answer_is_no_records(typer: RecordTyper) -> None:
    records = typer.page(INVOICE, b'{"QueryResponse":{},"time":"2026-11-30T08:00:00-08:00"}')

    assert len(records) == 0
    assert records.first is None
