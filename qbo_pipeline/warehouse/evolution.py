"""Schema evolution: a table whose catalog columns changed is migrated in place.

The entity catalog is the schema, so editing it has to be all a new typed column takes.
Every table keeps the JSON QBO sent (`raw`: the record's, or on a line table the line's),
so `ensure_schema` adds a column the catalog gained, or retypes one whose type it changed,
and computes it for the rows already stored from that JSON, with the expressions the load
types a batch with (normalise's projections). The stored rows then hold what a resync
would write, without one: no other table is read or rewritten and no cursor moves. It all
runs in the transaction of `ensure_schema`, so a value the new type cannot hold leaves
every table as it was (no half-added column) and the next run tries again; the error
names the value (`stored_texts`, `normalise.first_unfit`).

A retyped column is filled from raw rather than cast from what it held, so it reads as
the load now reads it (a stamp's date in QBO's zone, not the UTC day of an instant). A
column whose path changes under the same name and type is not refilled: nothing stored
says which path filled it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from qbo_pipeline.quickbooks.catalog import Column, Entity
from qbo_pipeline.warehouse.errors import WarehouseError
from qbo_pipeline.warehouse.normalise import Projection, entity_projection, line_projection
from qbo_pipeline.warehouse.schema import (
    SCHEMA,
    Table,
    TableColumn,
    add_column,
    entity_table,
    line_table,
)
from qbo_pipeline.warehouse.sql import SQL_TYPES, STORED_TYPES, Dialect, quote


@dataclass(frozen=True)
class Source:
    """A table whose catalog columns are read out of each row's raw JSON: an entity's
    (raw is the record) or its line table (raw is one line, as QBO sent it)."""

    entity: Entity
    table: Table
    lines: bool = False

    @property
    def columns(self) -> tuple[Column, ...]:
        if self.lines:
            assert self.entity.lines is not None
            return self.entity.lines.columns
        return self.entity.columns

    def place(self, key: Sequence[object]) -> str:
        """A stored row named as the load's errors name a record or a line, with its realm
        (a table holds every company's rows)."""
        if self.lines:
            assert self.entity.lines is not None
            realm_id, parent_id, index = key
            return f"{parent_id!r} {self.entity.lines.field}[{index}] of realm {realm_id}"
        realm_id, entity_id = key
        return f"{entity_id!r} of realm {realm_id}"

    def parsed(self, columns: Sequence[Column], dialect: Dialect) -> tuple[str, Projection]:
        """A query of the stored rows' keys and their raw JSON parsed for `columns` alone
        (the load's projection narrowed to them), and that projection."""
        if self.lines:
            assert self.entity.lines is not None
            lines = replace(self.entity.lines, columns=tuple(columns))
            alias, projection = "line", line_projection(replace(self.entity, lines=lines), dialect)
        else:
            entity = replace(self.entity, columns=tuple(columns), lines=None)
            alias, projection = "raw", entity_projection(entity, dialect)
        keys = _keys(self.table)
        items = ", ".join(item for item in (alias, projection.parse) if item)
        source = f"SELECT {keys}, raw AS {alias} FROM {self.table.qualified}"
        return f"SELECT {keys}, {items} FROM ({source}) AS r", projection


def sources(entities: Sequence[Entity]) -> dict[str, Source]:
    """The tables of `entities` whose columns come from raw JSON, by table name."""
    found: dict[str, Source] = {}
    for entity in entities:
        found[entity.table] = Source(entity, entity_table(entity))
        if (lines := line_table(entity)) is not None:
            found[lines.name] = Source(entity, lines, lines=True)
    return found


@dataclass(frozen=True)
class Change:
    """What an existing table needs for the catalog: its statements (columns added, then
    retyped, then the catalog's among them filled from raw), in one transaction."""

    table: Table
    statements: tuple[str, ...] = ()
    source: Source | None = None
    filled: tuple[Column, ...] = ()


def plan(
    table: Table, source: Source | None, stored: Mapping[str, str], dialect: Dialect
) -> Change:
    """The change `table` needs, given its `stored` columns and their types (as
    schema.EXISTING_COLUMNS reads them); no statements when it is as the catalog says.

    Only catalog columns are retyped and filled: the others are the writer's own, and a
    table without a source (sync state, reports) only gains columns.
    """
    added = [column for column in table.columns if column.name not in stored]
    retyped = [] if source is None else _retyped(table, source, stored, dialect)
    statements = [add_column(table, column, dialect) for column in added]
    statements += [_retype(table, column, dialect) for column in retyped]
    changed = {column.name for column in [*added, *retyped]}
    filled: tuple[Column, ...] = ()
    if source is not None:
        filled = tuple(column for column in source.columns if column.name in changed)
        if filled:
            statements.append(fill_from_raw(source, filled, dialect))
    return Change(table, tuple(statements), source, filled)


def _retyped(
    table: Table, source: Source, stored: Mapping[str, str], dialect: Dialect
) -> list[TableColumn]:
    catalog = {column.name for column in source.columns}
    retyped = [
        column
        for column in table.columns
        if column.name in catalog
        and column.name in stored
        and stored[column.name].lower() != STORED_TYPES[dialect][column.type]
    ]
    for column in retyped:
        if column.name in table.key:
            raise WarehouseError(
                f"the catalog makes {_shown(table)}.{column.name} a {column.type}, but it "
                f"is part of the table's key, stored as {stored[column.name]}, and a key "
                "cannot be retyped in place; give it back its type in the catalog"
            )
    return retyped


def _retype(table: Table, column: TableColumn, dialect: Dialect) -> str:
    """Empty the column into its new type; fill_from_raw then computes it (see module)."""
    sql_type = SQL_TYPES[dialect][column.type]
    return (
        f"ALTER TABLE {table.qualified} ALTER COLUMN {quote(column.name)} "
        f"TYPE {sql_type} USING CAST(NULL AS {sql_type})"
    )


def fill_from_raw(source: Source, columns: Sequence[Column], dialect: Dialect) -> str:
    """Set `columns` of every stored row to their values in its raw JSON, typed by the
    load's own expressions, so that a casting failure raises the load's data error."""
    parsed, projection = source.parsed(columns, dialect)
    keys = _keys(source.table)
    typed = ", ".join(f"{expr} AS {quote(name)}" for name, expr in projection.typed(dialect))
    assignments = ", ".join(f"{quote(c.name)} = p.{quote(c.name)}" for c in columns)
    match = " AND ".join(f"t.{quote(name)} = p.{quote(name)}" for name in source.table.key)
    return (
        f"UPDATE {source.table.qualified} AS t SET {assignments}\n"
        f"FROM (SELECT {keys}, {typed} FROM ({parsed}) AS s) AS p\n"
        f"WHERE {match}"
    )


def stored_texts(source: Source, column: Column, dialect: Dialect) -> str:
    """(key..., text) of the stored rows whose raw JSON holds a value for `column`, in key
    order: what fill_from_raw casts, for naming the first value that does not cast."""
    parsed, projection = source.parsed([column], dialect)
    ((_, text),) = projection.texts
    keys = _keys(source.table)
    return (
        f"SELECT {keys}, v FROM (SELECT {keys}, {text} AS v FROM ({parsed}) AS s) AS p "
        f"WHERE v IS NOT NULL ORDER BY {keys}"
    )


def refusal(change: Change, columns: str, why: str) -> str:
    """The one line an UnfitColumn says: what was refused, why, and what to do."""
    return (
        f"cannot migrate {columns} in {_shown(change.table)} to the catalog: {why}; the "
        "table was left as it was. Give the column a type every stored value casts to "
        "(text takes any) in the catalog, then run again"
    )


def _shown(table: Table) -> str:
    """The table as a message names it (its names need no quotes)."""
    return f"{SCHEMA}.{table.name}"


def _keys(table: Table) -> str:
    return ", ".join(quote(name) for name in table.key)
