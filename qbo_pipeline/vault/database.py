"""The token store's database: SQLite by default, PostgreSQL in production, one thin shim.

Statements are written once with ``?`` placeholders and SQL that both engines accept
(``INSERT ... ON CONFLICT ... DO UPDATE``); the shim supplies the few differences: the
placeholder style, column types, row locks and advisory locks. Not an ORM on purpose.

Write transactions are where the engines differ most, and where the refresh lock lives:

- SQLite: every write transaction is ``BEGIN IMMEDIATE``, which takes the database's
  single write lock up front (so two processes never both read a refresh token and then
  both try to write), waiting up to `lock_timeout` for it. WAL mode keeps readers
  unblocked meanwhile; ``synchronous=FULL`` makes a committed rotated refresh token
  survive a power cut.
- PostgreSQL: ``SELECT ... FOR UPDATE`` locks one row per realm; `lock_timeout` bounds the
  wait. Connections are pooled per process and set to UTC.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from qbo_pipeline.urls import mask_url

DATABASE_URL_VARIABLE = "QBO_DATABASE_URL"
LOCK_TIMEOUT_SECONDS = 120.0
_ACCEPTED_FORMS = (
    "unset (a SQLite file in the project), sqlite:///relative/path.db, "
    "sqlite:////absolute/path.db or postgresql://user:password@host:5432/dbname"
)

Row = dict[str, Any]


class DatabaseLockTimeout(Exception):
    """Waited `lock_timeout` seconds for a lock another connection holds."""


def as_utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp (ISO text from SQLite, timestamptz from PostgreSQL) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def open_database(
    url: str | None, *, default_path: Path, lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> Database:
    """The database QBO_DATABASE_URL names; unset or empty means a SQLite file at default_path."""
    url = (url or "").strip()
    if not url:
        return SQLiteDatabase(Path(default_path), lock_timeout=lock_timeout)
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        return SQLiteDatabase(_sqlite_path(url), lock_timeout=lock_timeout)
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        return PostgresDatabase(_libpq_url(url), lock_timeout=lock_timeout)
    raise ValueError(
        f"{DATABASE_URL_VARIABLE}={mask_url(url)} is not supported; use {_ACCEPTED_FORMS}"
    )


def _sqlite_path(url: str) -> Path:
    """sqlite:///relative.db is relative to the working directory, sqlite:////abs.db absolute."""
    if not url.lower().startswith("sqlite:///"):
        raise ValueError(
            f"{DATABASE_URL_VARIABLE}={mask_url(url)} is not a SQLite file URL; use "
            f"{_ACCEPTED_FORMS}"
        )
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ValueError(
            f"{DATABASE_URL_VARIABLE}={url} names no file (in-memory SQLite cannot be shared "
            f"between processes); use {_ACCEPTED_FORMS}"
        )
    return Path(path)


def _libpq_url(url: str) -> str:
    scheme, _, rest = url.partition(":")
    return f"postgresql:{rest}" if scheme.lower() == "postgresql+psycopg" else url


class Transaction:
    """One open transaction (or an autocommit session for reads) on either engine."""

    def __init__(self, database: Database, connection: Any) -> None:
        self._database = database
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._run(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self._run(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._run(sql, params).fetchall())

    def advisory_lock(self, name: str) -> None:
        """Serialise this transaction with every other one taking the same name, until commit.

        A no-op on SQLite, where write transactions are serialised already.
        """
        self._database.advisory_lock(self, name)

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        return self._database.run(self._connection, sql, params)


class Database(ABC):
    """A connection factory plus the SQL differences between the engines."""

    dialect: ClassVar[str]
    timestamp_type: ClassVar[str]
    identity_column: ClassVar[str]
    for_update: ClassVar[str]

    def __init__(self, display_url: str, *, lock_timeout: float) -> None:
        self.url = display_url
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @abstractmethod
    def transaction(self) -> Any:
        """Context manager: a write transaction, committed on success, rolled back on error."""

    @abstractmethod
    def read(self) -> Any:
        """Context manager: an autocommit session for reads that must not wait for writers."""

    @abstractmethod
    def run(self, connection: Any, sql: str, params: Sequence[Any]) -> Any: ...

    def advisory_lock(self, tx: Transaction, name: str) -> None:
        del tx, name

    def create_schema(self, statements: Sequence[str]) -> None:
        """Run CREATE ... IF NOT EXISTS statements, safely when many processes start at once."""
        with self.transaction() as tx:
            tx.advisory_lock("qbo_pipeline.schema")
            for statement in statements:
                tx.execute(statement)

    def close(self) -> None:  # noqa: B027 - only pooling engines have something to release
        """Release pooled connections; the object stays usable and reconnects on demand."""


class SQLiteDatabase(Database):
    """A SQLite file, one short-lived connection per unit of work (thread- and fork-safe)."""

    dialect = "sqlite"
    timestamp_type = "TEXT"
    identity_column = "INTEGER PRIMARY KEY AUTOINCREMENT"
    for_update = ""

    def __init__(self, path: Path, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        super().__init__(f"sqlite:///{path}", lock_timeout=lock_timeout)
        self.path = path
        self._wal_ready = False

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
        connection.execute("PRAGMA synchronous = FULL")
        if not self._wal_ready:
            connection.execute("PRAGMA journal_mode = WAL")
            self._wal_ready = True
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        connection = self._connect()
        try:
            self._begin_immediate(connection)
            try:
                yield Transaction(self, connection)
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
        finally:
            connection.close()

    def _begin_immediate(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise DatabaseLockTimeout(str(error)) from None
            raise

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        connection = self._connect()
        try:
            yield Transaction(self, connection)
        finally:
            connection.close()

    def run(self, connection: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
        cursor = connection.execute(sql, [_sqlite_value(value) for value in params])
        return _DictCursor(cursor)


def _sqlite_value(value: Any) -> Any:
    """Datetimes as UTC ISO-8601 text with microseconds, which sorts in time order."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    return value


class _DictCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return dict(row) if row is not None else None

    def fetchall(self) -> list[Row]:
        return [dict(row) for row in self._cursor.fetchall()]


class PostgresDatabase(Database):
    """A PostgreSQL database through psycopg 3, with a small per-process connection pool."""

    dialect = "postgresql"
    timestamp_type = "TIMESTAMPTZ"
    identity_column = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    for_update = " FOR UPDATE"
    pool_size = 4

    def __init__(self, url: str, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        super().__init__(mask_url(url), lock_timeout=lock_timeout)
        self._conninfo = url
        self._idle: list[psycopg.Connection] = []
        self._inherited: list[psycopg.Connection] = []
        self._pid = os.getpid()
        self._pool_lock = threading.Lock()

    def _connect(self) -> psycopg.Connection:
        try:
            connection = psycopg.connect(
                self._conninfo, autocommit=True, row_factory=dict_row, connect_timeout=10
            )
        except psycopg.OperationalError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            password = urlsplit(self._conninfo).password
            if password:
                first_line = first_line.replace(password, "***")
            raise ConnectionError(
                f"cannot connect to {DATABASE_URL_VARIABLE}={self.url}: {first_line}"
            ) from None
        connection.execute("SET TIME ZONE 'UTC'")
        return connection

    def _acquire(self) -> psycopg.Connection:
        with self._pool_lock:
            if os.getpid() != self._pid:
                # A forked child must not touch (or close) the parent's sockets.
                self._inherited.extend(self._idle)
                self._idle = []
                self._pid = os.getpid()
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed:
                    return connection
        return self._connect()

    def _release(self, connection: psycopg.Connection) -> None:
        idle = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._pool_lock:
            if idle and not connection.closed and len(self._idle) < self.pool_size:
                self._idle.append(connection)
                return
        connection.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        connection = self._acquire()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        self._release(connection)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._connection() as connection, connection.transaction():
            timeout_ms = int(self.lock_timeout * 1000)
            connection.execute(f"SET LOCAL lock_timeout = {timeout_ms}")
            yield Transaction(self, connection)

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with self._connection() as connection:
            yield Transaction(self, connection)

    def run(self, connection: psycopg.Connection, sql: str, params: Sequence[Any]) -> Any:
        try:
            return connection.execute(sql.replace("?", "%s"), list(params))
        except psycopg.errors.LockNotAvailable as error:
            raise DatabaseLockTimeout(str(error).splitlines()[0]) from None

    def advisory_lock(self, tx: Transaction, name: str) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))

    def close(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
