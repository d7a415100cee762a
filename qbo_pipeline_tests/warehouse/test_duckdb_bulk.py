"""A sync's batches of one entity in one DuckDB transaction (DuckDBWarehouse.bulk)."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.warehouse import WarehouseError
from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse
from qbo_pipeline.warehouse.records import Records, record_typer
from qbo_pipeline.warehouse.schema import SYNC_STATE_TABLE
from qbo_pipeline_tests.sandbox import copies


def test_a_bulk_transaction_does_not_hold_the_batches_it_wrote(
    tmp_path: Path, invoices: list[dict]
) -> None:
    """Memory stays at about one batch however many a sync writes before its commit."""
    warehouse = DuckDBWarehouse(tmp_path / "bulk.duckdb")
    warehouse.ensure_schema()
    typer = record_typer()

    def batch(step: int) -> Records:
        """Pages that overlap, as a full sync reads them: joining them copies each page
        less the row the next one repeats into Arrow's pool."""
        pages = [typer.records(INVOICE, copies(invoices, step * 500 + page * 100, 101))
                 for page in range(5)]  # fmt: skip
        return Records.joined(INVOICE, pages)

    first = batch(0)
    one_batch = first.rows.nbytes + (first.lines.nbytes if first.lines else 0)
    before = pa.total_allocated_bytes()
    with warehouse.bulk():
        warehouse.upsert(INVOICE, "realm", first)
        del first
        for step in range(1, 12):
            warehouse.upsert(INVOICE, "realm", batch(step))
        held = pa.total_allocated_bytes() - before
    warehouse.close()

    assert held < 2 * one_batch, f"{held:,} bytes of Arrow held; one batch is {one_batch:,}"
    assert DuckDBWarehouse(tmp_path / "bulk.duckdb").count("invoices") == 12 * 500 + 1


def test_threads_in_bulk_each_commit_their_own_entity(
    tmp_path: Path, customers: list[dict], invoices: list[dict]
) -> None:
    """One entity failing mid-sync keeps what it wrote, and the other's rows all land."""
    warehouse = DuckDBWarehouse(tmp_path / "bulk.duckdb")
    warehouse.ensure_schema()
    failures: list[BaseException] = []

    def customers_sync() -> None:
        with warehouse.bulk():
            for step in range(6):
                warehouse.upsert(CUSTOMER, "realm", copies(customers, 1 + step * 100, 100))

    def invoices_sync() -> None:
        try:
            with warehouse.bulk():
                for step in range(6):
                    if step == 3:
                        raise RuntimeError("QBO stopped answering")
                    warehouse.upsert(INVOICE, "realm", copies(invoices, 1 + step * 100, 100))
        except RuntimeError as error:
            failures.append(error)

    threads = [threading.Thread(target=customers_sync), threading.Thread(target=invoices_sync)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    warehouse.close()

    assert [str(error) for error in failures] == ["QBO stopped answering"]
    reopened = DuckDBWarehouse(tmp_path / "bulk.duckdb")
    assert reopened.count("customers", "realm") == 600
    assert reopened.count("invoices", "realm") == 300
    assert reopened.count("invoice_lines", "realm") > 300


def test_a_statement_that_fails_in_bulk_writes_none_of_the_transaction(
    tmp_path: Path, invoices: list[dict]
) -> None:
    """DuckDB cannot keep part of a failed transaction: the block's writes are undone and
    the error says so, rather than the sync going on as if they were stored."""
    warehouse = DuckDBWarehouse(tmp_path / "bulk.duckdb")
    warehouse.ensure_schema()
    with pytest.raises(duckdb.CatalogException, match="no_such_table"), warehouse.bulk():
        warehouse.upsert(INVOICE, "realm", copies(invoices, 1, 50))
        warehouse.query("SELECT * FROM qbo.no_such_table")
    assert warehouse.count("invoices", "realm") == 0
    warehouse.upsert(INVOICE, "realm", copies(invoices, 1, 50))
    assert warehouse.count("invoices", "realm") == 50
    warehouse.close()


def test_a_commit_that_fails_fails_its_own_thread_and_no_other(tmp_path: Path) -> None:
    """Letting the file go commits every thread's transaction: one that conflicts raises
    in its own thread, at its next step, and the others' writes are kept."""
    warehouse = DuckDBWarehouse(tmp_path / "bulk.duckdb", linger=600, max_hold_unasked=600)
    warehouse.ensure_schema()
    state = SYNC_STATE_TABLE.qualified
    same_key = (
        f"INSERT INTO {state} (realm_id, entity, cursor, updated_at) "
        "VALUES ('realm', 'Invoice', now(), now())"
    )
    statements = [same_key, same_key, "CREATE TABLE qbo.kept AS SELECT 42 AS answer"]
    written = [threading.Event() for _ in statements]
    let_go = threading.Event()
    errors: dict[int, str] = {}

    def sync(index: int) -> None:
        try:
            with warehouse.bulk():
                warehouse.query(statements[index])
                written[index].set()
                let_go.wait(timeout=30)
        except WarehouseError as error:
            errors[index] = str(error)

    threads = [threading.Thread(target=sync, args=(index,)) for index in range(3)]
    for thread, done in zip(threads, written, strict=True):
        thread.start()
        assert done.wait(timeout=30)
    warehouse.close()  # as the linger timer does, or another thread letting the file go
    let_go.set()
    for thread in threads:
        thread.join(timeout=30)

    assert len(errors) == 1 and set(errors) <= {0, 1}, errors
    assert "committing this sync's batches failed" in next(iter(errors.values()))
    assert warehouse.query("SELECT answer FROM qbo.kept") == [(42,)]
    assert warehouse.query(f"SELECT count(*) FROM {state}") == [(1,)]
    warehouse.close()
