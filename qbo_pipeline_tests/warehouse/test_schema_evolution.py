"""A catalog edit migrates the warehouse in place, on both backends: a column the catalog
adds or retypes is computed for the stored rows from their raw JSON, as the load would
type it, and nothing else moves; a value the new type cannot hold fails in one line and
leaves the data as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest

from qbo_pipeline.quickbooks.catalog import (
    CUSTOMER,
    DETAIL,
    ENTITIES,
    INVOICE,
    Column,
    ColumnType,
    Entity,
)
from qbo_pipeline.warehouse import UnfitColumn, WarehouseError, connect_warehouse
from qbo_pipeline.warehouse.base import SqlWarehouse
from qbo_pipeline.warehouse.evolution import plan, sources
from qbo_pipeline.warehouse.schema import EXISTING_COLUMNS, entity_table, tables
from qbo_pipeline.warehouse.sql import STORED_TYPES, Dialect

REALMS = ("4620816365000001", "9130356766371234")  # in the order keys sort them
CURSOR = datetime(2024, 1, 1, tzinfo=UTC)
T = ColumnType


@contextmanager
def _opened(url: str, tmp_path: Path, entities: Sequence[Entity]) -> Iterator[SqlWarehouse]:
    warehouse = connect_warehouse(url, default_path=tmp_path / "unused.duckdb", entities=entities)
    assert isinstance(warehouse, SqlWarehouse)
    try:
        yield warehouse
    finally:
        warehouse.close()


def _load(url: str, tmp_path: Path, customers: list[dict], invoices: list[dict]) -> None:
    """Both realms' customers and invoices, with cursors, under the catalog as it is."""
    with _opened(url, tmp_path, (CUSTOMER, INVOICE)) as warehouse:
        warehouse.ensure_schema()
        for realm in REALMS:
            warehouse.upsert(CUSTOMER, realm, customers, cursor=CURSOR)
            warehouse.upsert(INVOICE, realm, invoices, cursor=CURSOR)


def _grown(entity: Entity, *columns: Column) -> Entity:
    return replace(entity, columns=(*entity.columns, *columns))


def _grown_lines(entity: Entity, *columns: Column) -> Entity:
    assert entity.lines is not None
    return replace(entity, lines=replace(entity.lines, columns=(*entity.lines.columns, *columns)))


def _retyped(entity: Entity, name: str, column_type: ColumnType) -> Entity:
    columns = tuple(replace(c, type=column_type) if c.name == name else c for c in entity.columns)
    return replace(entity, columns=columns)


_KEYS = {
    "customers": "realm_id, id",
    "invoices": "realm_id, id",
    "invoice_lines": "realm_id, invoice_id, line_index",
    "_sync_state": "realm_id, entity",
}


def _rows(warehouse: SqlWarehouse, table: str, columns: str = "*") -> list[tuple]:
    return warehouse.query(f"SELECT {columns} FROM qbo.{table} ORDER BY {_KEYS[table]}")


def _state(warehouse: SqlWarehouse, table: str) -> list:
    """A table as stored: its rows and, on PostgreSQL, each row's version (xmin, which an
    update changes) and the table's file (a rewrite or a re-creation changes it)."""
    if warehouse.dialect is Dialect.DUCKDB:
        return _rows(warehouse, table)
    rows = _rows(warehouse, table, "xmin::text, *")
    where = warehouse.query(
        "SELECT oid::text, relfilenode::text FROM pg_class WHERE oid = $1::regclass",
        [f"qbo.{table}"],
    )
    return [where, rows]


def _types(warehouse: SqlWarehouse, table: str) -> dict[str, str]:
    found = warehouse.query(EXISTING_COLUMNS[warehouse.dialect])
    return {row[1]: row[4].lower() for row in found if row[0] == table and row[1] is not None}


def _by_key(warehouse: SqlWarehouse, sql: str) -> dict[tuple, tuple]:
    return {tuple(row[:2]): tuple(row[2:]) for row in warehouse.query(sql)}


def test_a_column_the_catalog_adds_is_filled_from_raw_and_nothing_else_moves(
    warehouse_url: str, tmp_path: Path, customers: list[dict], invoices: list[dict]
) -> None:
    _load(warehouse_url, tmp_path, customers, invoices)
    with _opened(warehouse_url, tmp_path, (CUSTOMER, INVOICE)) as before:
        old_columns = ", ".join(c.name for c in CUSTOMER.columns) + ", raw, synced_at"
        customers_before = _rows(before, "customers", old_columns)
        others = {name: _state(before, name) for name in ("invoices", "invoice_lines")}
        cursors = _state(before, "_sync_state")

    grown = _grown(
        CUSTOMER,
        Column("print_on_check_name", T.TEXT, ("PrintOnCheckName",)),
        Column("bill_latitude", T.DECIMAL, ("BillAddr", "Lat")),
        Column("changed_at", T.TIMESTAMP, ("MetaData", "LastUpdatedTime")),
    )
    with _opened(warehouse_url, tmp_path, (grown, INVOICE)) as after:
        after.ensure_schema()

        filled = _by_key(
            after,
            "SELECT realm_id, id, print_on_check_name, bill_latitude, changed_at, updated_at "
            "FROM qbo.customers",
        )
        assert len(filled) == 2 * len(customers)
        for realm in REALMS:
            for raw in customers:
                name, latitude, changed_at, updated_at = filled[(realm, raw["Id"])]
                assert name == raw.get("PrintOnCheckName")
                assert latitude == Decimal(raw["BillAddr"]["Lat"])
                assert changed_at == updated_at  # typed as the load types updated_at
        assert _rows(after, "customers", old_columns) == customers_before
        assert {name: _state(after, name) for name in others} == others
        assert _state(after, "_sync_state") == cursors
        assert after.cursor(REALMS[0], "Customer") == CURSOR

        # The load reads the same values: a replay finds nothing to rewrite.
        assert after.upsert(grown, REALMS[0], customers).rows_written == 0
        migrated = _state(after, "customers")
        after.ensure_schema()  # nothing left to do
        assert _state(after, "customers") == migrated


def test_a_line_column_the_catalog_adds_is_filled_from_each_lines_raw(
    warehouse_url: str, tmp_path: Path, customers: list[dict], invoices: list[dict]
) -> None:
    """Line rows keep their own raw JSON (the line as QBO sent it), so a line column,
    DETAIL paths included, is read from it like any other."""
    _load(warehouse_url, tmp_path, customers, invoices)
    with _opened(warehouse_url, tmp_path, (CUSTOMER, INVOICE)) as before:
        others = {name: _state(before, name) for name in ("customers", "invoices", "_sync_state")}

    grown = _grown_lines(
        INVOICE,
        Column("quantity", T.DECIMAL, (DETAIL, "Qty")),
        Column("item_number", T.INTEGER, (DETAIL, "ItemRef", "value")),
        Column("text", T.TEXT, ("Description",)),
    )
    with _opened(warehouse_url, tmp_path, (CUSTOMER, grown)) as after:
        after.ensure_schema()

        lines = after.query(
            "SELECT quantity, qty, item_number, item_id, text, description "
            "FROM qbo.invoice_lines ORDER BY realm_id, invoice_id, line_index"
        )
        assert len(lines) == 2 * sum(len(raw["Line"]) for raw in invoices)
        assert sum(1 for line in lines if line[0] is not None) > 10
        for quantity, qty, item_number, item_id, text, description in lines:
            assert (quantity, text) == (qty, description)
            assert item_number == (None if item_id is None else int(item_id))
        assert {name: _state(after, name) for name in others} == others

        replayed = after.upsert(grown, REALMS[1], invoices)
        assert (replayed.rows_written, replayed.lines_written) == (0, 0)


def test_a_changed_type_is_migrated_in_place_from_raw(
    warehouse_url: str, tmp_path: Path, customers: list[dict], invoices: list[dict]
) -> None:
    _load(warehouse_url, tmp_path, customers, invoices)
    with _opened(warehouse_url, tmp_path, (CUSTOMER, INVOICE)) as before:
        kept = "realm_id, id, customer_name, total_amt, raw, synced_at"
        invoices_before = _rows(before, "invoices", kept)
        others = {name: _state(before, name) for name in ("customers", "invoice_lines")}
        assert _types(before, "invoices")["doc_number"] in {"varchar", "text"}

    renumbered = _retyped(INVOICE, "doc_number", T.INTEGER)
    with _opened(warehouse_url, tmp_path, (CUSTOMER, renumbered)) as after:
        after.ensure_schema()

        assert _types(after, "invoices")["doc_number"] == "bigint"
        numbers = _by_key(after, "SELECT realm_id, id, doc_number FROM qbo.invoices")
        for realm in REALMS:
            for raw in invoices:
                assert numbers[(realm, raw["Id"])] == (int(raw["DocNumber"]),)
        assert _rows(after, "invoices", kept) == invoices_before
        assert {name: _state(after, name) for name in others} == others
        assert after.upsert(renumbered, REALMS[0], invoices).rows_written == 0


class _Unfit(NamedTuple):
    """A catalog edit the stored data refuses, and the catalog that fixes it."""

    edited: Entity
    fixed: Entity  # the column as text, which takes any value
    table: str
    column: str
    value: Callable[[dict], str]  # the refused value, in the first row in key order
    message: str


_DISPLAY_DAY = Column("display_day", T.DATE, ("DisplayName",))
_ITEM_DAY = Column("item_day", T.DATE, (DETAIL, "ItemRef", "name"))
_UNFIT = {
    "added column": _Unfit(
        _grown(CUSTOMER, _DISPLAY_DAY),
        _grown(CUSTOMER, replace(_DISPLAY_DAY, type=T.TEXT)),
        "customers",
        "display_day",
        lambda raw: raw["DisplayName"],
        "Customer '{id}' of realm {realm}: field DisplayName (display_day) = '{value}' "
        "is not a valid date",
    ),
    "added line column": _Unfit(
        _grown_lines(INVOICE, _ITEM_DAY),
        _grown_lines(INVOICE, replace(_ITEM_DAY, type=T.TEXT)),
        "invoice_lines",
        "item_day",
        lambda raw: raw["Line"][0]["SalesItemLineDetail"]["ItemRef"]["name"],
        "Invoice '{id}' Line[0] of realm {realm}: field <DetailType>.ItemRef.name (item_day) "
        "= '{value}' is not a valid date",
    ),
    "retyped column": _Unfit(
        _retyped(INVOICE, "customer_name", T.DECIMAL),
        INVOICE,
        "invoices",
        "customer_name",
        lambda raw: raw["CustomerRef"]["name"],
        "Invoice '{id}' of realm {realm}: field CustomerRef.name (customer_name) = '{value}' "
        "is not a valid decimal",
    ),
}


def _with(entity: Entity) -> tuple[Entity, Entity]:
    return (entity, INVOICE) if entity.name == "Customer" else (CUSTOMER, entity)


@pytest.mark.parametrize("case", list(_UNFIT))
def test_a_value_the_new_type_cannot_hold_fails_in_one_line_and_keeps_the_data(
    case: str, warehouse_url: str, tmp_path: Path, customers: list[dict], invoices: list[dict]
) -> None:
    _load(warehouse_url, tmp_path, customers, invoices)
    names = ("customers", "invoices", "invoice_lines", "_sync_state")
    with _opened(warehouse_url, tmp_path, (CUSTOMER, INVOICE)) as before:
        stored = {name: (_types(before, name), _state(before, name)) for name in names}

    unfit = _UNFIT[case]
    with (
        _opened(warehouse_url, tmp_path, _with(unfit.edited)) as after,
        pytest.raises(UnfitColumn) as raised,
    ):
        after.ensure_schema()

    # The first stored row in key order: the first realm's lowest Id (as text).
    raw = min(customers if unfit.edited.name == "Customer" else invoices, key=lambda r: r["Id"])
    value = unfit.value(raw)
    error = str(raised.value)
    assert "\n" not in error
    assert error.startswith(f"cannot migrate {unfit.column} in qbo.{unfit.table} to the catalog: ")
    assert unfit.message.format(id=raw["Id"], realm=REALMS[0], value=value) in error
    assert "the table was left as it was" in error and "run again" in error

    # Nothing changed (a warehouse of the edited catalog would try the migration again on
    # every read), and the catalog as it was still syncs: a replay writes nothing.
    with _opened(warehouse_url, tmp_path, (CUSTOMER, INVOICE)) as unchanged:
        assert {name: (_types(unchanged, name), _state(unchanged, name)) for name in names} == (
            stored
        )
        assert unchanged.upsert(CUSTOMER, REALMS[0], customers).rows_written == 0
        assert unchanged.upsert(INVOICE, REALMS[0], invoices).rows_written == 0

    # Doing what the error says lets the next run through.
    with _opened(warehouse_url, tmp_path, _with(unfit.fixed)) as fixed:
        fixed.ensure_schema()
        assert (value,) in fixed.query(f"SELECT {unfit.column} FROM qbo.{unfit.table}")


def test_a_fresh_warehouse_is_as_the_catalog_says(warehouse_url: str, tmp_path: Path) -> None:
    """The stored types read back as the catalog's (sql.STORED_TYPES), so no run ever
    retypes a column the catalog did not change."""
    with _opened(warehouse_url, tmp_path, ENTITIES) as warehouse:
        warehouse.ensure_schema()
        found = sources(ENTITIES)
        for table in tables(ENTITIES):
            stored = _types(warehouse, table.name)
            change = plan(table, found.get(table.name), stored, warehouse.dialect)
            assert change.statements == (), table.name


def test_a_refusal_the_diagnosis_cannot_place_still_names_the_value(
    warehouse_url: str,
    tmp_path: Path,
    customers: list[dict],
    invoices: list[dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the database refuses a value DuckDB's TRY_CAST takes, the error still fits
    one line, with the database's own words, which quote the value."""
    _load(warehouse_url, tmp_path, customers, invoices)
    monkeypatch.setattr("qbo_pipeline.warehouse.base.first_unfit", lambda *_: None)
    unfit = _UNFIT["added column"]
    with (
        _opened(warehouse_url, tmp_path, _with(unfit.edited)) as after,
        pytest.raises(UnfitColumn) as raised,
    ):
        after.ensure_schema()

    error = str(raised.value)
    assert "\n" not in error
    assert error.startswith("cannot migrate display_day in qbo.customers to the catalog: Customer")
    # A date is cast from a value's first ten characters (normalise.typed).
    assert any(f'"{raw["DisplayName"][:10]}"' in error for raw in customers)
    assert "run again" in error


def test_a_key_column_is_never_retyped() -> None:
    """Emptying a key into its new type would break the key; the run stops instead."""
    table = entity_table(CUSTOMER)
    stored = {column.name: STORED_TYPES[Dialect.DUCKDB][column.type] for column in table.columns}
    retyped = _retyped(CUSTOMER, "id", T.INTEGER)
    with pytest.raises(WarehouseError, match=r"qbo\.customers\.id .* part of the table's key"):
        plan(entity_table(retyped), sources([retyped])["customers"], stored, Dialect.DUCKDB)
