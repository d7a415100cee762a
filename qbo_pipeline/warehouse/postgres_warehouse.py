"""The PostgreSQL warehouse: COPY into a temporary table, then one upsert per batch.

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

from qbo_pipeline.postgres import Postgres
from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.warehouse.base import WAREHOUSE_URL_VARIABLE, SqlWarehouse
from qbo_pipeline.warehouse.sql import Dialect, quote

# Any constant works; it only has to be the same for every process creating the schema.
_SCHEMA_LOCK_KEY = 0x5142_4F57  # "QBOW"


class _PostgresSession:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

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

    @contextmanager
    def _session(self, *, more_to_come: bool = False) -> Iterator[_PostgresSession]:
        with self._lock, self._postgres.connection() as connection, connection.transaction():
            yield _PostgresSession(connection)

    def close(self) -> None:
        self._postgres.close()
