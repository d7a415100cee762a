"""The warehouse tables derived from the catalog, and the SQL both backends run on them.

Both backends create and grow the tables, replace lines, mark deletions and move the
cursor with the statements here, which speak `$n` placeholders on both. A batch reaches
either database already typed, as BATCH and BATCH_LINES with the tables' own column names
(records.py): DuckDB reads the Arrow tables where they are, PostgreSQL has them copied in.
Entity rows are where they part: PostgreSQL writes them with one `INSERT ... ON CONFLICT
... DO UPDATE ... WHERE ... RETURNING` (upsert_rows), while DuckDB's entity tables have no
key to conflict on and its writer reaches the same result in steps of its own
(duckdb_warehouse.py); both follow `supersedes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qbo_pipeline.quickbooks.catalog import Column, ColumnType, Entity
from qbo_pipeline.warehouse.normalise import BATCH, BATCH_LINES, LINE_INDEX
from qbo_pipeline.warehouse.sql import (
    JSON,
    SQL_TYPES,
    Dialect,
    literal,
    quote,
    text_array,
)

SCHEMA = "qbo"
SYNC_STATE = "_sync_state"
DELETIONS = "_qbo_deletions"  # (id, deleted_at, reason) staged by apply_deletions
# Why a row has deleted_at: QBO deleted it, or it was voided (QBO keeps voided
# transactions, and counts them) or merged into another (a webhook says which).
DELETION_REASONS = ("deleted", "voided", "merged")
SEEN = "_qbo_seen"  # (id) staged by unseen_ids


@dataclass(frozen=True)
class TableColumn:
    name: str
    type: str  # a ColumnType value or JSON
    description: str = ""  # the column's comment in the database


@dataclass(frozen=True)
class Table:
    """A table in schema qbo: its columns in order, its key, and which columns a batch loads."""

    name: str
    columns: tuple[TableColumn, ...]
    key: tuple[str, ...]
    loaded: tuple[TableColumn, ...]  # filled from normalised rows; the rest by the writer
    description: str = ""  # the table's comment in the database

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{quote(self.name)}"


def _catalog_columns(columns: Sequence[Column]) -> tuple[TableColumn, ...]:
    return tuple(TableColumn(c.name, c.type.value, c.description) for c in columns)


REALM_ID = TableColumn(
    "realm_id", ColumnType.TEXT, "The QuickBooks company (realm) the row belongs to"
)


def entity_table(entity: Entity) -> Table:
    loaded = (
        REALM_ID,
        *_catalog_columns(entity.columns),
        TableColumn("raw", JSON, f"The {entity.name} exactly as QuickBooks returned it"),
    )
    bookkeeping = (
        TableColumn("synced_at", ColumnType.TIMESTAMP, "When this version of the row was written"),
        TableColumn(
            "deleted_at",
            ColumnType.TIMESTAMP,
            "When the pipeline found the row deleted, voided or merged in QuickBooks; "
            "empty while it is live",
        ),
        TableColumn(
            "deleted_reason", ColumnType.TEXT, "Why deleted_at is set: deleted, voided or merged"
        ),
    )
    return Table(
        entity.table,
        (*loaded, *bookkeeping),
        ("realm_id", "id"),
        loaded,
        entity.description,
    )


def line_table(entity: Entity) -> Table | None:
    if entity.lines is None:
        return None
    lines = entity.lines
    loaded = (
        REALM_ID,
        TableColumn(
            lines.parent_key, ColumnType.TEXT, f"The Id of the {entity.name} the line is on"
        ),
        TableColumn(
            LINE_INDEX,
            ColumnType.INTEGER,
            f"The line's place in the {entity.name}'s {lines.field} list, from 0",
        ),
        *_catalog_columns(lines.columns),
        TableColumn("raw", JSON, "The line exactly as QuickBooks returned it"),
    )
    key = ("realm_id", lines.parent_key, LINE_INDEX)
    return Table(lines.table, loaded, key, loaded, lines.description)


SYNC_STATE_TABLE = Table(
    SYNC_STATE,
    (
        REALM_ID,
        TableColumn("entity", ColumnType.TEXT, "The QuickBooks entity, such as Invoice"),
        TableColumn(
            "cursor",
            ColumnType.TIMESTAMP,
            "QuickBooks' clock when the last committed sync of the entity began reading",
        ),
        TableColumn("updated_at", ColumnType.TIMESTAMP, "When the cursor was last committed"),
    ),
    ("realm_id", "entity"),
    (),
    "Where each company's next incremental sync of each entity starts",
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

# (table, column, comment, ours, type) of every column in schema qbo; a table's own
# comment comes as the row whose column is NULL. Each dialect keeps comments in its own
# catalog; `ours`: this role may comment on the table (PostgreSQL asks for its owner);
# `type` as sql.STORED_TYPES spells it, but in the database's own case.
EXISTING_COLUMNS = {
    Dialect.DUCKDB: (
        "SELECT table_name, column_name, comment, true, data_type FROM duckdb_columns() "
        f"WHERE schema_name = '{SCHEMA}' AND database_name = current_database() "
        "UNION ALL SELECT table_name, NULL, comment, true, NULL FROM duckdb_tables() "
        f"WHERE schema_name = '{SCHEMA}' AND database_name = current_database()"
    ),
    Dialect.POSTGRES: (
        "SELECT c.relname, a.attname, col_description(c.oid, a.attnum), "
        "pg_has_role(c.relowner, 'USAGE'), format_type(a.atttypid, a.atttypmod) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        f"WHERE n.nspname = '{SCHEMA}' AND c.relkind = 'r' "
        "UNION ALL SELECT c.relname, NULL, obj_description(c.oid, 'pg_class'), "
        "pg_has_role(c.relowner, 'USAGE'), NULL "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{SCHEMA}' AND c.relkind = 'r'"
    ),
}


def create_table(table: Table, dialect: Dialect) -> str:
    """The table, with its key as a primary key (on DuckDB, only the sync state's).

    DuckDB keeps a primary key as an ART index that must stay in memory (a million
    invoice lines outgrew a 160 MB buffer pool during an update) and that slows every
    load; its single writer keeps entity keys unique without one (see duckdb_warehouse).
    """
    types = SQL_TYPES[dialect]
    columns = [f"{quote(c.name)} {types[c.type]}" for c in table.columns]
    if dialect is Dialect.POSTGRES or table is SYNC_STATE_TABLE:
        key = ", ".join(quote(name) for name in table.key)
        columns.append(f"PRIMARY KEY ({key})")
    body = ",\n  ".join(columns)
    return f"CREATE TABLE IF NOT EXISTS {table.qualified} (\n  {body}\n)"


def comments_to_set(table: Table, have: Mapping[str | None, str | None]) -> list[str]:
    """The COMMENT statements that bring the database's comments (`have`, by column, the
    table's own under None; as EXISTING_COLUMNS reads them) in line with the table's."""
    statements = [
        f"COMMENT ON COLUMN {table.qualified}.{quote(c.name)} IS {literal(c.description)}"
        for c in table.columns
        if (have.get(c.name) or "") != c.description
    ]
    if (have.get(None) or "") != table.description:
        statements.append(f"COMMENT ON TABLE {table.qualified} IS {literal(table.description)}")
    return statements


def add_column(table: Table, column: TableColumn, dialect: Dialect) -> str:
    sql_type = SQL_TYPES[dialect][column.type]
    return f"ALTER TABLE {table.qualified} ADD COLUMN IF NOT EXISTS {quote(column.name)} {sql_type}"


# --- DML -------------------------------------------------------------------------------


def supersedes(new: str, old: str, table: Table) -> str:
    """The condition under which row `new` replaces the stored row `old`.

    A higher sync_token always wins. An equal one rewrites only if some value differs (so
    a row the catalog now reads otherwise, such as a column whose path changed, which
    ensure_schema does not refill, is corrected when it is read again, and a replay writes
    nothing and leaves synced_at alone); a lower one never does.
    """
    updatable = [c.name for c in table.loaded if c.name not in table.key]
    changed = "\n    OR ".join(
        f"{new}.{quote(name)} IS DISTINCT FROM {old}.{quote(name)}" for name in updatable
    )
    new_token, old_token = _token(new), _token(old)
    return f"{new_token} > {old_token}\n  OR ({new_token} = {old_token} AND (\n    {changed}))"


def _token(row: str) -> str:
    return f"COALESCE({row}.sync_token, -1)"


def upsert_rows(table: Table) -> str:
    """Write BATCH rows of realm $1 where they supersede the stored ones; returns their ids.

    deleted_at belongs to whoever records deletions, with one exception: a higher
    SyncToken means the entity exists again (an Id reused by a replay), so it is cleared.
    ON CONFLICT needs the primary key only PostgreSQL's entity tables have; the DuckDB
    writer does the same in steps of its own (duckdb_warehouse.py).
    """
    names = [c.name for c in table.loaded]
    assignments = [
        f"{quote(name)} = excluded.{quote(name)}"
        for name in [*names, "synced_at"]
        if name not in table.key
    ]
    assignments.append(_revive("excluded", "t"))
    key = ", ".join(quote(name) for name in table.key)
    updates = ",\n  ".join(assignments)
    return (
        f"{insert_batch(table)}"
        f"ON CONFLICT ({key}) DO UPDATE SET\n  {updates}\n"
        f"WHERE {supersedes('excluded', 't', table)}\n"
        "RETURNING id"
    )


def _revive(new: str, old: str) -> str:
    return ", ".join(f"{column} = {revived(new, old, column)}" for column in DELETION_COLUMNS)


DELETION_COLUMNS = ("deleted_at", "deleted_reason")


def revived(new: str, old: str, column: str = "deleted_at") -> str:
    """deleted_at (or its reason) of a row superseded by `new`: a higher SyncToken means it
    exists again."""
    return f"CASE WHEN {_token(new)} > {_token(old)} THEN NULL ELSE {old}.{column} END"


def still_in_qbo(entity: Entity) -> str:
    """The rows QBO still counts in a COUNT(*): every name-list row (QBO never deletes
    those), and transactions not deleted, voided ones included."""
    if entity.is_name_list:
        return "TRUE"
    return "(deleted_at IS NULL OR deleted_reason = 'voided')"


def insert_batch(table: Table) -> str:
    """INSERT of the BATCH rows into `table` for realm $1, open for the clause that picks
    which: ON CONFLICT (upsert_rows) or, on DuckDB, a WHERE on the stored ids."""
    names = [c.name for c in table.loaded]
    target = ", ".join(quote(name) for name in [*names, "synced_at"])
    source = ", ".join(quote(name) for name in names if name != "realm_id")
    return (
        f"INSERT INTO {table.qualified} AS t ({target})\n"
        f"SELECT $1, {source}, current_timestamp FROM {BATCH}\n"
    )


def delete_lines(table: Table, parent_key: str, dialect: Dialect) -> str:
    """Drop the lines of the parents given as $2 (a list of ids) in realm $1."""
    return (
        f"DELETE FROM {table.qualified} WHERE realm_id = $1 "
        f"AND {quote(parent_key)} IN (SELECT unnest({text_array('$2', dialect)}))"
    )


def insert_lines(table: Table, dialect: Dialect) -> str:
    """The BATCH_LINES rows of the parents listed in $2, for realm $1."""
    names = [quote(c.name) for c in table.loaded]
    parent = names[1]
    return (
        f"INSERT INTO {table.qualified} ({', '.join(names)})\n"
        f"SELECT $1, {', '.join(names[1:])} FROM {BATCH_LINES}\n"
        f"WHERE {parent} IN (SELECT unnest({text_array('$2', dialect)}))"
    )


def mark_deleted(table: Table) -> str:
    """Stamp rows of realm $1 named in DELETIONS that are not deleted yet."""
    return (
        f"UPDATE {table.qualified} AS t SET deleted_at = CAST(d.deleted_at AS TIMESTAMPTZ), "
        "deleted_reason = d.reason\n"
        f"FROM {DELETIONS} AS d\n"
        "WHERE t.realm_id = $1 AND t.id = d.id AND t.deleted_at IS NULL"
    )


def select_unseen(table: Table) -> str:
    """Ids of live rows of realm $1 that are not in SEEN."""
    return (
        f"SELECT t.id FROM {table.qualified} AS t\n"
        "WHERE t.realm_id = $1 AND t.deleted_at IS NULL\n"
        f"AND NOT EXISTS (SELECT 1 FROM {SEEN} AS s WHERE s.id = t.id)"
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
