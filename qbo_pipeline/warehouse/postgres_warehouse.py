"""The PostgreSQL warehouse: COPY into a temporary table, then one upsert per batch.

One connection is held per warehouse object (opened lazily, reopened if it breaks) and
used by one transaction at a time. Statements go through psycopg's RawCursor so the SQL
uses PostgreSQL's own `$1` placeholders, the same text DuckDB runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import psycopg

from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.warehouse.base import SqlWarehouse, WarehouseError
from qbo_pipeline.warehouse.schema import Dialect, quote
from qbo_pipeline.warehouse.url import mask_url, scrub

# Any constant works; it only has to be the same for every process creating the schema.
_SCHEMA_LOCK_KEY = 0x5142_4F57  # "QBOW"


class _PostgresSession:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def run(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._connection.cursor() as cursor:
            cursor.execute(sql, list(params) if params else None)
            return cursor.fetchall() if cursor.description is not None else []

    def stage(self, name: str, columns: dict[str, str], rows: Iterable[tuple]) -> None:
        definition = ", ".join(f"{quote(column)} {kind}" for column, kind in columns.items())
        with self._connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE {name} ({definition}) ON COMMIT DROP")
            with cursor.copy(f"COPY {name} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

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

    def __init__(
        self, url: str, *, entities: Sequence[Entity] = ENTITIES, connect_timeout: int = 10
    ) -> None:
        super().__init__(entities)
        self._url = url
        self._connect_timeout = connect_timeout
        self.url_for_display = mask_url(url)
        self._connection: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def _connected(self) -> psycopg.Connection:
        if self._connection is not None and not self._connection.broken:
            return self._connection
        try:
            connection = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                cursor_factory=psycopg.RawCursor,
                application_name="qbo-pipeline",
            )
        except psycopg.Error as error:
            # libpq messages name host and user, not the password; scrub it anyway.
            raise WarehouseError(
                f"cannot connect to PostgreSQL warehouse {self.url_for_display}: "
                f"{scrub(str(error).strip(), self._url)}"
            ) from None
        connection.execute("SET TIME ZONE 'UTC'")
        self._connection = connection
        return connection

    @contextmanager
    def _session(self, *, more_to_come: bool = False) -> Iterator[_PostgresSession]:
        with self._lock:
            connection = self._connected()
            with connection.transaction():
                yield _PostgresSession(connection)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
