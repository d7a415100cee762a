"""SQL text in the two dialects the warehouse speaks: quoting, types, and where they differ.

Knows nothing of QBO entities or tables, so the typing of catalog paths (normalise.py),
the tables and their statements (schema.py) and the backends all build on it.
"""

from __future__ import annotations

from enum import StrEnum

from qbo_pipeline.quickbooks.catalog import ColumnType

JSON = "json"  # the type of a raw entity's column; not a catalog column type


class Dialect(StrEnum):
    DUCKDB = "duckdb"
    POSTGRES = "postgres"


SQL_TYPES: dict[Dialect, dict[str, str]] = {
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

# The same types as each database's catalog names them (duckdb_columns().data_type,
# PostgreSQL's format_type), lower-cased: how ensure_schema tells a column whose type the
# entity catalog changed from one it created (evolution.plan).
STORED_TYPES: dict[Dialect, dict[str, str]] = {
    Dialect.DUCKDB: {
        ColumnType.TEXT: "varchar",
        ColumnType.BOOLEAN: "boolean",
        ColumnType.INTEGER: "bigint",
        ColumnType.DECIMAL: "decimal(24,8)",
        ColumnType.DATE: "date",
        ColumnType.TIMESTAMP: "timestamp with time zone",
        JSON: "json",
    },
    Dialect.POSTGRES: {
        ColumnType.TEXT: "text",
        ColumnType.BOOLEAN: "boolean",
        ColumnType.INTEGER: "bigint",
        ColumnType.DECIMAL: "numeric(24,8)",
        ColumnType.DATE: "date",
        ColumnType.TIMESTAMP: "timestamp with time zone",
        JSON: "jsonb",
    },
}


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def text_array(parameter: str, dialect: Dialect) -> str:
    """A `$n` parameter bound to a Python list of strings, as an SQL array of text."""
    return f"CAST({parameter} AS {SQL_TYPES[dialect][ColumnType.TEXT]}[])"


def temp_table_as(name: str, select: str, dialect: Dialect) -> str:
    """A relation private to this transaction.

    PostgreSQL drops it at commit. DuckDB's connection outlives the transaction (it is kept
    for the next batch), so its session drops the temporary tables itself when the
    transaction ends.
    """
    on_commit = " ON COMMIT DROP" if dialect is Dialect.POSTGRES else ""
    return f"CREATE TEMP TABLE {name}{on_commit} AS\n{select}"
