"""The PostgreSQL warehouse: typed batches COPY'd into temporary tables, then one upsert.

A batch arrives typed (records.py: DuckDB typed it from the bytes QBO sent), so the server
only parses CSV and the raw JSON it stores. Typing each record's JSON in SQL instead
(jsonb paths, casts, a regular expression per stamp) was most of a full sync's time on
two cores: 111 s of server CPU for 641,000 entities.

Connections come from the project's pool (`qbo_pipeline.postgres`), one per transaction,
and one transaction runs at a time per warehouse object. Statements go through psycopg's
RawCursor so the SQL keeps PostgreSQL's own `$1` placeholders, which DuckDB takes too,
so schema.py writes each shared statement once for both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv

from qbo_pipeline.postgres import Postgres
from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.warehouse.base import WAREHOUSE_URL_VARIABLE, Session, SqlWarehouse
from qbo_pipeline.warehouse.normalise import BATCH, BATCH_LINES, LINE_INDEX
from qbo_pipeline.warehouse.schema import Table, TableColumn
from qbo_pipeline.warehouse.sql import JSON, SQL_TYPES, Dialect, literal, quote, text_array

# Any constant works; it only has to be the same for every process creating the schema.
_SCHEMA_LOCK_KEY = 0x5142_4F57  # "QBOW"
# Rows written as CSV at a time: a batch of 5,000 invoices is ~15 MB of it, sent in parts.
_CSV_CHUNK = 1_000
# Strings always quoted, so an empty one stays apart from NULL (an unquoted empty field),
# and no value can read as COPY's end-of-data marker.
_CSV = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


class _PostgresSession:
    def __init__(self, connection: psycopg.Connection, json_storage: str = "") -> None:
        self._connection = connection
        self._json_storage = json_storage  # a column clause for JSON columns shown

    def run(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._connection.cursor() as cursor:
            cursor.execute(sql, list(params) if params else None)
            return cursor.fetchall() if cursor.description is not None else []

    def stage(
        self, name: str, columns: dict[str, str], rows: Iterable[tuple], *, keyed: bool = False
    ) -> None:
        definition = ", ".join(f"{quote(column)} {kind}" for column, kind in columns.items())
        with self._connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE {name} ({definition}) ON COMMIT DROP")
            with cursor.copy(f"COPY {name} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if keyed:
                # Keyed rows are looked up against a table the same run has just filled,
                # whose statistics still say it is nearly empty. The planner then picked a
                # nested loop over every staged row for every stored one: 37 s to
                # reconcile 29,000 payments. With an index each look-up is a probe,
                # whatever the plan; and autovacuum never analyses a temporary table.
                cursor.execute(f"CREATE INDEX ON {name} ({quote(next(iter(columns)))})")
                cursor.execute(f"ANALYZE {name}")

    def show(self, name: str, rows: pa.Table, columns: Sequence[TableColumn]) -> None:
        """COPY the Arrow columns, as CSV pyarrow writes in C, into a temporary table of
        the columns' types."""
        types = SQL_TYPES[Dialect.POSTGRES]
        definition = ", ".join(
            f"{quote(c.name)} {types[c.type]}{self._json_storage if c.type == JSON else ''}"
            for c in columns
        )
        with self._connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE {name} ({definition}) ON COMMIT DROP")
            with cursor.copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy:
                for chunk in rows.to_batches(max_chunksize=_CSV_CHUNK):
                    text = pa.BufferOutputStream()
                    pa_csv.write_csv(chunk, text, _CSV)
                    copy.write(memoryview(text.getvalue()))

    def count(self, sql: str, params: Sequence = ()) -> int:
        with self._connection.cursor() as cursor:
            cursor.execute(sql, list(params) if params else None)
            return cursor.rowcount

    def lock_schema(self) -> None:
        """Two processes creating the same tables at once would collide in the catalog."""
        self.run("SELECT pg_advisory_xact_lock($1)", [_SCHEMA_LOCK_KEY])


class PostgresWarehouse(SqlWarehouse):
    dialect = Dialect.POSTGRES
    _data_errors = (psycopg.errors.DataError,)

    def __init__(self, url: str, *, entities: Sequence[Entity] = ENTITIES) -> None:
        super().__init__(entities)
        # One transaction at a time needs one connection; a second serves a reader thread.
        self._postgres = Postgres(
            url,
            variable=WAREHOUSE_URL_VARIABLE,
            pool_size=2,
            connection_options={"cursor_factory": psycopg.RawCursor},
        )
        self.url_for_display = self._postgres.url_for_display
        self._lock = threading.Lock()
        self._json_storage: str | None = None  # learnt from the server on first use

    @contextmanager
    def _session(self, *, more_to_come: bool = False) -> Iterator[_PostgresSession]:
        with self._lock, self._postgres.connection() as connection:
            if self._json_storage is None:
                self._json_storage = _json_storage(connection)
            with connection.transaction():
                yield _PostgresSession(connection, self._json_storage)

    def _show_lines(self, session: Session, lines: pa.Table, table: Table) -> None:
        """The lines without their raw JSON, which the insert takes from the parent's
        (`_insert_lines`): parsing each line's text again cost more than the rest of the
        line together (~40 µs of server CPU an invoice)."""
        raw = table.loaded[-1]
        session.show(BATCH_LINES, lines.drop_columns([raw.name]), table.loaded[1:-1])

    def _insert_lines(self, entity: Entity, table: Table) -> str:
        return insert_lines_with_parent_raw(entity, table)

    def close(self) -> None:
        self._postgres.close()


def _json_storage(connection: psycopg.Connection) -> str:
    """LZ4 for the raw JSON a batch stages, where the server has it (PostgreSQL 14 and
    later, built with lz4, as Debian's is).

    An invoice's raw JSON is past the size PostgreSQL compresses at, and its default
    compression (pglz) cost ~28 µs of server CPU an invoice of a ~110 µs COPY; LZ4 a
    fraction of that. The stored rows keep the value as it was compressed, so the
    warehouse's tables get LZ4 too, which is also faster for analysts to read.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        found = cursor.fetchone()
    return " COMPRESSION lz4" if found and found[0] else ""


def insert_lines_with_parent_raw(entity: Entity, table: Table) -> str:
    """The BATCH_LINES rows of the parents listed in $2, for realm $1, each with its raw
    JSON picked out of its parent's: the element of the parent's line list at its index,
    as the line's own text would parse."""
    assert entity.lines is not None
    names = [quote(c.name) for c in table.loaded]
    parent, raw = names[1], names[-1]
    typed = ", ".join(f"l.{name}" for name in names[1:-1])
    field = literal(entity.lines.field)
    return (
        f"INSERT INTO {table.qualified} ({', '.join(names)})\n"
        f"SELECT $1, {typed}, b.raw -> {field} -> CAST(l.{LINE_INDEX} AS INTEGER) AS {raw}\n"
        f"FROM {BATCH_LINES} AS l JOIN {BATCH} AS b ON b.id = l.{parent}\n"
        f"WHERE l.{parent} IN (SELECT unnest({text_array('$2', Dialect.POSTGRES)}))"
    )
