"""The token store's database: SQLite by default, PostgreSQL in production, one thin shim.

Statements are written once with ``?`` placeholders and SQL that both engines accept
(``INSERT ... ON CONFLICT ... DO UPDATE``); the shim supplies the few differences: the
placeholder style, column types, catalog queries and advisory locks. Not an ORM on purpose.

Every write transaction here is short: none waits on the network (a token refresh holds
a lease row instead, see store.py), so a lock is never held for longer than a few
statements take.

- SQLite: every write transaction is ``BEGIN IMMEDIATE``, which takes the database's
  single write lock up front, waiting up to `lock_timeout` for it. WAL mode keeps
  readers unblocked meanwhile; ``synchronous=FULL`` makes a committed rotated refresh
  token survive a power cut.
- PostgreSQL: pooled connections (`qbo_pipeline.postgres`) in UTC; `lock_timeout` bounds
  every wait for a row lock.

Lock waits that time out raise `StoreBusy`, a file that is not a database raises
`StoreUnreadable`: one line each, which the service answers as 503 and 500.

`hold(name)` is the one long lock: a run holds its company for as long as it reads QBO,
so that two runs never share (and overrun) one company's request limits, whichever
process, machine or Dagster deployment they run in. On PostgreSQL it is a session
advisory lock on a connection of its own, on SQLite an flock on a file beside the
database; either is released by the operating system or the server when its process
dies, so a killed run never leaves its company held.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.urls import mask_url
from qbo_pipeline.vault.errors import StoreBusy, StoreUnreadable, StoreWriteFailed

DATABASE_URL_VARIABLE = "QBO_DATABASE_URL"
# Transactions are a few statements long, so a long wait means something is stuck.
LOCK_TIMEOUT_SECONDS = 30.0
# How often a wait for a held name looks again.
HOLD_POLL_SECONDS = 0.25
_ACCEPTED_FORMS = (
    "unset (a SQLite file in the project), sqlite:///relative/path.db, "
    "sqlite:////absolute/path.db or postgresql://user:password@host:5432/dbname"
)

Row = dict[str, Any]

# Schemas known to exist, per database and process: sensors open the store every tick,
# and checking the catalog each time would be a query, creating it a write lock.
_schemas_ready: set[tuple[str, tuple[str, ...]]] = set()
_schemas_lock = threading.Lock()


def as_utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp (ISO text from SQLite, timestamptz from PostgreSQL) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def check_database_url(url: str | None) -> None:
    """Raise ConfigurationError unless `url` is a form `open_database` accepts."""
    url = (url or "").strip()
    if not url:
        return
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        _sqlite_path(url)
    elif scheme not in {"postgresql", "postgres", "postgresql+psycopg"}:
        raise ConfigurationError(
            f"{DATABASE_URL_VARIABLE}={mask_url(url)} is not supported; use {_ACCEPTED_FORMS}"
        )


def open_database(
    url: str | None, *, default_path: Path, lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> Database:
    """The database QBO_DATABASE_URL names; unset or empty means a SQLite file at default_path."""
    check_database_url(url)
    url = (url or "").strip()
    if not url:
        return SQLiteDatabase(Path(default_path), lock_timeout=lock_timeout)
    if url.lower().startswith("sqlite"):
        return SQLiteDatabase(_sqlite_path(url), lock_timeout=lock_timeout)
    # psycopg and its pool cost 23 MiB and a tenth of a second to import: only for a server.
    from qbo_pipeline.vault.postgres_database import PostgresDatabase

    return PostgresDatabase(url, lock_timeout=lock_timeout)


def _sqlite_path(url: str) -> Path:
    """sqlite:///relative.db is relative to the working directory, sqlite:////abs.db absolute."""
    if not url.lower().startswith("sqlite:///"):
        raise ConfigurationError(
            f"{DATABASE_URL_VARIABLE}={mask_url(url)} is not a SQLite file URL; use "
            f"{_ACCEPTED_FORMS}"
        )
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ConfigurationError(
            f"{DATABASE_URL_VARIABLE}={url} names no file (in-memory SQLite cannot be shared "
            f"between processes); use {_ACCEPTED_FORMS}"
        )
    return Path(path)


class Transaction:
    """One open transaction (or an autocommit session for reads) on either engine."""

    def __init__(self, database: Database, connection: Any) -> None:
        self._database = database
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns how many rows it changed."""
        return self._run(sql, params).rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run a statement once per row of parameters, in one round trip where the driver
        can; returns how many rows it changed in all."""
        if not rows:
            return 0
        return self._database.run_many(self._connection, sql, rows)

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

    @abstractmethod
    def run_many(self, connection: Any, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    @abstractmethod
    def columns(self, tx: Transaction, tables: Sequence[str]) -> dict[str, set[str]]:
        """The columns of each of `tables` that exists."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """What tells this database apart from others in one process (for the schema memo)."""

    def advisory_lock(self, tx: Transaction, name: str) -> None:
        del tx, name

    def create_schema(
        self,
        statements: Sequence[str],
        *,
        tables: Sequence[str],
        columns: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Create missing tables and add missing columns, once per process.

        `statements` are CREATE ... IF NOT EXISTS for `tables`; `columns` are columns
        added after a table's first release (name: SQL type), added to older tables.
        Only a store that lacks something takes the write lock; one that has everything
        is read once and then trusted for the life of the process.
        """
        key = (self.identity, tuple(statements))
        if key in _schemas_ready:
            return
        columns = columns or {}
        with _schemas_lock:
            with self.read() as tx:
                complete = not _missing(self.columns(tx, tables), tables, columns)
            if not complete:
                with self.transaction() as tx:
                    tx.advisory_lock("qbo_pipeline.schema")
                    for statement in statements:
                        tx.execute(statement)
                    for table, column, kind in _missing(self.columns(tx, tables), (), columns):
                        tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            _schemas_ready.add(key)

    @abstractmethod
    def hold(self, name: str, *, holder: str, wait: float) -> Any:
        """Context manager: `name` held against every other holder until the block ends."""

    def close(self) -> None:  # noqa: B027 - only pooling engines have something to release
        """Release pooled connections; the object stays usable and reconnects on demand."""


class Held(Exception):
    """`name` stayed held by `holder` (None: it did not say) for the whole wait."""

    def __init__(self, name: str, holder: str | None, waited: float) -> None:
        super().__init__(f"{name} held by {holder or 'another process'} for {waited:g} s")
        self.name, self.holder, self.waited = name, holder, waited


def holder_label(what: str) -> str:
    """How a holder names itself to those waiting: what it is, and where it runs."""
    return f"{what} on {socket.gethostname()}, pid {os.getpid()}, since {_now_text()}"


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def wait_for_hold(
    name: str,
    attempt: Callable[[], bool],
    wait: float,
    current_holder: Callable[[], str | None],
) -> None:
    """Try `attempt` until it succeeds; past `wait` seconds, raise Held naming the holder."""
    deadline = time.monotonic() + wait
    while not attempt():
        if time.monotonic() >= deadline:
            raise Held(name, current_holder(), wait)
        time.sleep(HOLD_POLL_SECONDS)


def _file_name(name: str) -> str:
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"a hold's name is letters, digits, '-', '_' and '.'; not {name!r}")
    return f"{name}.lock"


def _try_flock(handle: Any) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(handle: Any) -> str | None:
    handle.seek(0)
    return handle.read().strip() or None


def _missing(
    existing: dict[str, set[str]],
    tables: Sequence[str],
    columns: Mapping[str, Mapping[str, str]],
) -> list[tuple[str, str, str]]:
    """(table, column, type) still to add, plus ("", table, "") for each missing table."""
    missing = [("", table, "") for table in tables if table not in existing]
    for table, wanted in columns.items():
        have = existing.get(table)
        if have is not None:
            missing += [(table, name, kind) for name, kind in wanted.items() if name not in have]
    return missing


class SQLiteDatabase(Database):
    """A SQLite file, one short-lived connection per unit of work (thread- and fork-safe)."""

    dialect = "sqlite"
    timestamp_type = "TEXT"
    identity_column = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: Path, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        super().__init__(f"sqlite:///{path}", lock_timeout=lock_timeout)
        self.path = path
        self._wal_ready = False

    @property
    def identity(self) -> str:
        return f"sqlite:{self.path.resolve()}"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
            connection.execute("PRAGMA synchronous = FULL")
            if not self._wal_ready:
                connection.execute("PRAGMA journal_mode = WAL")
                self._wal_ready = True
        except sqlite3.DatabaseError as error:
            connection.close()
            raise self._translated(error) from None
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        connection = self._connect()
        try:
            self.run(connection, "BEGIN IMMEDIATE", ())
            try:
                yield Transaction(self, connection)
            except BaseException:
                connection.rollback()
                raise
            self.run(connection, "COMMIT", ())
        finally:
            connection.close()

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        connection = self._connect()
        try:
            yield Transaction(self, connection)
        finally:
            connection.close()

    def run(self, connection: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
        try:
            cursor = connection.execute(sql, [_sqlite_value(value) for value in params])
        except sqlite3.DatabaseError as error:
            raise self._translated(error) from None
        return _DictCursor(cursor)

    def run_many(
        self, connection: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]
    ) -> int:
        try:
            cursor = connection.executemany(
                sql, ([_sqlite_value(value) for value in row] for row in rows)
            )
        except sqlite3.DatabaseError as error:
            raise self._translated(error) from None
        return cursor.rowcount

    def columns(self, tx: Transaction, tables: Sequence[str]) -> dict[str, set[str]]:
        found = {
            row["name"] for row in tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        return {
            table: {row["name"] for row in tx.all(f"PRAGMA table_info({table})")}
            for table in tables
            if table in found
        }

    def _translated(self, error: sqlite3.DatabaseError) -> Exception:
        """SQLite's errors an operator can act on, as one line naming the file; others as
        they are (a bug is a traceback)."""
        text = str(error)
        if "locked" in text or "busy" in text:
            return StoreBusy(
                f"the token store {self.url} stayed locked by another process for "
                f"{self.lock_timeout:g} s; retry in a moment"
            )
        if "disk" in text or "I/O" in text or "full" in text or "readonly" in text:
            return StoreWriteFailed(
                f"the token store {self.url} cannot be written ({text}); free disk space or "
                "fix the file's permissions, then retry"
            )
        if not isinstance(error, sqlite3.OperationalError) or "unable to open" in text:
            return StoreUnreadable(
                f"the token store {self.url} is not a readable SQLite database ({text}); "
                f"restore it from a backup, or point {DATABASE_URL_VARIABLE} at another file "
                "and reconnect the companies"
            )
        return error

    @contextmanager
    def hold(self, name: str, *, holder: str, wait: float) -> Iterator[None]:
        """Hold `name` for the block against every other holder, in any process.

        Waits up to `wait` seconds, then raises `Held` naming the current holder as it
        described itself (its `holder`).
        """
        directory = self.path.parent / f"{self.path.name}.holds"
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / _file_name(name), "a+", encoding="utf-8") as handle:
            wait_for_hold(name, lambda: _try_flock(handle), wait, lambda: _read_holder(handle))
            handle.truncate(0)
            handle.write(holder)
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)  # flock goes with the file's closing


def _sqlite_value(value: Any) -> Any:
    """Datetimes as UTC ISO-8601 text with microseconds, which sorts in time order."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    return value


class _DictCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return dict(row) if row is not None else None

    def fetchall(self) -> list[Row]:
        return [dict(row) for row in self._cursor.fetchall()]
