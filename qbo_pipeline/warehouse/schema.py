"""The warehouse tables derived from the catalog, and the SQL both backends run on them.

DuckDB and PostgreSQL share one SQL text here: both speak `INSERT ... ON CONFLICT ... DO
UPDATE ... WHERE ... RETURNING`, information_schema and `$n` placeholders. Rows reach the
database as text in a staging relation and are cast there, so each backend only needs one
fast way to move strings (a DataFrame scan or COPY) and the casting rules live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from qbo_pipeline.quickbooks.catalog import ColumnType, Entity
from qbo_pipeline.warehouse.normalise import LINE_INDEX, Row

SCHEMA = "qbo"
SYNC_STATE = "_sync_state"
JSON = "json"  # the raw entity; not a catalog column type
STAGE_ROWS = "_qbo_stage_rows"
STAGE_LINES = "_qbo_stage_lines"


class Dialect(StrEnum):
    DUCKDB = "duckdb"
    POSTGRES = "postgres"


_SQL_TYPES: dict[Dialect, dict[str, str]] = {
    Dialect.DUCKDB: {
        ColumnType.TEXT: "VARCHAR",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.INTEGER: "BIGINT",
        ColumnType.DECIMAL: "DECIMAL(24,8)",
        ColumnType.DATE: "DATE",
        ColumnType.TIMESTAMP: "TIMESTAMPTZ",
        JSON: "JSON",
    },
    Dialect.POSTGRES: {
        ColumnType.TEXT: "TEXT",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.INTEGER: "BIGINT",
        ColumnType.DECIMAL: "NUMERIC(24,8)",
        ColumnType.DATE: "DATE",
        ColumnType.TIMESTAMP: "TIMESTAMPTZ",
        JSON: "JSONB",
    },
}


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableColumn:
    name: str
    type: str  # a ColumnType value or JSON


@dataclass(frozen=True)
class Table:
    """A table in schema qbo: its columns in order, its key, and which columns a batch loads."""

    name: str
    columns: tuple[TableColumn, ...]
    key: tuple[str, ...]
    loaded: tuple[TableColumn, ...]  # filled from normalised rows; the rest by the writer

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{quote(self.name)}"


def _catalog_columns(columns: Sequence) -> tuple[TableColumn, ...]:
    return tuple(TableColumn(column.name, column.type.value) for column in columns)


def entity_table(entity: Entity) -> Table:
    loaded = (
        TableColumn("realm_id", ColumnType.TEXT),
        *_catalog_columns(entity.columns),
        TableColumn("raw", JSON),
    )
    bookkeeping = (
        TableColumn("synced_at", ColumnType.TIMESTAMP),
        TableColumn("deleted_at", ColumnType.TIMESTAMP),
    )
    return Table(entity.table, (*loaded, *bookkeeping), ("realm_id", "id"), loaded)


def line_table(entity: Entity) -> Table | None:
    if entity.lines is None:
        return None
    lines = entity.lines
    loaded = (
        TableColumn("realm_id", ColumnType.TEXT),
        TableColumn(lines.parent_key, ColumnType.TEXT),
        TableColumn(LINE_INDEX, ColumnType.INTEGER),
        *_catalog_columns(lines.columns),
        TableColumn("raw", JSON),
    )
    return Table(lines.table, loaded, ("realm_id", lines.parent_key, LINE_INDEX), loaded)


SYNC_STATE_TABLE = Table(
    SYNC_STATE,
    (
        TableColumn("realm_id", ColumnType.TEXT),
        TableColumn("entity", ColumnType.TEXT),
        TableColumn("cursor", ColumnType.TIMESTAMP),
        TableColumn("updated_at", ColumnType.TIMESTAMP),
    ),
    ("realm_id", "entity"),
    (),
)


def tables(entities: Sequence[Entity]) -> list[Table]:
    """Every table the catalog implies, plus the sync state, in creation order."""
    found: list[Table] = []
    for entity in entities:
        found.append(entity_table(entity))
        if (lines := line_table(entity)) is not None:
            found.append(lines)
    found.append(SYNC_STATE_TABLE)
    return found


# --- DDL -------------------------------------------------------------------------------

CREATE_SCHEMA = f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"

EXISTING_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns "
    f"WHERE table_schema = '{SCHEMA}' AND table_catalog = current_database()"
)


def create_table(table: Table, dialect: Dialect) -> str:
    types = _SQL_TYPES[dialect]
    columns = [f"{quote(c.name)} {types[c.type]}" for c in table.columns]
    key = ", ".join(quote(name) for name in table.key)
    body = ",\n  ".join([*columns, f"PRIMARY KEY ({key})"])
    return f"CREATE TABLE IF NOT EXISTS {table.qualified} (\n  {body}\n)"


def add_column(table: Table, column: TableColumn, dialect: Dialect) -> str:
    sql_type = _SQL_TYPES[dialect][column.type]
    return f"ALTER TABLE {table.qualified} ADD COLUMN IF NOT EXISTS {quote(column.name)} {sql_type}"


# --- DML -------------------------------------------------------------------------------


def _cast_from_stage(table: Table, dialect: Dialect) -> str:
    types = _SQL_TYPES[dialect]
    return ", ".join(f"CAST(s.{quote(c.name)} AS {types[c.type]})" for c in table.loaded)


def _supersedes(new: str, old: str, table: Table) -> str:
    """The condition under which row `new` replaces the stored row `old`.

    A higher sync_token always wins. An equal one rewrites only if some value differs (so
    a catalog that grew a column fills it on the next sync, and a replay writes nothing
    and leaves synced_at alone); a lower one never does.
    """
    updatable = [c.name for c in table.loaded if c.name not in table.key]
    changed = "\n    OR ".join(
        f"{new}.{quote(name)} IS DISTINCT FROM {old}.{quote(name)}" for name in updatable
    )
    new_token = f"COALESCE({new}.sync_token, -1)"
    old_token = f"COALESCE({old}.sync_token, -1)"
    return f"{new_token} > {old_token}\n  OR ({new_token} = {old_token} AND (\n    {changed}))"


def upsert_rows(table: Table, dialect: Dialect) -> str:
    """Write staged rows where they supersede the stored ones; returns the ids written.

    deleted_at is left alone: soft deletes belong to whoever records deletions.
    """
    names = [c.name for c in table.loaded]
    target = ", ".join(quote(name) for name in [*names, "synced_at"])
    assignments = ",\n  ".join(
        f"{quote(name)} = excluded.{quote(name)}"
        for name in [*names, "synced_at"]
        if name not in table.key
    )
    key = ", ".join(quote(name) for name in table.key)
    return (
        f"INSERT INTO {table.qualified} AS t ({target})\n"
        f"SELECT {_cast_from_stage(table, dialect)}, current_timestamp\n"
        f"FROM {STAGE_ROWS} AS s\n"
        f"ON CONFLICT ({key}) DO UPDATE SET\n  {assignments}\n"
        f"WHERE {_supersedes('excluded', 't', table)}\n"
        "RETURNING id"
    )


def delete_lines(table: Table, parent_key: str, dialect: Dialect) -> str:
    """Drop the lines of the parents given as $2 (a list of ids) in realm $1."""
    id_list = "CAST($2 AS VARCHAR[])" if dialect is Dialect.DUCKDB else "CAST($2 AS TEXT[])"
    return (
        f"DELETE FROM {table.qualified} WHERE realm_id = $1 "
        f"AND {quote(parent_key)} IN (SELECT unnest({id_list}))"
    )


def insert_lines(table: Table, dialect: Dialect) -> str:
    target = ", ".join(quote(c.name) for c in table.loaded)
    return (
        f"INSERT INTO {table.qualified} ({target})\n"
        f"SELECT {_cast_from_stage(table, dialect)} FROM {STAGE_LINES} AS s"
    )


ADVANCE_CURSOR = (
    f"INSERT INTO {SYNC_STATE_TABLE.qualified} AS st (realm_id, entity, cursor, updated_at)\n"
    "VALUES ($1, $2, CAST($3 AS TIMESTAMPTZ), current_timestamp)\n"
    "ON CONFLICT (realm_id, entity) DO UPDATE SET\n"
    "  cursor = CASE WHEN st.cursor IS NULL OR excluded.cursor > st.cursor\n"
    "           THEN excluded.cursor ELSE st.cursor END,\n"
    "  updated_at = excluded.updated_at"
)

READ_CURSOR = f"SELECT cursor FROM {SYNC_STATE_TABLE.qualified} WHERE realm_id = $1 AND entity = $2"


# --- staging as text -------------------------------------------------------------------


def _same(value: object) -> str:
    return value  # type: ignore[return-value]


def _boolean_text(value: object) -> str:
    return "true" if value else "false"


def _iso(value: object) -> str:
    return value.isoformat()  # type: ignore[attr-defined]


_TO_TEXT: dict[str, Callable[[object], str]] = {
    ColumnType.TEXT: _same,
    ColumnType.BOOLEAN: _boolean_text,
    ColumnType.INTEGER: str,
    ColumnType.DECIMAL: str,
    ColumnType.DATE: _iso,
    ColumnType.TIMESTAMP: _iso,
    JSON: _same,
}


def text_columns(table: Table, rows: Sequence[Row]) -> dict[str, list[str | None]]:
    """The loaded columns of `rows` as lists of SQL literals (None for NULL), column-wise."""
    columns: dict[str, list[str | None]] = {}
    for column in table.loaded:
        name, to_text = column.name, _TO_TEXT[column.type]
        columns[name] = [
            None if (value := row.get(name)) is None else to_text(value) for row in rows
        ]
    return columns
