"""The embedded DuckDB warehouse: one file, opened per transaction so processes can share it.

DuckDB lets one process at a time open a file for writing. Holding the file only for the
length of a transaction, and retrying the open while another process holds it, lets two
Dagster runs in two processes write the same warehouse one transaction after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.warehouse.base import SqlWarehouse, WarehouseError
from qbo_pipeline.warehouse.schema import Dialect

DEFAULT_LOCK_TIMEOUT = 60.0

# Threads of one process share DuckDB's in-process database instance; concurrent writers
# there would hit write-write conflicts, so a process takes turns per file.
_file_locks: dict[Path, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _file_locks_guard:
        return _file_locks.setdefault(path, threading.Lock())


def is_lock_conflict(error: BaseException) -> bool:
    """Whether DuckDB refused to open the file because another process holds it."""
    if not isinstance(error, duckdb.IOException):
        return False
    message = str(error)
    return "Could not set lock" in message or "Conflicting lock" in message


class _DuckSession:
    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._connection = connection

    def run(self, sql: str, params: Sequence = ()) -> list[tuple]:
        result = self._connection.execute(sql, list(params) if params else None)
        if result.description is None:
            return []
        return result.fetchall()

    def stage(self, name: str, columns: dict[str, list[str | None]]) -> None:
        # Object columns of str/None scan as VARCHAR; the SQL casts them to their types.
        self._connection.register(name, pd.DataFrame(columns, dtype=object))

    def lock_schema(self) -> None:
        """The file lock already makes this process the only writer."""


class DuckDBWarehouse(SqlWarehouse):
    dialect = Dialect.DUCKDB

    def __init__(
        self,
        path: Path | str,
        *,
        entities: Sequence[Entity] = ENTITIES,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        super().__init__(entities)
        self.path = Path(path).absolute()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url_for_display = f"duckdb:///{self.path}"
        self._lock_timeout = lock_timeout
        self._lock = _lock_for(self.path)

    def _open(self) -> duckdb.DuckDBPyConnection:
        retrying = Retrying(
            retry=retry_if_exception(is_lock_conflict),
            stop=stop_after_delay(self._lock_timeout),
            wait=wait_exponential_jitter(multiplier=0.01, max=0.5, jitter=0.05),
        )
        try:
            return retrying(duckdb.connect, str(self.path))
        except RetryError as error:
            raise WarehouseError(
                f"DuckDB warehouse {self.path} stayed locked by another process for "
                f"{self._lock_timeout:g} s; is a long-running query holding it open?"
            ) from error.last_attempt.exception()

    @contextmanager
    def _session(self) -> Iterator[_DuckSession]:
        with self._lock:
            connection = self._open()
            try:
                connection.execute("SET TimeZone = 'UTC'")
                connection.begin()
                try:
                    yield _DuckSession(connection)
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()
            finally:
                connection.close()
